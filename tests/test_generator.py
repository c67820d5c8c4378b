"""Tests for the functional LBAM generator (lbam_tf/model/generator.py)."""

import numpy as np
import pytest
import tensorflow as tf
from numpy.lib.stride_tricks import sliding_window_view

from lbam_tf.model import generator as generator_lib

# The reference's channel plan (docs/reference.md#channel-plan), written here
# rather than read from the module, as (in, out) per convolution.
_ENCODER = [(4, 64), (64, 128), (128, 256), (256, 512), (512, 512),
            (512, 512), (512, 512)]
_ENCODER_MASK = [(3, 64)] + _ENCODER[1:]
_REVERSE = _ENCODER_MASK[:6]
_DECODER = [(512, 512), (1024, 512), (1024, 512), (1024, 256), (512, 128),
            (256, 64), (128, 3)]
_ENCODER_BN = [128, 256, 512, 512, 512, 512]  # ec2..ec7
_DECODER_BN = [1024, 1024, 1024, 512, 256, 128]  # dc1..dc6, after concat

_HEAD_COUNT = 68_304_948
_ORIGINAL_BN_COUNT = 68_317_748


def _expected_trainable(variant, ablation):
  """Trainable parameters of a variant, from the layer shapes alone."""
  mask_taps = 9 if ablation == "mask3x3" else 16
  learned_masks = ablation != "unlearned"
  gaussian = ablation in ("none", "forward_only", "mask3x3")
  reverse = ablation != "forward_only"
  count = sum(16 * i * o for i, o in _ENCODER + _DECODER)
  if learned_masks:
    count += sum(mask_taps * i * o for i, o in _ENCODER_MASK)
    if reverse:
      count += sum(mask_taps * i * o for i, o in _REVERSE)
  if gaussian:
    count += 4 * (len(_ENCODER) + (len(_REVERSE) if reverse else 0))
  if variant == "original_bn":
    count += 2 * (sum(_ENCODER_BN) + sum(_DECODER_BN))  # gamma and beta
  return count


