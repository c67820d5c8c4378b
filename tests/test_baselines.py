"""Baselines (OpenCV, PatchMatch): they fill holes, keep known pixels, beat a
trivial fill, repeat exactly."""

import numpy as np
import pytest

from lbam_tf.evaluation import baselines


def _smooth_images():
  """Two 64x64 images that are linear ramps: an inpainter should extend them."""
  y, x = np.mgrid[0:64, 0:64].astype(np.float64)
  ramp_a = np.stack([x / 63, y / 63, (x + y) / 126], axis=-1)
  ramp_b = np.stack([1 - y / 63, x / 63, np.full_like(x, 0.5)], axis=-1)
  return np.round(np.stack([ramp_a, ramp_b]) * 255).astype(np.uint8)


def _square_hole_mask(batch=2, size=64, top=20, bottom=40):
  known = np.ones((batch, size, size, 1), np.float32)
  known[:, top:bottom, top:bottom] = 0.0
  return known


@pytest.mark.parametrize("method", sorted(baselines.METHODS))
def test_known_pixels_unchanged_and_holes_filled(method):
  images = _smooth_images()
  known = _square_hole_mask()
  filled = baselines.inpaint_batch(images, known, method)
  assert filled.dtype == np.uint8 and filled.shape == images.shape
  keep = known[..., 0] > 0.5
  np.testing.assert_array_equal(filled[keep], images[keep])
  # The holes are filled with something, not left as the zeros OpenCV was given.
  assert filled[~keep].mean() > 40


#: PatchMatch copies patches, so on a ramp it can only repeat the rim's
#: values; diffusion extends the ramp.
MEAN_FILL_RATIO = {"telea": 0.5, "ns": 0.5, "patchmatch": 0.75}


@pytest.mark.parametrize("method", sorted(baselines.METHODS))
def test_beats_mean_fill_on_smooth_image(method):
  images = _smooth_images()
  known = _square_hole_mask()
  hole = known[..., 0] < 0.5
  filled = baselines.inpaint_batch(images, known, method).astype(np.float64)
  truth = images.astype(np.float64)
  # The trivial fill: every hole pixel gets its image's mean known colour.
  mean_fill = truth.copy()
  for i in range(len(truth)):
    mean_fill[i][hole[i]] = truth[i][~hole[i]].mean(axis=0)
  error = np.abs(filled - truth)[hole].mean()
  trivial = np.abs(mean_fill - truth)[hole].mean()
  assert error < MEAN_FILL_RATIO[method] * trivial, (error, trivial)


@pytest.mark.parametrize("method", sorted(baselines.METHODS))
def test_hole_pixels_are_never_read(method):
  images = _smooth_images()
  known = _square_hole_mask()
  hole = known[..., 0] < 0.5
  scribbled = images.copy()
  scribbled[hole] = np.random.default_rng(0).integers(0, 256,
                                                      scribbled[hole].shape)
  np.testing.assert_array_equal(
      baselines.inpaint_batch(scribbled, known, method),
      baselines.inpaint_batch(images, known, method))


def test_accepts_masks_without_channel_axis():
  images = _smooth_images()
  known = _square_hole_mask()
  np.testing.assert_array_equal(
      baselines.inpaint_batch(images, known[..., 0], "telea"),
      baselines.inpaint_batch(images, known, "telea"))


def test_rejects_unknown_method_and_float_images():
  images = _smooth_images()
  known = _square_hole_mask()
  with pytest.raises(ValueError, match="criminisi.*patchmatch"):
    baselines.inpaint_batch(images, known, "criminisi")
  with pytest.raises(ValueError, match="uint8"):
    baselines.inpaint_batch(images / 255.0, known, "ns")


def test_patchmatch_is_seeded_and_copies_texture():
  # A texture diffusion cannot continue: PatchMatch copies the stripes.
  stripes = np.zeros((64, 64, 3), np.uint8)
  stripes[:, np.arange(64) // 8 % 2 == 1] = 255  # 8 pixels on, 8 off
  images = np.stack([stripes, stripes])
  known = _square_hole_mask()
  hole = known[..., 0] < 0.5
  first = baselines.inpaint_batch(images, known, "patchmatch")
  np.testing.assert_array_equal(
      first, baselines.inpaint_batch(images, known, "patchmatch"))
  patchmatch_error = np.abs(first.astype(int) - images)[hole].mean()
  telea_error = np.abs(baselines.inpaint_batch(images, known, "telea")
                       .astype(int) - images)[hole].mean()
  assert patchmatch_error < 0.5 * telea_error, (patchmatch_error, telea_error)


def test_patchmatch_without_whole_known_patches_falls_back_to_telea():
  images = _smooth_images()
  known = np.zeros((2, 64, 64, 1), np.float32)
  known[:, :, :3] = 1.0  # a 3-pixel strip: no 5x5 patch to copy
  np.testing.assert_array_equal(
      baselines.inpaint_batch(images, known, "patchmatch"),
      baselines.inpaint_batch(images, known, "telea"))
