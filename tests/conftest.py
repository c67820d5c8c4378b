"""Test-wide settings (quiet TF logs, two threads, deterministic seeds) and
fixtures shared by several test modules."""

import fcntl
import os
import random

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
from keras.src.backend.common import global_state  # noqa: E402
from keras.src.random import seed_generator  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from lbam_tf.model import generator as generator_lib  # noqa: E402
from lbam_tf.weights import model_io  # noqa: E402
from lbam_tf.weights import reference_names  # noqa: E402

tf.config.threading.set_intra_op_parallelism_threads(2)
tf.config.threading.set_inter_op_parallelism_threads(2)
# TF's op-level seed once per process: `tf.random.set_seed` also clears TF's
# kernel cache, so resetting it for every test made each test re-optimise
# every function it called again (7.5-13 s for a SavedModel signature).
tf.random.set_seed(1234)


def pytest_collection_modifyitems(items):
  """Tests of files marked `heavy` first, each group in file order.

  scripts/test.sh runs xdist with --no-loadscope-reorder, so the files are
  handed out in this order: the few that run for minutes start at once on
  both workers and the many short ones fill in after, instead of a long file
  starting last on one worker while the other idles (xdist's default order,
  most tests per file first, put all five long files last).
  """
  items.sort(key=lambda item: item.get_closest_marker("heavy") is None)


@pytest.fixture(autouse=True)
def _seed():
  """The seeds `keras.utils.set_random_seed` resets, but TF's (above).

  Keras' initializers and its global SeedGenerator draw from Python's
  `random`, so every model a test builds starts from the same weights
  whatever ran before it.
  """
  random.seed(1234)
  np.random.seed(1234)
  global_state.set_global_attribute(seed_generator.GLOBAL_SEED_GENERATOR, None)
  yield


@pytest.fixture
def mixed_bfloat16():
  """Keras' global mixed_bfloat16 policy for one test, the previous one after.

  The policy is global state: a test that left it set would build every later
  model of the session in bfloat16.
  """
  previous = keras.mixed_precision.global_policy()
  keras.mixed_precision.set_global_policy("mixed_bfloat16")
  yield
  keras.mixed_precision.set_global_policy(previous)


@pytest.fixture(scope="module")
def generator():
  """A "head" generator with fresh random weights, built once per module."""
  return generator_lib.build_generator()


#: Scales the last layer of `varied_generator`'s random weights: with 1 its
#: hole pixels span 122-134 of 255 (std 1); with 30, 15-244 (std 28) on a
#: 100x150 test image, none clipped.
VARIED_OUTPUT_GAIN = 30.0


@pytest.fixture(scope="session")
def varied_generator():
  """A "head" generator whose hole pixels vary with the image.

  The fresh weights' N(0, 0.02) fill every hole with a flat grey near 0.5, so
  a parity test on them cannot tell the image from zeros. These are
  test_convert's reference-layout random weights, last layer scaled.
  """
  import torch_reference  # pylint: disable=g-import-not-at-top
  weights = torch_reference.random_state_dict(
      torch_reference.Generator("head"), seed=5)
  weights["dc7.weight"] = weights["dc7.weight"] * VARIED_OUTPUT_GAIN
  return reference_names.generator_from_torch_state_dict(weights)


@pytest.fixture(scope="session")
def head_weights(varied_generator, tmp_path_factory):
  """`varied_generator` saved as a .weights.h5 beside its config.json, as a
  user hands it to the CLIs; returns the weights path."""
  folder = tmp_path_factory.mktemp("weights")
  varied_generator.save_weights(str(folder / "g.weights.h5"))
  model_io.write_config(str(folder), {"variant": "head", "ablation": "none"})
  return str(folder / "g.weights.h5")


#: The limits of `varied_export`: small, so that a request above them is
#: cheap to make.
EXPORT_MAX_PIXELS = 128 * 128
EXPORT_MAX_IMAGES = 3
EXPORT_MAX_REQUEST_PIXELS = 2 * EXPORT_MAX_PIXELS


def _shared_export(request, tmp_path_factory, name, **limits):
  """`varied_generator` exported without warm-up requests once per run, in
  the run's shared temporary folder: its model_base_path.

  An export takes 12 s on the quiet machine and more beside other tests, so
  xdist's workers share one: the first to get here writes it, under a lock;
  export's rename into place makes version 1 appear only when complete.
  """
  # Imported here: importing serving.export starts TF's runtime, and its thread
  # counts (above) can only be set before the first op.
  from serving import export  # pylint: disable=g-import-not-at-top
  shared = tmp_path_factory.getbasetemp()
  if os.environ.get("PYTEST_XDIST_WORKER"):
    shared = shared.parent
  base = shared / name / "lbam"
  with open(shared / f"{name}.lock", "w") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    if not (base / "1").is_dir():
      export.export(request.getfixturevalue("varied_generator"),
                    str(base / "1"), warmup_sizes=(), **limits)
  return str(base)


@pytest.fixture(scope="session")
def varied_export(request, tmp_path_factory):
  """An export with small limits, so that a request above them is cheap to
  make; the serving tests load and serve it (read-only: a test that changes
  an export copies it first)."""
  return _shared_export(request, tmp_path_factory, "varied_export",
                        max_pixels=EXPORT_MAX_PIXELS,
                        max_images=EXPORT_MAX_IMAGES,
                        max_request_pixels=EXPORT_MAX_REQUEST_PIXELS)


@pytest.fixture(scope="session")
def default_export(request, tmp_path_factory):
  """An export with InpaintModule's default limits (a 24-megapixel photo)
  and strategy."""
  return _shared_export(request, tmp_path_factory, "default_export")
