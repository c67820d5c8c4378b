"""The TFRecord schema and the tf.data reader: the one module knowing features.

A data_dir is what `python -m pipeline.preprocess` writes: gzip TFRecords of
tf.train.Example under images/ and masks/, manifest.json, rejected.jsonl; the
features are `IMAGE_FEATURES` and `MASK_FEATURES` below. The schema, a public
contract, is README.md's "Output layout and TFRecord schema"; the reader's
choices are in BUILD_NOTES.md, "Data pipeline".

Example:

    train = records.make_dataset("out/data", "train", batch_size=8,
                                 crop_size=128, seed=0)
    batch = next(iter(train))  # {"image": [8,128,128,3], "mask": [8,128,128,1]}
"""

import json
import os

import cv2
import numpy as np
import tensorflow as tf

from lbam_tf.images import ops as image_ops
from lbam_tf.data import masks

#: The data_dir's summary, written by pipeline.preprocess, read by
#: `read_manifest`.
MANIFEST_NAME = "manifest.json"
IMAGE_SPLITS = ("train", "val", "test")
MASK_SPLITS = ("train", "test")

IMAGE_FEATURES = {
    "image": tf.io.FixedLenFeature([], tf.string),
    "key": tf.io.FixedLenFeature([], tf.string),
    # Optional so that records written by other tools (without offsets) read.
    "offset": tf.io.FixedLenFeature([2], tf.int64, default_value=[0, 0]),
}
MASK_FEATURES = {
    "mask": tf.io.FixedLenFeature([], tf.string),
    "hole_ratio": tf.io.FixedLenFeature([], tf.float32),
    "source": tf.io.FixedLenFeature([], tf.string),
}

#: The public schema, written into manifest.json and documented in the README.
SCHEMA = {
    "images": {
        "image": "bytes: PNG of an HxWx3 uint8 RGB crop",
        "key": "bytes: key of the source image",
        "offset": "int64 [2]: (y, x) of the crop in the source resized to load_size",
    },
    "masks": {
        "mask": "bytes: PNG of an HxW uint8 mask, 255 = hole, 0 = known",
        "hole_ratio": "float: fraction of hole pixels",
        "source": "bytes: generator/split/index, or the ingested mask's key",
    },
    "files": "{kind}/{split}-SSSSS-of-NNNNN.tfrecord.gz, gzip, tf.train.Example",
}

SHUFFLE_BUFFER = 1000


# Writing (shared by the Beam job and tests).

def encode_png(array):
  """PNG bytes of a uint8 HxW or HxWx3 (RGB) array."""
  array = np.asarray(array)
  if array.dtype != np.uint8:
    raise ValueError(f"PNG encoding needs uint8, got {array.dtype}")
  if array.ndim == 3:
    array = cv2.cvtColor(array, cv2.COLOR_RGB2BGR)
  ok, buffer = cv2.imencode(".png", array)
  if not ok:
    raise ValueError(f"could not PNG-encode an array of shape {array.shape}")
  return buffer.tobytes()


def _bytes(value):
  return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _text(value):
  return _bytes(value.encode("utf-8"))


def _serialize(features):
  # Deterministic: protobuf map order otherwise varies between processes, and
  # the Beam job promises byte-identical files from any number of workers.
  example = tf.train.Example(features=tf.train.Features(feature=features))
  return example.SerializeToString(deterministic=True)


def image_example(image, key, offset=(0, 0)):
  """Serialized tf.train.Example of one uint8 HxWx3 crop."""
  image = np.asarray(image)
  if image.ndim != 3 or image.shape[-1] != 3:
    raise ValueError(f"image crop must be HxWx3, got shape {image.shape}")
  features = {
      "image": _bytes(encode_png(image)),
      "key": _text(key),
      "offset": tf.train.Feature(
          int64_list=tf.train.Int64List(value=[int(v) for v in offset])),
  }
  return _serialize(features)


