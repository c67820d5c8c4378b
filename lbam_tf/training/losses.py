"""LBAM's losses (paper eqs. 14-18) as pure per-example functions.

Every function returns one value per example, float32 [B]. The training step
sums them and divides by the *global* batch size (`scale_to_global_batch`), so
that gradients summed over replicas equal the single-device gradient of the
batch mean whatever the number of replicas.

The adversarial part is WGAN-GP (Gulrajani et al. 2017) with the signs the
reference code gets wrong: the critic minimises E[D(fake)] - E[D(real)] +
lambda * GP, the generator minimises -E[D(fake)]. Scores are linear (no
sigmoid).

Weights come in two presets (`PRESETS`): "paper" (eq. 18) and "reference"
(the authors' code); BUILD_NOTES.md says which is the default and why.
"""

import dataclasses

import tensorflow as tf

#: Perceptual distances: eq. 15's squared L2 ("l2") or the reference code's L1.
PERCEPTUAL_NORMS = ("l1", "l2")


@dataclasses.dataclass(frozen=True)
class LossWeights:
  """Weights of the generator's loss terms and the gradient penalty.

  Attributes:
    hole: L1 over the hole pixels (mean over all pixels, as the reference).
    valid: L1 over the known pixels. hole = valid = 1 is eq. 14's plain L1.
    perceptual: VGG pool1-3 feature distance, output and composite (eq. 15).
    style: Gram-matrix L1, output and composite (eq. 16).
    adversarial: the generator's -E[D(fake)] (eq. 17).
    gradient_penalty: WGAN-GP's lambda (paper: 10).
    perceptual_norm: "l2" (eq. 15, squared) or "l1" (reference code).
  """
  hole: float
  valid: float
  perceptual: float
  style: float
  adversarial: float
  gradient_penalty: float = 10.0
  perceptual_norm: str = "l1"

  def __post_init__(self):
    if self.perceptual_norm not in PERCEPTUAL_NORMS:
      raise ValueError(
          f"perceptual_norm {self.perceptual_norm!r} is not one of "
          f"{PERCEPTUAL_NORMS}")
    for field in dataclasses.fields(self):
      value = getattr(self, field.name)
      if field.name != "perceptual_norm" and value < 0:
        raise ValueError(f"loss weight {field.name}={value} is negative: "
                         "weights must be >= 0 (0 switches a term off)")


#: eq. 18: lambda1 = 1 on the plain L1 (= hole + valid, each weight 1),
#: lambda2 = 0.1 adversarial, lambda3 = 0.05 perceptual (squared L2),
#: lambda4 = 120 style. "reference": the authors' train.py.
PRESETS = {
    "paper": LossWeights(hole=1.0, valid=1.0, perceptual=0.05, style=120.0,
                         adversarial=0.1, perceptual_norm="l2"),
    "reference": LossWeights(hole=6.0, valid=1.0, perceptual=0.01, style=120.0,
                             adversarial=0.1, perceptual_norm="l1"),
}


def _per_example_mean(x):
  return tf.reduce_mean(tf.cast(x, tf.float32), axis=tf.range(1, tf.rank(x)))


def scale_to_global_batch(per_example, global_batch_size):
  """Sum of per-example losses / global batch: the replica's share."""
  return tf.reduce_sum(per_example) / tf.cast(global_batch_size, tf.float32)


def hole_valid_l1(output, target, mask):
  """L1 on the holes and on the known pixels, each a mean over all pixels.

  Args:
    output: generated images [B, H, W, 3].
    target: ground truth [B, H, W, 3].
    mask: [B, H, W, 1], 1 = known, 0 = hole.

  Returns:
    (hole, valid): float32 [B] each; hole + valid is the plain L1 of eq. 14.
  """
  error = tf.abs(tf.cast(output, tf.float32) - tf.cast(target, tf.float32))
  mask = tf.cast(mask, tf.float32)
  return (_per_example_mean(error * (1.0 - mask)),
          _per_example_mean(error * mask))


