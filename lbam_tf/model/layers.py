"""LBAM's layers: the paper's equations, each in one named place.

Xie et al., "Image Inpainting with Learnable Bidirectional Attention Maps",
ICCV 2019 (arXiv 1909.00968). Equation numbers below are the paper's; what
each equation means here is in docs/reference.md#equations.

Every convolution follows PyTorch's `Conv2d(kernel 4, stride 2, padding 1)`:
one row and column of zeros on every side, then a VALID convolution. TF's
"SAME" is the same thing for a 4x4 kernel on even sizes but not for the 3x3
mask filters of the `mask3x3` ablation (it pads 0 before and 1 after), so the
zeros are added by `tf.pad`. Transposed convolutions follow
`ConvTranspose2d(kernel 4, stride 2, padding 1)`: output exactly twice the
input, the gradient of the convolution above; for their one kernel size, 4,
that is TF's "SAME".

Weight layouts (Keras, channels last):
  convolution kernels `kernel`, `mask_kernel`: (kh, kw, in, out), PyTorch's
    (out, in, kh, kw) transposed by (2, 3, 1, 0);
  transposed-convolution kernels: (kh, kw, out, in), PyTorch's
    (in, out, kh, kw) transposed by (2, 3, 1, 0); no spatial flip in either.
"""

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from lbam_tf.images import ops as image_ops
from lbam_tf.model import cpu_conv

#: Kinds of attention activation a mask branch can use. "gaussian" is LBAM's
#: g_A (eq. 9); "sigmoid", "leaky_relu" and "relu" are the Table 2 ablations
#: replacing it; "pconv" is the "unlearned" ablation: fixed 1/16 mask filters
#: with partial convolution's f_A and f_M (eqs. 4, 5).
ATTENTIONS = ("gaussian", "sigmoid", "leaky_relu", "relu", "pconv")

#: Mask filter sizes: 4 as the paper, 3 for the Table 2 "3x3" ablation.
MASK_KERNEL_SIZES = (3, 4)

#: Slope of every LeakyReLU in the generator (reference: nn.LeakyReLU(0.2)),
#: also used by the "leaky_relu" ablation of g_A, whose slope the paper omits.
LEAKY_SLOPE = 0.2


def normal_init():
  """The reference's weights_init: N(0, 0.02) for every conv weight.

  Shared with `critic`, whose convolutions the reference initialises alike.
  """
  return keras.initializers.RandomNormal(mean=0.0, stddev=0.02)


class _Clip(keras.constraints.Constraint):
  """Clips a weight into [low, high] after each optimizer step.

  The reference clamps its Gaussian parameters in place (`param.data =
  clamp(...)`) at every forward pass, so the optimizer always continues from
  the clamped value; this constraint reproduces that write-back.
  """

  def __init__(self, low, high):
    self.low = low
    self.high = high

  def __call__(self, w):
    return ops.clip(w, self.low, self.high)

  def get_config(self):
    return {"low": self.low, "high": self.high}


