"""Robust decoding of image and mask files, and the deterministic crop scheme.

Pillow decodes instead of tf.io.decode_image (tensorflow-io is not used): it
reads the EXIF orientation, CMYK JPEGs, 16-bit PNGs, palettes with
transparency and WebP, and it reads the header before the pixels, so a
decompression bomb is refused before any memory is spent on it. Every failure
becomes a `Rejected` with a reason from REASONS, for rejected.jsonl.
"""

import io

import cv2
import numpy as np
from PIL import Image, ImageOps

from lbam_tf import masks

#: Why a file was rejected, as written to rejected.jsonl and the Beam counters.
REASONS = ("zero_byte", "not_an_image", "truncated", "unreadable", "too_small",
           "decompression_bomb")

# The --max_pixels check below replaces Pillow's process-wide limit, which
# would otherwise raise on images the user allowed.
Image.MAX_IMAGE_PIXELS = None

#: Default pixel limit: Pillow's own, above which only decompression bombs go.
DEFAULT_MAX_PIXELS = 89_478_485

_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


class Rejected(Exception):
  """A file that cannot become training data; `reason` is one of REASONS."""

  def __init__(self, reason, detail):
    super().__init__(f"{reason}: {detail}")
    self.reason = reason
    self.detail = detail


def _open(data, max_pixels):
  if not data:
    raise Rejected("zero_byte", "the file is empty")
  try:
    image = Image.open(io.BytesIO(data))
  except Image.UnidentifiedImageError:
    raise Rejected("not_an_image", "not a format Pillow reads") from None
  except Exception as e:  # noqa: BLE001 -- any header failure is a rejection
    raise Rejected("unreadable", f"{type(e).__name__}: {e}") from None
  width, height = image.size
  if width * height > max_pixels:
    raise Rejected(
        "decompression_bomb",
        f"{width}x{height} = {width * height} pixels exceeds --max_pixels "
        f"{max_pixels}")
  return image


def _load(image):
  try:
    image.load()
  except (OSError, EOFError, SyntaxError, ValueError) as e:
    truncated = isinstance(e, EOFError) or "truncated" in str(e)
    raise Rejected("truncated" if truncated else "unreadable",
                   f"{type(e).__name__}: {e}") from None


def _upright(image):
  try:
    return ImageOps.exif_transpose(image)
  except Exception:  # noqa: BLE001 -- a broken EXIF block must not lose the image
    return image


def _to_rgb(image):
  """uint8 HxWx3 RGB; alpha is composited over white, 16 bits scaled to 8."""
  if image.mode in _SIXTEEN_BIT_MODES:
    # Pillow's own conversion clips 16-bit values at 255 instead of scaling.
    grey = np.asarray(image).astype(np.float64) / 257.0
    grey = np.clip(np.round(grey), 0, 255).astype(np.uint8)
    return np.stack([grey] * 3, axis=-1)
  if image.mode == "P":
    image = image.convert("RGBA" if "transparency" in image.info else "RGB")
  if image.mode in _ALPHA_MODES or "transparency" in image.info:
    rgba = image.convert("RGBA")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    image = Image.alpha_composite(white, rgba)
  return np.asarray(image.convert("RGB"))


def decode_image(data, max_pixels, min_short_side=None):
  """Decodes image file bytes to an upright uint8 HxWx3 RGB array.

  Args:
    data: the file's bytes.
    max_pixels: refuse images with more pixels than this (from the header).
    min_short_side: if given, large JPEGs are decoded at a reduced DCT scale
      that keeps the short side at least this long (much faster, same result
      after resizing to it).

  Returns:
    uint8 [H, W, 3]. GIFs and other animations give their first frame.

  Raises:
    Rejected: with the reason the file cannot be used.
  """
  image = _open(data, max_pixels)
  if min_short_side and image.format == "JPEG":
    width, height = image.size
    scale = min_short_side / min(width, height)
    if scale < 1:
      image.draft(None, (int(np.ceil(width * scale)), int(np.ceil(height * scale))))
  _load(image)
  return _to_rgb(_upright(image))


def decode_mask(data, max_pixels, polarity, size):
  """Decodes a mask file to uint8 size x size, 255 = hole, 0 = known.

  Args:
    data: the file's bytes.
    max_pixels: refuse masks with more pixels than this.
    polarity: "white" (bright = hole) or "black" (dark = hole), as stated by
      the user; never guessed.
    size: output side; resized with nearest neighbour after binarising.
  """
  image = _open(data, max_pixels)
  _load(image)
  grey = np.asarray(_upright(image).convert("L"))
  hole = grey >= 128 if polarity == "white" else grey < 128
  mask = np.where(hole, 255, 0).astype(np.uint8)
  return cv2.resize(mask, (size, size), interpolation=cv2.INTER_NEAREST)


def resize_short_side(image, size):
  """Resizes uint8 HxWx3 so its short side is `size` (bicubic, antialiased)."""
  height, width = image.shape[:2]
  scale = size / min(height, width)
  new_w = size if width <= height else max(size, int(round(width * scale)))
  new_h = size if height < width else max(size, int(round(height * scale)))
  if (new_h, new_w) == (height, width):
    return image
  resized = Image.fromarray(image).resize((new_w, new_h), Image.Resampling.BICUBIC)
  return np.asarray(resized)


def crop_offsets(key, seed, shape, crop_size, count):
  """`count` (y, x) crop corners, determined by `seed` and the image's key."""
  height, width = shape[:2]
  rng = masks.seeded_rng(seed, "crop", key)
  return [(int(rng.integers(0, height - crop_size + 1)),
           int(rng.integers(0, width - crop_size + 1))) for _ in range(count)]