def gram_matrix(features):
  """Gram matrix normalised by C*H*W (as PConv and the reference): [B, C, C]."""
  features = tf.cast(features, tf.float32)
  shape = tf.shape(features)
  flat = tf.reshape(features, [shape[0], -1, shape[3]])
  size = tf.cast(shape[1] * shape[2] * shape[3], tf.float32)
  return tf.matmul(flat, flat, transpose_a=True) / size


def perceptual_loss(features, target_features, norm="l1"):
  """Eq. 15: feature distance summed over VGG levels.

  Args:
    features: list of [B, h, w, c] maps of the generated image.
    target_features: the same for the ground truth (no gradient needed).
    norm: "l1" (mean absolute difference) or "l2" (mean squared difference).

  Returns:
    float32 [B]: the sum over levels of the per-level mean distance.
  """
  distance = tf.abs if norm == "l1" else tf.square
  return tf.add_n([
      _per_example_mean(
          distance(tf.cast(a, tf.float32) - tf.cast(b, tf.float32)))
      for a, b in zip(features, target_features)])


def style_loss(features, target_grams):
  """Eq. 16 as the reference codes it: Gram-matrix L1, summed over levels.

  Args:
    features: list of [B, h, w, c] maps of the generated image.
    target_grams: `gram_matrix` of the ground truth's maps, one per level
      (computed once per step and shared by the output and the composite).

  Returns:
    float32 [B].
  """
  return tf.add_n([_per_example_mean(tf.abs(gram_matrix(a) - g))
                   for a, g in zip(features, target_grams)])


def critic_score(critic, image, mask, training=True):
  """The critic's scores as float32 [B], whatever its output shape and dtype."""
  scores = critic({"image": image, "mask": mask}, training=training)
  return tf.reshape(tf.cast(scores, tf.float32), [-1])


def critic_scores(critic, real, fake, mask, training=True):
  """The critic on real and fake images in one batched call.

  Returns:
    (real_scores, fake_scores): float32 [B] each.
  """
  batch = tf.shape(real)[0]
  scores = critic_score(critic, tf.concat([real, fake], axis=0),
                        tf.concat([mask, mask], axis=0), training)
  return scores[:batch], scores[batch:]


def gradient_penalty(critic, real, fake, mask, epsilon, training=True):
  """WGAN-GP's (||grad_x D(x_hat)||_2 - 1)^2 per example.

  Args:
    critic: a model taking {"image", "mask"} and returning [B] scores.
    real: ground truth [B, H, W, 3].
    fake: generated images [B, H, W, 3] (no gradient to the generator).
    mask: [B, H, W, 1]; a condition of the critic, not interpolated.
    epsilon: [B, 1, 1, 1] interpolation weights, U(0, 1) per example.

  Returns:
    float32 [B]. The gradient is taken with respect to the image only; its
    norm runs over H, W and channels of each example.
  """
  real = tf.cast(real, tf.float32)
  fake = tf.cast(fake, tf.float32)
  interpolated = epsilon * real + (1.0 - epsilon) * fake
  with tf.GradientTape() as tape:
    tape.watch(interpolated)
    total = tf.reduce_sum(critic_score(critic, interpolated, mask, training))
  gradients = tf.cast(tape.gradient(total, interpolated), tf.float32)
  # The tiny constant keeps sqrt differentiable at a zero gradient.
  norm = tf.sqrt(tf.reduce_sum(tf.square(gradients), axis=[1, 2, 3]) + 1e-12)
  return tf.square(norm - 1.0)


def critic_loss(real_scores, fake_scores, penalty,
                gradient_penalty_weight=10.0):
  """WGAN-GP critic loss per example: D(fake) - D(real) + lambda * GP."""
  return fake_scores - real_scores + gradient_penalty_weight * penalty


def generator_adversarial_loss(fake_scores):
  """The generator's adversarial term per example: -D(fake)."""
  return -fake_scores
