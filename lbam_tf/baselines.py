"""Classical inpainting baselines: OpenCV's Telea and Navier-Stokes.

No training, no weights: a number for the learned model is never read without
what a classical method scores on the same pairs on the same machine.

Example:

  from lbam_tf import baselines
  filled = baselines.inpaint_batch(images_uint8, known_mask, "telea", radius=5)
"""

import cv2
import numpy as np

#: Baseline name -> OpenCV flag.
METHODS = {
    "telea": cv2.INPAINT_TELEA,  # fast marching (Telea 2004)
    "ns": cv2.INPAINT_NS,  # Navier-Stokes (Bertalmio et al. 2001)
}

#: Names used in tables and plots.
DISPLAY_NAMES = {"telea": "Telea", "ns": "Navier-Stokes"}


def check_method(method):
  """Returns `method` if it is a key of METHODS, else raises ValueError."""
  if method not in METHODS:
    raise ValueError(f"baseline {method!r} is not one of {sorted(METHODS)}")
  return method


def inpaint_batch(images, known_mask, method, radius=5):
  """Fills the holes of a batch with cv2.inpaint and composites the result.

  Args:
    images: uint8 [B, H, W, 3]; pixels in the holes are never read (they are
      zeroed before OpenCV sees them, so no ground truth can leak).
    known_mask: [B, H, W, 1] (or [B, H, W]), 1 = known, 0 = hole, the model's
      convention; below 0.5 counts as hole.
    method: "telea" or "ns".
    radius: the neighbourhood radius in pixels OpenCV fills from.

  Returns:
    uint8 [B, H, W, 3]: known pixels unchanged, holes filled.
  """
  flag = METHODS[check_method(method)]
  images = np.asarray(images)
  if images.dtype != np.uint8:
    raise ValueError(
        f"baselines take uint8 images, got {images.dtype}: scale [0, 1] floats "
        "by 255 and round first")
  hole = np.asarray(known_mask).reshape(images.shape[:3]) < 0.5
  out = np.empty_like(images)
  for i, (image, hole_i) in enumerate(zip(images, hole)):
    masked = np.where(hole_i[..., None], 0, image).astype(np.uint8)
    filled = cv2.inpaint(masked,
                         hole_i.astype(np.uint8) * 255, float(radius), flag)
    out[i] = np.where(hole_i[..., None], filled, image)
  return out
