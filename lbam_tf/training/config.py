"""What a training run does, as plain values: `TrainConfig` and its presets.

`lbam_tf.training.loop.train(config)` runs one; `python -m lbam_tf.train` builds
one from its flags (one per field below, with its default and help) over a
preset. A preset is a function that returns a config, so code and the command
line start from the same values:

  from lbam_tf.training import config as train_config
  from lbam_tf.training import loop
  config = train_config.cpu_fast(data_dir="out/data", model_dir="runs/fast",
                                 train_steps=300, vgg_weights="none")
  result = loop.train(config)
"""

import dataclasses

from lbam_tf import cli
from lbam_tf.images import ops as image_ops
from lbam_tf.model import critic
from lbam_tf.model import generator
from lbam_tf.model import initialization
from lbam_tf.training import losses

STRATEGIES = ("mirrored", "multi_worker", "one_device")
#: The keys of PRESETS (defined below, after the config they return).
PRESET_NAMES = ("paper", "cpu_small", "cpu_fast")
LOSS_PRESETS = tuple(losses.PRESETS)
#: LossWeights field -> the TrainConfig field that overrides it (None: keep
#: the loss preset's value).
WEIGHT_FIELDS = {"hole": "hole_weight", "valid": "valid_weight",
                 "perceptual": "perceptual_weight", "style": "style_weight",
                 "adversarial": "adversarial_weight",
                 "gradient_penalty": "gradient_penalty_weight",
                 "perceptual_norm": "perceptual_norm"}
#: Fields that count steps and must be at least 1.
_POSITIVE = ("checkpoint_every", "log_every", "image_every", "val_every",
             "batch_size")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """Every choice of a run; the defaults are the paper's setting (section 4).

  Each field's help is the meaning of its `python -m lbam_tf.train` flag;
  config.json in the model_dir records all of them.
  """
  data_dir: str | None = cli.option(
      None, "output_dir of `python -m pipeline.preprocess` (TFRecords).")
  model_dir: str | None = cli.option(
      None, "Where checkpoints, config.json, TensorBoard logs and "
      "generator.weights.h5 go; an existing one is resumed.")
  preset: str = cli.option(
      "paper", "Bundle of defaults: 'paper' (256 crops, batch 48), "
      "'cpu_small' (128 crops, batch 4, one device, frequent logs) or "
      "'cpu_fast' (cpu_small's shape with neutral_attention starting "
      "weights, an L1 warm-up and a higher generator rate: learns within "
      "minutes on a CPU). Flags given explicitly win over the preset.",
      choices=PRESET_NAMES)
  crop_size: int = cli.option(
      256, "Training crop side, a multiple of 128, at most the data_dir's "
      "stored crop size.")
  batch_size: int = cli.option(
      48, "Global batch: split evenly over the replicas.")
  train_steps: int = cli.option(
      0, "Generator updates to train in total (a resumed run counts the "
      "restored ones). 0: use --epochs.")
  epochs: float = cli.option(
      0.0, "Passes over the train split (from manifest.json's count), used "
      "when --train_steps is 0.")
  max_minutes: float = cli.option(
      0.0, "Wall-clock budget of the run, start-up included: at the first "
      "step end past it, save a checkpoint and generator.weights.h5 and "
      "stop. 0: no budget. Give a large --train_steps to train for this "
      "long.")
  warmup_steps: int = cli.option(
      0, "First steps that train the generator on the L1 hole and valid "
      "terms alone (no critic, no VGG; Iizuka et al. 2017), before the full "
      "loss.")
  initialization: str = cli.option(
      "reference", "Generator starting weights: 'reference' (the authors' "
      "N(0, 0.02); the fresh generator outputs flat grey) or "
      "'neutral_attention' (attention maps start at their peak on known "
      "pixels, He-scaled feature filters).")
  generator_lr: float = cli.option(1e-4, "Generator Adam learning rate.")
  generator_beta1: float = cli.option(0.5, "Generator Adam beta_1.")
  generator_beta2: float = cli.option(0.9, "Generator Adam beta_2.")
  critic_lr: float = cli.option(1e-5, "Critic Adam learning rate.")
  critic_beta1: float = cli.option(0.0, "Critic Adam beta_1.")
  critic_beta2: float = cli.option(0.9, "Critic Adam beta_2.")
  critic_steps: int = cli.option(
      1, "Critic updates per generator update (reference: 1).")
  loss_preset: str = cli.option(
      "reference", "Loss weights: 'reference' (authors' code: hole 6, "
      "valid 1, perceptual 0.01 L1, style 120, adversarial 0.1) or 'paper' "
      "(eq. 18: L1 1, perceptual 0.05 squared L2, style 120, adversarial "
      "0.1). The *_weight flags override single terms.",
      choices=LOSS_PRESETS)
  hole_weight: float | None = cli.option(None, "L1 weight on hole pixels.")
  valid_weight: float | None = cli.option(None, "L1 weight on known pixels.")
  perceptual_weight: float | None = cli.option(
      None, "VGG pool1-3 feature weight.")
  style_weight: float | None = cli.option(None, "Gram-matrix style weight.")
  adversarial_weight: float | None = cli.option(
      None, "Generator -E[D(fake)] weight.")
  gradient_penalty_weight: float | None = cli.option(
      None, "WGAN-GP lambda (paper: 10).")
  perceptual_norm: str | None = cli.option(
      None, "Perceptual distance: l1 (reference) or l2 (eq. 15).",
      choices=("l1", "l2"))
  variant: str = cli.option(
      "head", "Generator layout: head (released) or original_bn.")
  ablation: str = cli.option(
      "none", "Paper Table 2 ablation: none, unlearned, forward_only, "
      "sigmoid, leaky_relu, relu, mask3x3.")
  critic_normalization: str = cli.option(
      "layer", "Critic normalisation: layer (suits the gradient penalty) or "
      "batch (the reference's BatchNorm).")
  vgg_weights: str = cli.option(
      "imagenet", "VGG16 for the perceptual and style losses: 'imagenet' "
      "(Keras download), a local Keras VGG16 .h5 file, or 'none' (random "
      "VGG: smoke runs only).")
  seed: int = cli.option(0, "Seeds weights, data order and the GP.")
  jit_compile: bool = cli.option(False, "XLA-compile the train step.")
  strategy: str = cli.option(
      "mirrored", "mirrored: all local GPUs, else the CPU (split by "
      "--cpu_replicas); multi_worker: the cluster in the TF_CONFIG "
      "environment variable, each worker's GPUs (else its CPU), --model_dir "
      "on storage every worker reads; one_device: the first GPU, else the "
      "CPU.", choices=STRATEGIES)
  cpu_replicas: int = cli.option(
      1, "Split the CPU into this many logical devices for the mirrored "
      "strategy (exercises it without GPUs).")
  mixed_precision: bool = cli.option(
      False, "mixed_float16 on GPU, mixed_bfloat16 on CPU.")
  checkpoint_every: int = cli.option(1000, "Steps between checkpoints.")
  max_to_keep: int = cli.option(3, "Checkpoints kept in model_dir.")
  log_every: int = cli.option(
      100, "Steps per Keras epoch: losses are averaged over it, shown by "
      "the progress bar and written to TensorBoard.")
  image_every: int = cli.option(
      1000, "Steps between TensorBoard images and attention maps.")
  val_every: int = cli.option(1000, "Steps between validation runs.")
  val_steps: int = cli.option(
      10, "Validation batches (val split, test masks); 0: none.")

  def check(self):
    """Raises ValueError naming the bad value and what to give instead.

    Runs before anything is written: a typo in config.json would block the
    next run."""
    if not self.data_dir or not self.model_dir:
      raise ValueError("--data_dir and --model_dir are required")
    if self.preset not in PRESETS:
      raise ValueError(f"--preset {self.preset!r} is not one of "
                       f"{tuple(PRESETS)}")
    if self.crop_size % image_ops.SIZE_MULTIPLE:
      raise ValueError(f"--crop_size {self.crop_size} is not a multiple of "
                       f"{image_ops.SIZE_MULTIPLE}: the generator has seven "
                       "stride-2 stages")
    if self.train_steps <= 0 and self.epochs <= 0:
      raise ValueError("give --train_steps N or --epochs E")
    for name in _POSITIVE:
      if getattr(self, name) < 1:
        raise ValueError(f"--{name} {getattr(self, name)} must be >= 1")
    generator.check_variant(self.variant, self.ablation)
    for name, allowed in (("initialization", initialization.SCHEMES),
                          ("critic_normalization", critic.NORMALIZATIONS),
                          ("strategy", STRATEGIES),
                          ("loss_preset", LOSS_PRESETS)):
      if getattr(self, name) not in allowed:
        raise ValueError(f"--{name} {getattr(self, name)!r} is not one of "
                         f"{tuple(allowed)}")
    if self.perceptual_norm not in (None, "l1", "l2"):
      raise ValueError(f"--perceptual_norm {self.perceptual_norm!r} is not "
                       "one of ('l1', 'l2')")
    if self.max_minutes < 0 or self.warmup_steps < 0:
      raise ValueError("--max_minutes and --warmup_steps must be >= 0")
    if self.max_minutes and self.strategy == "multi_worker":
      raise ValueError(
          "--max_minutes is not supported with --strategy multi_worker: each "
          "worker's clock could stop it at a different step; give "
          "--train_steps")

  def loss_weights(self):
    """The loss preset's `losses.LossWeights` with this run's overrides."""
    overrides = {term: getattr(self, field)
                 for term, field in WEIGHT_FIELDS.items()
                 if getattr(self, field) is not None}
    return dataclasses.replace(losses.PRESETS[self.loss_preset], **overrides)