def _inputs(height=128, width=128, batch=2, seed=0):
  rng = np.random.default_rng(seed)
  image = rng.random((batch, height, width, 3), dtype=np.float32)
  mask = np.ones((batch, height, width, 1), np.float32)
  mask[:, height // 4:height // 2, width // 8:width // 2] = 0.0
  mask[-1, -height // 3:, -width // 4:] = 0.0
  return {"image": image, "mask": mask}


@pytest.fixture(scope="module")
def head(generator):
  """conftest's "head" generator, named by its variant for getfixturevalue."""
  return generator


@pytest.fixture(scope="module")
def original_bn():
  return generator_lib.build_generator("original_bn")


def test_shape_arithmetic_matches_reference_figures():
  assert _expected_trainable("head", "none") == _HEAD_COUNT
  assert _expected_trainable("original_bn", "none") == _ORIGINAL_BN_COUNT


@pytest.mark.parametrize(
    "variant,ablation",
    [("head", "none"), ("original_bn", "none")]
    + [("head", a) for a in generator_lib.ABLATIONS if a != "none"])
def test_parameter_count(variant, ablation, request):
  if ablation == "none":
    model = request.getfixturevalue(variant)
  else:
    model = generator_lib.build_generator(variant, ablation)
  trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
  assert trainable == _expected_trainable(variant, ablation)
  # Only BatchNorm's running statistics are not trained.
  frozen = sum(int(np.prod(w.shape)) for w in model.non_trainable_weights)
  bn_channels = sum(_ENCODER_BN) + sum(_DECODER_BN)
  assert frozen == (2 * bn_channels if variant == "original_bn" else 0)


def test_unknown_variant_and_ablation_are_refused():
  with pytest.raises(ValueError, match="'tail'"):
    generator_lib.build_generator("tail")
  with pytest.raises(ValueError, match="'no_attention'"):
    generator_lib.build_generator(ablation="no_attention")


@pytest.mark.parametrize("variant", generator_lib.VARIANTS)
@pytest.mark.parametrize("training", [False, True])
def test_output_is_an_image_in_unit_range(variant, training, request):
  model = request.getfixturevalue(variant)
  out = model(_inputs(), training=training)
  assert out.shape == (2, 128, 128, 3) and out.dtype == tf.float32
  assert 0.0 <= float(tf.reduce_min(out)) and float(tf.reduce_max(out)) <= 1.0


def test_output_is_not_composited(head):
  inputs = _inputs()
  out = head(inputs, training=False).numpy()
  known = np.broadcast_to(inputs["mask"] == 1.0, out.shape)
  assert np.abs(out[known] - inputs["image"][known]).max() > 0.1


def test_other_multiples_of_128_work(head):
  out = head(_inputs(128, 384, batch=1), training=False)
  assert out.shape == (1, 128, 384, 3)


def test_other_sizes_fail_naming_size_and_remedy(head):
  with pytest.raises(ValueError, match=r"130x256.*pad_to_multiple"):
    head(_inputs(130, 256, batch=1), training=False)


def test_other_sizes_fail_at_run_time_with_unknown_shapes(head):
  spec = {"image": tf.TensorSpec([None, None, None, 3]),
          "mask": tf.TensorSpec([None, None, None, 1])}
  traced = tf.function(lambda x: head(x, training=False),
                       input_signature=[spec])
  with pytest.raises(tf.errors.InvalidArgumentError, match="pad_to_multiple"):
    traced(_inputs(192, 128, batch=1))


def test_gradients_reach_attention_parameters_and_mask_convs(head):
  # At the N(0, 0.02) initialisation every convolved mask lies below mu, so
  # the right half of g_A (gamma_r) is never used; wider mask filters make
  # both halves of every g_A active.
  mask_kernels = [w for w in head.weights if w.path.endswith("mask_kernel")]
  saved = [w.numpy() for w in mask_kernels]
  rng = np.random.default_rng(5)
  try:
    for weight in mask_kernels:
      fan_in = np.prod(weight.shape[:3])
      weight.assign(rng.normal(0.0, 3.0 / np.sqrt(fan_in), weight.shape)
                    .astype(np.float32))
    inputs = _inputs(batch=1)
    target = np.random.default_rng(6).random(inputs["image"].shape,
                                             dtype=np.float32)
    with tf.GradientTape() as tape:
      out = head(inputs, training=True)
      loss = tf.reduce_mean(tf.abs(out - target))
    grads = tape.gradient(loss, head.trainable_weights)
  finally:
    for weight, value in zip(mask_kernels, saved):
      weight.assign(value)
  by_path = {w.path: g for w, g in zip(head.trainable_weights, grads)}
  expected = ([f"ec{k}/mask_kernel" for k in range(1, 8)]
              + [f"reverse_conv{k}/mask_kernel" for k in range(1, 7)]
              + [f"{block}/g_a/{p}"
                 for block in ([f"ec{k}" for k in range(1, 8)]
                               + [f"reverse_conv{k}" for k in range(1, 7)])
                 for p in ("a", "mu", "gamma_l", "gamma_r")])
  for path in expected:
    assert by_path[path] is not None, path
    assert np.abs(by_path[path].numpy()).max() > 0, path


def _np_conv(x, kernel):
  """PyTorch conv2d(stride=2, padding=1), x [B,H,W,C], kernel (4,4,C,O)."""
  padded = np.pad(x.astype(np.float64), ((0, 0), (1, 1), (1, 1), (0, 0)))
  windows = sliding_window_view(padded, (4, 4), axis=(1, 2))[:, ::2, ::2]
  return np.einsum("bhwcij,ijco->bhwo", windows, kernel.astype(np.float64))


def _np_gaussian(x, a, mu, gamma_l, gamma_r):
  d = x - mu
  return np.where(d < 0, a * np.exp(-gamma_l * d ** 2),
                  1.0 + (a - 1.0) * np.exp(-gamma_r * d ** 2))


def test_attention_maps_model_returns_every_map(head):
  maps_model = generator_lib.attention_maps_model(head)
  inputs = _inputs(batch=1)
  maps = maps_model(inputs, training=False)
  channels = [64, 128, 256, 512, 512, 512, 512]
  expected = {f"forward_{k}": (1, 128 >> k, 128 >> k, channels[k - 1])
              for k in range(1, 8)}
  expected.update({f"reverse_{k}": (1, 128 >> k, 128 >> k, channels[k - 1])
                   for k in range(1, 7)})
  assert {key: tuple(value.shape) for key, value in maps.items()} == expected
  assert all(value.dtype == tf.float32 for value in maps.values())

  # The first maps from the raw inputs: the mask repeated to 3 channels feeds
  # ec1's mask conv, 1 - M feeds reverse_conv1; g_A at its initial values.
  mask3 = np.repeat(inputs["mask"], 3, axis=-1)
  forward = _np_gaussian(
      _np_conv(mask3, head.get_layer("ec1").mask_kernel.numpy()),
      1.1, 2.0, 1.0, 1.0)
  reverse = _np_gaussian(
      _np_conv(1.0 - mask3,
               head.get_layer("reverse_conv1").mask_kernel.numpy()),
      1.1, 1.0, 0.5, 0.5)
  np.testing.assert_allclose(maps["forward_1"], forward, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(maps["reverse_1"], reverse, rtol=1e-5, atol=1e-6)


def test_forward_only_has_no_reverse_maps():
  model = generator_lib.build_generator(ablation="forward_only")
  maps = generator_lib.attention_maps_model(model)(_inputs(batch=1))
  assert sorted(maps) == sorted(f"forward_{k}" for k in range(1, 8))
  assert not any(layer.name.startswith("reverse") for layer in model.layers)


def test_output_stays_float32_under_mixed_precision(mixed_bfloat16):
  model = generator_lib.build_generator()
  assert model.get_layer("ec1").compute_dtype == "bfloat16"
  out = model(_inputs(batch=1), training=False)
  assert out.dtype == tf.float32
  assert 0.0 <= float(tf.reduce_min(out)) and float(tf.reduce_max(out)) <= 1.0
