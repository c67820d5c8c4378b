"""Test cases for the evaluation: images and masks read, then paired.

Exists so that what is scored is fixed by the data and the seed alone: images
and masks come from folders (decoded as the Beam job decodes them) or from a
preprocessing output folder, all at the crop size, and are paired
deterministically with every hole-ratio bin getting the same share.

At high resolution (`--eval_size N`, `read_photo_pairs`) the images are whole
photos, long side resized to N (never enlarged), and each pair's mask is
drawn at its photo's size or a --mask_dir mask stretched to it; the pairing
is the one the same seed gives at the crop size.
"""

import dataclasses
import os

import cv2
import numpy as np

from lbam_tf import seeding
from lbam_tf.data import masks as masks_lib
from lbam_tf.data import records
from lbam_tf.evaluation import metrics
from lbam_tf.images import bounded_read
from lbam_tf.images import decode
from lbam_tf.images import files as image_files
from lbam_tf.images import ops as image_ops
from lbam_tf.images import polarity as polarity_rule
from lbam_tf.images import resize


#: Drawn masks (--eval_size without --mask_dir): the share of random-shape
#: masks (brush strokes and boxes), the rest irregular blobs, as
#: pipeline.preprocess draws its test masks by default.
DRAWN_RANDOM_SHAPE_FRACTION = 0.6


@dataclasses.dataclass
class Pair:
  """One test case: a ground-truth image and a mask of the same size: the
  crop size, or with --eval_size the photo's."""
  image_key: str
  mask_key: str
  image: np.ndarray  # uint8 [H, W, 3]
  known: np.ndarray  # float32 [H, W, 1], 1 = known, 0 = hole
  hole_ratio: float
  bin: int


def _known_mask_at(known, size):
  """A known mask [H, W, 1] resized (nearest) to [size, size, 1]."""
  known = np.asarray(known, np.float32).reshape(known.shape[0], known.shape[1])
  known = resize.square_mask(known, size)
  return (known >= 0.5).astype(np.float32)[..., None]


def _folder_files(folder, flag):
  """[(file name, path)] of the image files in `folder`, by name."""
  paths = image_files.list_images(folder)
  if not paths:
    raise ValueError(
        f"no images ({', '.join(image_files.IMAGE_EXTENSIONS)}) in --{flag} "
        f"{folder}")
  return [(os.path.basename(path), path) for path in paths]


def _decode_file(path, decode_file):
  """decode_file(the bytes of `path`); a file that cannot be used is a
  ValueError naming it."""
  try:
    contents = bounded_read.read_file(
        path, decode.max_file_bytes(decode.DEFAULT_MAX_PIXELS))
    return decode_file(contents)
  except (bounded_read.FileRefused, decode.Rejected) as error:
    raise ValueError(
        f"cannot use {path} ({error}): remove it or convert it to PNG"
    ) from None


def _decode_folder(folder, flag, decode_file):
  """[(file name, decode_file(bytes))] for the image files in `folder`, by name."""
  return [(name, _decode_file(path, decode_file))
          for name, path in _folder_files(folder, flag)]


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


def fit_long_side(image, size):
  """The high-resolution rule: the whole photo, aspect ratio kept, long side
  resized to `size` (OpenCV area interpolation); never enlarged."""
  height, width = image.shape[:2]
  if max(height, width) <= size:
    return image
  scale = size / max(height, width)
  shape = (size if height >= width else max(1, int(round(height * scale))),
           size if width >= height else max(1, int(round(width * scale))))
  return cv2.resize(image, shape[::-1], interpolation=cv2.INTER_AREA)


def read_photo(path, eval_size):
  """uint8 [H, W, 3]: the photo at `path` decoded as pipeline.preprocess
  decodes it, then `fit_long_side(image, eval_size)`.

  Raises:
    ValueError: the file cannot be used, or its short side comes out below
      the SSIM window.
  """
  image = _decode_file(path, lambda contents: fit_long_side(
      decode.decode_image(contents, decode.DEFAULT_MAX_PIXELS), eval_size))
  if min(image.shape[:2]) < metrics.SSIM_FILTER_SIZE:
    raise ValueError(
        f"{path} is {image.shape[1]}x{image.shape[0]} at --eval_size "
        f"{eval_size}: its short side is below the SSIM window "
        f"{metrics.SSIM_FILTER_SIZE}; remove it or raise --eval_size")
  return image


def read_mask_at(path, polarity, shape):
  """float32 [H, W, 1] (1 = known): the mask file at `path` stretched to
  `shape` (height, width) with the masks' rule (binarised, then nearest
  neighbour; the aspect ratio is not kept)."""
  height, width = shape

  def known(contents):
    # decode_mask stretches to a square: the long side's, then nearest
    # again to the photo's shape (within a pixel of one direct stretch).
    hole = decode.decode_mask(contents, decode.DEFAULT_MAX_PIXELS, polarity,
                              max(height, width))
    if hole.shape != (height, width):
      hole = cv2.resize(hole, (width, height), interpolation=cv2.INTER_NEAREST)
    return image_ops.known_mask_from_image(hole[..., None]).numpy()

  return _decode_file(path, known)


