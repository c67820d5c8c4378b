r"""Trains LBAM's generator and critic with WGAN-GP: python -m lbam_tf.train.

  python -m lbam_tf.train --data_dir out/data --model_dir runs/lbam
  python -m lbam_tf.train --preset cpu_small --data_dir out/data \
      --model_dir runs/small --train_steps 300 --vgg_weights none

Everything lives in --model_dir (a contract that lbam_tf.model_io, evaluation
and export read):

  config.json               every flag of the run (after the preset)
  checkpoint, ckpt-N.*      tf.train.CheckpointManager: step, generator,
                            critic, generator_optimizer, critic_optimizer
  generator.weights.h5      the generator at the end of the run
  train/, val/              TensorBoard logs

Rerunning with the same --model_dir resumes from its latest checkpoint.
SIGTERM saves a checkpoint before exit; SIGKILL loses at most the steps since
the last one. A NaN or Inf loss stops the run naming the step and the term,
and keeps the last good checkpoint; so does a NaN or Inf weight found before
a save. An empty train split stops the run before anything is written; an
empty val split only turns validation off. Under --strategy multi_worker only
the chief writes --model_dir (every worker reads it to resume); the others
write to temporary folders, removed at exit, and a SIGTERM to any worker makes
every worker save the same step and exit (TF's PreemptionCheckpointHandler).

The recipe, in sections: flags, presets, strategy, data, model, callbacks, fit.
"""

import atexit
import json
import math
import os
import shutil
import signal
import sys
import tempfile
import threading
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

from absl import app, flags, logging  # noqa: E402

# Flags.

PRESETS = {
    # The paper's setting (section 4): 256 crops, batch 48.
    "paper": {},
    # Practical on a 2-core CPU: 128 crops, batch 4, frequent logs and saves.
    # It leaves --vgg_weights alone: a preset must not quietly make the
    # perceptual and style terms meaningless.
    "cpu_small": {"crop_size": 128, "batch_size": 4, "log_every": 10,
                  "checkpoint_every": 50, "image_every": 50, "val_every": 50,
                  "val_steps": 4, "strategy": "one_device"},
    # Learns visibly within minutes on a 2-core CPU (BUILD_NOTES.md, "Training
    # that learns": the A/B runs behind each value). cpu_small's shape, the
    # paper's model and loss terms, with starting weights that keep the
    # attention maps alive and an L1 warm-up before the critic and VGG terms.
    "cpu_fast": {"crop_size": 128, "batch_size": 4, "log_every": 25,
                 "checkpoint_every": 250, "image_every": 250,
                 "val_every": 100, "val_steps": 4, "strategy": "one_device",
                 "initialization": "neutral_attention",
                 "warmup_steps": 5000, "generator_lr": 1e-3},
}

FLAGS = flags.FLAGS
STRATEGIES = ("mirrored", "multi_worker", "one_device")
LOSS_PRESETS = ("paper", "reference")
WEIGHT_FLAGS = {"hole": "hole_weight", "valid": "valid_weight",
                "perceptual": "perceptual_weight", "style": "style_weight",
                "adversarial": "adversarial_weight",
                "gradient_penalty": "gradient_penalty_weight",
                "perceptual_norm": "perceptual_norm"}


