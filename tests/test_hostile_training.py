"""`loop.train` on unlucky data: an empty train split, a blown-up step.

(An empty val split, which only turns validation off, is a stage of
test_training.py.)

In-process: each case is a refusal or a stop that `train` raises, with the
message a user acts on, and what it leaves in model_dir.
"""

import os

import pytest
import tensorflow as tf

from lbam_tf.training import config as train_config
from lbam_tf.training import loop

import tiny_data


def _config(data_dir, model_dir, **overrides):
  return train_config.cpu_small(**{
      "data_dir": data_dir, "model_dir": model_dir, "batch_size": 2,
      "vgg_weights": "none", "log_every": 1, "val_steps": 1, **overrides})


def test_empty_train_split_stops_before_writing_anything(tmp_path):
  # All seven images hashed to val: the pipeline still writes every shard.
  data_dir = tiny_data.write(tmp_path / "data", {"train": 0, "val": 7})
  model_dir = tmp_path / "run"
  with pytest.raises(ValueError) as raised:
    loop.train(_config(data_dir, str(model_dir), train_steps=2))
  assert (f"images/train in --data_dir {data_dir} holds no examples: nothing "
          "to train on. Rerun python -m pipeline.preprocess with more images"
          in str(raised.value))
  assert not model_dir.exists() or not os.listdir(model_dir)


def test_non_finite_weights_are_never_checkpointed(tmp_path):
  data_dir = tiny_data.write(tmp_path / "data")
  model_dir = str(tmp_path / "run")
  # A float32 learning rate of +Inf: step 1's losses are finite, the update
  # after them is not.
  with pytest.raises(FloatingPointError) as raised:
    loop.train(_config(data_dir, model_dir, train_steps=3,
                       checkpoint_every=1, generator_lr=1e39,
                       val_steps=0))
  assert ("holds NaN or Inf after step 1 although the losses were finite: "
          "not saved" in str(raised.value))
  assert "the last good checkpoint is None" in str(raised.value)
  assert tf.train.latest_checkpoint(model_dir) is None
  assert not os.path.exists(os.path.join(model_dir, "generator.weights.h5"))
