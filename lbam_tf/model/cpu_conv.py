"""Fast CPU forms of the generator's two stride-2 convolutions.

PyTorch's `conv2d(kernel 4, stride 2, padding 1)` and
`conv_transpose2d(kernel 4, stride 2, padding 1)`, computed as TF ops that
run fast on the oneDNN CPU build, the only hardware this project is tuned on.
They exist because at batch 1 the plain ops lag (BUILD_NOTES.md, "Batch-1
latency"): oneDNN's convolution is bound by handling its kernel on small
outputs, so those run as an im2col and one matmul (2x faster up to 256 output
pixels); Conv2DBackpropInput reorders its whole kernel on every call, so the
wide transposed convolutions (512 outputs, dc1..dc3) run as one matmul and an
overlap-add; explicit padding falls back to slow kernels (2.5x in float32,
300x in bfloat16), so zeros are added by `tf.pad` and transposed
convolutions use "SAME". Every form computes the same sums as PyTorch's
definition (tests/test_layers.py checks each path and its gradient against
numpy). `lbam_tf.model.layers` calls `conv_stride2` and `conv_transpose_stride2`.
"""

import tensorflow as tf

# PyTorch's padding=1 for a 4-D NHWC tensor.
_TORCH_PADDING = [[0, 0], [1, 1], [1, 1], [0, 0]]


#: Output pixels (batch x height x width) up to which `conv_stride2` runs as
#: an explicit im2col and one matmul instead of oneDNN's convolution. On
#: few pixels the convolution is bound by handling its kernel, the matmul is
#: not: 2x faster for 256 or fewer, slower from about 1,000 (BUILD_NOTES.md).
MATMUL_CONV_MAX_PIXELS = 256


