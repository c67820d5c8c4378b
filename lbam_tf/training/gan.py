"""The LBAM GAN as a `keras.Model` whose `train_step` runs WGAN-GP.

One `train_step` is the reference's schedule on one batch: `critic_steps`
critic updates, then one generator update, the generator run forward once.
`reconstruction_only` makes it a warm-up step (L1 terms alone, no critic, no
VGG; `lbam_tf.train --warmup_steps`). Losses are scaled to the global batch,
so N replicas take the one-device step. The schedule, the work removed from
the step and the scaling rules: BUILD_NOTES.md, "Training"; the warm-up:
"Training that learns".

Example:

  with strategy.scope():
    gan = LbamGan(build_generator(), build_critic(),
                  vgg.build_feature_extractor("imagenet"),
                  losses.PRESETS["reference"], global_batch_size=48)
    gan.compile(make_optimizer(1e-4, 0.5, 0.9), make_optimizer(1e-5, 0.0, 0.9))
    gan.build_optimizers()
  gan.fit(dataset_of_image_mask_dicts, steps_per_epoch=100, epochs=10)
"""

import math

import keras
import tensorflow as tf

from lbam_tf.images import ops as image_ops
from lbam_tf.training import losses

#: Logged values, in the order the progress bar shows them. Loss terms are
#: unweighted global-batch means; "generator_loss" and "critic_loss" are the
#: weighted totals that are minimised; "wasserstein" is E[D(real)] - E[D(fake)]
#: at the last critic step, the critic's estimate of the distance.
LOG_NAMES = ("generator_loss", "hole", "valid", "perceptual", "style",
             "adversarial", "critic_loss", "gradient_penalty", "wasserstein")


def make_optimizer(learning_rate, beta_1, beta_2, mixed_float16=False,
                   name=None):
  """Adam; wrapped in dynamic loss scaling under mixed_float16."""
  optimizer = keras.optimizers.Adam(learning_rate=learning_rate, beta_1=beta_1,
                                    beta_2=beta_2, name=name)
  if mixed_float16:
    optimizer = keras.optimizers.LossScaleOptimizer(optimizer, name=name)
  return optimizer


def check_finite(logs, step):
  """Raises FloatingPointError naming the first non-finite logged term.

  Args:
    logs: dict of logged values (Keras logs of a `LbamGan`).
    step: the training step that produced them.
  """
  for name in LOG_NAMES:
    if name in logs and not math.isfinite(float(logs[name])):
      raise FloatingPointError(
          f"loss term {name!r} is {float(logs[name])} at step {step}: lower "
          f"the learning rates or that term's weight, or turn mixed "
          f"precision off")


def _name(variable):
  return getattr(variable, "path", None) or variable.name


