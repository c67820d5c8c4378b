"""Tests for LBAM's layers (lbam_tf/model/layers.py) against numpy written from the paper and reference code."""

import keras
import numpy as np
import pytest
import samples
import tensorflow as tf
from numpy.lib.stride_tricks import sliding_window_view

from lbam_tf.model import cpu_conv
from lbam_tf.model import layers

# The reference's clamp ranges and initialisations, written out here (from
# docs/reference.md#attention-activation) rather than read from the module.
_RANGES = {"a": (1.01, 6.0), "mu": (0.1, 3.0), "gamma_l": (0.5, 2.0),
           "gamma_r": (0.5, 2.0)}
_FORWARD_INIT = {"a": 1.1, "mu": 2.0, "gamma_l": 1.0, "gamma_r": 1.0}
_REVERSE_INIT = {"a": 1.1, "mu": 1.0, "gamma_l": 0.5, "gamma_r": 0.5}
_PARAMS = ("a", "mu", "gamma_l", "gamma_r")


def _clamped(params):
  return {k: float(np.clip(v, *_RANGES[k])) for k, v in params.items()}


def _np_gaussian(x, params):
  """Eq. 9 with the reference's clamp, in float64."""
  p = _clamped(params)
  d = x.astype(np.float64) - p["mu"]
  left = p["a"] * np.exp(-p["gamma_l"] * d ** 2)
  right = 1.0 + (p["a"] - 1.0) * np.exp(-p["gamma_r"] * d ** 2)
  return np.where(d < 0, left, right)


def _np_gaussian_grads(x, params):
  """d sum(g_A(x)) / d (a, mu, gamma_l, gamma_r) at the clamped values."""
  p = _clamped(params)
  d = x.astype(np.float64) - p["mu"]
  left, right = d < 0, d >= 0
  e_l, e_r = np.exp(-p["gamma_l"] * d ** 2), np.exp(-p["gamma_r"] * d ** 2)
  return {
      "a": np.sum(e_l[left]) + np.sum(e_r[right]),
      "mu": (np.sum((p["a"] * e_l * 2 * p["gamma_l"] * d)[left])
             + np.sum(((p["a"] - 1) * e_r * 2 * p["gamma_r"] * d)[right])),
      "gamma_l": np.sum((-p["a"] * d ** 2 * e_l)[left]),
      "gamma_r": np.sum((-(p["a"] - 1) * d ** 2 * e_r)[right]),
  }


def _np_mask_update(x, alpha=0.8):
  return np.maximum(x.astype(np.float64), 0.0) ** alpha


def _np_leaky(x):
  return np.where(x >= 0, x, 0.2 * x)


def _np_conv(x, kernel):
  """PyTorch conv2d(stride=2, padding=1), x [B,H,W,C], kernel (kh,kw,C,O)."""
  kh, kw = kernel.shape[:2]
  padded = np.pad(x.astype(np.float64), ((0, 0), (1, 1), (1, 1), (0, 0)))
  windows = sliding_window_view(padded, (kh, kw), axis=(1, 2))[:, ::2, ::2]
  return np.einsum("bhwcij,ijco->bhwo", windows, kernel.astype(np.float64))


def _np_conv_transpose(x, kernel):
  """PyTorch conv_transpose2d(stride=2, padding=1), kernel (4,4,out,in).

  Each input pixel (i, j) adds x[i, j] * W[ki, kj] at output (2i - 1 + ki,
  2j - 1 + kj), the definition of a transposed convolution.
  """
  batch, height, width, _ = x.shape
  out = np.zeros((batch, 2 * height + 2, 2 * width + 2, kernel.shape[2]))
  for i in range(height):
    for j in range(width):
      contribution = np.einsum("bc,uvoc->buvo", x[:, i, j].astype(np.float64),
                               kernel.astype(np.float64))
      out[:, 2 * i:2 * i + 4, 2 * j:2 * j + 4] += contribution
  return out[:, 1:-1, 1:-1]


