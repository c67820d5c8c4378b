"""Robust, bounded decoding of image and mask files.

The one place that turns untrusted image bytes into pixels: the Beam job, the
evaluation and the CLIs all decode here, with the same limits.

Pillow decodes instead of tf.io.decode_image: it reads the EXIF orientation,
CMYK JPEGs, 16-bit PNGs, palettes with transparency and WebP. Only
ACCEPTED_FORMATS are opened, whatever the file name says (Pillow otherwise
tries some forty formats on hostile bytes). The header is read and its size
checked before any pixel is decoded, so a decompression bomb is refused before
memory is spent on it. What a decode then allocates is bounded by the pixel
count: about 18 bytes per pixel at most (RGBA; RGB 14, 16-bit grey 10), and
crops are resized from their own window of the image, never from a whole
resized copy (an upscaled 1x100,000 strip would be 350x35,000,000 pixels).
Every failure becomes a `Rejected` with a reason from REASONS, for
rejected.jsonl.
"""

import contextlib
import io
import threading

import numpy as np
from PIL import Image, ImageOps

from lbam_tf.images import polarity as polarity_rule
from lbam_tf.images import resize

#: Why a file's bytes were rejected, as written to rejected.jsonl.
REASONS = ("zero_byte", "not_an_image", "truncated", "unreadable", "too_small",
           "decompression_bomb")

#: Pillow format names decoded; anything else is "not_an_image".
ACCEPTED_FORMATS = ("JPEG", "PNG", "BMP", "GIF", "WEBP")

# The max_pixels check below replaces Pillow's process-wide limit, which
# would otherwise raise on images the user allowed. The limit is lifted only
# while a header is read (`_pillow_limit_lifted`), never at import, so that
# importing this module leaves Pillow's setting alone for everyone else.
_PILLOW_LIMIT_LOCK = threading.Lock()

#: Default pixel limit: Pillow's own, above which only decompression bombs go.
DEFAULT_MAX_PIXELS = 89_478_485

# The largest accepted encoding is a raw 16-bit RGBA PNG, 8 bytes per pixel;
# metadata (ICC, EXIF, XMP, text chunks) gets a fixed allowance on top.
_FILE_BYTES_PER_PIXEL = 8
_METADATA_BYTES = 64 << 20

_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


class Rejected(Exception):
  """A file that cannot become training data; `reason` is one of REASONS."""

  def __init__(self, reason, detail):
    super().__init__(f"{reason}: {detail}")
    self.reason = reason
    self.detail = detail


def max_file_bytes(max_pixels):
  """The largest file an image of at most `max_pixels` pixels can need."""
  return _FILE_BYTES_PER_PIXEL * max_pixels + _METADATA_BYTES


@contextlib.contextmanager
def _rejecting():
  """Turns any decoder failure into a Rejected: Pillow's plugins raise
  IndexError, struct.error, ValueError, ... on hostile bytes."""
  try:
    yield
  except Rejected:
    raise
  except Exception as e:  # noqa: BLE001 -- every decode failure is a rejection
    truncated = isinstance(e, EOFError) or "truncated" in str(e)
    raise Rejected("truncated" if truncated else "unreadable",
                   f"{type(e).__name__}: {e}") from None


@contextlib.contextmanager
def _pillow_limit_lifted():
  """Pillow's MAX_IMAGE_PIXELS off for this call, restored afterwards.

  Pillow's limit is a module global: the lock keeps concurrent calls from
  restoring each other's value. Held only while a header is parsed.
  """
  with _PILLOW_LIMIT_LOCK:
    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
      yield
    finally:
      Image.MAX_IMAGE_PIXELS = saved


def _open(data, max_pixels):
  """The image with only its header read, refused if over `max_pixels`."""
  if not data:
    raise Rejected("zero_byte", "the file is empty")
  with _rejecting(), _pillow_limit_lifted():
    try:
      image = Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
    except Image.UnidentifiedImageError:
      raise Rejected(
          "not_an_image",
          f"not one of the formats read ({', '.join(ACCEPTED_FORMATS)}): "
          "convert it to PNG") from None
    width, height = image.size
  if width * height > max_pixels:
    raise Rejected(
        "decompression_bomb",
        f"{width}x{height} = {width * height} pixels exceeds --max_pixels "
        f"{max_pixels}")
  return image


def check_header(data, max_pixels):
  """(width, height) from the header alone, before any pixel is decoded.

  Raises:
    Rejected: the bytes are empty, not an accepted format, unreadable, or
      declare more than `max_pixels` pixels.
  """
  return _open(data, max_pixels).size


def _upright(image):
  try:
    return ImageOps.exif_transpose(image)
  except Exception:  # noqa: BLE001 -- a broken EXIF block must not lose the image
    return image


def _sixteen_to_eight(image):
  """uint8 [H, W] from a 16-bit grey image, rounded (Pillow's own conversion
  clips at 255 instead of scaling). Integer steps in place: 8 bytes per pixel
  at the peak where float64 took 27."""
  wide = np.asarray(image)
  if wide.dtype != np.uint16:
    wide = np.clip(wide, 0, 65535)
  wide = wide.astype(np.uint32)
  wide += 128
  wide //= 257  # round(v / 257): v / 257 never ends in exactly .5
  return wide.astype(np.uint8)


def _to_rgb(image):
  """uint8 HxWx3 RGB; alpha is composited over white, 16 bits scaled to 8."""
  if image.mode in _SIXTEEN_BIT_MODES:
    return np.repeat(_sixteen_to_eight(image)[..., None], 3, axis=-1)
  if image.mode == "P":
    image = image.convert("RGBA" if "transparency" in image.info else "RGB")
  if image.mode in _ALPHA_MODES or "transparency" in image.info:
    # Pasting through its own alpha onto white equals alpha_composite over
    # white, with one RGB copy instead of three RGBA ones.
    rgba = image if image.mode == "RGBA" else image.convert("RGBA")
    image = Image.new("RGB", rgba.size, (255, 255, 255))
    image.paste(rgba, mask=rgba)
  elif image.mode != "RGB":
    image = image.convert("RGB")
  return np.asarray(image)


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
  with _rejecting():
    if min_short_side and image.format == "JPEG":
      width, height = image.size
      scale = min_short_side / min(width, height)
      if scale < 1:
        image.draft(None, (int(np.ceil(width * scale)),
                           int(np.ceil(height * scale))))
    image.load()
    return _to_rgb(_upright(image))


def decode_mask(data, max_pixels, polarity, size):
  """Decodes a mask file to uint8 size x size, 255 = hole, 0 = known.

  Args:
    data: the file's bytes.
    max_pixels: refuse masks with more pixels than this.
    polarity: "white" (bright = hole) or "black" (dark = hole), as stated by
      the user, never guessed; `lbam_tf.images.polarity` is the rule.
    size: output side; resized with nearest neighbour after binarising.
  """
  image = _open(data, max_pixels)
  with _rejecting():
    image.load()
    image = _upright(image)
    if image.mode in _SIXTEEN_BIT_MODES:
      pixels = _sixteen_to_eight(image)[..., None]
    else:
      pixels = np.asarray(image.convert("RGB"))
  hole = polarity_rule.holes(pixels, polarity)
  return resize.square_mask(np.where(hole, np.uint8(255), np.uint8(0)), size)
