"""load_generator on every kind of path it accepts, and on ones it refuses."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf
import torch

from lbam_tf.model import generator as generator_lib
from lbam_tf.weights import model_io
from lbam_tf.weights import reference_names


def _randomized(variant, seed):
  """A generator whose every weight differs from a fresh build's."""
  generator = generator_lib.build_generator(variant=variant)
  rng = np.random.default_rng(seed)
  for variable in generator.weights:
    if len(variable.shape) == 4:
      value = rng.normal(0.0, 0.03, variable.shape)
    else:  # g_A scalars, BatchNorm vectors: positive, within g_A's ranges
      value = rng.uniform(0.6, 1.9, variable.shape)
    variable.assign(value.astype(np.float32))
  return generator


def _output(generator):
  rng = np.random.default_rng(0)
  image = rng.uniform(size=(1, 128, 128, 3)).astype(np.float32)
  mask = np.ones((1, 128, 128, 1), np.float32)
  mask[:, 32:96, 40:80] = 0.0
  return generator({"image": image, "mask": mask}, training=False).numpy()


@pytest.fixture(scope="module")
def head():
  generator = _randomized("head", seed=1)
  return generator, _output(generator)


@pytest.fixture(scope="module")
def original_bn():
  generator = _randomized("original_bn", seed=2)
  return generator, _output(generator)


def _assert_same_model(loaded, expected, variant):
  assert reference_names.generator_options(loaded) == {"variant": variant,
                                                       "ablation": "none"}
  np.testing.assert_array_equal(_output(loaded), expected)


def _write_config(directory, **config):
  with open(directory / "config.json", "w") as f:
    json.dump(config, f)


def test_model_dir_with_checkpoints(original_bn, tmp_path):
  generator, expected = original_bn
  # As lbam_tf.train writes it: all flags in config.json, the generator
  # inside a larger checkpoint, several saves of which the latest wins.
  _write_config(tmp_path, variant="original_bn", ablation="none",
                crop_size=128, train_steps=3)
  critic_stand_in = tf.Variable(np.ones(3, np.float32))
  other = _randomized("original_bn", seed=3)
  other_expected = _output(other)
  for number, saved in ((1, other), (2, generator), (3, other)):
    checkpoint = tf.train.Checkpoint(
        step=tf.Variable(number, dtype=tf.int64), generator=saved,
        critic=critic_stand_in)
    tf.train.CheckpointManager(checkpoint, str(tmp_path),
                               max_to_keep=3).save(checkpoint_number=number)
    if number > 1:
      _assert_same_model(model_io.load_generator(tmp_path),
                         expected if saved is generator else other_expected,
                         "original_bn")
  with pytest.raises(ValueError, match="variant='head' was requested"):
    model_io.load_generator(tmp_path, variant="head")


def test_model_dir_with_final_weights_only(head, tmp_path):
  generator, expected = head
  _write_config(tmp_path, variant="head", ablation="none")
  generator.save_weights(tmp_path / model_io.FINAL_WEIGHTS_NAME)
  _assert_same_model(model_io.load_generator(tmp_path), expected, "head")


def test_weights_h5_with_and_without_config(original_bn, tmp_path):
  generator, expected = original_bn
  with_config = tmp_path / "with_config"
  with_config.mkdir()
  _write_config(with_config, variant="original_bn", ablation="none")
  generator.save_weights(with_config / "lbam.weights.h5")
  _assert_same_model(model_io.load_generator(with_config / "lbam.weights.h5"),
                     expected, "original_bn")

  alone = tmp_path / "alone.weights.h5"
  generator.save_weights(alone)
  _assert_same_model(model_io.load_generator(alone, variant="original_bn"),
                     expected, "original_bn")
  # Without a config the file's BatchNorm weights tell the variant.
  _assert_same_model(model_io.load_generator(alone), expected, "original_bn")
  with pytest.raises(ValueError, match="do not fit the .*'head'"):
    model_io.load_generator(alone, variant="head")


def test_keras_file(head, tmp_path):
  generator, expected = head
  path = tmp_path / "lbam.keras"
  generator.save(path)
  _assert_same_model(model_io.load_generator(path), expected, "head")


def test_reference_checkpoints(head, tmp_path):
  generator, expected = head
  state_dict = reference_names.generator_to_torch_state_dict(generator)
  npz = tmp_path / "lbam.npz"
  np.savez(npz, **state_dict)
  pth = tmp_path / "lbam.pth"
  torch.save({k: torch.from_numpy(v) for k, v in state_dict.items()}, pth)
  for path in (npz, pth):
    _assert_same_model(model_io.load_generator(path), expected, "head")
  with pytest.raises(ValueError, match="variant='original_bn' was requested"):
    model_io.load_generator(npz, variant="original_bn")


def test_paths_that_are_none_of_these(tmp_path):
  with pytest.raises(FileNotFoundError, match="no such model_dir"):
    model_io.load_generator(tmp_path / "missing.weights.h5")
  with pytest.raises(ValueError, match="without config.json"):
    model_io.load_generator(tmp_path)
  other = tmp_path / "lbam.onnx"
  other.write_bytes(b"\0")
  with pytest.raises(ValueError, match="do not know how to load .*lbam.onnx"):
    model_io.load_generator(other)
  _write_config(tmp_path, variant="head", ablation="none")
  with pytest.raises(ValueError, match="neither a TF checkpoint nor"):
    model_io.load_generator(tmp_path)


def test_write_config_keeps_the_architecture(tmp_path):
  head = {"variant": "head", "ablation": "none"}
  model_io.write_config(tmp_path, head)
  model_io.write_config(tmp_path, head)
  assert model_io.read_config(tmp_path) == head
  with pytest.raises(ValueError, match="already exists with variant='head'"):
    model_io.write_config(tmp_path, {"variant": "original_bn",
                                     "ablation": "none"})
  assert model_io.read_config(tmp_path) == head
  # As training writes it: every flag; converted weights beside it keep them.
  model_io.write_config(tmp_path, {**head, "critic_normalization": "batch",
                                   "batch_size": 8})
  model_io.write_config(tmp_path, head)
  assert model_io.read_config(tmp_path)["batch_size"] == 8
  with pytest.raises(ValueError, match="critic_normalization.*new --model_dir"):
    model_io.write_config(tmp_path, {"critic_normalization": "layer"})
  assert sorted(os.listdir(tmp_path)) == ["config.json"]
  # Defaults filled in for a config without them.
  (tmp_path / "config.json").write_text("{}")
  assert model_io.read_config(tmp_path) == head
