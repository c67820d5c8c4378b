"""The training run's Keras callback: saves, summaries, validation, stops.

One callback does all of it because each duty depends on the same step
number and the same save: a SIGTERM, a NaN, the end of a phase and the end of
the time budget all decide whether this step is saved and whether training
goes on.
"""

import os
import threading
import time

from absl import logging
import keras
import tensorflow as tf

from lbam_tf.evaluation import metrics
from lbam_tf.images import ops as image_ops
from lbam_tf.model import generator as generator_lib
from lbam_tf.training import gan as gan_lib


class Terminated(Exception):
  """SIGTERM arrived; a checkpoint was saved."""


class TrainingMonitor(keras.callbacks.Callback):
  """Checkpoints, TensorBoard, validation and every reason to stop.

  Args:
    gan: the `gan.LbamGan` being trained.
    manager: its `tf.train.CheckpointManager`.
    model_dir: where TensorBoard logs go (the chief's) ; `train/` and `val/`.
    val_data: a finite dataset of val batches, or None.
    chief: whether this worker writes summaries and validates.
    checkpoint_every, image_every, val_every: step intervals.
    deadline: a `time.monotonic()` value that ends the run, or None.
    terminate: a `threading.Event` that a SIGTERM handler sets: the next
      step end saves, then raises `Terminated`.
    preemption: a `PreemptionCheckpointHandler` on a cluster, else None.

  Attributes a run reads or sets: `stop_at` (the step ending this phase),
  `out_of_time`, `saved_step`, `validated_step` and `last_validation` (the
  latest means). A NaN or Inf logged loss raises FloatingPointError before
  the step is saved.
  """

  def __init__(self, gan, manager, model_dir, val_data, chief,
               checkpoint_every, image_every, val_every, deadline=None,
               terminate=None, preemption=None):
    super().__init__()
    self.gan = gan
    self.manager = manager
    self.model_dir = model_dir
    self.val_data = val_data
    self.chief = chief
    self.checkpoint_every = checkpoint_every
    self.image_every = image_every
    self.val_every = val_every
    self.deadline = deadline
    self.preemption = preemption
    self.terminate = terminate or threading.Event()
    self.stop_at = None
    self.out_of_time = False
    self.saved_step = None
    self.validated_step = None
    self.last_validation = None
    self.writers = {
        name: tf.summary.create_file_writer(os.path.join(model_dir, name))
        for name in ("train", "val")} if chief else {}
    self.maps_model = generator_lib.attention_maps_model(gan.generator)
    # A fixed batch of up to 4 val examples for the image summaries.
    self.preview = (next(iter(val_data.unbatch().batch(4)))
                    if val_data is not None else None)
    self.infer = tf.function(self._infer, autograph=False)

  def _infer(self, batch):
    output = self.gan.generator(batch, training=False)
    return output, image_ops.composite(output, batch["image"], batch["mask"])

  def step(self):
    return int(self.gan.step.numpy())

  def save(self, step):
    if self.saved_step != step:
      # Finite losses do not make finite weights: the update after them can
      # overflow. A checkpoint must never hold NaN or Inf.
      self.gan.check_finite_weights(step)
      self.manager.save(checkpoint_number=step)
      self.saved_step = step

  def on_train_begin(self, logs=None):
    # A fresh run's baseline, so the first validation figure is the
    # untrained generator's.
    if self.chief and self.val_data is not None and self.step() == 0:
      self.validate(0)

  def on_train_batch_end(self, batch, logs=None):
    step = self.step()
    gan_lib.check_finite(logs or {}, step)
    if step % self.checkpoint_every == 0:
      self.save(step)
    if self.chief and step % self.image_every == 0 and (
        self.preview is not None):
      self.write_images(step)
    if self.chief and step % self.val_every == 0 and (
        self.val_data is not None):
      self.validate(step)
    if self.preemption is not None:
      # On every worker after every step, as the handler requires.
      self.preemption.save_checkpoint_if_preempted()
    if self.terminate.is_set():
      self.save(step)
      raise Terminated(f"SIGTERM: saved step {step} to {self.model_dir}")
    if self.deadline is not None and time.monotonic() >= self.deadline:
      self.out_of_time = True
    if step >= self.stop_at or self.out_of_time:
      self.model.stop_training = True

  def on_epoch_end(self, epoch, logs=None):
    if not self.chief:
      return
    gan = self.gan
    with self.writers["train"].as_default(step=self.step()):
      for name, value in (logs or {}).items():
        tf.summary.scalar(f"loss/{name}", float(value))
      # Under a strategy the rates are distributed variables: read a tensor.
      tf.summary.scalar("learning_rate/generator", tf.convert_to_tensor(
          gan.generator_optimizer.learning_rate))
      tf.summary.scalar("learning_rate/critic", tf.convert_to_tensor(
          gan.critic_optimizer.learning_rate))
    self.writers["train"].flush()

  def write_images(self, step):
    output, composite = self.infer(self.preview)
    maps = self.maps_model(self.preview, training=False)
    with self.writers["train"].as_default(step=step):
      image, mask = self.preview["image"], self.preview["mask"]
      # Holes shown white, as the mask files mark them.
      tf.summary.image("input", image * mask + (1.0 - mask), max_outputs=4)
      tf.summary.image("mask", mask, max_outputs=4)
      tf.summary.image("output", output, max_outputs=4)
      tf.summary.image("composite", composite, max_outputs=4)
      tf.summary.image("ground_truth", image, max_outputs=4)
      for name, value in maps.items():
        value = tf.reduce_mean(value, axis=-1, keepdims=True)
        peak = tf.reduce_max(value, axis=[1, 2, 3], keepdims=True)
        tf.summary.image(f"attention/{name}", value / (peak + 1e-6),
                         max_outputs=4)
    self.writers["train"].flush()

  def validate(self, step):
    """PSNR, SSIM and L1 (%) of the composite over the val batches."""
    self.validated_step = step
    values = {"psnr": [], "ssim": [], "l1_percent": []}
    for batch in self.val_data:
      _, composite = self.infer(batch)
      values["psnr"].append(metrics.psnr(composite, batch["image"]))
      values["ssim"].append(metrics.ssim(composite, batch["image"]))
      values["l1_percent"].append(
          metrics.l1_percent(composite, batch["image"]))
    means = {k: float(tf.reduce_mean(tf.concat(v, 0)))
             for k, v in values.items()}
    with self.writers["val"].as_default(step=step):
      for name, value in means.items():
        tf.summary.scalar(f"metrics/{name}", value)
    self.writers["val"].flush()
    self.last_validation = means
    logging.info("step %d val: PSNR %.2f dB, SSIM %.4f, L1 %.2f%%", step,
                 means["psnr"], means["ssim"], means["l1_percent"])