def draw_mask(image_key, shape, index, seed):
  """(mask key, float32 [H, W, 1] 1 = known): a mask drawn at `shape` with
  its hole ratio in bin `index`.

  `lbam_tf.data.masks` draws it as the pipeline draws test masks, with brush
  widths, boxes and blob dilations scaled to the size; the seed and the
  image's key fix it.
  """
  rng = seeding.seeded_rng(seed, "eval_mask", image_key)
  kind = (masks_lib.KINDS[0] if rng.uniform() < DRAWN_RANDOM_SHAPE_FRACTION
          else masks_lib.KINDS[1])
  hole = masks_lib.generate(kind, rng, shape, masks_lib.HOLE_RATIO_BINS[index])
  return f"drawn {kind}", (hole < 128).astype(np.float32)[..., None]


def read_photo_pairs(config):
  """(pairs, data) for an `EvalConfig` with `eval_size` > 0.

  Only the photos kept are decoded. With --mask_dir, images and masks are
  paired as at the crop size (`pair_images_with_masks`, the same seed giving
  the same pairs), then each mask file is stretched to its photo and its
  hole ratio and bin counted there; a pair whose stretched mask leaves all
  bins is dropped (counted in data["masks_stretched_outside_bins"]).
  Without it photo i (in the seed's order) gets a mask drawn in bin
  i mod (number of bins).

  Returns:
    A list of `Pair` at each photo's size, and the data description for the
    reports.
  """
  photos = _folder_files(config.image_dir, "image_dir")
  data = {"image_dir": config.image_dir}
  pairs = []
  if config.mask_dir is not None:
    masks = read_mask_folder(config.mask_dir, config.mask_polarity,
                             config.crop_size)
    chosen, dropped = pair_images_with_masks(photos, masks, config.num_images,
                                             config.seed)
    mask_paths = dict(_folder_files(config.mask_dir, "mask_dir"))
    stretched_out = 0
    for pair in chosen:
      image = read_photo(pair.image, config.eval_size)
      known = read_mask_at(mask_paths[pair.mask_key], config.mask_polarity,
                           image.shape[:2])
      ratio = known_hole_ratio(known)
      index = masks_lib.ratio_bin(ratio)
      if index is None:
        stretched_out += 1
        continue
      pairs.append(Pair(pair.image_key, pair.mask_key, image, known, ratio,
                        index))
    data.update(mask_dir=config.mask_dir, mask_polarity=config.mask_polarity,
                masks_available=len(masks), masks_outside_bins=dropped,
                masks_stretched_outside_bins=stretched_out)
  else:
    chosen = _image_order(photos, config.num_images,
                          np.random.default_rng(config.seed))
    for i, (image_key, path) in enumerate(chosen):
      image = read_photo(path, config.eval_size)
      index = i % len(masks_lib.HOLE_RATIO_BINS)
      mask_key, known = draw_mask(image_key, image.shape[:2], index,
                                  config.seed)
      pairs.append(Pair(image_key, mask_key, image, known,
                        known_hole_ratio(known), index))
    data["masks"] = (f"drawn at each photo's size, bins in turn, "
                     f"{DRAWN_RANDOM_SHAPE_FRACTION:.0%} random-shape")
  data.update(images_available=len(photos), pairs=len(pairs),
              seed=config.seed, eval_size=config.eval_size,
              largest_side=max((max(p.image.shape[:2]) for p in pairs),
                               default=0))
  return pairs, data


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


def _image_order(images, num_images, rng):
  """The images sorted by key, permuted by `rng`, the first `num_images`
  kept (0 = all): the order pairs are made in."""
  images = sorted(images, key=lambda item: item[0])
  images = [images[i] for i in rng.permutation(len(images))]
  return images[:num_images] if num_images else images


def pair_images_with_masks(images, masks, num_images, seed):
  """Deterministic, bin-balanced pairs.

  The seed permutes the images (sorted by key first) and shuffles the masks of
  each hole-ratio bin; image i then gets the next mask of bin i mod (number of
  bins that have masks). Masks are reused when a bin has fewer than needed.

  Args:
    images: [(key, uint8 [S, S, 3])] (or (key, anything): only the keys are
      read, the values go into the pairs as they are).
    masks: [(key, float32 [S, S, 1] 1 = known)].
    num_images: how many images to keep (0 = all).
    seed: integer seed.

  Returns:
    (pairs, dropped): a list of `Pair`, and the number of masks outside all
    bins.
  """
  rng = np.random.default_rng(seed)
  images = _image_order(images, num_images, rng)

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
