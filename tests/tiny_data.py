"""For the tests that train (in-process or through the command line): a tiny
data_dir written with `lbam_tf.data.records`'s own writer, and readers of what a run
leaves in its model_dir."""

import json
import os

import numpy as np
import tensorflow as tf

from lbam_tf.data import records

CROP = 128


def write(root, images=None, masks=None, manifest=True):
  """TFRecords of `images` / `masks` examples per split under `root`.

  Images are a horizontal ramp plus noise (so a model has something to
  learn), masks a 48x48 box at a random place. Defaults: 4 train and 2 val
  images, 4 train and 2 test masks; `manifest` writes the part of
  pipeline.preprocess's manifest.json that training reads.
  """
  images = {"train": 4, "val": 2} if images is None else images
  masks = {"train": 4, "test": 2} if masks is None else masks
  os.makedirs(root, exist_ok=True)
  rng = np.random.default_rng(0)
  ramp = np.linspace(0, 255, CROP)[None, :, None]
  for split, count in images.items():
    examples = [records.image_example(
        np.clip(ramp + rng.integers(0, 40, size=(CROP, CROP, 3)), 0,
                255).astype(np.uint8), f"{split}/{i}") for i in range(count)]
    records.write_tfrecords(
        os.path.join(root, records.shard_name("images", split, 0, 1)), examples)
  for split, count in masks.items():
    examples = []
    for i in range(count):
      mask = np.zeros((CROP, CROP), np.uint8)
      y, x = rng.integers(0, CROP - 48, size=2)
      mask[y:y + 48, x:x + 48] = 255
      examples.append(records.mask_example(mask, f"box/{split}/{i}"))
    records.write_tfrecords(
        os.path.join(root, records.shard_name("masks", split, 0, 1)), examples)
  if manifest:
    with open(os.path.join(root, "manifest.json"), "w") as f:
      json.dump({"counts": {"images": {"test": 0, **images},
                            "masks": masks},
                 "flags": {"crop_size": CROP}}, f)
  return str(root)


def latest_step(model_dir):
  """The step of model_dir's latest checkpoint, or None without one."""
  path = tf.train.latest_checkpoint(model_dir)
  return None if path is None else int(path.rsplit("-", 1)[1])


def checkpointed(model_dir, key):
  """The value `key` (e.g. "step") holds in model_dir's latest checkpoint."""
  return tf.train.load_checkpoint(model_dir).get_tensor(
      f"{key}/.ATTRIBUTES/VARIABLE_VALUE")
