"""One function that loads a generator from whatever the user points at.

Inference, export and evaluation take a single `--weights`-style path (a
training model_dir, a `.weights.h5` or `.keras` file, a `.pth` or `.npz`
reference checkpoint) and this module decides what it is. It also owns
`config.json` (`write_config`, `read_config`). What each path gives: README.md,
"Using the authors' checkpoint"; the rules: BUILD_NOTES.md, "Model and
conversion".

Example:

    generator = model_io.load_generator("runs/paris")  # a model_dir
    generator = model_io.load_generator("LBAM_G_500.pth")
"""

import json
import os

import h5py
import keras
import tensorflow as tf

from lbam_tf.model import generator as generator_lib
from lbam_tf.weights import reference_names

CONFIG_NAME = "config.json"
FINAL_WEIGHTS_NAME = "generator.weights.h5"


#: The config.json values that fix the architecture (of the generator, and of
#: the critic for training): weights written under one do not fit another.
ARCHITECTURE_KEYS = ("variant", "ablation", "critic_normalization")


def read_config(directory):
  """The config.json in `directory`, "variant" and "ablation" defaults filled.

  Args:
    directory: a training model_dir or a folder of weights (local or any
      `tf.io.gfile` path, e.g. gs://).

  Returns:
    The stored dict, with "variant" ("head") and "ablation" ("none") filled
    in when absent.
  """
  with tf.io.gfile.GFile(os.path.join(directory, CONFIG_NAME)) as f:
    config = json.load(f)
  return {**config, "variant": config.get("variant", "head"),
          "ablation": config.get("ablation", "none")}


def write_config(directory, values):
  """Writes `values` to `directory`/config.json, atomically.

  The file is written under a temporary name and renamed over config.json,
  so a reader never sees half a file (also on gs://, via `tf.io.gfile`).
  An existing config.json must agree on every `ARCHITECTURE_KEYS` entry that
  both name; its other keys that `values` does not name are kept.

  Args:
    directory: the training model_dir, or the folder of converted weights.
    values: a JSON-serialisable dict, e.g. {"variant": ..., "ablation": ...}.

  Raises:
    ValueError: the existing config.json names another architecture; it is
      left as it was.
  """
  path = os.path.join(directory, CONFIG_NAME)
  config = {}
  if tf.io.gfile.exists(path):
    with tf.io.gfile.GFile(path) as f:
      config = json.load(f)
    for key in ARCHITECTURE_KEYS:
      if key in config and key in values and config[key] != values[key]:
        raise ValueError(
            f"{path} already exists with {key}={config[key]!r}, but "
            f"{key}={values[key]!r} was to be written: resume with the same "
            "architecture or use a new --model_dir (converted weights: "
            "convert into another folder)")
  config.update(values)
  temporary = path + ".tmp"
  with tf.io.gfile.GFile(temporary, "w") as f:
    f.write(json.dumps(config, indent=2, sort_keys=True) + "\n")
  tf.io.gfile.rename(temporary, path, overwrite=True)


def _resolve(requested, stored, what, source):
  """The argument wins only if it agrees with what the files say."""
  if requested is not None and stored is not None and requested != stored:
    raise ValueError(
        f"{what}={requested!r} was requested but {source} says {stored!r}; "
        f"drop the {what} argument or point at weights of that {what}")
  return requested if requested is not None else stored


def _build(variant, ablation):
  return generator_lib.build_generator(
      variant=variant or "head", ablation=ablation or "none")


def _load_model_dir(model_dir, variant, ablation):
  config_path = os.path.join(model_dir, CONFIG_NAME)
  if not os.path.exists(config_path):
    raise ValueError(
        f"{model_dir} is a directory without {CONFIG_NAME}, so it is not a "
        "training model_dir; pass a model_dir written by lbam_tf.train or a "
        "weights file")
  checkpoint = tf.train.latest_checkpoint(model_dir)
  final_weights = os.path.join(model_dir, FINAL_WEIGHTS_NAME)
  if checkpoint is None:
    if os.path.exists(final_weights):
      return _load_weights_h5(final_weights, variant, ablation)
    raise ValueError(
        f"model_dir {model_dir} has neither a TF checkpoint nor "
        f"{FINAL_WEIGHTS_NAME}: has training written one yet?")
  config = read_config(model_dir)
  generator = _build(
      _resolve(variant, config["variant"], "variant", config_path),
      _resolve(ablation, config["ablation"], "ablation", config_path))
  tf.train.Checkpoint(generator=generator).restore(
      checkpoint).assert_existing_objects_matched().expect_partial()
  return generator


