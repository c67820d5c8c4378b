r"""Does training produce an inpainter? Held-out PSNR against training time.

Runs, each step through the project's own command line: the Beam job
(`pipeline.preprocess`) on --train_pattern; training from scratch
(`lbam_tf.train --preset ... --max_minutes`) in chunks ending at --minutes x
(1/8, 1/4, 1/2, 1), resuming each time; after each chunk `lbam_tf.evaluate`
on held-out crops of --eval_image_dir (same masks and pairs every time, Telea
and Navier-Stokes beside). Writes learning.md / .json / .png and the
evaluation folders to --output_dir. Minutes are the training processes'
wall clock, start-up included; evaluation is not counted. README.md
("Learning benchmark") and BUILD_NOTES.md have the results.

  bash scripts/get_training_photos.sh out/photos
  bash scripts/get_eval_photos.sh out/eval_photos
  python -m bench.learning --train_pattern 'out/photos/*.jpg' \
      --eval_image_dir out/eval_photos --minutes 60
  python -m bench.learning ... --minutes 5     # smoke run (start-up dominates)
"""

import dataclasses
import glob
import json
import os
import shutil
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app  # noqa: E402

from lbam_tf import cli  # noqa: E402
from lbam_tf.data import masks as masks_lib  # noqa: E402
from lbam_tf.data import records  # noqa: E402

#: Fractions of --minutes at which the model is evaluated.
EVAL_POINTS = (0.125, 0.25, 0.5, 1.0)
#: Shortest chunk worth a restart: start-up alone takes about a minute.
MIN_CHUNK_MINUTES = 1.5
EVAL_SIZE = 256
LOAD_SIZE = 350


@dataclasses.dataclass(frozen=True)
class Config:
  """One benchmark run; the flags of the same names."""
  train_pattern: str | None = cli.option(
      None, "Glob of training photos for the Beam job.")
  eval_image_dir: str | None = cli.option(
      None, "Folder of held-out photos, never trained on (e.g. "
      "scripts/get_eval_photos.sh).")
  eval_mask_dir: str | None = cli.option(
      None, "Folder of mask images for evaluation; default: the Beam job's "
      "test masks (equal counts per bin).")
  eval_mask_polarity: str = cli.option(
      "white", "Which colour marks holes in --eval_mask_dir files.",
      choices=("white", "black"))
  minutes: float = cli.option(60, "Training budget in wall-clock minutes.")
  output_dir: str = cli.option("out/learning", "Where everything goes.")
  preset: str = cli.option("cpu_fast", "lbam_tf.train --preset.")
  vgg_weights: str = cli.option(
      "none", "lbam_tf.train --vgg_weights: 'none' by default because the "
      "ImageNet weights cannot be downloaded here (with cpu_fast's warm-up "
      "the VGG terms are off anyway); give a local VGG16 .h5 file where you "
      "have one.")
  train_flags: tuple = cli.option(
      (), "Extra lbam_tf.train flags, comma-separated (e.g. "
      "--generator_lr=3e-4).")
  crops_per_image: int = cli.option(24, "Beam job crops per photo.")
  num_masks: int = cli.option(3000, "Beam job masks.")
  val_fraction: float = cli.option(
      0.15, "Beam job share of photos held out for validation.")
  eval_crops_per_image: int = cli.option(
      20, "256x256 crops cut from each held-out photo (resized to a short "
      "side of 350, as the Beam job does).")
  seed: int = cli.option(0, "Seeds the job, training and the eval pairs.")

  def check(self):
    """Raises ValueError naming the missing or bad value."""
    for name in ("train_pattern", "eval_image_dir"):
      if not getattr(self, name):
        raise ValueError(f"--{name} is required")
    if self.minutes < MIN_CHUNK_MINUTES:
      raise ValueError(f"--minutes {self.minutes} is shorter than one "
                       f"useful chunk ({MIN_CHUNK_MINUTES} min)")