def _assert_close(actual, expected, tol=1e-5):
  np.testing.assert_allclose(np.asarray(actual, np.float64), expected,
                             rtol=tol, atol=tol)


# g_A (eq. 9) and g_M (eq. 8).

_PARAM_SETS = [
    _FORWARD_INIT,
    _REVERSE_INIT,
    {"a": 2.5, "mu": 1.2, "gamma_l": 0.7, "gamma_r": 1.8},
    # Every parameter below its range, then every one above.
    {"a": 0.3, "mu": -1.0, "gamma_l": 0.1, "gamma_r": 0.2},
    {"a": 9.0, "mu": 7.0, "gamma_l": 3.0, "gamma_r": 5.0},
]


@pytest.mark.parametrize("params", _PARAM_SETS)
def test_gaussian_matches_eq9_with_reference_clamp(params):
  x = np.concatenate([np.linspace(-3.0, 8.0, 45),
                      [_clamped(params)["mu"]]]).astype(np.float32)
  g_a = layers.AsymmetricGaussian(**params)
  _assert_close(g_a(x), _np_gaussian(x, params))


def test_gaussian_clamps_values_assigned_after_build():
  # A checkpoint loads into built weights: the clamp must act at use.
  x = np.linspace(-1.0, 6.0, 29).astype(np.float32)
  g_a = layers.AsymmetricGaussian(**_FORWARD_INIT)
  g_a.build(x.shape)
  loaded = {"a": 12.0, "mu": 0.0, "gamma_l": 4.0, "gamma_r": 0.01}
  for key, value in loaded.items():
    getattr(g_a, key).assign(value)
  _assert_close(g_a(x), _np_gaussian(x, loaded))
  # The stored value itself is untouched, as `.data` before the first use.
  assert float(g_a.a.numpy()) == 12.0


@pytest.mark.parametrize("params", _PARAM_SETS[2:])
def test_gaussian_gradients_are_taken_at_the_clamped_values(params):
  x = np.linspace(-2.0, 6.0, 33).astype(np.float32)
  g_a = layers.AsymmetricGaussian(**params)
  g_a.build(x.shape)
  variables = [getattr(g_a, key) for key in _PARAMS]
  with tf.GradientTape() as tape:
    total = tf.reduce_sum(g_a(x))
  grads = tape.gradient(total, variables)
  expected = _np_gaussian_grads(x, params)
  for key, grad in zip(_PARAMS, grads):
    assert abs(float(expected[key])) > 1e-3, key  # the test can see each one
    _assert_close(grad, expected[key], tol=1e-4)


def test_gaussian_optimizer_step_writes_the_clamp_back():
  g_a = layers.AsymmetricGaussian(a=5.99, mu=0.11, gamma_l=1.0, gamma_r=1.0)
  g_a.build(())
  variables = [g_a.a, g_a.mu]
  optimizer = keras.optimizers.SGD(learning_rate=1.0)
  # Push a up and mu down, both past their bounds.
  optimizer.apply_gradients(zip([tf.constant(-1.0), tf.constant(1.0)],
                                variables))
  assert float(g_a.a.numpy()) == pytest.approx(6.0)
  assert float(g_a.mu.numpy()) == pytest.approx(0.1)


def test_gaussian_rejects_non_numbers():
  with pytest.raises(ValueError, match="mu=nan"):
    layers.AsymmetricGaussian(mu=float("nan"))


def test_mask_update_matches_eq8():
  x = np.array([-2.0, -1e-3, 0.0, 1e-6, 0.3, 1.0, 2.7], np.float32)
  _assert_close(layers.MaskUpdate(0.8)(x), _np_mask_update(x))
  _assert_close(layers.MaskUpdate(0.0)(x), (x > 0).astype(np.float64))


def test_mask_update_gradient_is_zero_at_and_below_zero_and_finite():
  x = tf.constant([-1.0, 0.0, 0.5, 2.0])
  with tf.GradientTape() as tape:
    tape.watch(x)
    y = tf.reduce_sum(layers.MaskUpdate(0.8)(x))
  grad = tape.gradient(y, x).numpy()
  _assert_close(grad, [0.0, 0.0, 0.8 * 0.5 ** -0.2, 0.8 * 2.0 ** -0.2])