class LbamGan(keras.Model):
  """Generator, critic and the frozen VGG, trained by `fit` with WGAN-GP.

  Args:
    generator: from `lbam_tf.model.generator.build_generator`.
    critic: from `lbam_tf.model.critic.build_critic` (linear [B] scores).
    feature_extractor: from `lbam_tf.model.vgg.build_feature_extractor` (frozen).
    loss_weights: a `losses.LossWeights`.
    global_batch_size: examples per step over all replicas; losses are divided
      by it.
    critic_steps: critic updates per generator update.
    seed: seeds the gradient penalty's interpolation weights.
    **kwargs: `keras.Model` arguments (name).

  Call arguments:
    inputs: {"image": [B, H, W, 3], "mask": [B, H, W, 1]}; returns the
      generator's output.

  The dataset given to `fit` yields {"image", "mask"} dicts (lbam_tf.data.records).
  """

  def __init__(self, generator, critic, feature_extractor, loss_weights,
               global_batch_size, critic_steps=1, seed=0, **kwargs):
    super().__init__(**kwargs)
    if critic_steps < 1:
      raise ValueError(f"critic_steps={critic_steps}: the critic needs at "
                       "least one update per generator update")
    if global_batch_size < 1:
      raise ValueError(f"global_batch_size={global_batch_size} must be >= 1")
    self.generator = generator
    self.critic = critic
    self.feature_extractor = feature_extractor
    self.loss_weights = loss_weights
    self.global_batch_size = int(global_batch_size)
    self.critic_steps = int(critic_steps)
    self.seed = int(seed)
    # Counts generator updates; checkpointed so a resumed run knows where it
    # is. Only the first replica's increment counts.
    self.step = tf.Variable(
        0, dtype=tf.int64, trainable=False, name="step",
        aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
    self.trackers = {name: keras.metrics.Mean(name=name) for name in LOG_NAMES}
    self.generator_optimizer = None
    self.critic_optimizer = None
    self.reconstruction_only = False
    self.built = True

  @property
  def metrics(self):
    return list(self.trackers.values())

  def compile(self, generator_optimizer, critic_optimizer, jit_compile=False):
    """Sets the two optimizers; Keras' single optimizer stays unused (None)."""
    super().compile(optimizer=None, jit_compile=jit_compile)
    self.generator_optimizer = generator_optimizer
    self.critic_optimizer = critic_optimizer

  def build_optimizers(self):
    """Creates the optimizers' slots: inside strategy.scope(), before fit."""
    self.generator_optimizer.build(self.generator.trainable_variables)
    self.critic_optimizer.build(self.critic.trainable_variables)

  def check_finite_weights(self, step):
    """Raises FloatingPointError naming a weight or slot that is NaN or Inf.

    For the callback, before a checkpoint: one reduction per variable, cheap
    next to writing them.
    """
    variables = [
        v for v in (self.generator.variables + self.critic.variables
                    + self.generator_optimizer.variables
                    + self.critic_optimizer.variables)
        if tf.as_dtype(v.dtype).is_floating]
    finite = tf.stack([tf.reduce_all(tf.math.is_finite(v))
                       for v in variables]).numpy()
    if not finite.all():
      bad = [_name(v) for v, ok in zip(variables, finite) if not ok]
      raise FloatingPointError(
          f"{bad[0]} (and {len(bad) - 1} more) holds NaN or Inf after step "
          f"{step} although the losses were finite: not saved; lower the "
          "learning rates, or turn mixed precision off")

  def call(self, inputs, training=False):
    return self.generator(inputs, training=training)

  def _interpolation_weights(self, local_batch, critic_step):
    """U(0, 1) per example of the global batch, this replica's slice."""
    context = tf.distribute.get_replica_context()
    replica = tf.cast(context.replica_id_in_sync_group, tf.int32)
    seed = tf.stack([tf.cast(self.seed, tf.int64),
                     self.step * self.critic_steps + critic_step])
    weights = tf.random.stateless_uniform([self.global_batch_size], seed=seed)
    start = replica * local_batch
    return tf.reshape(weights[start:start + local_batch], [-1, 1, 1, 1])

  def _critic_update(self, image, fake, mask, critic_step):
    weights = self.loss_weights
    with tf.GradientTape() as tape:
      real_scores, fake_scores = losses.critic_scores(self.critic, image, fake,
                                                      mask)
      epsilon = self._interpolation_weights(tf.shape(image)[0], critic_step)
      penalty = losses.gradient_penalty(self.critic, image, fake, mask,
                                        epsilon)
      per_example = losses.critic_loss(real_scores, fake_scores, penalty,
                                       weights.gradient_penalty)
      loss = self._share(per_example)
      scaled = self.critic_optimizer.scale_loss(loss)
    variables = self.critic.trainable_variables
    self.critic_optimizer.apply_gradients(
        zip(tape.gradient(scaled, variables), variables))
    return {"critic_loss": loss, "gradient_penalty": self._share(penalty),
            "wasserstein": self._share(real_scores - fake_scores)}

  def _share(self, per_example):
    """This replica's share of a per-example value's global-batch mean."""
    return losses.scale_to_global_batch(per_example, self.global_batch_size)

  def _apply_generator_gradients(self, tape, scaled_loss):
    variables = self.generator.trainable_variables
    self.generator_optimizer.apply_gradients(
        zip(tape.gradient(scaled_loss, variables), variables))
    self.step.assign_add(1)

  def _log(self, logs):
    """Updates the trackers with global-batch means; returns their results."""
    # Each replica holds its share of the global mean; the sum is the mean.
    context = tf.distribute.get_replica_context()
    names = list(LOG_NAMES)
    totals = context.all_reduce(
        "sum", tf.stack([logs.get(n, tf.constant(0.0)) for n in names]))
    for index, name in enumerate(names):
      self.trackers[name].update_state(totals[index])
    return {name: tracker.result() for name, tracker in self.trackers.items()}

  def _reconstruction_step(self, image, mask):
    """A warm-up step: the weighted L1 terms only (other terms log 0)."""
    weights = self.loss_weights
    with tf.GradientTape() as tape:
      output = self.generator({"image": image, "mask": mask}, training=True)
      hole, valid = losses.hole_valid_l1(tf.cast(output, tf.float32), image,
                                         mask)
      loss = self._share(weights.hole * hole + weights.valid * valid)
      scaled = self.generator_optimizer.scale_loss(loss)
    self._apply_generator_gradients(tape, scaled)
    return self._log({"generator_loss": loss, "hole": self._share(hole),
                      "valid": self._share(valid)})

  # Plain Python control flow only, here and below: AutoGraph's conversion of
  # this code took a third of the step's tracing (19.5 s with, 13.4 s without).
  @tf.autograph.experimental.do_not_convert
  def train_step(self, data):
    image = tf.cast(data["image"], tf.float32)
    mask = tf.cast(data["mask"], tf.float32)
    if self.reconstruction_only:
      return self._reconstruction_step(image, mask)
    weights = self.loss_weights

    target_features = self.feature_extractor(image, training=False)
    target_grams = [losses.gram_matrix(f) for f in target_features]

    with tf.GradientTape() as tape:
      output = self.generator({"image": image, "mask": mask}, training=True)
      output = tf.cast(output, tf.float32)
      composite = image_ops.composite(output, image, mask)

      with tape.stop_recording():
        fake = tf.stop_gradient(output)
        for critic_step in range(self.critic_steps):
          critic_logs = self._critic_update(image, fake, mask, critic_step)

      hole, valid = losses.hole_valid_l1(output, image, mask)
      # Output and composite through VGG in one call, then split.
      both = self.feature_extractor(tf.concat([output, composite], axis=0),
                                    training=False)
      batch = tf.shape(image)[0]
      output_features = [f[:batch] for f in both]
      composite_features = [f[batch:] for f in both]
      perceptual = (
          losses.perceptual_loss(output_features, target_features,
                                 weights.perceptual_norm)
          + losses.perceptual_loss(composite_features, target_features,
                                   weights.perceptual_norm))
      style = (losses.style_loss(output_features, target_grams)
               + losses.style_loss(composite_features, target_grams))
      fake_scores = losses.critic_score(self.critic, output, mask)
      adversarial = losses.generator_adversarial_loss(fake_scores)
      per_example = (weights.hole * hole + weights.valid * valid
                     + weights.perceptual * perceptual + weights.style * style
                     + weights.adversarial * adversarial)
      loss = self._share(per_example)
      scaled = self.generator_optimizer.scale_loss(loss)
    self._apply_generator_gradients(tape, scaled)
    return self._log({
        "generator_loss": loss, "hole": self._share(hole),
        "valid": self._share(valid), "perceptual": self._share(perceptual),
        "style": self._share(style), "adversarial": self._share(adversarial),
        **critic_logs})
