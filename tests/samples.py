"""Sample arrays, pictures and encoded files shared by several test files.

Example:

    image, hole = samples.sample(40, 60, seed=4)
    image_bytes, mask_bytes = samples.png(image), samples.png(hole)
"""

import struct
import zlib

import numpy as np
import tensorflow as tf


def uniform(shape, seed, low=0.0, high=1.0):
  """float32 U(low, high) of `shape`, the same for the same seed."""
  return np.random.default_rng(seed).uniform(low, high, shape).astype(
      np.float32)


def png(array):
  """PNG bytes of a uint8 [H, W, C] array (tf.io.encode_png)."""
  return tf.io.encode_png(np.asarray(array, np.uint8)).numpy()


def noise(height, width, seed=0):
  """uint8 [height, width, 3] uniform noise, the same for the same seed.

  No generator paints noise back, so a hole that reached the model shows.
  """
  return np.random.default_rng(seed).integers(0, 256, (height, width, 3),
                                              dtype=np.uint8)


def sample(height, width, seed=0):
  """(`noise` image, mask picture): the mask uint8 [height, width, 1], 255
  (white, a hole) in rows H/4 to H/2 and the middle half of the columns."""
  image = noise(height, width, seed)
  hole = np.zeros((height, width, 1), np.uint8)
  hole[height // 4:height // 2, width // 4:3 * width // 4] = 255
  return image, hole


def png_chunk(kind, data):
  """One PNG chunk: length, type, data and CRC."""
  return (struct.pack(">I", len(data)) + kind + data
          + struct.pack(">I", zlib.crc32(kind + data)))


def png_declaring(width, height, zero_bytes=64, level=-1):
  """A valid PNG start declaring width x height 8-bit RGB, whatever it holds:
  the IHDR, one IDAT of `zero_bytes` zeros compressed at zlib `level`, IEND."""
  header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
  return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header)
          + png_chunk(b"IDAT", zlib.compress(b"\0" * zero_bytes, level))
          + png_chunk(b"IEND", b""))