def _run(command, log_path):
  """Runs a project command, its output to `log_path`; stops on failure."""
  with open(log_path, "a") as log:
    log.write(f"$ {' '.join(command)}\n")
    log.flush()
    result = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT,
                            check=False)
  if result.returncode:
    sys.exit(f"{' '.join(command[:3])} failed (exit {result.returncode}); "
             f"see {log_path}")


def eval_points(minutes):
  """Cumulative minutes at which to evaluate, chunks of a useful length."""
  points = []
  for fraction in EVAL_POINTS:
    point = minutes * fraction
    if point - (points[-1] if points else 0) >= MIN_CHUNK_MINUTES:
      points.append(point)
  if not points or points[-1] != minutes:
    points = points[:-1] + [minutes] if points else [minutes]
  return points


def write_eval_crops(image_dir, output_dir, per_image, seed):
  """Random EVAL_SIZE crops of each held-out photo, as PNG files."""
  os.makedirs(output_dir, exist_ok=True)
  rng = np.random.default_rng(seed)
  paths = sorted(p for p in glob.glob(os.path.join(image_dir, "*"))
                 if os.path.isfile(p))
  written = 0
  for path in paths:
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
      raise ValueError(f"{path} in --eval_image_dir is not an image")
    scale = LOAD_SIZE / min(image.shape[:2])
    image = cv2.resize(image, (round(image.shape[1] * scale),
                               round(image.shape[0] * scale)),
                       interpolation=cv2.INTER_AREA)
    stem = os.path.splitext(os.path.basename(path))[0]
    for i in range(per_image):
      y = rng.integers(0, image.shape[0] - EVAL_SIZE + 1)
      x = rng.integers(0, image.shape[1] - EVAL_SIZE + 1)
      cv2.imwrite(os.path.join(output_dir, f"{stem}_{i:02d}.png"),
                  image[y:y + EVAL_SIZE, x:x + EVAL_SIZE])
      written += 1
  if not written:
    raise ValueError(f"no images in --eval_image_dir {image_dir}")
  return written


def write_test_masks(data_dir, output_dir):
  """The Beam job's test masks as PNG files, white = hole."""
  os.makedirs(output_dir, exist_ok=True)
  count = 0
  for i, example in enumerate(records.read_masks(data_dir, "test")):
    known = example["mask"].numpy()[..., 0]
    cv2.imwrite(os.path.join(output_dir, f"mask_{i:05d}.png"),
                np.where(known < 0.5, 255, 0).astype(np.uint8))
    count += 1
  return count


def per_bin(results, method, metric):
  """[value per hole-ratio bin] of one method in an evaluate results.json."""
  rows = results["table"][method]
  return [rows[masks_lib.bin_label(b)][metric]
          for b in range(len(masks_lib.HOLE_RATIO_BINS))]


_BIN_COLOURS = [(180, 119, 31), (14, 127, 255), (44, 160, 44), (40, 39, 214),
                (189, 103, 148), (75, 86, 140)]


