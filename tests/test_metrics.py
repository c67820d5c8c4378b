"""Metrics against values computed independently: by hand, formula, numpy."""

import math

import numpy as np
import pytest

from lbam_tf.evaluation import metrics


def _random_images(seed, shape=(2, 48, 40, 3)):
  return np.random.default_rng(seed).uniform(0.0, 1.0, shape).astype(np.float32)


def _numpy_ssim(x, y, max_val):
  """SSIM of Wang et al. (2004), written from the paper's equations in numpy.

  Separable Gaussian window (11 taps, sigma 1.5, normalised), valid positions
  only, biased (window-weighted) variances, per channel then averaged.
  """
  taps = np.arange(11, dtype=np.float64) - 5.0
  g = np.exp(-taps**2 / (2 * 1.5**2))
  g /= g.sum()

  def blur(a):  # a: [H, W], valid correlation with g along both axes.
    rows = np.stack([a[i:i + a.shape[0] - 10] for i in range(11)], 0)
    a = np.tensordot(g, rows, axes=1)
    cols = np.stack([a[:, j:j + a.shape[1] - 10] for j in range(11)], 0)
    return np.tensordot(g, cols, axes=1)

  c1, c2 = (0.01 * max_val)**2, (0.03 * max_val)**2
  per_image = []
  for xi, yi in zip(x.astype(np.float64), y.astype(np.float64)):
    per_channel = []
    for c in range(xi.shape[-1]):
      a, b = xi[..., c], yi[..., c]
      mu_a, mu_b = blur(a), blur(b)
      var_a = blur(a * a) - mu_a**2
      var_b = blur(b * b) - mu_b**2
      cov = blur(a * b) - mu_a * mu_b
      ssim_map = ((2 * mu_a * mu_b + c1) *
                  (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) *
                                     (var_a + var_b + c2))
      per_channel.append(ssim_map.mean())
    per_image.append(np.mean(per_channel))
  return np.array(per_image)


def test_identical_images_give_capped_psnr_ssim_one_l1_zero():
  x = _random_images(0)
  np.testing.assert_array_equal(metrics.psnr(x, x).numpy(), [100.0, 100.0])
  np.testing.assert_allclose(metrics.ssim(x, x).numpy(), [1.0, 1.0], atol=1e-6)
  np.testing.assert_array_equal(metrics.l1_percent(x, x).numpy(), [0.0, 0.0])


def test_constant_offset_gives_psnr_and_l1_by_hand():
  # An offset of 0.05 everywhere: MSE = 0.0025,
  # PSNR = 20 log10(1 / 0.05) = 26.0206 dB,
  # mean L1 = 5 %.
  x = np.full((1, 32, 32, 3), 0.4, np.float32)
  y = x + np.float32(0.05)
  assert metrics.psnr(y, x).numpy()[0] == pytest.approx(26.0206, abs=1e-3)
  assert metrics.l1_percent(y, x).numpy()[0] == pytest.approx(5.0, abs=1e-4)


def test_gaussian_noise_psnr_matches_formula():
  # Noise of standard deviation 0.02:
  # expected PSNR 10 log10(1 / 0.02^2) = 33.98 dB,
  # exactly 10 log10(1 / MSE) for the noise actually drawn.
  rng = np.random.default_rng(1)
  x = np.full((3, 128, 128, 3), 0.5, np.float32)
  noise = rng.normal(0.0, 0.02, x.shape).astype(np.float32)
  y = x + noise
  mse = np.mean(np.square(noise.astype(np.float64)), axis=(1, 2, 3))
  np.testing.assert_allclose(metrics.psnr(y, x).numpy(),
                             10 * np.log10(1.0 / mse),
                             atol=1e-3)
  # 49,152 samples per image: the sample MSE is within 3 % (0.13 dB) at 5 sigma.
  np.testing.assert_allclose(metrics.psnr(y, x).numpy(),
                             10 * math.log10(1 / 0.02**2),
                             atol=0.15)


