"""Tests for the two-column WGAN critic (lbam_tf/model/critic.py)."""

import keras
import numpy as np
import pytest
import tensorflow as tf
import torch

from lbam_tf.model import critic as critic_lib

# The reference's channel plan, written out here rather than read from the
# module, so that a change there fails the count below.
_CHANNELS = (3, 64, 128, 256, 512, 512, 512)


def _reference_trainable_count():
  """DiscriminatorDoubleColumn's trainable parameters, from its shapes."""
  column = 0
  for k in range(6):
    c_in, c_out = _CHANNELS[k], _CHANNELS[k + 1]
    column += 4 * 4 * c_in * c_out + c_out  # conv with bias
    if k > 0:
      column += 2 * c_out  # norm scale and offset
  final = 4 * 4 * 1024 * 1 + 1
  return 2 * column + final


def _batch(size, batch=2, seed=0):
  rng = np.random.default_rng(seed)
  image = rng.random((batch, size, size, 3), dtype=np.float32)
  mask = np.ones((batch, size, size, 1), np.float32)
  mask[:, size // 4:size // 2, size // 4:3 * size // 4] = 0.0
  return image, mask


@pytest.fixture(scope="module")
def critic():
  return critic_lib.build_critic()


@pytest.fixture(scope="module")
def columns(critic):
  """The critic's inputs -> (global column map, local column map)."""
  return keras.Model(critic.input, [critic.get_layer("global_act6").output,
                                    critic.get_layer("local_act6").output])


def test_reference_arithmetic_matches_issue_figure():
  assert _reference_trainable_count() == 22_316_417


@pytest.mark.parametrize("normalization", critic_lib.NORMALIZATIONS)
def test_trainable_parameter_count_is_the_reference(normalization, critic):
  model = (critic if normalization == "layer"
           else critic_lib.build_critic(normalization=normalization))
  trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
  assert trainable == _reference_trainable_count()
  # BatchNorm adds only its running statistics, which are not trained.
  moving = sum(int(np.prod(w.shape)) for w in model.non_trainable_weights)
  normed = sum(_CHANNELS[2:])
  assert moving == (2 * 2 * normed if normalization == "batch" else 0)


@pytest.mark.parametrize("size,batch", [(128, 2), (256, 2), (512, 1)])
def test_scores_are_one_float32_per_image(critic, size, batch):
  image, mask = _batch(size, batch)
  scores = critic({"image": image, "mask": mask}, training=False)
  assert scores.shape == (batch,)
  assert scores.dtype == tf.float32
  assert np.all(np.isfinite(scores))


def test_scores_are_linear_and_unbounded(critic):
  image, mask = _batch(128)
  layer = critic.get_layer("score")
  kernel, bias = [w.numpy() for w in layer.weights]
  try:
    layer.set_weights([np.zeros_like(kernel), np.full_like(bias, -50.0)])
    np.testing.assert_allclose(
        critic({"image": image, "mask": mask}), [-50.0, -50.0])
    layer.set_weights([kernel, bias])
    base = critic({"image": image, "mask": mask}).numpy()
    layer.set_weights([3.0 * kernel, 3.0 * bias])
    tripled = critic({"image": image, "mask": mask}).numpy()
  finally:
    layer.set_weights([kernel, bias])
  np.testing.assert_allclose(tripled, 3.0 * base, rtol=1e-5, atol=1e-6)


def _torch_adaptive_pool(x, grid):
  """PyTorch's own adaptive_avg_pool2d on an NHWC array: the yardstick."""
  nchw = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
  pooled = torch.nn.functional.adaptive_avg_pool2d(nchw, grid)
  return pooled.numpy().transpose(0, 2, 3, 1)


@pytest.mark.parametrize("size", [128, 256])
def test_score_is_the_4x4_conv_of_the_pooled_column_maps(critic, columns,
                                                         size):
  # At 256 the pooling is the identity: the reference's logit exactly.
  image, mask = _batch(size)
  inputs = {"image": image, "mask": mask}
  known, hole = [m.numpy() for m in columns(inputs, training=False)]
  features = np.concatenate([known, hole], axis=-1).astype(np.float64)
  kernel, bias = [w.numpy() for w in critic.get_layer("score").weights]
  pooled = _torch_adaptive_pool(features, 4)
  expected = np.einsum("bijc,ijc->b", pooled, kernel[..., 0]) + bias[0]
  np.testing.assert_allclose(critic(inputs, training=False), expected,
                             rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("height,width", [(2, 2), (4, 4), (8, 8), (6, 10)])
def test_adaptive_pooling_matches_pytorch_semantics(height, width):
  x = np.random.default_rng(3).random((2, height, width, 5), dtype=np.float32)
  pooled = critic_lib.AdaptiveAveragePooling(4)(x)
  np.testing.assert_allclose(pooled, _torch_adaptive_pool(x, 4), rtol=1e-6)


def test_adaptive_pooling_config_round_trip():
  layer = critic_lib.AdaptiveAveragePooling(3, name="p")
  clone = critic_lib.AdaptiveAveragePooling.from_config(layer.get_config())
  assert clone.grid == 3 and clone.name == "p"
  with pytest.raises(ValueError, match="grid=0"):
    critic_lib.AdaptiveAveragePooling(0)


def test_mask_separates_the_columns(columns):
  image, mask = _batch(128)
  hole = mask == 0.0
  noise = np.random.default_rng(1).random(image.shape, dtype=np.float32)
  in_hole = np.where(hole, noise, image)
  in_known = np.where(hole, image, noise)

  def maps(x):
    return [m.numpy() for m in columns({"image": x, "mask": mask},
                                       training=False)]

  global_0, local_0 = maps(image)
  global_h, local_h = maps(in_hole)
  global_k, local_k = maps(in_known)
  # Hole pixels reach only the local column, known pixels only the global one.
  np.testing.assert_array_equal(global_h, global_0)
  assert np.abs(local_h - local_0).max() > 1e-3
  np.testing.assert_array_equal(local_k, local_0)
  assert np.abs(global_k - global_0).max() > 1e-3


def test_gradient_penalty_gradients_flow(critic):
  image, mask = _batch(128)
  x, mask = tf.constant(image), tf.constant(mask)
  with tf.GradientTape() as outer:
    with tf.GradientTape() as inner:
      inner.watch(x)
      scores = critic({"image": x, "mask": mask}, training=True)
    grads = inner.gradient(scores, x)
    norms = tf.sqrt(tf.reduce_sum(tf.square(grads), axis=[1, 2, 3]))
    penalty = tf.reduce_mean(tf.square(norms - 1.0))
  assert np.all(norms.numpy() > 0) and np.all(np.isfinite(grads))
  # Both regions carry gradient: the known one via the global column, the
  # hole via the local column.
  hole = np.broadcast_to(mask.numpy() == 0, grads.shape)
  assert np.abs(grads.numpy()[hole]).max() > 0
  assert np.abs(grads.numpy()[~hole]).max() > 0
  weight_grads = dict(zip(
      [w.path for w in critic.trainable_weights],
      outer.gradient(penalty, critic.trainable_weights)))
  # The score's bias shifts every score alike, so the penalty cannot see it.
  assert weight_grads.pop("score/bias") is None
  for path, grad in weight_grads.items():
    assert grad is not None and np.all(np.isfinite(grad)), path
    if path.endswith("/kernel"):
      assert np.abs(grad).max() > 0, path


def test_scores_stay_float32_under_mixed_precision(mixed_bfloat16):
  model = critic_lib.build_critic()
  assert model.get_layer("global_conv1").compute_dtype == "bfloat16"
  image, mask = _batch(128, batch=1)
  scores = model({"image": image, "mask": mask}, training=False)
  assert scores.dtype == tf.float32 and scores.shape == (1,)


def test_other_sizes_are_refused_with_the_remedy(critic):
  image, mask = _batch(130, batch=1)
  with pytest.raises(ValueError, match=r"130x130.*pad_to_multiple"):
    critic({"image": image, "mask": mask})


def test_unknown_normalization_is_refused():
  with pytest.raises(ValueError, match="'instance'"):
    critic_lib.build_critic(normalization="instance")