@keras.saving.register_keras_serializable(package="lbam_tf")
class AsymmetricGaussian(keras.layers.Layer):
  """The learnable attention activation g_A (eq. 9).

      g_A(x) = a * exp(-gamma_l * (x - mu)^2)            if x < mu
               1 + (a - 1) * exp(-gamma_r * (x - mu)^2)  otherwise

  with four learnable scalars. As in the reference code, every use clamps
  them first: a to [1.01, 6], mu to [0.1, 3], gamma_l and gamma_r to [0.5, 2],
  so a loaded value outside its range acts as the clamped value. Gradients
  pass through the clamp unchanged (the reference clamps `.data`, outside
  autograd), and a constraint writes the clamped value back after every
  optimizer step, as the reference's in-place clamp does.

  The reference names the scalars `a, mu, sigma1, sigma2`; here they are
  `a, mu, gamma_l, gamma_r` as in the paper.

  Args:
    a: initial peak value. Forward (encoder) maps: 1.1; reverse maps: 1.1.
    mu: initial centre. Forward: 2.0; reverse: 1.0.
    gamma_l: initial left width parameter. Forward: 1.0; reverse: 0.5.
    gamma_r: initial right width parameter. Forward: 1.0; reverse: 0.5.
    **kwargs: standard `keras.layers.Layer` arguments.

  Call arguments:
    inputs: the convolved mask M^c, any shape.

  Returns:
    The attention map, same shape as `inputs`.

  Example:

  >>> g_a = AsymmetricGaussian(**AsymmetricGaussian.FORWARD_INIT)
  >>> g_a(np.array([2.0], "float32"))  # a peak of 1.1 at x = mu
  """

  FORWARD_INIT = {"a": 1.1, "mu": 2.0, "gamma_l": 1.0, "gamma_r": 1.0}
  REVERSE_INIT = {"a": 1.1, "mu": 1.0, "gamma_l": 0.5, "gamma_r": 0.5}
  #: Clamp ranges applied at every use, as the reference's forward pass.
  RANGES = {"a": (1.01, 6.0), "mu": (0.1, 3.0), "gamma_l": (0.5, 2.0),
            "gamma_r": (0.5, 2.0)}

  def __init__(self, a=1.1, mu=2.0, gamma_l=1.0, gamma_r=1.0, **kwargs):
    super().__init__(**kwargs)
    initial = {"a": a, "mu": mu, "gamma_l": gamma_l, "gamma_r": gamma_r}
    for key, value in initial.items():
      if not isinstance(value, (int, float)) or not np.isfinite(value):
        raise ValueError(
            f"AsymmetricGaussian {key}={value!r} must be a finite number")
    self.initial = {key: float(value) for key, value in initial.items()}

  def build(self, input_shape):
    for key, (low, high) in self.RANGES.items():
      setattr(self, key, self.add_weight(
          shape=(), name=key,
          initializer=keras.initializers.Constant(self.initial[key]),
          constraint=_Clip(low, high)))

  def _clamped(self, key):
    # Forward value exactly clip(w); gradient 1 with respect to w.
    w = getattr(self, key)
    low, high = self.RANGES[key]
    return ops.stop_gradient(ops.clip(w, low, high)) + (w - ops.stop_gradient(w))

  def call(self, inputs):
    a, mu = self._clamped("a"), self._clamped("mu")
    gamma_l, gamma_r = self._clamped("gamma_l"), self._clamped("gamma_r")
    square = ops.square(inputs - mu)
    left = a * ops.exp(-gamma_l * square)
    right = 1.0 + (a - 1.0) * ops.exp(-gamma_r * square)
    return ops.where(inputs < mu, left, right)

  def compute_output_shape(self, input_shape):
    return input_shape

  def get_config(self):
    return {**super().get_config(), **self.initial}


@keras.saving.register_keras_serializable(package="lbam_tf")
class MaskUpdate(keras.layers.Layer):
  """The mask update g_M (eq. 8): ReLU(x) ** alpha.

  Written as a select so that the gradient is exactly 0 for x <= 0 (what
  PyTorch's autograd gives for `relu(x) ** 0.8`, where relu's backward masks
  the infinite derivative of the power at 0) and never NaN. With alpha = 0
  it is PConv's hard update f_M (eq. 5): 1 where x > 0, else 0.

  Args:
    alpha: the exponent, >= 0. The paper uses 0.8.
    **kwargs: standard `keras.layers.Layer` arguments.

  Call arguments:
    inputs: the convolved mask M^c, any shape.

  Returns:
    The updated mask M', same shape as `inputs`.

  Example:

  >>> MaskUpdate(0.8)(np.array([-1.0, 0.0, 1.0], "float32"))  # [0, 0, 1]
  """

  def __init__(self, alpha=0.8, **kwargs):
    super().__init__(**kwargs)
    if not isinstance(alpha, (int, float)) or not alpha >= 0:
      raise ValueError(f"MaskUpdate alpha={alpha!r} must be a number >= 0")
    self.alpha = float(alpha)

  def call(self, inputs):
    positive = inputs > 0
    safe = ops.where(positive, inputs, ops.ones_like(inputs))
    # exp(alpha * log(x)) rather than power: TF's Pow is not vectorised on
    # the CPU (2.2x slower at 1M elements, 10% of the generator's time at
    # batch 1) and this is within 1e-6 relative of it.
    return ops.where(positive, ops.exp(self.alpha * ops.log(safe)),
                     ops.zeros_like(inputs))

  def compute_output_shape(self, input_shape):
    return input_shape

  def get_config(self):
    return {**super().get_config(), "alpha": self.alpha}