def conv_stride2(inputs, kernel):
  """PyTorch `conv2d(stride=2, padding=1)` with a (kh, kw, in, out) kernel.

  One row and column of zeros on every side, then a VALID convolution, or
  for small outputs (MATMUL_CONV_MAX_PIXELS) the same sum as a matmul. The
  choice is made in Python when the input shape is static, else by
  `tf.cond` on the run-time shape.
  """
  def by_matmul():
    return _conv_stride2_by_matmul(inputs, kernel)

  def by_convolution():
    # tf.pad then VALID rather than Conv2D's explicit padding: same values,
    # and on the oneDNN CPU build about 1.5x faster per convolution.
    return tf.nn.conv2d(tf.pad(inputs, _TORCH_PADDING), kernel, strides=2,
                        padding="VALID")

  batch, height, width = inputs.shape[:3]
  if None not in (batch, height, width):
    pixels = batch * (height // 2) * (width // 2)
    return by_matmul() if pixels <= MATMUL_CONV_MAX_PIXELS else by_convolution()
  shape = tf.shape(inputs)
  pixels = shape[0] * (shape[1] // 2) * (shape[2] // 2)
  return tf.cond(pixels <= MATMUL_CONV_MAX_PIXELS, by_matmul, by_convolution)


def _conv_stride2_by_matmul(inputs, kernel):
  """`conv_stride2` as im2col (`tf.image.extract_patches`) and one matmul.

  Patches come in (kh, kw, in) order, the kernel's, so the kernel is read
  as (kh * kw * in, out) without a copy.
  """
  size, filters = kernel.shape[0], kernel.shape[3]
  patches = tf.image.extract_patches(
      tf.pad(inputs, _TORCH_PADDING), sizes=[1, size, size, 1],
      strides=[1, 2, 2, 1], rates=[1, 1, 1, 1], padding="VALID")
  shape = tf.shape(patches)
  out = tf.matmul(tf.reshape(patches, [-1, shape[3]]),
                  tf.reshape(kernel, [-1, filters]))
  return tf.reshape(out, [shape[0], shape[1], shape[2], filters])


#: Output channels from which `conv_transpose_stride2` runs as one matmul and an
#: overlap-add instead of TF's Conv2DBackpropInput. That op reorders its whole
#: kernel on every call, which costs more than the arithmetic in the wide
#: decoder blocks (dc1..dc3: 512 outputs, kernels of 4 to 8 million weights
#: on 2x2 to 8x8 inputs); for narrower, larger blocks the overlap-add's
#: memory traffic costs more than the reorder saves (BUILD_NOTES.md).
MATMUL_TRANSPOSE_MIN_FILTERS = 512

# ConvTranspose2d(kernel 4, stride 2, padding 1) along one axis: output 2m + r
# sums (kernel tap, input offset) pairs: r = 0 takes tap 1 at input m and tap
# 3 at m - 1; r = 1 takes tap 2 at m and tap 0 at m + 1.
_TRANSPOSE_TAPS = (((1, 0), (3, -1)), ((2, 0), (0, 1)))


def conv_transpose_stride2(inputs, kernel):
  """PyTorch `conv_transpose2d(stride=2, padding=1)`, kernel (kh, kw, out, in).

  For kernel 4 the output is exactly twice the input: (H - 1) * 2 + 4 - 2,
  and TF's "SAME" crops the same row and column on each side as padding=1.
  "SAME" rather than explicit padding because oneDNN has kernels for it but
  not for explicit padding: 2.5x faster in float32, and 300x in bfloat16,
  where explicit padding falls back to a slow generic kernel. Kernels with
  at least MATMUL_TRANSPOSE_MIN_FILTERS outputs take the matmul form.
  """
  if kernel.shape[0] != 4 or kernel.shape[1] != 4:
    raise ValueError(
        f"conv_transpose_stride2 kernel {tuple(kernel.shape)} is not 4x4: "
        f"'SAME' matches PyTorch's padding=1 only for kernel 4")
  if kernel.shape[2] >= MATMUL_TRANSPOSE_MIN_FILTERS:
    return _conv_transpose_stride2_by_matmul(inputs, kernel)
  shape = tf.shape(inputs)
  output_shape = tf.stack(
      [shape[0], 2 * shape[1], 2 * shape[2], kernel.shape[2]])
  return tf.nn.conv2d_transpose(
      inputs, kernel, output_shape, strides=2, padding="SAME")


def _conv_transpose_stride2_by_matmul(inputs, kernel):
  """`conv_transpose_stride2` as a matmul, then an overlap-add by phase.

  Each input pixel times the kernel gives its 4x4 x out contribution (one
  matmul against the kernel read as (16 * out, in), no copy of it). Output
  pixel (2m + ry, 2n + rx) sums four of those, by `_TRANSPOSE_TAPS`; the
  four phases are then interleaved into the doubled image.
  """
  shape = tf.shape(inputs)
  batch, height, width = shape[0], shape[1], shape[2]
  filters, in_channels = kernel.shape[2], kernel.shape[3]
  columns = tf.matmul(tf.reshape(inputs, [-1, in_channels]),
                      tf.reshape(kernel, [-1, in_channels]), transpose_b=True)
  columns = tf.reshape(columns, [batch, height, width, 4, 4, filters])
  # One zero pixel on every side: offsets -1 and +1 read zeros at the border.
  columns = tf.pad(columns, [[0, 0], [1, 1], [1, 1], [0, 0], [0, 0], [0, 0]])

  def shifted(offset):
    return slice(1 + offset, offset - 1 if offset < 1 else None)

  rows = []
  for row_taps in _TRANSPOSE_TAPS:
    phases = []
    for column_taps in _TRANSPOSE_TAPS:
      phases.append(tf.add_n([
          columns[:, shifted(dy), shifted(dx), kh, kw]
          for kh, dy in row_taps for kw, dx in column_taps]))
    rows.append(tf.stack(phases, axis=3))  # [B, H, W, rx, out]
  interleaved = tf.stack(rows, axis=2)  # [B, H, ry, W, rx, out]
  return tf.reshape(interleaved, [batch, 2 * height, 2 * width, filters])