def write_plot(path, points, baselines, width=900, height=520):
  """PSNR per bin against minutes; baselines as dashed horizontal lines."""
  left, right, top, bottom = 70, 230, 40, 60
  values = [v for p in points for v in p["psnr"] if v is not None]
  values += [v for line in baselines.values() for v in line if v is not None]
  low, high = np.floor(min(values)) - 1, np.ceil(max(values)) + 1
  end = max(p["minutes"] for p in points)
  canvas = np.full((height, width, 3), 255, np.uint8)
  font = cv2.FONT_HERSHEY_SIMPLEX

  def xy(minutes, value):
    x = left + minutes / end * (width - left - right)
    y = top + (high - value) / (high - low) * (height - top - bottom)
    return int(x), int(y)

  def text(s, at, scale=0.45):
    cv2.putText(canvas, s, at, font, scale, (0, 0, 0), 1, cv2.LINE_AA)

  text("Held-out PSNR (dB) per hole-ratio bin against training time",
       (left, 25), 0.55)
  for tick in np.arange(low, high + 0.5, max(1.0, np.ceil((high - low) / 8))):
    cv2.line(canvas, xy(0, tick), xy(end, tick), (225, 225, 225), 1)
    text(f"{tick:g}", (20, xy(0, tick)[1] + 4), 0.4)
  for p in points:
    cv2.line(canvas, (xy(p["minutes"], low)[0], height - bottom),
             (xy(p["minutes"], low)[0], height - bottom + 5), (0, 0, 0), 1)
    text(f"{p['minutes']:g}", (xy(p["minutes"], low)[0] - 8,
                               height - bottom + 20), 0.4)
  cv2.rectangle(canvas, (left, top), (width - right, height - bottom),
                (0, 0, 0), 1)
  text("training minutes (wall clock)", (left + 200, height - 12))
  dash = {"telea": 8, "ns": 3}
  for b in range(len(masks_lib.HOLE_RATIO_BINS)):
    colour = _BIN_COLOURS[b]
    line = [xy(p["minutes"], p["psnr"][b]) for p in points
            if p["psnr"][b] is not None]
    for a, c in zip(line, line[1:]):
      cv2.line(canvas, a, c, colour, 2, cv2.LINE_AA)
    for point in line:
      cv2.circle(canvas, point, 4, colour, -1, cv2.LINE_AA)
    for method, gap in dash.items():
      value = baselines[method][b]
      if value is None:
        continue
      y = xy(0, value)[1]
      for x in range(left, width - right, 2 * gap + 4):
        cv2.line(canvas, (x, y), (min(x + gap + 4, width - right), y), colour,
                 1)
    legend = top + 12 + 22 * b
    cv2.line(canvas, (width - right + 12, legend),
             (width - right + 40, legend), colour, 2)
    text(f"ours {masks_lib.bin_label(b)}", (width - right + 46, legend + 5))
  legend = top + 12 + 22 * (len(masks_lib.HOLE_RATIO_BINS) + 1)
  text("dashed: Telea (long),", (width - right + 12, legend))
  text("Navier-Stokes (short)", (width - right + 12, legend + 18))
  text("same colour = same bin", (width - right + 12, legend + 36))
  cv2.imwrite(path, canvas)


def markdown(points, results, elapsed, eval_image_dir):
  """The report: the final table beside the baselines, then the curve."""
  final = points[-1]
  lines = [
      f"# Learning benchmark: {final['minutes']:g} training minutes, "
      f"step {final['step']}",
      "",
      f"Held-out pairs: {results['data']['pairs']} (crops of "
      f"{eval_image_dir}), bench wall time {elapsed / 60:.1f} min.",
      "",
      "| bin | pairs | ours PSNR | Telea | NS | ours SSIM | Telea | NS | "
      "ours L1 % | Telea | NS |",
      "|---|---|---|---|---|---|---|---|---|---|---|",
  ]
  for b in range(len(masks_lib.HOLE_RATIO_BINS)):
    label = masks_lib.bin_label(b)
    row = [label, str(results["table"]["ours"][label]["count"])]
    for metric, fmt in (("psnr", "{:.2f}"), ("ssim", "{:.3f}"),
                        ("l1_percent", "{:.2f}")):
      for method in ("ours", "telea", "ns"):
        value = per_bin(results, method, metric)[b]
        row.append("-" if value is None else fmt.format(value))
    lines.append("| " + " | ".join(row) + " |")
  lines += ["", "PSNR per bin at each point:", "",
            "| minutes | step | " + " | ".join(
                masks_lib.bin_label(b)
                for b in range(len(masks_lib.HOLE_RATIO_BINS))) + " |",
            "|---|---|" + "---|" * len(masks_lib.HOLE_RATIO_BINS)]
  for p in points:
    lines.append(f"| {p['minutes']:.1f} | {p['step']} | " + " | ".join(
        "-" if v is None else f"{v:.2f}" for v in p["psnr"]) + " |")
  return "\n".join(lines) + "\n"


