"""The resize and crop rules, one per purpose.

The Beam job's crops (`resized_shape`, `crop_offsets`, `resized_crops`: short
side to --load_size, seeded crops, bicubic from each crop's own window), the
evaluation's whole image (`resize_and_centre_crop`: short side to the crop
size, centre square) and every mask (`square_mask`: stretched to the square,
nearest neighbour).
"""

import cv2
import numpy as np
from PIL import Image

from lbam_tf import seeding


def square_mask(mask, size):
  """The masks' resize rule: a 2-D mask stretched to size x size, nearest.

  Masks are shapes, not photos: the aspect ratio is not kept and no value
  between the two classes is made. Already that size: returned as is.
  """
  if mask.shape[:2] != (size, size):
    mask = cv2.resize(mask, (size, size), interpolation=cv2.INTER_NEAREST)
  return mask


def resize_and_centre_crop(image, size):
  """Evaluation's rule: the whole image, short side to `size`, centre square.

  OpenCV area interpolation when shrinking, bilinear when enlarging; the
  resized shape is `resized_shape`'s, as in the Beam job's crops.
  """
  height, width = resized_shape(image.shape, size)
  if (height, width) != image.shape[:2]:
    interpolation = (cv2.INTER_AREA if size < min(image.shape[:2])
                     else cv2.INTER_LINEAR)
    image = cv2.resize(image, (width, height), interpolation=interpolation)
  top, left = (height - size) // 2, (width - size) // 2
  return np.ascontiguousarray(image[top:top + size, left:left + size])


def resized_shape(shape, size):
  """(height, width) of an image of `shape` resized to short side `size`."""
  height, width = shape[:2]
  scale = size / min(height, width)
  return (size if height < width else max(size, int(round(height * scale))),
          size if width <= height else max(size, int(round(width * scale))))


def resized_crops(image, shape, offsets, crop_size):
  """Square crops of `image` as if resized to `shape`, without resizing it.

  Each crop is resampled (bicubic, antialiased) from its own window of the
  source, so memory is bounded by the crops, not by the resized image; the
  pixels equal those of the whole resized image to within one level.

  Args:
    image: uint8 [H, W, 3].
    shape: (height, width) of the resized image, from `resized_shape`.
    offsets: (y, x) corners in the resized image.
    crop_size: the crops' side.

  Returns:
    A list of uint8 [crop_size, crop_size, 3].
  """
  height, width = image.shape[:2]
  if tuple(shape) == (height, width):
    return [image[y:y + crop_size, x:x + crop_size] for y, x in offsets]
  sy, sx = height / shape[0], width / shape[1]
  source = Image.fromarray(image)
  return [np.asarray(source.resize(
      (crop_size, crop_size), Image.Resampling.BICUBIC,
      box=(x * sx, y * sy, (x + crop_size) * sx, (y + crop_size) * sy)))
          for y, x in offsets]


def crop_offsets(key, seed, shape, crop_size, count):
  """`count` (y, x) crop corners, determined by `seed` and the image's key."""
  height, width = shape[:2]
  rng = seeding.seeded_rng(seed, "crop", key)
  return [(int(rng.integers(0, height - crop_size + 1)),
           int(rng.integers(0, width - crop_size + 1))) for _ in range(count)]
