"""The serving rules redone in numpy, the yardstick for every inference path.

`lbam_tf.inpaint` pads with TF ops inside a graph; this pads with numpy, so a
test comparing the two checks padding, cropping, compositing and rounding
independently of the code under test.

Example:

    expected = inpaint_reference.expected(generator, image, hole)
"""

import numpy as np

#: `varied_expected` wants hole pixels spread wider than this (uint8 std).
MIN_HOLE_STD = 10.0


def expected(generator, image, hole):
  """Reflect pad to 128, generator, crop, composite, round to uint8.

  Args:
    generator: a Keras generator.
    image: uint8 [H, W, 3].
    hole: bool [H, W], True = hole.

  Returns:
    uint8 [H, W, 3]: the generator's pixels in the hole, `image` elsewhere.
  """
  height, width = hole.shape
  pad = [(0, -height % 128), (0, -width % 128), (0, 0)]
  x = np.pad(image.astype(np.float32) / 255.0, pad, mode="reflect")
  m = np.pad((~hole).astype(np.float32)[..., None], pad, mode="reflect")
  out = np.asarray(generator({"image": x[None], "mask": m[None]},
                             training=False))[0, :height, :width]
  out = np.round(np.clip(out, 0, 1) * 255).astype(np.uint8)
  return np.where(hole[..., None], out, image)


def varied_expected(generator, image, hole):
  """`expected`, checked to fill the hole with varied pixels.

  A flat hole (as fresh weights give) cannot tell the image from zeros, so a
  comparison with it would pass with the image never reaching the generator.
  """
  result = expected(generator, image, hole)
  assert result[hole].std() > MIN_HOLE_STD, (
      f"hole pixels' std {result[hole].std():.1f} <= {MIN_HOLE_STD}: use "
      "weights whose holes vary (conftest's varied_generator)")
  return result
