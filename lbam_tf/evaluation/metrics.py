"""PSNR, SSIM and mean L1, as the paper's Tables 1 and 2 report them.

Pure functions of [B, H, W, C] tensors (numpy arrays work too), one value per
image, so training can validate with them and evaluation can average them per
hole-ratio bin. The exact definitions are README.md's "Evaluation" (Metrics);
why these: BUILD_NOTES.md, "Evaluation".

Example:

  metrics.psnr(output, target)  # float32 [B], dB; also ssim, l1_percent
"""

import numpy as np
import tensorflow as tf


#: PSNR reported for identical images (MSE 0). One 8-bit level wrong at one
#: pixel of a 256x256 RGB image already gives 101 dB, so the cap only replaces
#: infinity and never changes a real result.
PSNR_CAP_DB = 100.0

#: SSIM constants: the Gaussian window of Wang et al. (2004), as most
#: inpainting papers compute it (MATLAB ssim, tf.image.ssim).
SSIM_FILTER_SIZE = 11
SSIM_FILTER_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03

def _as_float_pair(output, target):
  output = tf.cast(tf.convert_to_tensor(output), tf.float32)
  target = tf.cast(tf.convert_to_tensor(target), tf.float32)
  if output.shape.rank != 4 or target.shape.rank != 4:
    raise ValueError(
        f"metrics expect [B, H, W, C] images, got shapes {output.shape} and "
        f"{target.shape}: add a batch axis with [None] or tf.expand_dims")
  if output.shape != target.shape:
    raise ValueError(
        f"output shape {output.shape} does not match target shape "
        f"{target.shape}: crop or resize one to the other before comparing")
  return output, target


def psnr(output, target, max_val=1.0):
  """Peak signal-to-noise ratio per image, in dB, capped at PSNR_CAP_DB.

  Args:
    output: [B, H, W, C] images (any real dtype).
    target: [B, H, W, C] reference images, same shape.
    max_val: the data range: 1.0 for [0, 1] floats, 255 for uint8 values.

  Returns:
    float32 [B].
  """
  output, target = _as_float_pair(output, target)
  mse = tf.reduce_mean(tf.square(output - target), axis=[1, 2, 3])
  # log10(x / 0) is +inf, never NaN, so the cap is applied without a branch.
  value = 10.0 * tf.math.log(float(max_val)**2 / mse) / tf.math.log(10.0)
  return tf.minimum(value, PSNR_CAP_DB)


def ssim(output, target, max_val=1.0):
  """Structural similarity per image, Gaussian 11x11 window, sigma 1.5.

  Args:
    output: [B, H, W, C] images, H and W at least SSIM_FILTER_SIZE.
    target: [B, H, W, C] reference images, same shape.
    max_val: the data range: 1.0 for [0, 1] floats, 255 for uint8 values.

  Returns:
    float32 [B]: the mean of the SSIM map over valid window positions, then
    over channels.
  """
  output, target = _as_float_pair(output, target)
  return tf.image.ssim(output,
                       target,
                       max_val=float(max_val),
                       filter_size=SSIM_FILTER_SIZE,
                       filter_sigma=SSIM_FILTER_SIGMA,
                       k1=SSIM_K1,
                       k2=SSIM_K2)


def l1_percent(output, target, max_val=1.0):
  """Mean absolute error per image over all pixels and channels, % of max_val.

  Args:
    output: [B, H, W, C] images.
    target: [B, H, W, C] reference images, same shape.
    max_val: the data range: 1.0 for [0, 1] floats, 255 for uint8 values.

  Returns:
    float32 [B].
  """
  output, target = _as_float_pair(output, target)
  return 100.0 * tf.reduce_mean(tf.abs(output - target),
                                axis=[1, 2, 3]) / float(max_val)


def frechet_distance(features_a, features_b):
  """Fréchet distance between Gaussians fitted to two feature sets (FID).

  FID when the features are InceptionV3 pool features.

  d = |mu_a - mu_b|^2 + tr(C_a) + tr(C_b) - 2 tr((C_a C_b)^(1/2)) (Heusel et
  al. 2017), with unbiased sample covariances, in float64.

  Args:
    features_a: [N, D] array, N >= 2.
    features_b: [M, D] array, M >= 2.

  Returns:
    float. With fewer samples than dimensions the covariances are singular
    and the value is biased upwards: compare methods on the same samples only.
  """
  a = np.asarray(features_a, np.float64)
  b = np.asarray(features_b, np.float64)
  if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or min(
      len(a), len(b)) < 2:
    raise ValueError(
        f"frechet_distance needs two [N, D] feature sets with N >= 2 and the "
        f"same D, got "
        f"shapes {a.shape} and {b.shape}")
  # C_a = X_a^T X_a and C_b = X_b^T X_b with these centred, scaled samples.
  x_a = (a - a.mean(0)) / np.sqrt(len(a) - 1)
  x_b = (b - b.mean(0)) / np.sqrt(len(b) - 1)
  if min(len(a), len(b)) < a.shape[1]:
    # The nonzero eigenvalues of C_a C_b are those of (X_a X_b^T)(X_a X_b^T)^T,
    # so tr (C_a C_b)^(1/2) is the sum of singular values of the N x M matrix
    # X_a X_b^T: cheap when N, M are below D (2048 for Inception).
    trace_sqrt = np.linalg.svd(x_a @ x_b.T, compute_uv=False).sum()
  else:
    # tr (C_a^(1/2) C_b C_a^(1/2))^(1/2) with symmetric eigensolvers (no scipy).
    cov_a, cov_b = x_a.T @ x_a, x_b.T @ x_b
    values, vectors = np.linalg.eigh(cov_a)
    root_a = (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T
    inner = root_a @ cov_b @ root_a
    trace_sqrt = np.sqrt(
        np.clip(np.linalg.eigvalsh((inner + inner.T) / 2), 0.0, None)).sum()
  return float(
      np.sum(np.square(a.mean(0) - b.mean(0))) + np.sum(x_a**2) +
      np.sum(x_b**2) - 2.0 * trace_sqrt)