def mask_example(mask, source):
  """Serialized tf.train.Example of one uint8 HxW mask, 255 = hole."""
  mask = np.asarray(mask)
  if mask.ndim != 2:
    raise ValueError(f"mask must be HxW (one channel), got shape {mask.shape}")
  features = {
      "mask": _bytes(encode_png(mask)),
      "hole_ratio": tf.train.Feature(
          float_list=tf.train.FloatList(value=[masks.hole_ratio(mask)])),
      "source": _text(source),
  }
  return _serialize(features)


def shard_name(kind, split, shard, num_shards):
  """Path of one shard relative to the data_dir."""
  return os.path.join(
      kind, f"{split}-{shard:05d}-of-{num_shards:05d}.tfrecord.gz")


def write_tfrecords(path, records):
  """Writes serialized records to one gzipped TFRecord file."""
  tf.io.gfile.makedirs(os.path.dirname(path))
  with tf.io.TFRecordWriter(path, options="GZIP") as writer:
    for record in records:
      writer.write(record)


# Reading.

def _files(data_dir, kind, split):
  splits = IMAGE_SPLITS if kind == "images" else MASK_SPLITS
  if split not in splits:
    raise ValueError(f"{kind} split {split!r} is not one of {splits}")
  pattern = os.path.join(data_dir, kind, f"{split}-*-of-*.tfrecord.gz")
  files = sorted(tf.io.gfile.glob(pattern))
  if not files:
    raise FileNotFoundError(
        f"no TFRecords match {pattern}: run `python -m pipeline.preprocess "
        f"--output_dir {data_dir} ...` first, or check --data_dir")
  return files


def _records(files):
  # Sorted files, deterministic interleave: the same order on every run.
  return tf.data.TFRecordDataset(files, compression_type="GZIP",
                                 num_parallel_reads=min(len(files), 8))


def _parse_image(record):
  parsed = tf.io.parse_single_example(record, IMAGE_FEATURES)
  image = tf.io.decode_png(parsed["image"], channels=3)
  return {"image": image, "key": parsed["key"]}


def _parse_mask(record):
  parsed = tf.io.parse_single_example(record, MASK_FEATURES)
  mask = tf.io.decode_png(parsed["mask"], channels=1)
  return {"mask": image_ops.known_mask_from_image(mask, "white"),
          "hole_ratio": parsed["hole_ratio"], "source": parsed["source"]}


def read_images(data_dir, split):
  """Dataset of {"image": uint8 [H, W, 3], "key": string}, in file order."""
  return _records(_files(data_dir, "images", split)).map(
      _parse_image, num_parallel_calls=tf.data.AUTOTUNE)


def read_masks(data_dir, split):
  """Dataset of {"mask": float32 [H, W, 1] 1 = known, "hole_ratio", "source"}."""
  return _records(_files(data_dir, "masks", split)).map(
      _parse_mask, num_parallel_calls=tf.data.AUTOTUNE)


def read_manifest(data_dir):
  """The manifest.json that `python -m pipeline.preprocess` wrote.

  Args:
    data_dir: the pipeline's --output_dir (local or any `tf.io.gfile` path).

  Returns:
    The manifest as a dict: "counts", "flags", "schema", ...

  Raises:
    FileNotFoundError: there is none.
  """
  path = os.path.join(data_dir, MANIFEST_NAME)
  if not tf.io.gfile.exists(path):
    raise FileNotFoundError(
        f"{path} does not exist: run python -m pipeline.preprocess first "
        f"(with --output_dir {data_dir})")
  with tf.io.gfile.GFile(path) as f:
    return json.load(f)


def stored_crop_size(data_dir):
  """The crop size the data_dir was written with (from manifest.json), or None."""
  try:
    manifest = read_manifest(data_dir)
  except FileNotFoundError:
    return None
  return manifest.get("flags", {}).get("crop_size")


def check_crop_size(data_dir, crop_size):
  """Refuses crops larger than the data_dir's stored crops (its manifest)."""
  stored = stored_crop_size(data_dir)
  if crop_size is not None and stored is not None and crop_size > stored:
    raise ValueError(
        f"crop_size {crop_size} is larger than the stored {stored}x{stored} "
        f"crops in {data_dir}: use crop_size <= {stored}, or rerun "
        f"pipeline.preprocess with --crop_size {crop_size}")