# The blocks, against numpy convolutions.

def _set_kernels(block, seed, scale):
  """Overwrites every kernel with U(-scale, scale) so values straddle mu."""
  for i, weight in enumerate(block.weights):
    if weight.path.split("/")[-1] in ("kernel", "mask_kernel"):
      weight.assign(samples.uniform(weight.shape, seed + i, -scale, scale))


@pytest.mark.parametrize("mask_kernel_size", [4, 3])
def test_forward_attention_matches_eqs_6_10_11(mask_kernel_size):
  features = samples.uniform((2, 8, 6, 4), 0)
  masks = samples.uniform((2, 8, 6, 3), 1)
  block = layers.ForwardAttention(5, mask_kernel_size=mask_kernel_size)
  block.build((features.shape, masks.shape))
  _set_kernels(block, 2, scale=0.8)
  out, next_mask, skip, attention_map = block([features, masks])

  conv = _np_conv(features, block.kernel.numpy())
  convolved = _np_conv(masks, block.mask_kernel.numpy())
  # The 3x3 mask filter keeps PyTorch's symmetric padding of 1.
  assert convolved.shape == (2, 4, 3, 5)
  amap = _np_gaussian(convolved, _FORWARD_INIT)
  assert amap.min() < 1.0 < amap.max()  # both sides of mu are exercised
  _assert_close(skip, conv)
  _assert_close(attention_map, amap)
  _assert_close(out, _np_leaky(conv * amap))
  _assert_close(next_mask, _np_mask_update(convolved))


def test_reverse_attention_matches_eqs_12_13():
  masks = samples.uniform((1, 8, 8, 3), 3)
  branch = layers.ReverseAttention(4)
  branch.build(masks.shape)
  _set_kernels(branch, 4, scale=0.5)
  reverse_map, next_mask = branch(masks)
  convolved = _np_conv(masks, branch.mask_kernel.numpy())
  _assert_close(reverse_map, _np_gaussian(convolved, _REVERSE_INIT))
  _assert_close(next_mask, _np_mask_update(convolved))


@pytest.mark.parametrize("with_reverse", [True, False])
def test_decoder_block_matches_eq12_in_reference_order(with_reverse):
  skip = samples.uniform((2, 6, 4, 3), 5, -1, 1)
  features = samples.uniform((2, 3, 2, 7), 6, -1, 1)
  forward_map = samples.uniform((2, 6, 4, 3), 7, 0, 2)
  reverse_map = samples.uniform((2, 6, 4, 3), 8, 0, 2)
  inputs = [skip, features, forward_map] + ([reverse_map] if with_reverse
                                             else [])
  block = layers.DecoderBlock(3)
  out = block(inputs)
  decoded = _np_conv_transpose(features, block.kernel.numpy())
  reverse = reverse_map if with_reverse else 1.0
  expected = _np_leaky(np.concatenate(
      [skip * forward_map, decoded * reverse], axis=-1))
  assert out.shape == (2, 6, 4, 6)
  _assert_close(out, expected)


def test_transposed_conv_output_doubles_the_size():
  x = samples.uniform((1, 3, 5, 4), 9, -1, 1)
  layer = layers.TransposedConvOutput(3)
  out = layer(x)
  assert out.shape == (1, 6, 10, 3)
  _assert_close(out, _np_conv_transpose(x, layer.kernel.numpy()))


def _op_types(fn, *args):
  graph = tf.function(fn).get_concrete_function(*args).graph
  return {op.type for op in graph.get_operations()}