def partial_conv_attention(convolved_mask):
  """PConv's renormalisation f_A (eq. 4): 1 / M^c where M^c > 0, else 0."""
  positive = convolved_mask > 0
  safe = ops.where(positive, convolved_mask, ops.ones_like(convolved_mask))
  return ops.where(positive, 1.0 / safe, ops.zeros_like(convolved_mask))


def _scaled_shape(shape, factor, channels):
  """[B, H, W, C] -> [B, H * factor, W * factor, channels]; None stays None.

  For `compute_output_shape`: with it Keras builds the functional generator
  from shapes instead of tracing every block's `call` (2.5x faster builds).
  """
  batch, height, width = shape[:3]
  return (batch, None if height is None else int(height * factor),
          None if width is None else int(width * factor), channels)


def reference_batch_norm(name, **kwargs):
  """BatchNormalization with PyTorch BatchNorm2d's defaults, as the reference.

  eps 1e-5 and PyTorch's momentum 0.1, which Keras writes as 0.9, so that
  converted weights and running statistics behave as in the reference.
  """
  return keras.layers.BatchNormalization(epsilon=1e-5, momentum=0.9, name=name,
                                         **kwargs)


def _check_choice(owner, name, value, choices):
  if value not in choices:
    raise ValueError(f"{owner} {name}={value!r} is not one of {choices}")


def check_positive_int(owner, name, value):
  """Raises a ValueError naming the layer, the argument and its value.

  Shared with `critic`, whose layers take sizes too.
  """
  if not isinstance(value, int) or value <= 0:
    raise ValueError(f"{owner} {name}={value!r} must be a positive integer")


class _MaskBranch(keras.layers.Layer):
  """A learnable mask convolution with its attention map and mask update.

  Shared by the forward (encoder) and reverse (decoder) attention: both
  convolve a mask with k_M (stride 2, padding 1), take the attention map of
  the result and update the mask from the same result. Subclasses set
  `gaussian_init`, the g_A start of their direction.
  """

  def __init__(self, filters, attention="gaussian", mask_kernel_size=4,
               **kwargs):
    super().__init__(**kwargs)
    owner = type(self).__name__
    check_positive_int(owner, "filters", filters)
    _check_choice(owner, "attention", attention, ATTENTIONS)
    _check_choice(owner, "mask_kernel_size", mask_kernel_size,
                  MASK_KERNEL_SIZES)
    self.filters = filters
    self.attention = attention
    self.mask_kernel_size = mask_kernel_size
    if attention == "gaussian":
      self.g_a = AsymmetricGaussian(**self.gaussian_init, name="g_a",
                                    dtype=self.dtype_policy)
    # PConv's hard update is g_M with alpha = 0 (eq. 5).
    self.g_m = MaskUpdate(0.0 if attention == "pconv" else 0.8, name="g_m",
                          dtype=self.dtype_policy)

  def _build_mask_branch(self, mask_shape):
    if self.attention == "pconv":
      # Fixed filters hold no weights: see `_convolve_mask`.
      return
    size = self.mask_kernel_size
    self.mask_kernel = self.add_weight(
        shape=(size, size, mask_shape[-1], self.filters), name="mask_kernel",
        initializer=normal_init())
    if self.attention == "gaussian":
      self.g_a.build(None)

  def _convolve_mask(self, masks):
    if self.attention == "pconv":
      # Every filter element 1 / (kh * kw * C_in), so M^c is the known fraction
      # of the window, PConv's sum(M) / sum(1). Identical for every output
      # channel, so one box filter over the channel mean computes it.
      size = self.mask_kernel_size
      box = ops.ones((size, size, 1, 1), dtype=masks.dtype) / (size * size)
      mean = ops.mean(masks, axis=-1, keepdims=True)
      fraction = cpu_conv.conv_stride2(mean, box)
      return ops.repeat(fraction, self.filters, axis=-1)
    return cpu_conv.conv_stride2(masks, self.mask_kernel)

  def _attention_map(self, convolved):
    if self.attention == "gaussian":
      return self.g_a(convolved)
    if self.attention == "sigmoid":
      return ops.sigmoid(convolved)
    if self.attention == "leaky_relu":
      return ops.leaky_relu(convolved, negative_slope=LEAKY_SLOPE)
    if self.attention == "relu":
      return ops.relu(convolved)
    return partial_conv_attention(convolved)

  def get_config(self):
    return {**super().get_config(), "filters": self.filters,
            "attention": self.attention,
            "mask_kernel_size": self.mask_kernel_size}


