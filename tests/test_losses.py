"""Losses and the VGG extractor against independent numpy computations."""

import socket

import keras
import numpy as np
import pytest
import tensorflow as tf

from lbam_tf.model import vgg
from lbam_tf.training import losses


def _random(shape, seed):
  return np.random.default_rng(seed).uniform(size=shape).astype(np.float32)


def _binary_mask(shape, seed):
  uniform = np.random.default_rng(seed).uniform(size=shape)
  return (uniform > 0.4).astype(np.float32)


def test_hole_valid_l1_matches_numpy():
  out, gt = _random((2, 8, 8, 3), 0), _random((2, 8, 8, 3), 1)
  mask = _binary_mask((2, 8, 8, 1), 2)
  hole, valid = losses.hole_valid_l1(out, gt, mask)
  error = np.abs(out - gt)
  np.testing.assert_allclose(hole, (error * (1 - mask)).mean(axis=(1, 2, 3)),
                             rtol=1e-6)
  np.testing.assert_allclose(valid, (error * mask).mean(axis=(1, 2, 3)),
                             rtol=1e-6)
  # eq. 14: hole + valid is the plain per-example L1.
  np.testing.assert_allclose(hole + valid, error.mean(axis=(1, 2, 3)),
                             rtol=1e-6)


def _numpy_gram(f):
  b, h, w, c = f.shape
  flat = f.reshape(b, h * w, c)
  return np.einsum("bnc,bnd->bcd", flat, flat) / (c * h * w)


def test_perceptual_and_style_match_numpy():
  shapes = [(2, 8, 8, 4), (2, 4, 4, 6)]
  a = [_random(s, 10 + i) for i, s in enumerate(shapes)]
  b = [_random(s, 20 + i) for i, s in enumerate(shapes)]
  np.testing.assert_allclose(
      losses.perceptual_loss(a, b, "l1"),
      sum(np.abs(x - y).mean(axis=(1, 2, 3)) for x, y in zip(a, b)), rtol=1e-6)
  np.testing.assert_allclose(
      losses.perceptual_loss(a, b, "l2"),
      sum(((x - y) ** 2).mean(axis=(1, 2, 3)) for x, y in zip(a, b)), rtol=1e-6)
  grams = [losses.gram_matrix(y) for y in b]
  for gram, y in zip(grams, b):
    np.testing.assert_allclose(gram, _numpy_gram(y), rtol=1e-5)
  np.testing.assert_allclose(
      losses.style_loss(a, grams),
      sum(np.abs(_numpy_gram(x) - _numpy_gram(y)).mean(axis=(1, 2))
          for x, y in zip(a, b)), rtol=1e-5)


class _TanhCritic(keras.layers.Layer):
  """score = sum(w * tanh(image * mask)): a critic whose gradient is known."""

  def __init__(self, weights, **kwargs):
    super().__init__(**kwargs)
    self.w = tf.constant(weights)

  def call(self, inputs):
    return tf.reduce_sum(self.w * tf.tanh(inputs["image"] * inputs["mask"]),
                         axis=[1, 2, 3])


def test_critic_loss_and_gradient_penalty_by_hand():
  h = w = 4
  weights = np.random.default_rng(3).normal(size=(h, w, 3)).astype(np.float32)
  critic = _TanhCritic(weights)
  real, fake = _random((3, h, w, 3), 4), _random((3, h, w, 3), 5)
  mask = _binary_mask((3, h, w, 1), 6)
  epsilon = _random((3, 1, 1, 1), 7)

  real_scores, fake_scores = losses.critic_scores(critic, real, fake, mask)
  penalty = losses.gradient_penalty(critic, real, fake, mask, epsilon)
  loss = losses.critic_loss(real_scores, fake_scores, penalty, 10.0)

  def score(x):
    return (weights * np.tanh(x * mask)).sum(axis=(1, 2, 3))

  x_hat = epsilon * real + (1 - epsilon) * fake
  gradient = weights * mask * (1 - np.tanh(x_hat * mask) ** 2)
  norm = np.sqrt((gradient ** 2).sum(axis=(1, 2, 3)))
  expected_penalty = (norm - 1) ** 2
  np.testing.assert_allclose(real_scores, score(real), rtol=1e-5)
  np.testing.assert_allclose(fake_scores, score(fake), rtol=1e-5)
  np.testing.assert_allclose(penalty, expected_penalty, rtol=1e-4)
  np.testing.assert_allclose(
      loss, score(fake) - score(real) + 10.0 * expected_penalty, rtol=1e-4,
      atol=1e-5)
  # The generator pushes D(fake) up: its loss is the negated score.
  np.testing.assert_allclose(losses.generator_adversarial_loss(fake_scores),
                             -score(fake), rtol=1e-5)


def test_scale_to_global_batch_sums_replica_shares_to_the_mean():
  per_example = np.array([1.0, 2.0, 3.0, 6.0], np.float32)
  shares = [losses.scale_to_global_batch(half, 4)
            for half in (per_example[:2], per_example[2:])]
  np.testing.assert_allclose(sum(float(s) for s in shares), per_example.mean())


def test_loss_weights_reject_negative_and_unknown_norm():
  with pytest.raises(ValueError, match="style=-1"):
    losses.LossWeights(1, 1, 0.1, -1, 0.1)
  with pytest.raises(ValueError, match="'l3'"):
    losses.LossWeights(1, 1, 0.1, 1, 0.1, perceptual_norm="l3")


def test_caffe_preprocess_matches_keras_preprocess_input():
  images = _random((2, 4, 4, 3), 8)
  np.testing.assert_allclose(
      vgg.caffe_preprocess(images),
      keras.applications.vgg16.preprocess_input(images * 255.0), rtol=1e-5,
      atol=1e-4)


def test_feature_extractor_loads_a_local_file_and_returns_pool1_to_3(tmp_path):
  reference = keras.applications.VGG16(include_top=False, weights=None,
                                       input_shape=(None, None, 3))
  path = str(tmp_path / "vgg16.weights.h5")
  reference.save_weights(path)
  extractor = vgg.build_feature_extractor(path)
  assert not extractor.trainable_weights

  images = _random((1, 32, 32, 3), 9)
  features = extractor(images)
  probe = keras.Model(
      reference.input,
      [reference.get_layer(n).output for n in vgg.FEATURE_LAYERS])
  expected = probe(keras.applications.vgg16.preprocess_input(images * 255.0))
  assert [tuple(f.shape) for f in features] == [
      (1, 16, 16, 64), (1, 8, 8, 128), (1, 4, 4, 256)]
  for got, want in zip(features, expected):
    np.testing.assert_allclose(got, np.asarray(want) / 255.0, rtol=1e-4,
                               atol=1e-5)


def test_feature_extractor_names_the_remedy_for_a_missing_file():
  with pytest.raises(ValueError, match="--vgg_weights"):
    vgg.build_feature_extractor("/nonexistent/vgg16.h5")


def _online():
  try:
    socket.getaddrinfo("storage.googleapis.com", 443)
    return True
  except OSError:
    return False


@pytest.mark.skipif(_online(), reason="checks the offline message only")
def test_feature_extractor_offline_imagenet_says_what_to_pass(tmp_path,
                                                              monkeypatch):
  monkeypatch.setenv("KERAS_HOME", str(tmp_path))
  with pytest.raises(RuntimeError, match=vgg.IMAGENET_FILE):
    vgg.build_feature_extractor("imagenet")