def _fit_mask(mask, size):
  # Nearest neighbour keeps masks binary.
  return tf.image.resize(mask, size, method="nearest")


def _train_pair(image, mask, seed, crop_size):
  seeds = tf.random.split(tf.cast(seed, tf.int64), 4)
  image = tf.cast(image, tf.float32) / 255.0
  if crop_size is not None:
    image = tf.image.stateless_random_crop(
        image, [crop_size, crop_size, 3], seed=seeds[0])
  image = tf.image.stateless_random_flip_left_right(image, seed=seeds[1])
  mask = tf.image.stateless_random_flip_left_right(mask, seed=seeds[2])
  mask = tf.image.stateless_random_flip_up_down(mask, seed=seeds[3])
  mask = _fit_mask(mask, tf.shape(image)[:2])
  return {"image": image, "mask": mask}


def _eval_pair(image, mask, crop_size):
  image = tf.cast(image, tf.float32) / 255.0
  if crop_size is not None:
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    top, left = (height - crop_size) // 2, (width - crop_size) // 2
    image = image[top:top + crop_size, left:left + crop_size, :]
  return {"image": image, "mask": _fit_mask(mask, tf.shape(image)[:2])}


def make_dataset(data_dir, split="train", batch_size=8, crop_size=None,
                 training=True, seed=None, shuffle_buffer=SHUFFLE_BUFFER):
  """Batches of images paired with masks, for training or evaluation.

  Images of the "train" split pair with "train" masks, "val" and "test" images
  with the stratified "test" masks.

  Args:
    data_dir: output_dir of pipeline.preprocess.
    split: "train", "val" or "test" (image split).
    batch_size: examples per batch.
    crop_size: side of the square fed to the model, at most the stored crop
      size; None keeps the stored crops. Random crop when training, centre crop
      otherwise. Masks are resized (nearest neighbour) to match.
    training: True: repeat forever, shuffle images and masks, random crops,
      left-right image flips, mask flips, random pairing, whole batches only.
      False: one pass in file order, the i-th image paired with the i-th test
      mask (cycling), the same batches on every run.
    seed: makes training order and augmentation reproducible; None draws fresh.
    shuffle_buffer: shuffle buffer size, in examples, for images and masks.

  Returns:
    tf.data.Dataset of {"image": float32 [B, S, S, 3] in [0, 1],
    "mask": float32 [B, S, S, 1], 1 = known, 0 = hole}.
  """
  check_crop_size(data_dir, crop_size)
  images = read_images(data_dir, split).map(lambda x: x["image"])
  mask_split = "train" if split == "train" else "test"
  hole_masks = read_masks(data_dir, mask_split).map(lambda x: x["mask"])
  autotune = tf.data.AUTOTUNE

  if training:
    # Repeated, then shuffled in one fixed order: every iterator of this
    # dataset yields the same stream, so the batches a trainer sees do not
    # depend on how many iterators it opens (Keras' fit opens one to build
    # the model, then trains from another; a cluster loop opens one).
    seeds = tf.data.Dataset.random(seed=seed,
                                   rerandomize_each_iteration=False).batch(2)
    images = images.repeat().shuffle(shuffle_buffer, seed=seed,
                                     reshuffle_each_iteration=False)
    mask_seed = None if seed is None else seed + 1
    hole_masks = hole_masks.repeat().shuffle(
        shuffle_buffer, seed=mask_seed, reshuffle_each_iteration=False)
    dataset = tf.data.Dataset.zip((images, hole_masks, seeds)).map(
        lambda image, mask, pair_seed: _train_pair(image, mask, pair_seed,
                                                   crop_size),
        num_parallel_calls=autotune)
    dataset = dataset.batch(batch_size, drop_remainder=True)
    if seed is None:
      options = tf.data.Options()
      options.deterministic = False
      dataset = dataset.with_options(options)
  else:
    dataset = tf.data.Dataset.zip((images, hole_masks.repeat())).map(
        lambda image, mask: _eval_pair(image, mask, crop_size),
        num_parallel_calls=autotune)
    dataset = dataset.batch(batch_size)
  return dataset.prefetch(autotune)
