"""Demo files for the main job: a mask per sample image, and side-by-side PNGs.

    python -m serving.demo --mode masks --image_dir examples/images \
        --mask_dir out/demo/masks
    python -m serving.demo --mode side_by_side --image_dir examples/images \
        --mask_dir out/demo/masks --output_dir out/demo/inpainted \
        --side_by_side out/demo/side_by_side.png

Masks are drawn by `lbam_tf.data.masks` at each image's own size (any size is
served), seeded by the file name, so every run draws the same holes. No
TensorFlow here: both modes take a second.
"""

import dataclasses
import os

from absl import app
import numpy as np
from PIL import Image

from lbam_tf import cli
from lbam_tf import seeding
from lbam_tf.data import masks
from lbam_tf.images import files as image_files

GAP = 8
ROW_HEIGHT = 256

MODES = ("masks", "side_by_side")


@dataclasses.dataclass
class Config:
  """One run, as plain values (the flags, or a test's choice)."""
  mode: str | None = cli.option(
      None, "masks: write one mask per image; side_by_side: write input | "
      "mask | output panels.", choices=MODES, required=True)
  image_dir: str = cli.option("examples/images", "The sample images.")
  mask_dir: str | None = cli.option(
      None, "Where masks are written (masks) or read (side_by_side): "
      "<stem>.png, white = hole.", required=True)
  output_dir: str | None = cli.option(
      None, "side_by_side: the inpainted <stem>.png files.")
  side_by_side: str | None = cli.option(
      None, "side_by_side: the PNG with one input | mask | output row per "
      "image; <stem>.png panels go beside it in a folder of the same name.")
  min_hole: float = cli.option(0.1, "masks: smallest hole ratio.")
  max_hole: float = cli.option(0.3, "masks: largest hole ratio.")
  seed: int = cli.option(0, "masks: seed, combined with the file name.")

  def check(self):
    """Raises ValueError naming the bad value and what to do instead."""
    if self.mode not in MODES:
      raise ValueError(f"--mode {self.mode!r} is not one of {MODES}")
    if not self.mask_dir:
      raise ValueError("--mask_dir is required")
    if self.mode == "side_by_side" and not (self.output_dir
                                            and self.side_by_side):
      raise ValueError("--mode side_by_side needs --output_dir and "
                       "--side_by_side")


def write_masks(image_dir, mask_dir, hole_range=(0.1, 0.3), seed=0):
  """Writes <stem>.png (255 = hole) of each image's size; returns the paths."""
  os.makedirs(mask_dir, exist_ok=True)
  written = []
  for path in image_files.list_images(image_dir):
    with Image.open(path) as image:
      width, height = image.size
    hole = masks.random_mask(seeding.seeded_rng(seed, image_files.stem(path)),
                             (height, width), hole_range=hole_range)
    written.append(os.path.join(mask_dir, image_files.stem(path) + ".png"))
    Image.fromarray(hole).save(written[-1])
  return written


def panel(image_path, mask_path, output_path):
  """input | mask | output side by side, uint8 RGB [H, 3W + 2 GAP, 3]."""
  parts = []
  for path in (image_path, mask_path, output_path):
    with Image.open(path) as picture:
      parts.append(np.asarray(picture.convert("RGB")))
  height = parts[0].shape[0]
  gap = np.full((height, GAP, 3), 255, np.uint8)
  return np.concatenate([parts[0], gap, parts[1], gap, parts[2]], axis=1)


def write_side_by_side(image_dir, mask_dir, output_dir, path):
  """Writes one panel per inpainted image and all of them stacked in `path`."""
  folder = os.path.splitext(path)[0]
  os.makedirs(folder, exist_ok=True)
  rows = []
  for image_path in image_files.list_images(image_dir):
    name = image_files.stem(image_path) + ".png"
    output_path = os.path.join(output_dir, name)
    if not os.path.exists(output_path):
      continue
    row = panel(image_path, os.path.join(mask_dir, name), output_path)
    Image.fromarray(row).save(os.path.join(folder, name))
    width = round(row.shape[1] * ROW_HEIGHT / row.shape[0])
    rows.append(np.asarray(Image.fromarray(row).resize((width, ROW_HEIGHT))))
  if not rows:
    raise ValueError(f"no inpainted images in {output_dir} match {image_dir}")
  width = max(row.shape[1] for row in rows)
  sheet = np.full((len(rows) * (ROW_HEIGHT + GAP) - GAP, width, 3), 255,
                  np.uint8)
  for index, row in enumerate(rows):
    top = index * (ROW_HEIGHT + GAP)
    sheet[top:top + ROW_HEIGHT, :row.shape[1]] = row
  Image.fromarray(sheet).save(path)
  return len(rows)


def run(config):
  """Writes what `config.mode` asks for; returns a line saying what."""
  if config.mode == "masks":
    written = write_masks(config.image_dir, config.mask_dir,
                          (config.min_hole, config.max_hole), config.seed)
    return f"{len(written)} mask(s) written to {config.mask_dir}"
  count = write_side_by_side(config.image_dir, config.mask_dir,
                             config.output_dir, config.side_by_side)
  return f"{count} input | mask | output row(s) in {config.side_by_side}"


def main(argv):
  return cli.run_flags(Config, run)


if __name__ == "__main__":
  cli.define_flags(Config)
  app.run(main)