@keras.saving.register_keras_serializable(package="lbam_tf")
class ForwardAttention(_MaskBranch):
  """An encoder block with a learnable forward attention map (eqs. 6, 10, 11).

      F = W^T F_in                    (eq. 6; 4x4, stride 2, padding 1, no bias)
      M^c = k_M (x) M_in              (learnable mask convolution, C_in -> C_out)
      out = LeakyReLU_0.2([BN](F * g_A(M^c)))   (eq. 10)
      M' = g_M(M^c)                   (eq. 11)

  The reference's `ForwardAttention` (`ecK`). The mask input may have another
  channel count than the features (3 against 4 in the first block).

  Args:
    filters: output channels of both convolutions.
    attention: one of ATTENTIONS; "gaussian" is the paper's g_A.
    mask_kernel_size: 4 (paper) or 3 (Table 2 "3x3" ablation).
    batch_norm: BatchNorm between the attention product and the LeakyReLU (the
      reference's older "original_bn" generator, blocks 2 to 7).
    **kwargs: standard `keras.layers.Layer` arguments.

  Call arguments:
    inputs: `[features, masks]`, [B, H, W, C_in] and [B, H, W, C_mask], H and
      W even.
    training: whether BatchNorm uses batch statistics.

  Returns:
    `(out, next_mask, skip, attention_map)`, each [B, H/2, W/2, filters]:
    the block's output, g_M(M^c) for the next block, the raw F for the
    decoder's skip connection and g_A(M^c) for the decoder's re-weighting.

  Example:

  >>> block = ForwardAttention(64, name="ec1")
  >>> out, next_mask, skip, amap = block(
  ...     [np.zeros((1, 8, 8, 4), "float32"), np.ones((1, 8, 8, 3), "float32")])
  """

  gaussian_init = AsymmetricGaussian.FORWARD_INIT

  def __init__(self, filters, attention="gaussian", mask_kernel_size=4,
               batch_norm=False, **kwargs):
    super().__init__(filters, attention, mask_kernel_size, **kwargs)
    self.batch_norm = bool(batch_norm)
    if self.batch_norm:
      self.bn = reference_batch_norm("bn", dtype=self.dtype_policy)

  def build(self, input_shape):
    feature_shape, mask_shape = input_shape
    self.kernel = self.add_weight(
        shape=(4, 4, feature_shape[-1], self.filters), name="kernel",
        initializer=normal_init())
    self._build_mask_branch(mask_shape)
    if self.batch_norm:
      self.bn.build(tuple(feature_shape[:-1]) + (self.filters,))

  def call(self, inputs, training=None):
    features, masks = inputs
    skip = cpu_conv.conv_stride2(features, self.kernel)
    convolved = self._convolve_mask(masks)
    attention_map = self._attention_map(convolved)
    out = skip * attention_map
    if self.batch_norm:
      out = self.bn(out, training=training)
    out = ops.leaky_relu(out, negative_slope=LEAKY_SLOPE)
    return out, self.g_m(convolved), skip, attention_map

  def compute_output_shape(self, input_shape):
    return (_scaled_shape(input_shape[0], 0.5, self.filters),) * 4

  def get_config(self):
    return {**super().get_config(), "batch_norm": self.batch_norm}


