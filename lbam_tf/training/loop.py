"""Trains LBAM's generator and critic with WGAN-GP from a `TrainConfig`.

`train(config)` is the whole run, callable in-process; `python -m
lbam_tf.train` is its command line. It writes only config.model_dir (resumed
from its latest checkpoint) and raises instead of exiting: ValueError
(refused, nothing written), FloatingPointError (NaN/Inf, the last good
checkpoint kept), `monitor.Terminated` (SIGTERM, saved). The model_dir
layout, the stop rules and the cluster's: BUILD_NOTES.md, "Training".

The recipe, in sections: strategy, data, model, callbacks, fit.
"""

import dataclasses
import math
import os
import shutil
import signal
import threading
import time

from absl import logging
import keras
import tensorflow as tf

from lbam_tf.data import records
from lbam_tf.model import critic
from lbam_tf.model import generator
from lbam_tf.model import initialization
from lbam_tf.model import vgg
from lbam_tf.training import distribute
from lbam_tf.training import gan
from lbam_tf.training import monitor as monitor_lib
from lbam_tf.weights import model_io


@dataclasses.dataclass(frozen=True)
class TrainResult:
  """How a run ended."""
  step: int
  weights_path: str           # generator.weights.h5 ('' on a non-chief)
  out_of_time: bool           # stopped by max_minutes
  validation: dict | None     # the last val PSNR / SSIM / L1 means


def total_steps(config):
  """config.train_steps, else config.epochs passes over the train split."""
  if config.train_steps > 0:
    return config.train_steps
  count = records.read_manifest(config.data_dir)["counts"]["images"]["train"]
  return max(1, math.ceil(config.epochs * count / config.batch_size))


def empty_splits(data_dir, splits):
  """Which of the (kind, split) pairs hold no records, as "kind/split"."""
  readers = {"images": records.read_images, "masks": records.read_masks}
  return [f"{kind}/{split}" for kind, split in splits
          if not any(True for _ in readers[kind](data_dir, split).take(1))]


def check_train_split(data_dir):
  """Stops before anything is written when there is nothing to train on."""
  try:
    empty = empty_splits(data_dir, [("images", "train"), ("masks", "train")])
  except FileNotFoundError as error:
    raise ValueError(str(error)) from None
  if empty:
    raise ValueError(
        f"{' and '.join(empty)} in --data_dir {data_dir} holds no examples: "
        "nothing to train on. Rerun python -m pipeline.preprocess with more "
        "images (its rejected.jsonl says why any were rejected), a smaller "
        "--val_fraction / --test_fraction, or more --num_masks")


def validation_data(config):
  """The val split's first val_steps batches, or None without a val split."""
  if config.val_steps <= 0:
    return None
  try:
    empty = empty_splits(config.data_dir,
                         [("images", "val"), ("masks", "test")])
    dataset = records.make_dataset(config.data_dir, "val",
                                   batch_size=config.batch_size,
                                   crop_size=config.crop_size, training=False)
  except FileNotFoundError as error:
    logging.warning("no validation: %s", error)
    return None
  if empty:
    # A few images can all hash to train; training needs no validation.
    logging.warning(
        "no validation: %s in %s holds no examples; training goes on. For "
        "validation, rerun pipeline.preprocess with more images or a larger "
        "--val_fraction", " and ".join(empty), config.data_dir)
    return None
  return dataset.take(config.val_steps).cache()


def _build(config, strategy, model_dir):
  """The LbamGan, compiled with both optimizers built, and its checkpoints,
  restored from config.model_dir's latest (every worker resumes from the
  chief's)."""
  try:
    feature_extractor = vgg.build_feature_extractor(config.vgg_weights)
  except (RuntimeError, ValueError) as error:
    raise ValueError(str(error)) from None
  if config.vgg_weights == "none":
    logging.warning("--vgg_weights none: a random VGG; the perceptual and "
                    "style terms carry no ImageNet knowledge")
  with strategy.scope():
    generator_model = generator.build_generator(config.variant,
                                                config.ablation)
    initialization.apply(generator_model, config.initialization, config.seed)
    model = gan.LbamGan(
        generator_model,
        critic.build_critic(normalization=config.critic_normalization),
        feature_extractor, config.loss_weights(),
        global_batch_size=config.batch_size,
        critic_steps=config.critic_steps, seed=config.seed)
    mixed_float16 = keras.mixed_precision.global_policy().name == (
        "mixed_float16")
    model.compile(
        gan.make_optimizer(config.generator_lr, config.generator_beta1,
                           config.generator_beta2, mixed_float16,
                           name="generator_adam"),
        gan.make_optimizer(config.critic_lr, config.critic_beta1,
                           config.critic_beta2, mixed_float16,
                           name="critic_adam"),
        jit_compile=config.jit_compile)
    model.build_optimizers()
    checkpoint = tf.train.Checkpoint(
        step=model.step, generator=model.generator, critic=model.critic,
        generator_optimizer=model.generator_optimizer,
        critic_optimizer=model.critic_optimizer)
    manager = tf.train.CheckpointManager(checkpoint, directory=model_dir,
                                         max_to_keep=config.max_to_keep)
    latest = tf.train.latest_checkpoint(config.model_dir)
    if latest:
      checkpoint.restore(latest).assert_existing_objects_matched()
      # The checkpoint holds the optimizers' rates; this run's config wins.
      model.generator_optimizer.learning_rate.assign(config.generator_lr)
      model.critic_optimizer.learning_rate.assign(config.critic_lr)
  return model, manager, latest