# conv_stride2 takes a matmul (im2col) for outputs of up to
# MATMUL_CONV_MAX_PIXELS pixels and oneDNN's convolution above; both must be
# PyTorch's conv2d(stride=2, padding=1), also when the shape is only known at
# run time (tf.cond).
@pytest.mark.parametrize("kernel_size", [3, 4])
# 16 x 16 output pixels (the threshold, 256) and 17 x 16.
@pytest.mark.parametrize("height, expected_op", [(32, "MatMul"), (34, "Conv2D")])
def test_conv_stride2_paths_match_torch_conv(kernel_size, height, expected_op):
  x = samples.uniform((1, height, 32, 5), 11, -1, 1)
  kernel = samples.uniform((kernel_size, kernel_size, 5, 6), 12, -1, 1)
  ops_used = _op_types(cpu_conv.conv_stride2, tf.constant(x), tf.constant(kernel))
  assert expected_op in ops_used
  assert ({"MatMul", "Conv2D"} - {expected_op}).isdisjoint(ops_used)
  expected = _np_conv(x, kernel)
  _assert_close(cpu_conv.conv_stride2(x, kernel), expected)
  dynamic = tf.function(cpu_conv.conv_stride2, input_signature=[
      tf.TensorSpec([None, None, None, 5]), tf.TensorSpec(kernel.shape)])
  _assert_close(dynamic(x, kernel), expected)


