"""Which pixels of a mask file are holes: one rule for every entry point.

A mask file's pixels are reduced to their 8-bit luma (ITU-R BT.601, in the
fixed point Pillow's "L" conversion uses; alpha ignored, grey as is) and a
pixel is bright when its luma is at least 128. With polarity "white" bright
pixels are holes (the authors' masks), with "black" dark ones (NVIDIA's
irregular-mask zip). The Beam job and `lbam_tf.evaluate --mask_dir` apply it
in numpy (`lbam_tf.images.decode`), the serving graph in TensorFlow
(`lbam_tf.images.ops`), both from these constants. No TensorFlow here:
`serving.client` imports it and stays light.
"""

import numpy as np

#: How a mask file marks holes; "white" is every entry point's default.
POLARITIES = ("white", "black")

#: BT.601 luma weights for R, G, B in 16-bit fixed point; they sum to 1 << 16,
#: so a grey pixel's luma is its value.
LUMA_WEIGHTS = (19595, 38470, 7471)
LUMA_SHIFT = 16
#: The 8-bit luma from which a pixel counts as bright.
BRIGHT_LUMA = 128


def check(polarity):
  """Returns `polarity` if it is one of POLARITIES, else raises ValueError."""
  if polarity not in POLARITIES:
    raise ValueError(
        f"mask polarity {polarity!r} is not one of {POLARITIES}: say which "
        "colour marks the holes in your mask files")
  return polarity


def luma(pixels):
  """uint8 luma [..., H, W] of uint8 pixels [..., H, W, C], C in 1-4.

  One or two channels are grey (and alpha); three or four RGB (and alpha).
  """
  pixels = np.asarray(pixels)
  if pixels.shape[-1] <= 2:
    return pixels[..., 0].astype(np.uint8)
  rgb = pixels[..., :3].astype(np.uint32)
  weighted = sum(rgb[..., i] * LUMA_WEIGHTS[i] for i in range(3))
  return ((weighted + (1 << (LUMA_SHIFT - 1))) >> LUMA_SHIFT).astype(np.uint8)


def holes(pixels, polarity):
  """bool [..., H, W]: which of the uint8 pixels [..., H, W, C] are holes."""
  bright = luma(pixels) >= BRIGHT_LUMA
  return bright if check(polarity) == "white" else ~bright
