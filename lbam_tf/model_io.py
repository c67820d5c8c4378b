"""One function that loads a generator from whatever the user points at.

Inference, export and evaluation take a single `--weights`-style path; this
module decides what it is:
- a training model_dir: `config.json` (variant, ablation) plus TF checkpoints
  written by `tf.train.CheckpointManager`, else its `generator.weights.h5`;
- a `.weights.h5` file: variant and ablation from a `config.json` beside it
  (written by `lbam_tf.convert` and by training; arguments must agree with
  it), else from the arguments, else the variant the file's BatchNorm weights
  show and no ablation;
- a `.keras` file: the whole model, configuration included;
- a `.pth` or `.npz` reference checkpoint: converted on the fly.

Example:

    generator = model_io.load_generator("runs/paris")  # a model_dir
    generator = model_io.load_generator("LBAM_G_500.pth")
"""

import json
import os

import h5py
import keras
import tensorflow as tf

from lbam_tf import convert
from lbam_tf import generator as generator_lib

CONFIG_NAME = "config.json"
FINAL_WEIGHTS_NAME = "generator.weights.h5"


def read_config(path):
  """{"variant", "ablation"} from a config.json, defaults filled in."""
  with open(path) as f:
    config = json.load(f)
  return {"variant": config.get("variant", "head"),
          "ablation": config.get("ablation", "none")}


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
  config = read_config(config_path)
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
  config_path = os.path.join(os.path.dirname(os.path.abspath(path)),
                             CONFIG_NAME)
  stored = {"variant": None, "ablation": None}
  if os.path.exists(config_path):
    stored = read_config(config_path)
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
    options = convert.generator_options(generator)
    raise ValueError(
        f"{path} holds {len(arrays)} arrays that do not fit the {options} "
        f"generator ({len(expected)} weights): pass the variant and ablation "
        f"it was trained with, or put its {CONFIG_NAME} beside it")
  generator.load_weights(path)
  return generator


def _load_reference(path, variant, ablation):
  # An explicit ablation overrides detection (the g_A replacements need it).
  generator = convert.generator_from_torch_state_dict(
      convert.load_state_dict_file(path), ablation=ablation)
  _resolve(variant, convert.generator_options(generator)["variant"],
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
    A `keras.Model` as built by `lbam_tf.generator.build_generator`.

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
    options = convert.generator_options(generator)
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
        **convert.generator_options(generator))
  finally:
    keras.config.set_dtype_policy(previous)
  rebuilt.set_weights(generator.get_weights())
  return rebuilt
