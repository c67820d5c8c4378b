"""Classical inpainting baselines: OpenCV's Telea and Navier-Stokes, and
PatchMatch, the paper's Table 1 comparison.

No training, no weights: a number for the learned model is never read without
what a classical method scores on the same pairs on the same machine.

Example:

  from lbam_tf.evaluation import baselines
  filled = baselines.inpaint_batch(images_uint8, known_mask, "telea", radius=5)
  filled = baselines.inpaint_batch(images_uint8, known_mask, "patchmatch")
"""

from absl import logging
import cv2
import numpy as np
import patchmatch_cython

#: Baseline name -> OpenCV flag, for the diffusion-style methods.
OPENCV_FLAGS = {
    "telea": cv2.INPAINT_TELEA,  # fast marching (Telea 2004)
    "ns": cv2.INPAINT_NS,  # Navier-Stokes (Bertalmio et al. 2001)
}

#: Every baseline, in table order.
METHODS = (*OPENCV_FLAGS, "patchmatch")

#: Names used in tables and plots.
DISPLAY_NAMES = {"telea": "Telea", "ns": "Navier-Stokes",
                 "patchmatch": "PatchMatch"}

#: PatchMatch (Barnes et al. 2009) through patchmatch-cython's coarse-to-fine
#: `inpaint_pyramid` with its defaults otherwise (one EM loop per level,
#: colour-only distance, harmonic seam blending). The seed fixes its random
#: search, so tables repeat exactly.
PATCHMATCH_PATCH_SIZE = 5
PATCHMATCH_SEED = 0


def check_method(method):
  """Returns `method` if it is one of METHODS, else raises ValueError."""
  if method not in METHODS:
    raise ValueError(f"baseline {method!r} is not one of {sorted(METHODS)}")
  return method


def _patchmatch(masked, hole, radius):
  try:
    return patchmatch_cython.inpaint_pyramid(
        masked, hole, patch_size=PATCHMATCH_PATCH_SIZE, seed=PATCHMATCH_SEED)
  except ValueError as error:
    # It needs whole known patches to copy from; a mask that leaves none
    # would otherwise stop a whole evaluation.
    logging.warning("PatchMatch cannot fill a %dx%d image with %d hole "
                    "pixels (%s); Telea fills it instead", *hole.shape,
                    hole.sum(), error)
    return cv2.inpaint(masked, hole.astype(np.uint8) * 255, float(radius),
                       cv2.INPAINT_TELEA)


def inpaint_batch(images, known_mask, method, radius=5):
  """Fills the holes of a batch with one baseline and composites the result.

  Args:
    images: uint8 [B, H, W, 3]; pixels in the holes are never read (they are
      zeroed before a baseline sees them, so no ground truth can leak).
    known_mask: [B, H, W, 1] (or [B, H, W]), 1 = known, 0 = hole, the model's
      convention; below 0.5 counts as hole.
    method: one of METHODS.
    radius: the neighbourhood radius in pixels Telea and Navier-Stokes fill
      from (PatchMatch copies PATCHMATCH_PATCH_SIZE patches instead).

  Returns:
    uint8 [B, H, W, 3]: known pixels unchanged, holes filled.
  """
  check_method(method)
  images = np.asarray(images)
  if images.dtype != np.uint8:
    raise ValueError(
        f"baselines take uint8 images, got {images.dtype}: scale [0, 1] floats "
        "by 255 and round first")
  hole = np.asarray(known_mask).reshape(images.shape[:3]) < 0.5
  out = np.empty_like(images)
  for i, (image, hole_i) in enumerate(zip(images, hole)):
    masked = np.where(hole_i[..., None], 0, image).astype(np.uint8)
    if not hole_i.any():
      filled = masked
    elif method == "patchmatch":
      filled = _patchmatch(masked, hole_i, radius)
    else:
      filled = cv2.inpaint(masked, hole_i.astype(np.uint8) * 255,
                           float(radius), OPENCV_FLAGS[method])
    out[i] = np.where(hole_i[..., None], filled, image)
  return out