@pytest.mark.parametrize("height", [32, 34])
def test_conv_stride2_kernel_gradient_matches_numpy(height):
  x = samples.uniform((1, height, 32, 5), 13, -1, 1)
  weights = samples.uniform((1, height // 2, 16, 6), 14, -1, 1)
  kernel = tf.Variable(samples.uniform((4, 4, 5, 6), 15, -1, 1))
  with tf.GradientTape() as tape:
    loss = tf.reduce_sum(cpu_conv.conv_stride2(tf.constant(x), kernel) * weights)
  padded = np.pad(x.astype(np.float64), ((0, 0), (1, 1), (1, 1), (0, 0)))
  windows = sliding_window_view(padded, (4, 4), axis=(1, 2))[:, ::2, ::2]
  expected = np.einsum("bhwcij,bhwo->ijco", windows, weights)
  _assert_close(tape.gradient(loss, kernel), expected, tol=1e-4)


def test_wide_transposed_conv_takes_the_matmul_path_and_matches_torch():
  filters = cpu_conv.MATMUL_TRANSPOSE_MIN_FILTERS
  x = samples.uniform((2, 3, 5, 4), 16, -1, 1)
  kernel = tf.Variable(samples.uniform((4, 4, filters, 4), 17, -0.1, 0.1))
  ops_used = _op_types(cpu_conv.conv_transpose_stride2, tf.constant(x), kernel)
  assert "MatMul" in ops_used and "Conv2DBackpropInput" not in ops_used
  weights = samples.uniform((2, 6, 10, filters), 18, -1, 1)
  with tf.GradientTape(persistent=True) as tape:
    out = cpu_conv.conv_transpose_stride2(tf.constant(x), kernel)
    loss = tf.reduce_sum(out * weights)
    reference = tf.nn.conv2d_transpose(x, kernel, [2, 6, 10, filters], 2,
                                       "SAME")
    reference_loss = tf.reduce_sum(reference * weights)
  _assert_close(out, _np_conv_transpose(x, kernel.numpy()))
  # Gradients against TF's own transposed convolution.
  _assert_close(tape.gradient(loss, kernel),
                tape.gradient(reference_loss, kernel).numpy(), tol=1e-4)


def test_unlearned_block_is_partial_convolution():
  # One feature and one mask channel on a 4x4 grid, checked by hand with
  # PConv's eqs. 4-5: out = W . (X * M) * sum(1) / sum(M) where sum(M) > 0,
  # else 0; sum(1) = 16 for a 4x4 window (zero padding counts as holes).
  x = np.arange(1, 17, dtype=np.float32).reshape(1, 4, 4, 1)  # x[r, c] = 4r+c+1
  m = np.zeros((1, 4, 4, 1), np.float32)
  m[0, 0, 0] = m[0, 0, 1] = m[0, 3, 3] = 1.0
  block = layers.ForwardAttention(1, attention="pconv")
  block.build((x.shape, m.shape))
  block.kernel.assign(np.ones((4, 4, 1, 1), np.float32))
  out, next_mask, _, attention_map = block([x * m, m])
  # Output (i, j) sees rows 2i-1..2i+2 and columns 2j-1..2j+2.
  # (0, 0): known (0,0), (0,1): (1 + 2) * 16 / 2 = 24.
  # (0, 1): known (0,1): 2 * 16 / 1 = 32.
  # (1, 0): rows 1..4, columns -1..2: nothing known: 0, and the mask stays 0.
  # (1, 1): known (3,3): 16 * 16 / 1 = 256.
  np.testing.assert_allclose(out[0, ..., 0], [[24.0, 32.0], [0.0, 256.0]],
                             rtol=1e-6)
  np.testing.assert_allclose(attention_map[0, ..., 0],
                             [[8.0, 16.0], [0.0, 16.0]], rtol=1e-6)
  np.testing.assert_array_equal(next_mask[0, ..., 0], [[1, 1], [0, 1]])
  assert block.trainable_weights == [block.kernel]  # fixed mask filters


def test_unlearned_block_averages_mask_channels():
  # With C mask channels the fixed filter is 1 / (16 C): M^c is the known
  # fraction of the window whatever the channel count.
  m = np.ones((1, 4, 4, 3), np.float32)
  m[..., 1] = 0.0
  block = layers.ForwardAttention(2, attention="pconv")
  _, _, _, attention_map = block([np.ones((1, 4, 4, 1), np.float32), m])
  # Top-left window: rows and columns -1..2, so 9 of 16 pixels in bounds,
  # 2 of 3 channels known.
  _assert_close(attention_map[0, 0, 0], [1 / (9 / 16 * 2 / 3)] * 2)


@pytest.mark.parametrize("attention,expected", [
    ("sigmoid", lambda c: 1 / (1 + np.exp(-c))),
    ("leaky_relu", _np_leaky),
    ("relu", lambda c: np.maximum(c, 0.0)),
])
def test_ablation_attentions_replace_g_a(attention, expected):
  masks = samples.uniform((1, 6, 6, 2), 10)
  branch = layers.ReverseAttention(3, attention=attention)
  branch.build(masks.shape)
  _set_kernels(branch, 11, scale=1.0)
  reverse_map, next_mask = branch(masks)
  convolved = _np_conv(masks, branch.mask_kernel.numpy())
  assert convolved.min() < 0 < convolved.max()
  _assert_close(reverse_map, expected(convolved))
  _assert_close(next_mask, _np_mask_update(convolved))
  assert not any("g_a" in w.path for w in branch.weights)


def test_gradients_reach_gaussian_parameters_and_mask_kernels():
  features = samples.uniform((1, 8, 8, 4), 12)
  masks = samples.uniform((1, 8, 8, 3), 13)
  block = layers.ForwardAttention(6, name="ec")
  block.build((features.shape, masks.shape))
  _set_kernels(block, 14, scale=1.0)
  with tf.GradientTape() as tape:
    out, next_mask, _, _ = block([features, masks])
    loss = tf.reduce_sum(out) + tf.reduce_sum(next_mask)
  grads = dict(zip([w.path for w in block.trainable_weights],
                   tape.gradient(loss, block.trainable_weights)))
  assert set(grads) == {"ec/kernel", "ec/mask_kernel",
                        *(f"ec/g_a/{k}" for k in _PARAMS)}
  for path, grad in grads.items():
    assert np.abs(grad.numpy()).max() > 0, path


def test_blocks_reject_bad_arguments():
  with pytest.raises(ValueError, match="attention='tanh'"):
    layers.ForwardAttention(8, attention="tanh")
  with pytest.raises(ValueError, match="mask_kernel_size=5"):
    layers.ReverseAttention(8, mask_kernel_size=5)
  with pytest.raises(ValueError, match="filters=0"):
    layers.DecoderBlock(0)


# Size checks.

def test_size_check_passes_multiples_of_128():
  image, mask = np.zeros((1, 128, 384, 3), np.float32), np.ones(
      (1, 128, 384, 1), np.float32)
  out_image, out_mask = layers.InputSizeCheck()([image, mask])
  assert out_image.shape == image.shape and out_mask.shape == mask.shape


def test_size_check_names_size_and_remedy():
  with pytest.raises(ValueError, match=r"200x256.*pad_to_multiple"):
    layers.InputSizeCheck()([np.zeros((1, 200, 256, 3), np.float32),
                             np.ones((1, 200, 256, 1), np.float32)])
  with pytest.raises(ValueError, match="mask 128x256 does not match image"):
    layers.InputSizeCheck()([np.zeros((1, 256, 128, 3), np.float32),
                             np.ones((1, 128, 256, 1), np.float32)])


def test_size_check_at_run_time_names_the_remedy():
  check = layers.InputSizeCheck()
  traced = tf.function(
      lambda image, mask: check([image, mask]),
      input_signature=[tf.TensorSpec([None, None, None, 3]),
                       tf.TensorSpec([None, None, None, 1])])
  traced(tf.zeros((1, 128, 128, 3)), tf.ones((1, 128, 128, 1)))
  with pytest.raises(tf.errors.InvalidArgumentError, match="pad_to_multiple"):
    traced(tf.zeros((1, 130, 128, 3)), tf.ones((1, 130, 128, 1)))


# Serialization: get_config and .keras files.

def _round_trip_cases():
  feature, mask = (8, 8, 4), (8, 8, 3)
  return [
      ("gaussian", lambda: layers.AsymmetricGaussian(a=9.0, mu=0.5,
                                                     gamma_l=1.5,
                                                     gamma_r=0.1),
       [(8, 8, 2)]),
      ("mask_update", lambda: layers.MaskUpdate(0.5), [(8, 8, 2)]),
      ("forward", lambda: layers.ForwardAttention(6), [feature, mask]),
      ("forward_bn_3x3", lambda: layers.ForwardAttention(
          6, mask_kernel_size=3, batch_norm=True), [feature, mask]),
      ("forward_pconv", lambda: layers.ForwardAttention(
          6, attention="pconv"), [feature, mask]),
      ("reverse_sigmoid", lambda: layers.ReverseAttention(
          5, attention="sigmoid"), [mask]),
      ("decoder", lambda: layers.DecoderBlock(3, batch_norm=True),
       [(8, 8, 3), (4, 4, 6), (8, 8, 3), (8, 8, 3)]),
      ("decoder_forward_only", lambda: layers.DecoderBlock(3),
       [(8, 8, 3), (4, 4, 6), (8, 8, 3)]),
      ("output", lambda: layers.TransposedConvOutput(3), [(4, 4, 6)]),
      ("size_check", lambda: layers.InputSizeCheck(64),
       [(64, 128, 3), (64, 128, 1)]),
  ]


@pytest.mark.parametrize("name,make,shapes", _round_trip_cases(),
                         ids=[case[0] for case in _round_trip_cases()])
def test_layer_round_trips_config_and_keras_file(name, make, shapes, tmp_path):
  layer = make()
  clone = type(layer).from_config(layer.get_config())
  assert clone.get_config() == layer.get_config()

  inputs = [keras.Input(shape) for shape in shapes]
  outputs = layer(inputs if len(inputs) > 1 else inputs[0])
  model = keras.Model(inputs, outputs)
  data = [samples.uniform((2,) + shape, 20 + i, 0.0, 2.0)
          for i, shape in enumerate(shapes)]
  for i, weight in enumerate(model.weights):
    # Non-initial values, so that a load that drops weights would show.
    weight.assign(weight + samples.uniform(weight.shape, 40 + i, 0.0, 0.1))
  path = tmp_path / f"{name}.keras"
  model.save(path)
  loaded = keras.saving.load_model(path)
  for expected, actual in zip(tf.nest.flatten(model(data)),
                              tf.nest.flatten(loaded(data))):
    np.testing.assert_array_equal(actual, expected)
