"""Test-wide settings (quiet TF logs, two threads, deterministic seeds) and
fixtures shared by several test modules."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from lbam_tf import convert  # noqa: E402
from lbam_tf import generator as generator_lib  # noqa: E402

tf.config.threading.set_intra_op_parallelism_threads(2)
tf.config.threading.set_inter_op_parallelism_threads(2)


@pytest.fixture(autouse=True)
def _seed():
  tf.keras.utils.set_random_seed(1234)
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
  """A "head" generator with random weights, built once per test module."""
  return generator_lib.build_generator()


@pytest.fixture(scope="module")
def head_weights(generator, tmp_path_factory):
  """`generator` saved as a .weights.h5 beside its config.json, as a user
  hands it to the CLIs; returns the weights path."""
  folder = tmp_path_factory.mktemp("weights")
  generator.save_weights(str(folder / "g.weights.h5"))
  convert.write_config(str(folder), {"variant": "head", "ablation": "none"})
  return str(folder / "g.weights.h5")
