"""Inpaints image files with a trained model: python -m lbam_tf.inpaint.

    python -m lbam_tf.inpaint --model runs/paris --image photo.jpg \
        --mask hole.png --output filled.png
    python -m lbam_tf.inpaint --model runs/paris --image photos/ \
        --mask masks/ --output filled/ --batch_size 4

The rules (sizes, polarity, limits, compositing) are
`lbam_tf.inference.module`'s, the same as the exported SavedModel's.
"""

import dataclasses
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402

from lbam_tf import cli  # noqa: E402
from lbam_tf.images import files as image_files  # noqa: E402
from lbam_tf.images import polarity as polarity_rule  # noqa: E402
from lbam_tf.inference import hd  # noqa: E402
from lbam_tf.inference import module as inference  # noqa: E402


@dataclasses.dataclass
class Config(image_files.FileOptions, hd.HdOptions):
  """One run of the command line, as plain values (the flags, or a test's):
  --image, --mask, --output and these."""
  model: str | None = cli.option(
      None, "What to run: a training model_dir, a .weights.h5 / .keras / "
      ".pth / .npz file, or a SavedModel export folder "
      "(<model_base_path>/<version>).", required=True)
  mask_polarity: str = cli.option(
      "white", "Which colour marks the holes in the mask files: white (the "
      "reference code's masks) or black (NVIDIA's zip).",
      choices=polarity_rule.POLARITIES)
  batch_size: int = cli.option(
      4, "Images per generator call in folder mode; images of different "
      "sizes in one batch run one by one.")
  max_pixels: int = cli.option(
      inference.DEFAULT_MAX_PIXELS, "Largest height*width of a photo; "
      "bigger ones are reported and skipped. Not for an export, which keeps "
      "the limit it was exported with.")
  max_generator_pixels: int = cli.option(
      inference.DEFAULT_MAX_GENERATOR_PIXELS, "Most pixels one generator "
      "call runs on (what bounds memory); --hd_strategy original on a "
      "larger photo is refused. Not for an export, which keeps its own.")

  def check(self):
    """Raises ValueError naming the bad value and what to do instead."""
    for name in ("model", "image", "mask", "output"):
      if not getattr(self, name):
        raise ValueError(f"--{name} is required")
    polarity_rule.check(self.mask_polarity)
    self.check_hd()
    for name in ("batch_size", "max_pixels", "max_generator_pixels"):
      if getattr(self, name) < 1:
        raise ValueError(f"--{name} {getattr(self, name)} must be at least 1")
    image_files.plan(self.image, self.mask, self.output)


def run(config):
  """Inpaints the files `config` names; returns the exit status (1 if any
  image failed, else 0)."""
  jobs, problems = image_files.plan(config.image, config.mask, config.output)
  written, failures = inference.inpaint_files(
      inference.load(config.model, config.max_pixels,
                     config.max_generator_pixels), jobs,
      config.batch_size, config.mask_polarity,
      hd=inference.hd_inputs(**config.hd_given()))
  return image_files.report(written, problems + failures)


def main(argv):
  return cli.run_flags(Config, run)


if __name__ == "__main__":
  cli.define_flags(Config)
  app.run(main)