def define_flags():
  """Declares the flags (also used by tests that parse a command line)."""
  flags.DEFINE_string("data_dir", None,
                      "output_dir of `python -m pipeline.preprocess` "
                      "(TFRecords).")
  flags.DEFINE_string("model_dir", None,
                      "Where checkpoints, config.json, TensorBoard logs and "
                      "generator.weights.h5 go; an existing one is resumed.")
  flags.DEFINE_enum("preset", "paper", list(PRESETS),
                    "Bundle of defaults: 'paper' (256 crops, batch 48), "
                    "'cpu_small' (128 crops, batch 4, one device, frequent "
                    "logs) or 'cpu_fast' (cpu_small's shape with "
                    "neutral_attention starting weights, an L1 warm-up and "
                    "a higher generator rate: learns within minutes on a "
                    "CPU). Flags given explicitly win over the preset.")
  flags.DEFINE_integer("crop_size", 256,
                       "Training crop side, a multiple of 128, at most the "
                       "data_dir's stored crop size.")
  flags.DEFINE_integer("batch_size", 48,
                       "Global batch: split evenly over the replicas.")
  flags.DEFINE_integer("train_steps", 0,
                       "Generator updates to train in total (a resumed run "
                       "counts the restored ones). 0: use --epochs.")
  flags.DEFINE_float("epochs", 0,
                     "Passes over the train split (from manifest.json's "
                     "count), used when --train_steps is 0.")
  flags.DEFINE_float("max_minutes", 0,
                     "Wall-clock budget of the run, start-up included: at "
                     "the first step end past it, save a checkpoint and "
                     "generator.weights.h5 and stop. 0: no budget. Give a "
                     "large --train_steps to train for this long.")
  flags.DEFINE_integer("warmup_steps", 0,
                       "First steps that train the generator on the L1 hole "
                       "and valid terms alone (no critic, no VGG; Iizuka et "
                       "al. 2017), before the full loss.")
  flags.DEFINE_string("initialization", "reference",
                    "Generator starting weights: 'reference' (the authors' N(0, "
                    "0.02); the fresh generator outputs flat grey) or "
                    "'neutral_attention' (attention maps start at their "
                    "peak on known pixels, He-scaled feature filters).")
  flags.DEFINE_float("generator_lr", 1e-4, "Generator Adam learning rate.")
  flags.DEFINE_float("generator_beta1", 0.5, "Generator Adam beta_1.")
  flags.DEFINE_float("generator_beta2", 0.9, "Generator Adam beta_2.")
  flags.DEFINE_float("critic_lr", 1e-5, "Critic Adam learning rate.")
  flags.DEFINE_float("critic_beta1", 0.0, "Critic Adam beta_1.")
  flags.DEFINE_float("critic_beta2", 0.9, "Critic Adam beta_2.")
  flags.DEFINE_integer("critic_steps", 1,
                       "Critic updates per generator update (reference: 1).")
  flags.DEFINE_enum("loss_preset", "reference", list(LOSS_PRESETS),
                    "Loss weights: 'reference' (authors' code: hole 6, "
                    "valid 1, perceptual 0.01 L1, style 120, adversarial "
                    "0.1) or 'paper' (eq. 18: L1 1, perceptual 0.05 squared "
                    "L2, style 120, adversarial 0.1). The *_weight flags "
                    "override single terms.")
  flags.DEFINE_float("hole_weight", None, "L1 weight on hole pixels.")
  flags.DEFINE_float("valid_weight", None, "L1 weight on known pixels.")
  flags.DEFINE_float("perceptual_weight", None, "VGG pool1-3 feature weight.")
  flags.DEFINE_float("style_weight", None, "Gram-matrix style weight.")
  flags.DEFINE_float("adversarial_weight", None,
                     "Generator -E[D(fake)] weight.")
  flags.DEFINE_float("gradient_penalty_weight", None,
                     "WGAN-GP lambda (paper: 10).")
  flags.DEFINE_enum("perceptual_norm", None, ["l1", "l2"],
                    "Perceptual distance: l1 (reference) or l2 (eq. 15).")
  flags.DEFINE_string("variant", "head",
                      "Generator layout: head (released) or original_bn.")
  flags.DEFINE_string("ablation", "none",
                      "Paper Table 2 ablation: none, unlearned, forward_only, "
                      "sigmoid, leaky_relu, relu, mask3x3.")
  flags.DEFINE_string("critic_normalization", "layer",
                      "Critic normalisation: layer (suits the gradient "
                      "penalty) or batch (the reference's BatchNorm).")
  flags.DEFINE_string("vgg_weights", "imagenet",
                      "VGG16 for the perceptual and style losses: 'imagenet' "
                      "(Keras download), a local Keras VGG16 .h5 file, or "
                      "'none' (random VGG: smoke runs only).")
  flags.DEFINE_integer("seed", 0, "Seeds weights, data order and the GP.")
  flags.DEFINE_bool("jit_compile", False, "XLA-compile the train step.")
  flags.DEFINE_enum("strategy", "mirrored", list(STRATEGIES),
                    "mirrored: all local GPUs, else the CPU (split by "
                    "--cpu_replicas); multi_worker: the cluster in the "
                    "TF_CONFIG environment variable, each worker's GPUs (else "
                    "its CPU), --model_dir on storage every worker reads; "
                    "one_device: the first GPU, else the CPU.")
  flags.DEFINE_integer("cpu_replicas", 1,
                       "Split the CPU into this many logical devices for the "
                       "mirrored strategy (exercises it without GPUs).")
  flags.DEFINE_bool("mixed_precision", False,
                    "mixed_float16 on GPU, mixed_bfloat16 on CPU.")
  flags.DEFINE_integer("checkpoint_every", 1000, "Steps between checkpoints.")
  flags.DEFINE_integer("max_to_keep", 3, "Checkpoints kept in model_dir.")
  flags.DEFINE_integer("log_every", 100,
                       "Steps per Keras epoch: losses are averaged over it, "
                       "shown by the progress bar and written to TensorBoard.")
  flags.DEFINE_integer("image_every", 1000,
                       "Steps between TensorBoard images and attention maps.")
  flags.DEFINE_integer("val_every", 1000, "Steps between validation runs.")
  flags.DEFINE_integer("val_steps", 10,
                       "Validation batches (val split, test masks); 0: none.")