# Presets: named starting points; keyword arguments win over them.

def paper(**overrides):
  """The paper's setting (section 4): 256 crops, batch 48."""
  return TrainConfig(**{"preset": "paper", **overrides})


def cpu_small(**overrides):
  """Practical on a 2-core CPU: 128 crops, batch 4, frequent logs and saves.

  It leaves vgg_weights alone: a preset must not quietly make the perceptual
  and style terms meaningless."""
  return TrainConfig(**{
      "preset": "cpu_small", "crop_size": 128, "batch_size": 4,
      "log_every": 10, "checkpoint_every": 50, "image_every": 50,
      "val_every": 50, "val_steps": 4, "strategy": "one_device",
      **overrides})


def cpu_fast(**overrides):
  """Learns visibly within minutes on a 2-core CPU.

  cpu_small's shape, the paper's model and loss terms, with starting weights
  that keep the attention maps alive and an L1 warm-up before the critic and
  VGG terms (BUILD_NOTES.md, "Training that learns": the A/B runs behind each
  value)."""
  return TrainConfig(**{
      "preset": "cpu_fast", "crop_size": 128, "batch_size": 4,
      "log_every": 25, "checkpoint_every": 250, "image_every": 250,
      "val_every": 100, "val_steps": 4, "strategy": "one_device",
      "initialization": "neutral_attention", "warmup_steps": 5000,
      "generator_lr": 1e-3, **overrides})


PRESETS = dict(zip(PRESET_NAMES, (paper, cpu_small, cpu_fast)))