def _h5_arrays(path):
  """{path inside the file: shape} of every array in a Keras weights file."""
  arrays = {}
  with h5py.File(path, "r") as f:
    f.visititems(lambda name, obj: arrays.update({name: obj.shape})
                 if isinstance(obj, h5py.Dataset) else None)
  return arrays


def _load_weights_h5(path, variant, ablation):
  directory = os.path.dirname(os.path.abspath(path))
  config_path = os.path.join(directory, CONFIG_NAME)
  stored = {"variant": None, "ablation": None}
  if os.path.exists(config_path):
    stored = read_config(directory)
  arrays = _h5_arrays(path)
  if variant is None and stored["variant"] is None:
    # Keras loads a weights file into any model whose layers it covers, so
    # BatchNorm weights would be dropped silently by a "head" model.
    has_batch_norm = any("/bn/" in name for name in arrays)
    variant = "original_bn" if has_batch_norm else "head"
  generator = _build(
      _resolve(variant, stored["variant"], "variant", config_path),
      _resolve(ablation, stored["ablation"], "ablation", config_path))
  expected = sorted(tuple(v.shape) for v in generator.weights)
  if sorted(arrays.values()) != expected:
    options = reference_names.generator_options(generator)
    raise ValueError(
        f"{path} holds {len(arrays)} arrays that do not fit the {options} "
        f"generator ({len(expected)} weights): pass the variant and ablation "
        f"it was trained with, or put its {CONFIG_NAME} beside it")
  generator.load_weights(path)
  return generator


def _load_reference(path, variant, ablation):
  # An explicit ablation overrides detection (the g_A replacements need it).
  generator = reference_names.generator_from_torch_state_dict(
      reference_names.load_state_dict_file(path), ablation=ablation)
  _resolve(variant, reference_names.generator_options(generator)["variant"],
           "variant", path)
  return generator


def load_generator(path, variant=None, ablation=None):
  """Loads a generator from a model_dir, .weights.h5, .keras, .pth or .npz.

  Args:
    path: what to load (see the module docstring).
    variant: "head" or "original_bn". For a `.weights.h5` file without a
      config.json beside it this picks the architecture (default: what the
      file holds); elsewhere it is checked against what the files say.
    ablation: one of `generator.ABLATIONS`, handled like `variant`.

  Returns:
    A `keras.Model` as built by `lbam_tf.model.generator.build_generator`.

  Raises:
    FileNotFoundError: `path` does not exist.
    ValueError: `path` is none of the kinds above, or disagrees with
      `variant` / `ablation`.
  """
  path = os.fspath(path)
  if not os.path.exists(path):
    raise FileNotFoundError(f"no such model_dir or weights file: {path}")
  if os.path.isdir(path):
    return _load_model_dir(path, variant, ablation)
  if path.endswith(".weights.h5"):
    return _load_weights_h5(path, variant, ablation)
  if path.endswith(".keras"):
    generator = keras.saving.load_model(path, compile=False)
    options = reference_names.generator_options(generator)
    _resolve(variant, options["variant"], "variant", path)
    _resolve(ablation, options["ablation"], "ablation", path)
    return generator
  if path.endswith((".pth", ".pt", ".npz")):
    return _load_reference(path, variant, ablation)
  raise ValueError(
      f"do not know how to load {path}: expected a training model_dir, a "
      ".weights.h5, .keras, .pth or .npz file")


#: Export precisions -> the Keras dtype policy the generator is rebuilt under.
#: "bfloat16" stores the weights in bfloat16 too: with float32 weights cast at
#: every call ("mixed_bfloat16") the CPU ran no faster than float32.
PRECISION_POLICIES = {"float32": "float32", "bfloat16": "bfloat16"}


def with_dtype_policy(generator, policy):
  """The same generator and weights, rebuilt under a Keras dtype policy.

  Args:
    generator: a model from `build_generator` (or `load_generator`).
    policy: a Keras dtype policy name, e.g. "bfloat16" (weights and compute
      in bfloat16; oneDNN's fast kernels on CPUs with AVX512_BF16 or AMX) or
      "mixed_bfloat16".

  Returns:
    A new `keras.Model` taking and returning float32 as before (the inputs
    are cast by the first layers, the output head runs in float32).
  """
  previous = keras.config.dtype_policy()
  keras.config.set_dtype_policy(policy)
  try:
    rebuilt = generator_lib.build_generator(
        **reference_names.generator_options(generator))
  finally:
    keras.config.set_dtype_policy(previous)
  rebuilt.set_weights(generator.get_weights())
  return rebuilt