# Presets.

def apply_preset():
  """Fills flags the user did not give from --preset."""
  for name, value in PRESETS[FLAGS.preset].items():
    if not FLAGS[name].present:
      FLAGS[name].value = value


def loss_weights():
  from lbam_tf import losses
  preset = losses.PRESETS[FLAGS.loss_preset]
  overrides = {field: FLAGS[flag].value for field, flag in WEIGHT_FLAGS.items()
               if FLAGS[flag].value is not None}
  return losses.LossWeights(**{**vars(preset), **overrides})


def check_flags():
  if FLAGS.crop_size % 128:
    raise app.UsageError(f"--crop_size {FLAGS.crop_size} is not a multiple of "
                         "128: the generator has seven stride-2 stages")
  if FLAGS.train_steps <= 0 and FLAGS.epochs <= 0:
    raise app.UsageError("give --train_steps N or --epochs E")
  for name in ("checkpoint_every", "log_every", "image_every", "val_every",
               "batch_size"):
    if FLAGS[name].value < 1:
      raise app.UsageError(f"--{name} {FLAGS[name].value} must be >= 1")
  # Before config.json is written: a typo there would block the next run.
  from lbam_tf import critic, generator, initialization
  try:
    generator.check_variant(FLAGS.variant, FLAGS.ablation)
  except ValueError as e:
    raise app.UsageError(str(e)) from None
  if FLAGS.initialization not in initialization.SCHEMES:
    raise app.UsageError(
        f"--initialization {FLAGS.initialization!r} is not one of "
        f"{initialization.SCHEMES}")
  if FLAGS.max_minutes < 0 or FLAGS.warmup_steps < 0:
    raise app.UsageError("--max_minutes and --warmup_steps must be >= 0")
  if FLAGS.max_minutes and FLAGS.strategy == "multi_worker":
    raise app.UsageError(
        "--max_minutes is not supported with --strategy multi_worker: each "
        "worker's clock could stop it at a different step; give "
        "--train_steps")
  if FLAGS.critic_normalization not in critic.NORMALIZATIONS:
    raise app.UsageError(
        f"--critic_normalization {FLAGS.critic_normalization!r} is not one of "
        f"{critic.NORMALIZATIONS}")


def write_config(model_dir):
  """config.json with every flag; a resumed run must keep the architecture."""
  import tensorflow as tf
  from lbam_tf import model_io
  path = os.path.join(model_dir, model_io.CONFIG_NAME)
  config = {f.name: f.value
            for f in FLAGS.get_flags_for_module(sys.modules[__name__])}
  if tf.io.gfile.exists(path):
    with tf.io.gfile.GFile(path) as f:
      previous = json.load(f)
    for key in ("variant", "ablation", "critic_normalization"):
      if previous.get(key) != config[key]:
        raise app.UsageError(
            f"--{key} {config[key]!r} differs from {previous.get(key)!r} in "
            f"{path}: resume with the same architecture or use a new "
            "--model_dir")
  temporary = path + ".tmp"
  with tf.io.gfile.GFile(temporary, "w") as f:
    json.dump(config, f, indent=2, sort_keys=True)
  tf.io.gfile.rename(temporary, path, overwrite=True)


# Strategy.

