"""`loop.train(config)` in-process: precision, resumes, epochs, NaN stops.

One model_dir, on data without a val split, goes through a bfloat16 run, a
refused resume, a float32 resume counted in epochs with a new rate, and a run
that overflows; each stage checks the result, the log line, the checkpoint
and what the run left in Keras' global state.
"""

import json
import logging
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from lbam_tf.training import config as train_config
from lbam_tf.training import loop

import tiny_data

pytestmark = pytest.mark.heavy


def test_precision_resumes_epochs_and_nan_stop(tmp_path, caplog):
  data_dir = tiny_data.write(tmp_path / "data", {"train": 4, "val": 0})
  model_dir = str(tmp_path / "run")

  def config(**overrides):
    return train_config.cpu_small(**{
        "data_dir": data_dir, "model_dir": model_dir, "batch_size": 2,
        "vgg_weights": "none", "critic_steps": 1, "log_every": 1,
        "image_every": 1000, "val_every": 1000, "checkpoint_every": 1000,
        **overrides})

  # 1. mixed_precision on the CPU: bfloat16 compute, float32 saves, and the
  # global policy is back to float32 afterwards. The empty val split only
  # turns validation off.
  # Another test of this process may have quietened absl's logger.
  caplog.set_level(logging.INFO, logger="absl")
  result = loop.train(config(train_steps=1, mixed_precision=True))
  assert result.step == 1 and not result.out_of_time
  assert "new run at step 0 of 1 (1 replicas, bfloat16 compute)" in (
      caplog.text)
  assert (f"no validation: images/val in {data_dir} holds no examples; "
          "training goes on" in caplog.text)
  assert result.validation is None
  assert result.weights_path == os.path.join(model_dir,
                                             "generator.weights.h5")
  assert os.path.isfile(result.weights_path)
  assert keras.mixed_precision.global_policy().name == "float32"
  dtypes = tf.train.load_checkpoint(model_dir).get_variable_to_dtype_map()
  floats = {k: v for k, v in dtypes.items() if v.is_floating}
  # The networks' variables are saved through their optimizers' variable
  # lists (`<optimizer>/_trainable_variables/<i>`), beside Adam's slots.
  for owner in ("generator_optimizer/_trainable_variables/",
                "critic_optimizer/_trainable_variables/"):
    assert any(k.startswith(owner) for k in floats), (owner, sorted(dtypes))
  assert set(floats.values()) == {tf.float32}

  # 2. Resuming with another variant names both values and the remedy.
  with pytest.raises(ValueError) as raised:
    loop.train(config(train_steps=2, variant="original_bn"))
  assert ("already exists with variant='head', but variant='original_bn' "
          "was to be written: resume with the same architecture or use a new "
          "--model_dir" in str(raised.value))
  assert tiny_data.latest_step(model_dir) == 1
  with open(os.path.join(model_dir, "config.json")) as f:
    assert json.load(f)["variant"] == "head"

  # 3. Resumed in float32, epochs 1.25 of the manifest's 4 train images at
  # batch 2: ceil(2.5) = 3 steps in all; the new rates win over the ones
  # the checkpoint holds.
  caplog.clear()
  result = loop.train(config(epochs=1.25, generator_lr=3e-4,
                             critic_lr=2e-5))
  assert "at step 1 of 3 (1 replicas, float32 compute)" in caplog.text
  assert result.step == 3 == tiny_data.latest_step(model_dir)
  assert int(tiny_data.checkpointed(
      model_dir, "generator_optimizer/_iterations")) == 3
  assert np.isclose(tiny_data.checkpointed(
      model_dir, "generator_optimizer/_learning_rate"), 3e-4)
  assert np.isclose(tiny_data.checkpointed(
      model_dir, "critic_optimizer/_learning_rate"), 2e-5)

  # 4. A loss that overflows float32 (a hole weight of 1e39) stops the run
  # at that step, naming it, and saves nothing from it.
  with pytest.raises(FloatingPointError) as raised:
    loop.train(config(train_steps=10, hole_weight=1e39,
                      checkpoint_every=1))
  assert "loss term 'generator_loss' is inf at step 4" in str(raised.value)
  assert "the last good checkpoint is " in str(raised.value)
  assert tiny_data.latest_step(model_dir) == 3


@pytest.mark.parametrize("overrides, message", [
    ({"crop_size": 200}, "--crop_size 200 is not a multiple of 128"),
    ({"train_steps": 0}, "give --train_steps N or --epochs E"),
    ({"log_every": 0}, "--log_every 0 must be >= 1"),
    ({"initialization": "zeros"}, "--initialization 'zeros' is not one of"),
    ({"max_minutes": 5, "strategy": "multi_worker"},
     "--max_minutes is not supported with --strategy multi_worker"),
])
def test_bad_config_is_refused_before_anything_is_written(tmp_path,
                                                          overrides, message):
  model_dir = tmp_path / "run"
  config = train_config.cpu_small(**{
      "data_dir": str(tmp_path), "model_dir": str(model_dir),
      "train_steps": 1, **overrides})
  with pytest.raises(ValueError, match=message):
    loop.train(config)
  assert not model_dir.exists()


def test_crops_larger_than_the_stored_ones_are_refused_before_writing(
    tmp_path):
  data_dir = tiny_data.write(tmp_path)
  model_dir = tmp_path / "run"
  config = train_config.cpu_small(
      data_dir=data_dir, model_dir=str(model_dir), train_steps=1,
      crop_size=2 * tiny_data.CROP, vgg_weights="none")
  with pytest.raises(ValueError, match=(
      f"crop_size {2 * tiny_data.CROP} is larger than the stored "
      f"{tiny_data.CROP}x{tiny_data.CROP} crops")):
    loop.train(config)
  assert not model_dir.exists()


def test_presets_are_defaults_that_arguments_override():
  fast = train_config.cpu_fast(batch_size=2)
  assert (fast.preset, fast.batch_size, fast.crop_size,
          fast.initialization) == ("cpu_fast", 2, 128, "neutral_attention")
  assert train_config.paper() == train_config.TrainConfig()
  weights = train_config.paper(hole_weight=3.0).loss_weights()
  assert weights.hole == 3.0 and weights.valid == (
      train_config.paper().loss_weights().valid)