@keras.saving.register_keras_serializable(package="lbam_tf")
class ReverseAttention(_MaskBranch):
  """The reverse attention mask branch (eqs. 12, 13).

      M_d^c = k_Md (x) M_d             (learnable mask convolution)
      reverse map = g_A(M_d^c)         (the reverse map of eq. 12)
      M_d' = g_M(M_d^c)                (eq. 13)

  The reference's `ReverseMaskConv` (`reverseConvK`), fed 1 - M (3 channels)
  at full resolution; its Gaussian starts from the reverse initialisation
  (a, mu, gamma_l, gamma_r) = (1.1, 1.0, 0.5, 0.5). Its map re-weights the
  decoder block of the same resolution (see `DecoderBlock`).

  Args:
    filters: output channels of the mask convolution.
    attention: one of ATTENTIONS; "gaussian" is the paper's g_A.
    mask_kernel_size: 4 (paper) or 3 (Table 2 "3x3" ablation).
    **kwargs: standard `keras.layers.Layer` arguments.

  Call arguments:
    inputs: the reverse mask [B, H, W, C_in], H and W even.

  Returns:
    `(reverse_map, next_mask)`, each [B, H/2, W/2, filters].

  Example:

  >>> branch = ReverseAttention(64, name="reverse_conv1")
  >>> rmap, next_mask = branch(np.zeros((1, 8, 8, 3), "float32"))
  """

  gaussian_init = AsymmetricGaussian.REVERSE_INIT

  def build(self, input_shape):
    self._build_mask_branch(input_shape)

  def call(self, inputs):
    convolved = self._convolve_mask(inputs)
    return self._attention_map(convolved), self.g_m(convolved)

  def compute_output_shape(self, input_shape):
    return (_scaled_shape(input_shape, 0.5, self.filters),) * 2


@keras.saving.register_keras_serializable(package="lbam_tf")
class DecoderBlock(keras.layers.Layer):
  """A decoder block re-weighted by forward and reverse maps (eq. 12).

      D = W_d^T F_d                                 (transposed conv, 4x4, s2, p1)
      out = LeakyReLU_0.2([BN](concat(F_e, D) * concat(A_forward, A_reverse)))

  The reference's `ReverseAttention` (`dcK`). The order matters and is the
  reference's: the encoder skip F_e first, the upsampled decoder features D
  second; the forward map first, the reverse map second. The next block's
  convolution of this concatenation is the sum of eq. 12.

  Args:
    filters: output channels of the transposed convolution; the block
      outputs 2 * filters (skip and decoder halves).
    batch_norm: BatchNorm over the 2 * filters channels after the product
      ("original_bn" generator).
    **kwargs: standard `keras.layers.Layer` arguments.

  Call arguments:
    inputs: `[skip, features, forward_map, reverse_map]`: the encoder skip
      and forward map [B, 2H, 2W, filters], the decoder input [B, H, W, C_in],
      the reverse map [B, 2H, 2W, filters]. With only the first three (the
      "forward_only" ablation) the reverse map is all ones.
    training: whether BatchNorm uses batch statistics.

  Returns:
    [B, 2H, 2W, 2 * filters].

  Example:

  >>> block = DecoderBlock(64, name="dc6")
  >>> out = block([np.ones((1, 8, 8, 64), "float32"),
  ...              np.ones((1, 4, 4, 256), "float32"),
  ...              np.ones((1, 8, 8, 64), "float32"),
  ...              np.ones((1, 8, 8, 64), "float32")])  # [1, 8, 8, 128]
  """

  def __init__(self, filters, batch_norm=False, **kwargs):
    super().__init__(**kwargs)
    check_positive_int(type(self).__name__, "filters", filters)
    self.filters = filters
    self.batch_norm = bool(batch_norm)
    if self.batch_norm:
      self.bn = reference_batch_norm("bn", dtype=self.dtype_policy)

  def build(self, input_shape):
    if len(input_shape) not in (3, 4):
      raise ValueError(
          f"DecoderBlock takes [skip, features, forward_map(, reverse_map)], "
          f"got {len(input_shape)} inputs")
    features_shape = input_shape[1]
    self.kernel = self.add_weight(
        shape=(4, 4, self.filters, features_shape[-1]), name="kernel",
        initializer=normal_init())
    if self.batch_norm:
      self.bn.build(tuple(features_shape[:-1]) + (2 * self.filters,))

  def call(self, inputs, training=None):
    skip, features, forward_map = inputs[:3]
    decoded = cpu_conv.conv_transpose_stride2(features, self.kernel)
    if len(inputs) == 4:
      decoded = decoded * inputs[3]
    # Elementwise, so multiplying each half before the concatenation equals
    # concat(F_e, D) * concat(A_forward, A_reverse) bit for bit.
    out = ops.concatenate([skip * forward_map, decoded], axis=-1)
    if self.batch_norm:
      out = self.bn(out, training=training)
    return ops.leaky_relu(out, negative_slope=LEAKY_SLOPE)

  def compute_output_shape(self, input_shape):
    return _scaled_shape(input_shape[1], 2, 2 * self.filters)

  def get_config(self):
    return {**super().get_config(), "filters": self.filters,
            "batch_norm": self.batch_norm}


