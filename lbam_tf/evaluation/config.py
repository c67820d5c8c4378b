"""EvalConfig: every option of the evaluation, with its default, in one place.

Exists so that the command line (`lbam_tf.evaluate`, whose flags are these
fields, with their defaults and help) and code calling `runner.run` agree,
and so that bad values are refused before images are read or models loaded.
"""

import dataclasses

from lbam_tf import cli
from lbam_tf.evaluation import baselines
from lbam_tf.evaluation import metrics
from lbam_tf.images import polarity as polarity_rule
from lbam_tf.inference import hd

#: Image splits of a preprocessing output folder that can be evaluated.
SPLITS = ("test", "val")


@dataclasses.dataclass(frozen=True)
class EvalConfig:
  """The evaluation's options; field names are the flag names, and each
  field's help is its flag's."""
  model: str | None = cli.option(
      None, "What to evaluate: a SavedModel directory with an "
      "`inpaint_tensor` signature (serving.export), a training model_dir, or "
      "a .weights.h5 / .keras / .pth / .npz file. Give this or --ablation.")
  ablation: tuple | list | None = cli.option(
      None, "Comma-separated model directories (or any --model kinds) "
      "evaluated side by side on the same pairs, one column each: the "
      "paper's Table 2. Replaces --model.")
  data_dir: str | None = cli.option(
      None, "Output folder of `python -m pipeline.preprocess`: its test "
      "images and test masks are read. Give this or --image_dir with "
      "--mask_dir.")
  split: str = cli.option(
      "test", "With --data_dir: the image split. Masks always come from the "
      "test masks.", choices=SPLITS)
  image_dir: str | None = cli.option(
      None, "A folder of ground-truth images (png, jpg, ...) instead of "
      "--data_dir.")
  mask_dir: str | None = cli.option(
      None, "A folder of mask images, paired with --image_dir images by the "
      "seed (not by name); masks outside the bins (0.01, 0.6] are dropped. "
      "With --eval_size it may be left out: a mask is then drawn for each "
      "photo at its size, the bins taking turns.")
  mask_polarity: str = cli.option(
      "white", "Which colour marks holes in --mask_dir files: white (the "
      "reference code's and the pipeline's masks) or black (NVIDIA's "
      "irregular mask zip).", choices=polarity_rule.POLARITIES)
  output_dir: str = cli.option(
      "eval", "Folder (created) for results.md/.json/.csv and the PNGs.")
  num_images: int = cli.option(
      120, "How many images to evaluate (0 = all). On 2 CPU cores the "
      "generator takes about 0.5 s per 256x256 image.")
  seed: int = cli.option(
      0, "Seed of the image-mask pairing: the same seed gives the same "
      "table.")
  crop_size: int = cli.option(
      256, "Images are resized (shorter side) and centre-cropped to this "
      "square size, masks resized to it (nearest); metrics are computed at "
      "this size. The paper uses 256.")
  eval_size: int = cli.option(
      0, "0: centre crops of --crop_size. N > 0: whole --image_dir photos, "
      "aspect ratio kept, resized (area) to a long side of N (never "
      "enlarged); masks are drawn or stretched to each photo's size, and "
      "metrics are computed at that size, one photo at a time. Not with "
      "--data_dir (its records hold crops only).")
  hd_strategy: str = cli.option(
      hd.DEFAULT_STRATEGY, "How the model fills a photo larger than its "
      "crop_trigger: original (the whole frame at once), resize (the photo "
      "scaled to --resize_limit, only holes written back) or crop (each "
      "group of holes with --crop_margin around it). Known pixels are "
      "always exact.",
      choices=hd.STRATEGIES)
  crop_margin: int = cli.option(
      hd.DEFAULT_CROP_MARGIN, "--hd_strategy crop: pixels of context kept "
      "around each box of holes.")
  resize_limit: int = cli.option(
      hd.DEFAULT_RESIZE_LIMIT, "--hd_strategy resize and crop: the longest "
      "side (pixels) the generator is run at.")
  crop_trigger: int = cli.option(
      hd.DEFAULT_CROP_TRIGGER, "--hd_strategy crop: photos whose long side "
      "is at most this are filled whole, as original.")
  batch_size: int = cli.option(
      8, "Pairs per generator call; lower it if memory runs out. With "
      "--eval_size photos differ in size and go one at a time.")
  num_examples: int = cli.option(4, "Rows per bin in the grid PNGs.")
  baselines: tuple | list = cli.option(
      baselines.METHODS, "Classical methods scored beside the model(s), "
      f"from {list(baselines.METHODS)}. PatchMatch takes seconds per "
      "256x256 image on a CPU; leave it out for quick runs.")
  patchmatch_max_side: int = cli.option(
      1024, "PatchMatch is left out of a run (with a note in results.md) "
      "when a scored photo's long side exceeds this many pixels: on 2 CPU "
      "cores it takes about 5 s at 640 px and 30 s at 1280 px per photo, "
      "minutes at 2000. 0 = no limit.")
  baseline_radius: int = cli.option(
      5, "Neighbourhood radius in pixels for Telea and Navier-Stokes.")
  inception_weights: str | None = cli.option(
      None, "A Keras InceptionV3 weights file without the top (e.g. "
      "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5) to also "
      "report FID over all pairs. Without it FID is skipped (it cannot be "
      "downloaded here).")

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
    if self.eval_size < 0:
      raise ValueError(
          f"--eval_size {self.eval_size} must be 0 (centre crops of "
          "--crop_size) or a long side in pixels, e.g. 1024")
    if 0 < self.eval_size < metrics.SSIM_FILTER_SIZE:
      raise ValueError(
          f"--eval_size {self.eval_size} is smaller than the SSIM window "
          f"{metrics.SSIM_FILTER_SIZE}: use 128 or more (or 0)")
    if self.eval_size and self.data_dir is not None:
      raise ValueError(
          f"--eval_size {self.eval_size} scores whole photos, and --data_dir "
          "records hold only crops: give the photos with --image_dir (masks "
          "are then drawn at each photo's size, or read from --mask_dir)")
    if (self.image_dir is not None and self.mask_dir is None
        and not self.eval_size):
      raise ValueError("--image_dir needs --mask_dir: a folder of masks to "
                       "pair the images with (or --eval_size N, which draws "
                       "a mask at each photo's size)")
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
    hd.check_flags(**self.hd_options())
    if self.patchmatch_max_side < 0:
      raise ValueError(
          f"--patchmatch_max_side {self.patchmatch_max_side} must be >= 0 "
          "pixels (0 = no limit)")
    if self.baseline_radius < 0:
      raise ValueError(
          f"--baseline_radius {self.baseline_radius} must be >= 0 pixels")
    for method in self.baselines:
      baselines.check_method(method)
    return self

  def hd_options(self):
    """{hd_strategy, crop_margin, resize_limit, crop_trigger}: what a model
    gets besides the image and the mask (InpaintModule's optional inputs)."""
    return {"hd_strategy": self.hd_strategy, "crop_margin": self.crop_margin,
            "resize_limit": self.resize_limit,
            "crop_trigger": self.crop_trigger}

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
                  eval_size=self.eval_size,
                  **self.hd_options(),
                  batch_size=self.batch_size,
                  num_examples=self.num_examples,
                  baseline_radius=self.baseline_radius,
                  baselines=list(self.baselines),
                  patchmatch_max_side=self.patchmatch_max_side,
                  inception_weights=self.inception_weights)
    return {name: value for name, value in values.items() if value is not None}