def main(argv):
  config = cli.from_flags(Config, argv)
  start = time.monotonic()
  out = os.path.abspath(config.output_dir)
  for name in ("data", "model", "eval_images", "eval_masks", "evaluations"):
    shutil.rmtree(os.path.join(out, name), ignore_errors=True)
  os.makedirs(out, exist_ok=True)
  log = os.path.join(out, "learning.log")
  python = sys.executable
  data_dir = os.path.join(out, "data")
  model_dir = os.path.join(out, "model")

  print(f"[learning] 1/3 Beam job on {config.train_pattern} (log: {log})")
  _run([python, "-m", "pipeline.preprocess",
        f"--input_pattern={config.train_pattern}", f"--output_dir={data_dir}",
        f"--crops_per_image={config.crops_per_image}",
        f"--num_masks={config.num_masks}", f"--val_fraction={config.val_fraction}",
        "--test_fraction=0", f"--seed={config.seed}"], log)

  image_dir = os.path.join(out, "eval_images")
  count = write_eval_crops(config.eval_image_dir, image_dir,
                           config.eval_crops_per_image, config.seed)
  mask_dir, polarity = config.eval_mask_dir, config.eval_mask_polarity
  if mask_dir is None:
    mask_dir, polarity = os.path.join(out, "eval_masks"), "white"
    write_test_masks(data_dir, mask_dir)
  print(f"[learning] {count} held-out crops of {config.eval_image_dir}")

  points, trained, results = [], 0.0, None
  for k, target in enumerate(eval_points(config.minutes), start=1):
    chunk = target - trained
    print(f"[learning] 2/3 training to minute {target:g} ({chunk:g} min)")
    began = time.monotonic()
    _run([python, "-m", "lbam_tf.train", f"--preset={config.preset}",
          f"--data_dir={data_dir}", f"--model_dir={model_dir}",
          "--train_steps=100000000", f"--max_minutes={chunk}",
          f"--seed={config.seed}", f"--vgg_weights={config.vgg_weights}",
          *config.train_flags], log)
    trained += (time.monotonic() - began) / 60
    print(f"[learning] 3/3 evaluating after {trained:.1f} min")
    eval_dir = os.path.join(out, "evaluations", f"point_{k}")
    _run([python, "-m", "lbam_tf.evaluate", f"--model={model_dir}",
          f"--image_dir={image_dir}", f"--mask_dir={mask_dir}",
          f"--mask_polarity={polarity}", f"--output_dir={eval_dir}",
          "--num_images=0", f"--crop_size={EVAL_SIZE}",
          "--baselines=telea,ns",
          f"--seed={config.seed}"], log)
    with open(os.path.join(eval_dir, "results.json")) as f:
      results = json.load(f)
    step = int(tf.train.latest_checkpoint(model_dir).rsplit("-", 1)[1])
    points.append({"minutes": round(trained, 2), "step": step,
                   **{m: per_bin(results, "ours", m)
                      for m in ("psnr", "ssim", "l1_percent")}})
    print(f"[learning] step {step}: PSNR per bin " + ", ".join(
        "-" if v is None else f"{v:.2f}" for v in points[-1]["psnr"]))

  baselines = {m: per_bin(results, m, "psnr") for m in ("telea", "ns")}
  write_plot(os.path.join(out, "learning.png"), points, baselines)
  report = markdown(points, results, time.monotonic() - start,
                    config.eval_image_dir)
  with open(os.path.join(out, "learning.md"), "w") as f:
    f.write(report)
  with open(os.path.join(out, "learning.json"), "w") as f:
    json.dump({"points": points, "baselines": {
        m: {metric: per_bin(results, m, metric)
            for metric in ("psnr", "ssim", "l1_percent")}
        for m in ("telea", "ns")}, "flags": dataclasses.asdict(config)}, f,
              indent=2, default=str)
  print(report)
  print(f"[learning] wrote {out}/learning.md, learning.json, learning.png")


if __name__ == "__main__":
  cli.define_flags(Config)
  app.run(main)