def train(config):
  """Runs (or resumes) the training `config` describes; returns a TrainResult.

  Raises ValueError (nothing written), FloatingPointError (a NaN or Inf;
  the last good checkpoint kept) or `monitor.Terminated` (SIGTERM; saved).
  """
  config.check()
  deadline = (time.monotonic() + 60 * config.max_minutes
              if config.max_minutes else None)
  # Strategy, first: collective ops and CPU replicas are configured before
  # anything else initialises TensorFlow.
  strategy = distribute.make_strategy(config.strategy, config.cpu_replicas)
  cluster = distribute.is_cluster(strategy)
  chief = distribute.is_chief(strategy)
  check_train_split(config.data_dir)
  records.check_crop_size(config.data_dir, config.crop_size)
  if config.batch_size % strategy.num_replicas_in_sync:
    raise ValueError(
        f"--batch_size {config.batch_size} does not split over "
        f"{strategy.num_replicas_in_sync} replicas: use a multiple of it")
  scratch = distribute.worker_scratch(strategy) if cluster else None
  policy = keras.mixed_precision.global_policy()
  # From here on a SIGTERM is a request to save and stop at the next step
  # end (on a cluster, TF's preemption handler takes over once made).
  terminate = threading.Event()
  previous_handler = None
  if threading.current_thread() is threading.main_thread():
    previous_handler = signal.signal(signal.SIGTERM,
                                     lambda *_: terminate.set())
  try:
    model_dir = (config.model_dir if chief
                 else os.path.join(scratch, "model_dir"))
    tf.io.gfile.makedirs(model_dir)
    # Every field: a resumed run must keep the architecture.
    model_io.write_config(model_dir, dataclasses.asdict(config))
    steps = total_steps(config)
    if config.mixed_precision:
      on_gpu = bool(tf.config.list_logical_devices("GPU"))
      keras.mixed_precision.set_global_policy(
          "mixed_float16" if on_gpu else "mixed_bfloat16")
    keras.utils.set_random_seed(config.seed)

    # Model.
    model, manager, latest = _build(config, strategy, model_dir)
    start = int(model.step.numpy())
    logging.info("%s at step %d of %d (%d replicas, %s compute)",
                 f"resumed from {latest}" if latest else "new run", start,
                 steps, strategy.num_replicas_in_sync,
                 model.generator.compute_dtype)

    # Data. The train stream is seeded by the step it starts at, so a resumed
    # run and a new phase continue with batches not seen yet.
    def train_data(step):
      dataset = records.make_dataset(config.data_dir, "train",
                                     batch_size=config.batch_size,
                                     crop_size=config.crop_size, training=True,
                                     seed=config.seed + step)
      return distribute.shard_by_data(dataset) if cluster else dataset

    val_data = validation_data(config)

    # Callbacks.
    def save_on_preemption():
      manager.save(checkpoint_number=int(model.step.numpy()))

    def stop_on_preemption():
      raise monitor_lib.Terminated(
          f"SIGTERM on a worker: every worker saved step "
          f"{int(model.step.numpy())}, the chief to {config.model_dir}")

    monitor = monitor_lib.TrainingMonitor(
        model, manager, model_dir, val_data, chief,
        checkpoint_every=config.checkpoint_every,
        image_every=config.image_every, val_every=config.val_every,
        deadline=deadline, terminate=terminate,
        preemption=distribute.preemption_handler(
            strategy, save_on_preemption, stop_on_preemption, scratch)
        if cluster else None)

    # Fit: the warm-up, then the full loss; each phase traces its own step.
    phases = [(min(config.warmup_steps, steps), True), (steps, False)]
    for end, reconstruction_only in phases:
      step = int(model.step.numpy())
      if step >= end or monitor.out_of_time:
        continue
      logging.info("steps %d to %d: %s", step, end,
                   "warm-up, L1 terms only" if reconstruction_only
                   else "full loss")
      model.reconstruction_only = reconstruction_only
      model.make_train_function(force=True)
      monitor.stop_at = end
      try:
        if cluster:
          distribute.fit_on_cluster(model, train_data(step), strategy,
                                    monitor, config.log_every)
        else:
          model.fit(train_data(step), steps_per_epoch=config.log_every,
                    initial_epoch=step // config.log_every,
                    epochs=math.ceil(end / config.log_every),
                    callbacks=[monitor], verbose=1 if chief else 0)
      except FloatingPointError as error:
        raise FloatingPointError(
            f"{error}. Stopped without saving; the last good checkpoint is "
            f"{manager.latest_checkpoint}") from None
    step = int(model.step.numpy())
    if monitor.out_of_time:
      logging.info("--max_minutes %g reached at step %d", config.max_minutes,
                   step)
    if chief and val_data is not None and monitor.validated_step != step:
      monitor.validate(step)
    monitor.save(step)
    path = os.path.join(model_dir, model_io.FINAL_WEIGHTS_NAME)
    temporary = os.path.join(model_dir, "generator.tmp.weights.h5")
    model.generator.save_weights(temporary)
    tf.io.gfile.rename(temporary, path, overwrite=True)
    logging.info("done at step %d: %s", step, path)
    return TrainResult(step=step, weights_path=path if chief else "",
                       out_of_time=monitor.out_of_time,
                       validation=monitor.last_validation)
  finally:
    if previous_handler is not None:
      signal.signal(signal.SIGTERM, previous_handler)
    keras.mixed_precision.set_global_policy(policy)
    if scratch:
      shutil.rmtree(scratch, ignore_errors=True)