def make_strategy():
  import tensorflow as tf
  if FLAGS.strategy == "multi_worker":
    # Before anything initialises TF's context (listing logical devices does):
    # collective ops can only be configured at program startup.
    if not os.environ.get("TF_CONFIG"):
      raise app.UsageError(
          "--strategy multi_worker needs TF_CONFIG, e.g. '{\"cluster\": "
          "{\"worker\": [\"host1:port\", \"host2:port\"]}, \"task\": "
          "{\"type\": \"worker\", \"index\": 0}}' on the first worker "
          "(see the README)")
    return tf.distribute.MultiWorkerMirroredStrategy()
  if FLAGS.cpu_replicas > 1:
    # Must happen before TF initialises its devices.
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * FLAGS.cpu_replicas)
  gpus = tf.config.list_logical_devices("GPU")
  if FLAGS.strategy == "one_device":
    return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
  if gpus:
    return tf.distribute.MirroredStrategy()
  cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
  return tf.distribute.MirroredStrategy(cpus)


def is_chief(strategy):
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None or not resolver.task_type:
    return True
  return (resolver.task_type == "chief"
          or (resolver.task_type == "worker" and resolver.task_id == 0
              and "chief" not in resolver.cluster_spec().as_dict()))


def worker_scratch(strategy):
  """A temporary folder of this multi-worker task, removed at exit; None
  without a cluster. Non-chief workers write their checkpoints there: every
  worker must save (saving runs collectives), only the chief's count."""
  if FLAGS.strategy != "multi_worker":
    return None
  resolver = strategy.cluster_resolver
  scratch = tempfile.mkdtemp(
      prefix=f"lbam_{resolver.task_type}{resolver.task_id}_")
  atexit.register(shutil.rmtree, scratch, ignore_errors=True)
  return scratch


def preemption_handler(strategy, manager, step, scratch):
  """TF's PreemptionCheckpointHandler: after a SIGTERM to any worker, every
  worker saves the same step through `manager`, then raises `Terminated`.

  Main restores from --model_dir on every worker, so the handler gets an empty
  Checkpoint in `scratch`: its run counter then starts at 0 on every worker
  (restored from model_dir on the chief only, it would make the workers pick
  different steps to save at)."""
  import tensorflow as tf

  def save():
    manager.save(checkpoint_number=int(step.numpy()))

  def stop():
    raise Terminated(f"SIGTERM on a worker: every worker saved step "
                     f"{int(step.numpy())}, the chief to {FLAGS.model_dir}")

  return tf.distribute.experimental.PreemptionCheckpointHandler(
      strategy.cluster_resolver, tf.train.Checkpoint(),
      checkpoint_dir=os.path.join(scratch, "preemption"),
      termination_config=tf.distribute.experimental.TerminationConfig(
          exit_fn=stop, save_fn=save))


# Data.

def train_steps_total(data_dir):
  if FLAGS.train_steps > 0:
    return FLAGS.train_steps
  import tensorflow as tf
  with tf.io.gfile.GFile(os.path.join(data_dir, "manifest.json")) as f:
    count = json.load(f)["counts"]["images"]["train"]
  return max(1, math.ceil(FLAGS.epochs * count / FLAGS.batch_size))


def empty_splits(data_dir, splits):
  """Which of the (kind, split) pairs hold no records, as "kind/split"."""
  from lbam_tf import data
  readers = {"images": data.read_images, "masks": data.read_masks}
  return [f"{kind}/{split}" for kind, split in splits
          if not any(True for _ in readers[kind](data_dir, split).take(1))]


def check_train_split(data_dir):
  """Stops before anything is written when there is nothing to train on."""
  try:
    empty = empty_splits(data_dir, [("images", "train"), ("masks", "train")])
  except FileNotFoundError as error:
    raise app.UsageError(str(error)) from None
  if empty:
    raise app.UsageError(
        f"{' and '.join(empty)} in --data_dir {data_dir} holds no examples: "
        "nothing to train on. Rerun python -m pipeline.preprocess with more "
        "images (its rejected.jsonl says why any were rejected), a smaller "
        "--val_fraction / --test_fraction, or more --num_masks")


