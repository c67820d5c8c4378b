"""EvalConfig: every option of the evaluation, with its default, in one place.

Exists so that the command line (`lbam_tf.evaluate`, whose flag defaults are
read from these fields) and code calling `runner.run` agree, and so that bad
values are refused before images are read or models loaded.
"""

import dataclasses

from lbam_tf.evaluation import baselines
from lbam_tf.evaluation import metrics
from lbam_tf.images import polarity as polarity_rule

#: Image splits of a preprocessing output folder that can be evaluated.
SPLITS = ("test", "val")


@dataclasses.dataclass(frozen=True)
class EvalConfig:
  """The evaluation's options; field names are the flag names."""
  model: str | None = None
  ablation: tuple | list | None = None
  data_dir: str | None = None
  split: str = "test"
  image_dir: str | None = None
  mask_dir: str | None = None
  mask_polarity: str = "white"
  output_dir: str = "eval"
  num_images: int = 120
  seed: int = 0
  crop_size: int = 256
  batch_size: int = 8
  num_examples: int = 4
  baselines: tuple | list = baselines.METHODS
  baseline_radius: int = 5
  inception_weights: str | None = None

  @property
  def model_paths(self):
    """The models to evaluate, in column order: [--model] or --ablation."""
    return [self.model] if self.model else list(self.ablation or ())

  def check(self):
    """Raises ValueError naming the bad value and what to do instead."""
    if (self.model is None) == (self.ablation is None):
      raise ValueError(
          "give --model (one model) or --ablation (several), exactly one of "
          "them")
    if not self.model_paths:
      raise ValueError("nothing to evaluate: give --model or --ablation")
    if (self.data_dir is None) == (self.image_dir is None):
      raise ValueError("give either --data_dir or --image_dir (with "
                       "--mask_dir), not both or neither")
    if self.image_dir is not None and self.mask_dir is None:
      raise ValueError("--image_dir needs --mask_dir: a folder of masks to "
                       "pair the images with")
    if self.split not in SPLITS:
      raise ValueError(f"--split {self.split!r} is not one of {SPLITS}")
    polarity_rule.check(self.mask_polarity)
    if self.crop_size < metrics.SSIM_FILTER_SIZE:
      raise ValueError(
          f"--crop_size {self.crop_size} is smaller than the SSIM window "
          f"{metrics.SSIM_FILTER_SIZE}: use 128 or more")
    if self.num_images < 0:
      raise ValueError(
          f"--num_images {self.num_images} must be >= 0 (0 = all images)")
    if self.batch_size < 1:
      raise ValueError(f"--batch_size {self.batch_size} must be >= 1")
    if self.num_examples < 0:
      raise ValueError(f"--num_examples {self.num_examples} must be >= 0")
    if self.baseline_radius < 0:
      raise ValueError(
          f"--baseline_radius {self.baseline_radius} must be >= 0 pixels")
    for method in self.baselines:
      baselines.check_method(method)
    return self

  def flag_values(self):
    """The equivalent command line as {flag: value}, unset flags left out.

    Recorded in results.md and results.json; one model is written as
    --model even when given as a one-entry --ablation.
    """
    paths = self.model_paths
    values = {"model": paths[0]} if len(paths) == 1 else {"ablation": paths}
    values.update(data_dir=self.data_dir,
                  split=self.split if self.data_dir else None,
                  image_dir=self.image_dir,
                  mask_dir=self.mask_dir,
                  mask_polarity=self.mask_polarity if self.mask_dir else None,
                  output_dir=self.output_dir,
                  num_images=self.num_images,
                  seed=self.seed,
                  crop_size=self.crop_size,
                  batch_size=self.batch_size,
                  num_examples=self.num_examples,
                  baseline_radius=self.baseline_radius,
                  baselines=list(self.baselines),
                  inception_weights=self.inception_weights)
    return {name: value for name, value in values.items() if value is not None}
