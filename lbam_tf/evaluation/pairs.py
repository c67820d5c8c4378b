"""Test cases for the evaluation: images and masks read, then paired.

Exists so that what is scored is fixed by the data and the seed alone: images
and masks come from folders (decoded as the Beam job decodes them) or from a
preprocessing output folder, all at the crop size, and are paired
deterministically with every hole-ratio bin getting the same share.
"""

import dataclasses
import os

import numpy as np

from lbam_tf.data import masks as masks_lib
from lbam_tf.data import records
from lbam_tf.images import bounded_read
from lbam_tf.images import decode
from lbam_tf.images import files as image_files
from lbam_tf.images import ops as image_ops
from lbam_tf.images import polarity as polarity_rule
from lbam_tf.images import resize


@dataclasses.dataclass
class Pair:
  """One test case: a ground-truth image and a mask, both at the crop size."""
  image_key: str
  mask_key: str
  image: np.ndarray  # uint8 [S, S, 3]
  known: np.ndarray  # float32 [S, S, 1], 1 = known, 0 = hole
  hole_ratio: float
  bin: int


def _known_mask_at(known, size):
  """A known mask [H, W, 1] resized (nearest) to [size, size, 1]."""
  known = np.asarray(known, np.float32).reshape(known.shape[0], known.shape[1])
  known = resize.square_mask(known, size)
  return (known >= 0.5).astype(np.float32)[..., None]


def _decode_folder(folder, flag, decode_file):
  """[(file name, decode_file(bytes))] for the image files in `folder`, by name."""
  paths = image_files.list_images(folder)
  if not paths:
    raise ValueError(
        f"no images ({', '.join(image_files.IMAGE_EXTENSIONS)}) in --{flag} "
        f"{folder}")
  decoded = []
  for path in paths:
    try:
      contents = bounded_read.read_file(
          path, decode.max_file_bytes(decode.DEFAULT_MAX_PIXELS))
      decoded.append((os.path.basename(path), decode_file(contents)))
    except (bounded_read.FileRefused, decode.Rejected) as error:
      raise ValueError(
          f"cannot use {path} ({error}): remove it or convert it to PNG"
      ) from None
  return decoded


def read_image_folder(image_dir, crop_size):
  """[(file name, uint8 [S, S, 3])] for the images in `image_dir`, by name.

  Decoded as pipeline.preprocess decodes (EXIF orientation, 16 bits, alpha
  over white), so a folder and its preprocessed records agree.
  """
  return _decode_folder(
      image_dir, "image_dir", lambda contents: resize.resize_and_centre_crop(
          decode.decode_image(contents, decode.DEFAULT_MAX_PIXELS), crop_size))


def read_mask_folder(mask_dir, polarity, crop_size):
  """[(file name, float32 [S, S, 1] 1 = known)] for every mask in `mask_dir`.

  Decoded, binarised and resized as pipeline.preprocess reads a --mask_dir.
  """
  polarity_rule.check(polarity)

  def known(contents):
    hole = decode.decode_mask(contents, decode.DEFAULT_MAX_PIXELS, polarity,
                              crop_size)
    return image_ops.known_mask_from_image(hole[..., None]).numpy()

  return _decode_folder(mask_dir, "mask_dir", known)


def _unique(keys):
  """Keys made unique in order: a repeated "k" becomes "k#1", "k#2", ..."""
  seen = {}
  unique = []
  for key in keys:
    count = seen.get(key, 0)
    seen[key] = count + 1
    unique.append(key if count == 0 else f"{key}#{count}")
  return unique


def read_data_dir(data_dir, split, crop_size):
  """Images of `split` and the test masks of a preprocessing output folder.

  Image keys name the source photo, so several crops of one photo share one;
  they are numbered in file order to stay distinct.
  """
  images = list(records.read_images(data_dir, split).as_numpy_iterator())
  masks = list(records.read_masks(data_dir, "test").as_numpy_iterator())
  if not images or not masks:
    raise ValueError(
        f"{data_dir} has {len(images)} {split} images and {len(masks)} test "
        "masks: try --split val, or rerun pipeline.preprocess with more images "
        "or a larger --test_fraction")
  image_keys = _unique([example["key"].decode() for example in images])
  mask_keys = _unique([example["source"].decode() for example in masks])
  return ([(key, resize.resize_and_centre_crop(example["image"], crop_size))
           for key, example in zip(image_keys, images)],
          [(key, _known_mask_at(example["mask"], crop_size))
           for key, example in zip(mask_keys, masks)])


def read_inputs(config):
  """(images, masks, description) for an `EvalConfig`'s data options.

  The description names the source for the reports.
  """
  if config.data_dir is not None:
    images, masks = read_data_dir(config.data_dir, config.split,
                                  config.crop_size)
    return images, masks, {"data_dir": config.data_dir, "split": config.split}
  images = read_image_folder(config.image_dir, config.crop_size)
  masks = read_mask_folder(config.mask_dir, config.mask_polarity,
                           config.crop_size)
  return images, masks, {
      "image_dir": config.image_dir,
      "mask_dir": config.mask_dir,
      "mask_polarity": config.mask_polarity
  }


def known_hole_ratio(known):
  """Hole fraction of a model mask (1 = known), counted by masks.hole_ratio."""
  return masks_lib.hole_ratio(image_ops.hole_image_from_known_mask(known))


def pair_images_with_masks(images, masks, num_images, seed):
  """Deterministic, bin-balanced pairs.

  The seed permutes the images (sorted by key first) and shuffles the masks of
  each hole-ratio bin; image i then gets the next mask of bin i mod (number of
  bins that have masks). Masks are reused when a bin has fewer than needed.

  Args:
    images: [(key, uint8 [S, S, 3])].
    masks: [(key, float32 [S, S, 1] 1 = known)].
    num_images: how many images to keep (0 = all).
    seed: integer seed.

  Returns:
    (pairs, dropped): a list of `Pair`, and the number of masks outside all
    bins.
  """
  rng = np.random.default_rng(seed)
  images = sorted(images, key=lambda item: item[0])
  images = [images[i] for i in rng.permutation(len(images))]
  if num_images:
    images = images[:num_images]

  by_bin = {}
  dropped = 0
  for key, known in sorted(masks, key=lambda item: item[0]):
    ratio = known_hole_ratio(known)
    index = masks_lib.ratio_bin(ratio)
    if index is None:
      dropped += 1
    else:
      by_bin.setdefault(index, []).append((key, known, ratio))
  if not by_bin:
    raise ValueError(
        f"none of the {len(masks)} masks has a hole ratio in "
        f"({masks_lib.FULL_RANGE[0]}, {masks_lib.FULL_RANGE[1]}]: "
        "check --mask_polarity (white = hole) and the masks themselves")
  bins = sorted(by_bin)
  for index in bins:
    by_bin[index] = [
        by_bin[index][i] for i in rng.permutation(len(by_bin[index]))
    ]

  pairs = []
  for i, (image_key, image) in enumerate(images):
    index = bins[i % len(bins)]
    mask_key, known, ratio = by_bin[index][(i // len(bins)) %
                                           len(by_bin[index])]
    pairs.append(Pair(image_key, mask_key, image, known, ratio, index))
  return pairs, dropped
