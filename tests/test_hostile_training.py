"""`python -m lbam_tf.train` on unlucky data: empty splits, a blown-up step."""

import os
import subprocess
import sys

import numpy as np
import tensorflow as tf

from lbam_tf import data

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CROP = 128


def _data_dir(root, images, masks):
  """A TFRecord data_dir with `images` / `masks` examples per split."""
  rng = np.random.default_rng(0)
  for split, count in images.items():
    records = [data.image_example(
        rng.integers(0, 256, (CROP, CROP, 3), dtype=np.uint8), f"{split}/{i}")
               for i in range(count)]
    data.write_tfrecords(str(root / data.shard_name("images", split, 0, 1)),
                         records)
  for split, count in masks.items():
    records = []
    for i in range(count):
      mask = np.zeros((CROP, CROP), np.uint8)
      mask[32:80, 40:88] = 255
      records.append(data.mask_example(mask, f"box/{split}/{i}"))
    data.write_tfrecords(str(root / data.shard_name("masks", split, 0, 1)),
                         records)
  return str(root)


def _train(data_dir, model_dir, *extra):
  return subprocess.run(
      [sys.executable, "-m", "lbam_tf.train", "--preset", "cpu_small",
       "--data_dir", data_dir, "--model_dir", model_dir, "--batch_size", "2",
       "--vgg_weights", "none", "--log_every", "1", "--val_steps", "1",
       *extra],
      cwd=ROOT, capture_output=True, text=True, timeout=600,
      env=dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2"))


def test_empty_train_split_stops_before_writing_anything(tmp_path):
  # All seven images hashed to val: the pipeline still writes every shard.
  data_dir = _data_dir(tmp_path / "data", {"train": 0, "val": 7},
                       {"train": 4, "test": 2})
  model_dir = tmp_path / "run"
  result = _train(data_dir, str(model_dir), "--train_steps", "2")
  assert result.returncode != 0
  assert (f"images/train in --data_dir {data_dir} holds no examples: nothing "
          "to train on. Rerun python -m pipeline.preprocess with more images"
          in result.stderr), result.stderr[-3000:]
  assert not model_dir.exists() or not os.listdir(model_dir)


def test_empty_val_split_warns_and_trains(tmp_path):
  # Seven images that all hash to train.
  data_dir = _data_dir(tmp_path / "data", {"train": 7, "val": 0},
                       {"train": 4, "test": 2})
  model_dir = str(tmp_path / "run")
  result = _train(data_dir, model_dir, "--train_steps", "1")
  assert result.returncode == 0, result.stderr[-3000:]
  assert (f"no validation: images/val in {data_dir} holds no examples; "
          "training goes on" in result.stderr)
  assert tf.train.latest_checkpoint(model_dir).endswith("ckpt-1")
  assert os.path.isfile(os.path.join(model_dir, "generator.weights.h5"))


def test_non_finite_weights_are_never_checkpointed(tmp_path):
  data_dir = _data_dir(tmp_path / "data", {"train": 4, "val": 2},
                       {"train": 4, "test": 2})
  model_dir = str(tmp_path / "run")
  # A float32 learning rate of +Inf: step 1's losses are finite, the update
  # after them is not.
  result = _train(data_dir, model_dir, "--train_steps", "3",
                  "--checkpoint_every", "1", "--generator_lr", "1e39",
                  "--val_steps", "0")
  assert result.returncode == 1, result.stderr[-3000:]
  assert ("holds NaN or Inf after step 1 although the losses were finite: "
          "not saved" in result.stderr), result.stderr[-3000:]
  assert "the last good checkpoint is None" in result.stderr
  assert tf.train.latest_checkpoint(model_dir) is None
  assert not os.path.exists(os.path.join(model_dir, "generator.weights.h5"))