def validation_data(data_dir):
  """The val split's first --val_steps batches, or None without a val split."""
  from lbam_tf import data
  if FLAGS.val_steps <= 0:
    return None
  try:
    empty = empty_splits(data_dir, [("images", "val"), ("masks", "test")])
    dataset = data.make_dataset(data_dir, "val", batch_size=FLAGS.batch_size,
                                crop_size=FLAGS.crop_size, training=False)
  except FileNotFoundError as error:
    logging.warning("no validation: %s", error)
    return None
  if empty:
    # A few images can all hash to train; training needs no validation.
    logging.warning(
        "no validation: %s in %s holds no examples; training goes on. For "
        "validation, rerun pipeline.preprocess with more images or a larger "
        "--val_fraction", " and ".join(empty), data_dir)
    return None
  return dataset.take(FLAGS.val_steps).cache()


# Callbacks.

#: Set by the SIGTERM handler (installed first thing in main); the training
#: callback saves and stops at the next step end.
TERMINATE = threading.Event()


class Terminated(Exception):
  """SIGTERM arrived; a checkpoint was saved."""


def make_monitor(gan, manager, model_dir, val_data, chief, deadline,
                 preemption=None):
  """The run's `keras.callbacks.Callback`: checkpoints, TensorBoard, validation,
  SIGTERM (save, then raise `Terminated`; through `preemption`, a
  PreemptionCheckpointHandler, on a cluster), NaN/Inf (raise, keep the last
  good checkpoint), and the end of a phase (`stop_at`) or of the time budget
  (`deadline`, a `time.monotonic()` value or None)."""
  import keras
  import tensorflow as tf
  from lbam_tf import gan as gan_lib
  from lbam_tf import generator as generator_lib
  from lbam_tf import image_ops, metrics

  writers = {name: tf.summary.create_file_writer(os.path.join(model_dir, name))
             for name in ("train", "val")} if chief else {}
  maps_model = generator_lib.attention_maps_model(gan.generator)
  # A fixed batch of up to 4 val examples for the image summaries.
  preview = (next(iter(val_data.unbatch().batch(4)))
             if val_data is not None else None)

  @tf.function
  def infer(batch):
    output = gan.generator(batch, training=False)
    return output, image_ops.composite(output, batch["image"], batch["mask"])

  class Monitor(keras.callbacks.Callback):
    def __init__(self):
      super().__init__()
      self.saved_step = None
      self.validated_step = None
      self.stop_at = None
      self.out_of_time = False
      self.chief = chief

    def step(self):
      return int(gan.step.numpy())

    def save(self, step):
      if self.saved_step != step:
        # Finite losses do not make finite weights: the update after them
        # can overflow. A checkpoint must never hold NaN or Inf.
        gan.check_finite_weights(step)
        manager.save(checkpoint_number=step)
        self.saved_step = step

    def on_train_begin(self, logs=None):
      # A fresh run's baseline, so the first validation figure is the
      # untrained generator's.
      if chief and val_data is not None and self.step() == 0:
        self.validate(0)

    def on_train_batch_end(self, batch, logs=None):
      step = self.step()
      gan_lib.check_finite(logs or {}, step)
      if step % FLAGS.checkpoint_every == 0:
        self.save(step)
      if chief and step % FLAGS.image_every == 0 and preview is not None:
        self.write_images(step)
      if chief and step % FLAGS.val_every == 0 and val_data is not None:
        self.validate(step)
      if preemption is not None:
        # On every worker after every step, as the handler requires.
        preemption.save_checkpoint_if_preempted()
      if TERMINATE.is_set():
        self.save(step)
        raise Terminated(f"SIGTERM: saved step {step} to {model_dir}")
      if deadline is not None and time.monotonic() >= deadline:
        self.out_of_time = True
      if step >= self.stop_at or self.out_of_time:
        self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
      if not chief:
        return
      step = self.step()
      with writers["train"].as_default(step=step):
        for name, value in (logs or {}).items():
          tf.summary.scalar(f"loss/{name}", float(value))
        # Under a strategy the rates are distributed variables: read a tensor.
        tf.summary.scalar("learning_rate/generator", tf.convert_to_tensor(
            gan.generator_optimizer.learning_rate))
        tf.summary.scalar("learning_rate/critic", tf.convert_to_tensor(
            gan.critic_optimizer.learning_rate))
      writers["train"].flush()

    def write_images(self, step):
      output, composite = infer(preview)
      maps = maps_model(preview, training=False)
      with writers["train"].as_default(step=step):
        image, mask = preview["image"], preview["mask"]
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
      writers["train"].flush()

    def validate(self, step):
      self.validated_step = step
      values = {"psnr": [], "ssim": [], "l1_percent": []}
      for batch in val_data:
        _, composite = infer(batch)
        values["psnr"].append(metrics.psnr(composite, batch["image"]))
        values["ssim"].append(metrics.ssim(composite, batch["image"]))
        values["l1_percent"].append(
            metrics.l1_percent(composite, batch["image"]))
      means = {k: float(tf.reduce_mean(tf.concat(v, 0)))
               for k, v in values.items()}
      with writers["val"].as_default(step=step):
        for name, value in means.items():
          tf.summary.scalar(f"metrics/{name}", value)
      writers["val"].flush()
      logging.info("step %d val: PSNR %.2f dB, SSIM %.4f, L1 %.2f%%", step,
                   means["psnr"], means["ssim"], means["l1_percent"])

  return Monitor()


