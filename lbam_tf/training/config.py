"""What a training run does, as plain values: `TrainConfig` and its presets.

`lbam_tf.training.loop.train(config)` runs one; `python -m lbam_tf.train` builds
one from its flags (whose defaults are the fields' defaults below) over a
preset. A preset is a function that returns a config, so code and the command
line start from the same values:

  from lbam_tf.training import config as train_config
  from lbam_tf.training import loop
  config = train_config.cpu_fast(data_dir="out/data", model_dir="runs/fast",
                                 train_steps=300, vgg_weights="none")
  result = loop.train(config)
"""

import dataclasses

from lbam_tf.images import ops as image_ops
from lbam_tf.model import critic
from lbam_tf.model import generator
from lbam_tf.model import initialization
from lbam_tf.training import losses

STRATEGIES = ("mirrored", "multi_worker", "one_device")
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

  The flags of `python -m lbam_tf.train` carry the meaning of each field in
  their help texts; config.json in the model_dir records all of them.
  """
  data_dir: str | None = None
  model_dir: str | None = None
  preset: str = "paper"
  crop_size: int = 256
  batch_size: int = 48
  train_steps: int = 0
  epochs: float = 0.0
  max_minutes: float = 0.0
  warmup_steps: int = 0
  initialization: str = "reference"
  generator_lr: float = 1e-4
  generator_beta1: float = 0.5
  generator_beta2: float = 0.9
  critic_lr: float = 1e-5
  critic_beta1: float = 0.0
  critic_beta2: float = 0.9
  critic_steps: int = 1
  loss_preset: str = "reference"
  hole_weight: float | None = None
  valid_weight: float | None = None
  perceptual_weight: float | None = None
  style_weight: float | None = None
  adversarial_weight: float | None = None
  gradient_penalty_weight: float | None = None
  perceptual_norm: str | None = None
  variant: str = "head"
  ablation: str = "none"
  critic_normalization: str = "layer"
  vgg_weights: str = "imagenet"
  seed: int = 0
  jit_compile: bool = False
  strategy: str = "mirrored"
  cpu_replicas: int = 1
  mixed_precision: bool = False
  checkpoint_every: int = 1000
  max_to_keep: int = 3
  log_every: int = 100
  image_every: int = 1000
  val_every: int = 1000
  val_steps: int = 10

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


PRESETS = {"paper": paper, "cpu_small": cpu_small, "cpu_fast": cpu_fast}