def test_uint8_range_gives_the_same_values_as_unit_range():
  rng = np.random.default_rng(2)
  a = rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
  b = np.clip(a.astype(np.int32) + rng.integers(-20, 21, a.shape), 0,
              255).astype(np.uint8)
  fa, fb = a / 255.0, b / 255.0
  np.testing.assert_allclose(metrics.psnr(a, b, 255).numpy(),
                             metrics.psnr(fa, fb).numpy(),
                             rtol=1e-5)
  np.testing.assert_allclose(metrics.ssim(a, b, 255).numpy(),
                             metrics.ssim(fa, fb).numpy(),
                             atol=1e-5)
  np.testing.assert_allclose(metrics.l1_percent(a, b, 255).numpy(),
                             metrics.l1_percent(fa, fb).numpy(),
                             rtol=1e-5)


@pytest.mark.parametrize("noise", [0.02, 0.2])
def test_ssim_matches_independent_numpy_implementation(noise):
  rng = np.random.default_rng(3)
  x = _random_images(4)
  # Smooth structure plus noise so that SSIM lands well inside (0, 1).
  x = (0.5 +
       0.4 * np.sin(np.linspace(0, 6, 40))[None, None, :, None] * x).astype(
           np.float32)
  y = np.clip(x + rng.normal(0, noise, x.shape), 0, 1).astype(np.float32)
  expected = _numpy_ssim(y, x, 1.0)
  assert 0.05 < expected.min() and expected.max() < 0.99
  np.testing.assert_allclose(metrics.ssim(y, x).numpy(), expected, atol=1e-4)


def test_mismatched_shapes_name_both():
  with pytest.raises(ValueError, match=r"\(1, 16, 16, 3\).*\(1, 16, 17, 3\)"):
    metrics.psnr(np.zeros((1, 16, 16, 3)), np.zeros((1, 16, 17, 3)))


def test_frechet_distance_of_diagonal_gaussians_by_hand():
  # Samples whose means and (unbiased) variances are exactly known: for
  # diagonal covariances d = |mu_a - mu_b|^2 + sum_i (sigma_a,i - sigma_b,i)^2.
  # Four points with zero mean, uncorrelated coordinates, unbiased variance 4/3.
  base = np.array([[-1.0, -1.0], [1.0, 1.0], [-1.0, 1.0], [1.0, -1.0]])
  a = base * [1.0, 2.0]
  b = base * [3.0, 2.0] + [1.0, -2.0]
  expected = (1.0 + 4.0) + 4.0 / 3.0 * ((1.0 - 3.0)**2 + (2.0 - 2.0)**2)
  assert metrics.frechet_distance(a, b) == pytest.approx(expected, abs=1e-9)
  assert metrics.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)


def _sqrtm_psd(m):
  values, vectors = np.linalg.eigh(m)
  return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def _frechet_by_sqrtm(a, b):
  """The textbook formula; sqrtm(C_a C_b) via a similar PSD matrix."""
  cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
  root_a = _sqrtm_psd(cov_a)
  cross = np.trace(_sqrtm_psd(root_a @ cov_b @ root_a))
  return (np.sum((a.mean(0) - b.mean(0))**2) + np.trace(cov_a) +
          np.trace(cov_b) - 2 * cross)


@pytest.mark.parametrize("n_a, n_b, dims", [(200, 150, 6), (10, 12, 40)])
def test_frechet_distance_matches_matrix_square_roots(n_a, n_b, dims):
  # More samples than dimensions, and fewer (as FID on a small run).
  rng = np.random.default_rng(5)
  a = rng.normal(size=(n_a, dims)) @ rng.normal(size=(dims, dims))
  b = rng.normal(size=(n_b, dims)) @ rng.normal(size=(dims, dims)) + 0.5
  assert metrics.frechet_distance(a,
                                  b) == pytest.approx(_frechet_by_sqrtm(a, b),
                                                      rel=1e-6)


def test_frechet_distance_rejects_single_samples():
  with pytest.raises(ValueError, match="N >= 2"):
    metrics.frechet_distance(np.zeros((1, 3)), np.zeros((4, 3)))