# Model, fit.

def fit_on_cluster(model, dataset, strategy, monitor):
  """`model.fit`'s loop for MultiWorkerMirroredStrategy, whose logs Keras 3's
  fit cannot reduce (keras-team/keras#20585): the same train_step, the same
  callback, an "epoch" of --log_every steps, the same batches.

  Under a strategy, each `fit` call takes its iterator's first batch to build
  the model symbolically and never trains on it (Keras 3.15,
  `TensorFlowTrainer._maybe_symbolic_build`); this loop drops it too, so a
  step on N workers sees the batch the same step sees on one device."""
  import tensorflow as tf

  @tf.function(jit_compile=model.jit_compile)
  def train_step(batch):
    return strategy.run(model.train_step, args=(batch,))

  batches = iter(strategy.experimental_distribute_dataset(dataset))
  next(batches)
  model.stop_training = False
  monitor.set_model(model)
  monitor.on_train_begin()
  while not model.stop_training:
    for tracker in model.metrics:
      tracker.reset_state()
    for _ in range(FLAGS.log_every):
      # train_step all-reduces what it logs: every replica holds the same.
      logs = {name: float(strategy.experimental_local_results(value)[0])
              for name, value in train_step(next(batches)).items()}
      monitor.on_train_batch_end(None, logs)
      if model.stop_training:
        break
    monitor.on_epoch_end(None, logs)
    if monitor.chief:
      logging.info("step %d: %s", int(model.step.numpy()), " ".join(
          f"{name} {value:.4g}" for name, value in logs.items()))