@keras.saving.register_keras_serializable(package="lbam_tf")
class TransposedConvOutput(keras.layers.Layer):
  """The generator's last layer: a plain transposed conv (4x4, s2, p1, no bias).

  The reference's `dc7`. Initialised as PyTorch initialises ConvTranspose2d
  (the reference leaves it at the default): kaiming_uniform(a=sqrt(5)), that
  is U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with PyTorch's fan_in of a transposed
  conv weight (in, out, kh, kw): out * kh * kw.

  Args:
    filters: output channels (3 for an RGB image).
    **kwargs: standard `keras.layers.Layer` arguments.

  Call arguments:
    inputs: [B, H, W, C_in].

  Returns:
    [B, 2H, 2W, filters], the pre-activation output.

  Example:

  >>> TransposedConvOutput(3, name="dc7")(np.ones((1, 4, 4, 128), "float32"))
  """

  def __init__(self, filters, **kwargs):
    super().__init__(**kwargs)
    check_positive_int(type(self).__name__, "filters", filters)
    self.filters = filters

  def build(self, input_shape):
    bound = 1.0 / np.sqrt(self.filters * 4 * 4)
    self.kernel = self.add_weight(
        shape=(4, 4, self.filters, input_shape[-1]), name="kernel",
        initializer=keras.initializers.RandomUniform(-bound, bound))

  def call(self, inputs):
    return cpu_conv.conv_transpose_stride2(inputs, self.kernel)

  def compute_output_shape(self, input_shape):
    return _scaled_shape(input_shape, 2, self.filters)

  def get_config(self):
    return {**super().get_config(), "filters": self.filters}


@keras.saving.register_keras_serializable(package="lbam_tf")
class InputSizeCheck(keras.layers.Layer):
  """Passes `[image, mask]` through after checking their sizes.

  Height and width must be multiples of `multiple` (the generator's seven
  stride-2 stages) and the mask must match the image. Static sizes raise a
  ValueError when the model is called; sizes known only at run time raise an
  InvalidArgumentError from a `tf.debugging` assertion with the same advice.
  (Under XLA the run-time assertion is compiled away, but XLA sees static
  sizes, so the ValueError applies.)

  Args:
    multiple: the required size multiple, 128 for LBAM.
    **kwargs: standard `keras.layers.Layer` arguments.

  Call arguments:
    inputs: `[image, mask]`, [B, H, W, C] each.

  Returns:
    `[image, mask]`, unchanged.

  Example:

  >>> image, mask = InputSizeCheck()([np.zeros((1, 128, 384, 3), "float32"),
  ...                                 np.ones((1, 128, 384, 1), "float32")])
  """

  def __init__(self, multiple=image_ops.SIZE_MULTIPLE, **kwargs):
    super().__init__(**kwargs)
    check_positive_int("InputSizeCheck", "multiple", multiple)
    self.multiple = multiple

  def call(self, inputs):
    image, mask = inputs
    image_hw, mask_hw = image.shape[1:3], mask.shape[1:3]
    if None not in image_hw and None not in mask_hw:
      if tuple(image_hw) != tuple(mask_hw):
        raise ValueError(
            f"mask {mask_hw[0]}x{mask_hw[1]} does not match image "
            f"{image_hw[0]}x{image_hw[1]}: give one mask per image, same size")
      image_ops.check_spatial_size(image_hw[0], image_hw[1], self.multiple)
      return image, mask
    image_size, mask_size = tf.shape(image)[1:3], tf.shape(mask)[1:3]
    checks = [
        tf.debugging.assert_equal(
            image_size, mask_size,
            message="mask size (second) does not match image size (first): "
                    "give one mask per image, same size"),
        tf.debugging.assert_equal(
            image_size % self.multiple, tf.zeros_like(image_size),
            message=f"image height and width are not multiples of "
                    f"{self.multiple} (the generator has seven stride-2 "
                    f"stages): pad with lbam_tf.images.ops.pad_to_multiple"),
    ]
    with tf.control_dependencies(checks):
      return tf.identity(image), tf.identity(mask)

  def compute_output_shape(self, input_shape):
    return input_shape

  def get_config(self):
    return {**super().get_config(), "multiple": self.multiple}