def main(argv):
  del argv
  deadline = (time.monotonic() + 60 * FLAGS.max_minutes
              if FLAGS.max_minutes else None)
  signal.signal(signal.SIGTERM, lambda *_: TERMINATE.set())
  apply_preset()
  check_flags()
  if not FLAGS.data_dir or not FLAGS.model_dir:
    raise app.UsageError("--data_dir and --model_dir are required")

  import tensorflow as tf
  strategy = make_strategy()
  import keras
  from lbam_tf import critic, data, gan, generator, initialization, model_io
  from lbam_tf import vgg

  chief = is_chief(strategy)
  check_train_split(FLAGS.data_dir)
  scratch = worker_scratch(strategy)
  model_dir = FLAGS.model_dir if chief else os.path.join(scratch, "model_dir")
  tf.io.gfile.makedirs(model_dir)
  if FLAGS.batch_size % strategy.num_replicas_in_sync:
    raise app.UsageError(
        f"--batch_size {FLAGS.batch_size} does not split over "
        f"{strategy.num_replicas_in_sync} replicas: use a multiple of it")
  write_config(model_dir)
  weights = loss_weights()
  total_steps = train_steps_total(FLAGS.data_dir)

  if FLAGS.mixed_precision:
    on_gpu = bool(tf.config.list_logical_devices("GPU"))
    keras.mixed_precision.set_global_policy(
        "mixed_float16" if on_gpu else "mixed_bfloat16")
  keras.utils.set_random_seed(FLAGS.seed)

  try:
    feature_extractor = vgg.build_feature_extractor(FLAGS.vgg_weights)
  except (RuntimeError, ValueError) as error:
    logging.error("%s", error)
    sys.exit(2)
  if FLAGS.vgg_weights == "none":
    logging.warning("--vgg_weights none: a random VGG; the perceptual and "
                    "style terms carry no ImageNet knowledge")

  with strategy.scope():
    generator_model = generator.build_generator(FLAGS.variant, FLAGS.ablation)
    initialization.apply(generator_model, FLAGS.initialization, FLAGS.seed)
    model = gan.LbamGan(
        generator_model,
        critic.build_critic(normalization=FLAGS.critic_normalization),
        feature_extractor, weights, global_batch_size=FLAGS.batch_size,
        critic_steps=FLAGS.critic_steps, seed=FLAGS.seed)
    policy = keras.mixed_precision.global_policy().name
    mixed_float16 = policy == "mixed_float16"
    model.compile(
        gan.make_optimizer(FLAGS.generator_lr, FLAGS.generator_beta1,
                           FLAGS.generator_beta2, mixed_float16,
                           name="generator_adam"),
        gan.make_optimizer(FLAGS.critic_lr, FLAGS.critic_beta1,
                           FLAGS.critic_beta2, mixed_float16,
                           name="critic_adam"),
        jit_compile=FLAGS.jit_compile)
    model.build_optimizers()
    checkpoint = tf.train.Checkpoint(
        step=model.step, generator=model.generator, critic=model.critic,
        generator_optimizer=model.generator_optimizer,
        critic_optimizer=model.critic_optimizer)
    manager = tf.train.CheckpointManager(checkpoint, directory=model_dir,
                                         max_to_keep=FLAGS.max_to_keep)
    # Every worker resumes from the chief's checkpoints.
    latest = tf.train.latest_checkpoint(FLAGS.model_dir)
    if latest:
      checkpoint.restore(latest).assert_existing_objects_matched()
      # The checkpoint holds the optimizers' rates; the flags of this run win.
      model.generator_optimizer.learning_rate.assign(FLAGS.generator_lr)
      model.critic_optimizer.learning_rate.assign(FLAGS.critic_lr)
  start = int(model.step.numpy())
  logging.info("%s at step %d of %d (%d replicas, %s compute)",
               f"resumed from {latest}" if latest else "new run", start,
               total_steps, strategy.num_replicas_in_sync,
               model.generator.compute_dtype)
  preemption = (preemption_handler(strategy, manager, model.step, scratch)
                if scratch else None)

  train_data = data.make_dataset(FLAGS.data_dir, "train",
                                 batch_size=FLAGS.batch_size,
                                 crop_size=FLAGS.crop_size, training=True,
                                 seed=FLAGS.seed + start)
  if FLAGS.strategy == "multi_worker":
    # Every worker reads all files and keeps its replicas' slices of each
    # global batch: the same batches as on one device (BUILD_NOTES.md).
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.DATA)
    train_data = train_data.with_options(options)
  val_data = validation_data(FLAGS.data_dir)
  monitor = make_monitor(model, manager, model_dir, val_data, chief, deadline,
                         preemption)

  # The warm-up, then the full loss; each phase traces its own train step.
  phases = [(min(FLAGS.warmup_steps, total_steps), True), (total_steps, False)]
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
      if FLAGS.strategy == "multi_worker":
        fit_on_cluster(model, train_data, strategy, monitor)
      else:
        model.fit(train_data, steps_per_epoch=FLAGS.log_every,
                  initial_epoch=step // FLAGS.log_every,
                  epochs=math.ceil(end / FLAGS.log_every),
                  callbacks=[monitor], verbose=1 if chief else 0)
    except Terminated as stop:
      logging.warning("%s; rerun the same command to resume", stop)
      sys.exit(128 + signal.SIGTERM)
    except FloatingPointError as error:
      logging.error("%s. Stopped without saving; the last good checkpoint is "
                    "%s", error, manager.latest_checkpoint)
      sys.exit(1)
  step = int(model.step.numpy())
  if monitor.out_of_time:
    logging.info("--max_minutes %g reached at step %d", FLAGS.max_minutes,
                 step)
  if chief and val_data is not None and monitor.validated_step != step:
    monitor.validate(step)
  monitor.save(step)
  path = os.path.join(model_dir, model_io.FINAL_WEIGHTS_NAME)
  temporary = os.path.join(model_dir, "generator.tmp.weights.h5")
  model.generator.save_weights(temporary)
  tf.io.gfile.rename(temporary, path, overwrite=True)
  logging.info("done at step %d: %s", int(model.step.numpy()), path)


if __name__ == "__main__":
  define_flags()
  app.run(main)
