r"""The paper's Table 1 for any model, with PatchMatch, Telea and Navier-Stokes
beside it.

Pairs test images with masks deterministically (the seed shuffles both, the
i-th image gets a mask of bin i mod 6, so every hole-ratio bin gets the same
share), inpaints every pair with the model(s) and the classical baselines in
the same run, and reports per-bin PSNR, SSIM and mean L1 (%) of the composited
8-bit output at the crop size (definitions in `lbam_tf.metrics` and README.md).

Writes to --output_dir: results.md (the table, the model, the data and the
flags), results.json (the table plus per-pair metrics), results.csv (one row
per method and bin), grid_bin<k>.png (input, mask, ours, Telea, PatchMatch,
ground truth for a few pairs of each bin) and psnr_per_bin.png. FID only when an
InceptionV3 weights file is given; LPIPS is not built. Neither is faked.

Example:

  python -m lbam_tf.evaluate --model runs/cpu_small --data_dir data/samples \
      --output_dir eval/cpu_small
  python -m lbam_tf.evaluate --ablation runs/full,runs/sigmoid \
      --image_dir photos/ --mask_dir nvidia_masks/ --mask_polarity black
"""

import csv
import dataclasses
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
import cv2  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tqdm  # noqa: E402

from lbam_tf import baselines  # noqa: E402
from lbam_tf import bounded_read  # noqa: E402
from lbam_tf import convert  # noqa: E402
from lbam_tf import data  # noqa: E402
from lbam_tf import decode  # noqa: E402
from lbam_tf import image_files  # noqa: E402
from lbam_tf import image_ops  # noqa: E402
from lbam_tf import inpaint as inpaint_lib  # noqa: E402
from lbam_tf import masks as masks_lib  # noqa: E402
from lbam_tf import metrics  # noqa: E402
from lbam_tf import model_io  # noqa: E402

_MODEL = flags.DEFINE_string(
    "model", None,
    "What to evaluate: a SavedModel directory with an `inpaint_tensor` "
    "signature (serving.export), a training model_dir, or a .weights.h5 / "
    ".keras / .pth / .npz file. Give this or --ablation.")
_ABLATION = flags.DEFINE_list(
    "ablation", None,
    "Comma-separated model directories (or any --model kinds) evaluated "
    "side by side on the same pairs, one column each: the paper's Table 2. "
    "Replaces --model.")
_DATA_DIR = flags.DEFINE_string(
    "data_dir", None,
    "Output folder of `python -m pipeline.preprocess`: its test images and "
    "test masks are read. Give this or --image_dir with --mask_dir.")
_SPLIT = flags.DEFINE_enum(
    "split", "test", ["test", "val"],
    "With --data_dir: the image split. Masks always come from the test masks.")
_IMAGE_DIR = flags.DEFINE_string(
    "image_dir", None,
    "A folder of ground-truth images (png, jpg, ...) instead of --data_dir.")
_MASK_DIR = flags.DEFINE_string(
    "mask_dir", None,
    "A folder of mask images, paired with --image_dir images by the seed (not "
    "by name); masks outside the bins (0.01, 0.6] are dropped.")
_MASK_POLARITY = flags.DEFINE_enum(
    "mask_polarity", "white", list(image_ops.POLARITIES),
    "Which colour marks holes in --mask_dir files: white (the reference code's "
    "and the pipeline's masks) or black (NVIDIA's irregular mask zip).")
_OUTPUT_DIR = flags.DEFINE_string(
    "output_dir", "eval",
    "Folder (created) for results.md/.json/.csv and the PNGs.")
_NUM_IMAGES = flags.DEFINE_integer(
    "num_images", 120,
    "How many images to evaluate (0 = all). On 2 CPU cores the generator takes "
    "about 0.5 s per 256x256 image.")
_SEED = flags.DEFINE_integer(
    "seed", 0,
    "Seed of the image-mask pairing: the same seed gives the same table.")
_CROP_SIZE = flags.DEFINE_integer(
    "crop_size", 256,
    "Images are resized (shorter side) and centre-cropped to this square size, "
    "masks resized to it (nearest); metrics are computed at this size. The "
    "paper uses 256.")
_BATCH_SIZE = flags.DEFINE_integer(
    "batch_size", 8, "Pairs per generator call; lower it if memory runs out.")
_NUM_EXAMPLES = flags.DEFINE_integer("num_examples", 4,
                                     "Rows per bin in the grid PNGs.")
_BASELINES = flags.DEFINE_list(
    "baselines", list(baselines.METHODS),
    "Classical methods scored beside the model(s), from "
    f"{list(baselines.METHODS)}. PatchMatch takes seconds per 256x256 image "
    "on a CPU; leave it out for quick runs.")
_RADIUS = flags.DEFINE_integer(
    "baseline_radius", 5,
    "Neighbourhood radius in pixels for Telea and Navier-Stokes.")
_INCEPTION_WEIGHTS = flags.DEFINE_string(
    "inception_weights", None,
    "A Keras InceptionV3 weights file without the top (e.g. "
    "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5) to also "
    "report FID over all pairs. Without it FID is skipped (it cannot be "
    "downloaded here).")

#: Row label of the table's line over all bins together.
ALL_BINS = "all"


@dataclasses.dataclass
class Pair:
  """One test case: a ground-truth image and a mask, both at the crop size."""
  image_key: str
  mask_key: str
  image: np.ndarray  # uint8 [S, S, 3]
  known: np.ndarray  # float32 [S, S, 1], 1 = known, 0 = hole
  hole_ratio: float
  bin: int


@dataclasses.dataclass
class Model:
  """A method: `inpaint(image, known)` -> float [B, S, S, 3].

  `evaluate_pairs` clips, rounds and composites the output itself.
  """
  label: str
  path: str
  kind: str
  config: dict
  inpaint: object


# ---------------------------------------------------------------- data


def _resize_and_centre_crop(image, size):
  """Shorter side to `size` (area when shrinking), then the centre square."""
  height, width = image.shape[:2]
  scale = size / min(height, width)
  if scale != 1.0:
    new_size = (max(size, round(width * scale)), max(size,
                                                     round(height * scale)))
    interpolation = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
    image = cv2.resize(image, new_size, interpolation=interpolation)
    height, width = image.shape[:2]
  top, left = (height - size) // 2, (width - size) // 2
  return np.ascontiguousarray(image[top:top + size, left:left + size])


def _known_mask_at(known, size):
  """A known mask [H, W, 1] resized (nearest) to [size, size, 1]."""
  known = np.asarray(known, np.float32).reshape(known.shape[0], known.shape[1])
  if known.shape != (size, size):
    known = cv2.resize(known, (size, size), interpolation=cv2.INTER_NEAREST)
  return (known >= 0.5).astype(np.float32)[..., None]


def _decode_folder(folder, flag, decode_file):
  """[(file name, decode_file(bytes))] for the image files in `folder`, by name."""
  paths = image_files.list_images(folder)
  if not paths:
    raise ValueError(
        f"no images ({', '.join(image_files.IMAGE_EXTENSIONS)}) in --{flag} "
        f"{folder}")
  decoded = []
  for path in paths:
    try:
      data = bounded_read.read_file(
          path, decode.max_file_bytes(decode.DEFAULT_MAX_PIXELS))
      decoded.append((os.path.basename(path), decode_file(data)))
    except (bounded_read.FileRefused, decode.Rejected) as error:
      raise ValueError(
          f"cannot use {path} ({error}): remove it or convert it to PNG"
      ) from None
  return decoded


def read_image_folder(image_dir, crop_size):
  """[(file name, uint8 [S, S, 3])] for the images in `image_dir`, by name.

  Decoded as pipeline.preprocess decodes (EXIF orientation, 16 bits, alpha
  over white), so a folder and its preprocessed records agree.
  """
  return _decode_folder(
      image_dir, "image_dir", lambda data: _resize_and_centre_crop(
          decode.decode_image(data, decode.DEFAULT_MAX_PIXELS), crop_size))


def read_mask_folder(mask_dir, polarity, crop_size):
  """[(file name, float32 [S, S, 1] 1 = known)] for every mask in `mask_dir`.

  Decoded, binarised and resized as pipeline.preprocess reads a --mask_dir.
  """
  image_ops.check_polarity(polarity)

  def known(data):
    hole = decode.decode_mask(data, decode.DEFAULT_MAX_PIXELS, polarity, crop_size)
    return image_ops.known_mask_from_image(hole[..., None]).numpy()

  return _decode_folder(mask_dir, "mask_dir", known)


def _unique(keys):
  """Keys made unique in order: a repeated "k" becomes "k#1", "k#2", ..."""
  seen = {}
  unique = []
  for key in keys:
    count = seen.get(key, 0)
    seen[key] = count + 1
    unique.append(key if count == 0 else f"{key}#{count}")
  return unique


def read_data_dir(data_dir, split, crop_size):
  """Images of `split` and the test masks of a preprocessing output folder.

  Image keys name the source photo, so several crops of one photo share one;
  they are numbered in file order to stay distinct.
  """
  images = list(data.read_images(data_dir, split).as_numpy_iterator())
  masks = list(data.read_masks(data_dir, "test").as_numpy_iterator())
  if not images or not masks:
    raise ValueError(
        f"{data_dir} has {len(images)} {split} images and {len(masks)} test "
        "masks: try --split val, or rerun pipeline.preprocess with more images "
        "or a larger --test_fraction")
  image_keys = _unique([example["key"].decode() for example in images])
  mask_keys = _unique([example["source"].decode() for example in masks])
  return ([(key, _resize_and_centre_crop(example["image"], crop_size))
           for key, example in zip(image_keys, images)],
          [(key, _known_mask_at(example["mask"], crop_size))
           for key, example in zip(mask_keys, masks)])


def pair_images_with_masks(images, masks, num_images, seed):
  """Deterministic, bin-balanced pairs.

  The seed permutes the images (sorted by key first) and shuffles the masks of
  each hole-ratio bin; image i then gets the next mask of bin i mod (number of
  bins that have masks). Masks are reused when a bin has fewer than needed.

  Args:
    images: [(key, uint8 [S, S, 3])].
    masks: [(key, float32 [S, S, 1] 1 = known)].
    num_images: how many images to keep (0 = all).
    seed: integer seed.

  Returns:
    (pairs, dropped): a list of `Pair`, and the number of masks outside all
    bins.
  """
  rng = np.random.default_rng(seed)
  images = sorted(images, key=lambda item: item[0])
  images = [images[i] for i in rng.permutation(len(images))]
  if num_images:
    images = images[:num_images]

  by_bin = {}
  dropped = 0
  ratios = metrics.hole_ratio(np.stack([known for _, known in masks]))
  for (key, known), ratio in sorted(zip(masks, ratios),
                                    key=lambda item: item[0][0]):
    index = masks_lib.ratio_bin(ratio)
    if index is None:
      dropped += 1
    else:
      by_bin.setdefault(index, []).append((key, known, float(ratio)))
  if not by_bin:
    raise ValueError(
        f"none of the {len(masks)} masks has a hole ratio in "
        f"({masks_lib.FULL_RANGE[0]}, {masks_lib.FULL_RANGE[1]}]: "
        "check --mask_polarity (white = hole) and the masks themselves")
  bins = sorted(by_bin)
  for index in bins:
    by_bin[index] = [
        by_bin[index][i] for i in rng.permutation(len(by_bin[index]))
    ]

  pairs = []
  for i, (image_key, image) in enumerate(images):
    index = bins[i % len(bins)]
    mask_key, known, ratio = by_bin[index][(i // len(bins)) %
                                           len(by_bin[index])]
    pairs.append(Pair(image_key, mask_key, image, known, ratio, index))
  return pairs, dropped


# ---------------------------------------------------------------- models


def load_model(path, label):
  """A `Model` for a SavedModel or anything `model_io.load_generator` reads.

  A generator goes through `inpaint.InpaintModule`, the code behind the
  export's `inpaint_tensor`, so both kinds pad, crop and composite alike.
  """
  if not os.path.exists(path):
    raise FileNotFoundError(f"--model {path} does not exist")
  if inpaint_lib.is_export(path):
    loaded = tf.saved_model.load(path)
    if inpaint_lib.TENSOR_SIGNATURE not in loaded.signatures:
      raise ValueError(
          f"SavedModel {path} has signatures {sorted(loaded.signatures)}, not "
          "`inpaint_tensor`: export it with `python -m serving.export`")

    def inpaint(image, known):
      # Looked up through `loaded` on every call, which keeps the SavedModel's
      # variables alive as long as this function.
      return loaded.signatures[inpaint_lib.TENSOR_SIGNATURE](
          image=image, mask=known)["image"]

    return Model(label, path, "SavedModel", {}, inpaint)

  generator = model_io.load_generator(path)
  module = inpaint_lib.InpaintModule(generator)
  kind = "model_dir" if os.path.isdir(path) else os.path.splitext(
      path)[1].lstrip(".")
  return Model(label, path, kind, convert.generator_options(generator),
               lambda image, known: module.inpaint_tensor(image, known)["image"])


def _labels(paths):
  """Column names for --ablation: the directory names, made unique."""
  names = [os.path.basename(os.path.normpath(path)) or path for path in paths]
  return [
      name if names.count(name) == 1 else f"{name}_{i}"
      for i, name in enumerate(names)
  ]


def inception_features(weights_path):
  """uint8 [B, S, S, 3] -> [B, 2048] InceptionV3 pool features, for FID.

  Images are resized to 299x299 (bilinear) and scaled to [-1, 1] as
  InceptionV3 expects.
  """
  if not os.path.exists(weights_path):
    raise FileNotFoundError(
        f"--inception_weights {weights_path} does not exist: give a Keras "
        "InceptionV3 no-top weights file, or drop the flag to skip FID")
  model = keras.applications.InceptionV3(include_top=False,
                                         weights=weights_path,
                                         pooling="avg",
                                         input_shape=(299, 299, 3))

  @tf.function(reduce_retracing=True)
  def features(images):
    resized = tf.image.resize(tf.cast(images, tf.float32), (299, 299))
    return model(keras.applications.inception_v3.preprocess_input(resized),
                 training=False)

  return features


# ---------------------------------------------------------------- evaluation


def _to_uint8(images):
  return np.round(np.clip(np.asarray(images), 0.0, 1.0) * 255.0).astype(
      np.uint8)


def _scores(filled, truth):
  """Per-image metrics of uint8 [B, S, S, 3] against uint8 truth, as lists."""
  filled = filled.astype(np.float32) / 255.0
  truth = truth.astype(np.float32) / 255.0
  return {
      "psnr": metrics.psnr(filled, truth).numpy().tolist(),
      "ssim": metrics.ssim(filled, truth).numpy().tolist(),
      "l1_percent": metrics.l1_percent(filled, truth).numpy().tolist()
  }


def evaluate_pairs(pairs,
                   models,
                   batch_size,
                   radius,
                   num_examples,
                   features_fn=None,
                   baseline_methods=baselines.METHODS):
  """Inpaints every pair with every model and baseline and scores the results.

  Returns:
    (scores, examples, seconds, features): scores[method] = {"psnr": [...],
    "ssim":
    [...], "l1_percent": [...]} in pair order; examples[bin] = list of
    {method: uint8 image, "input", "mask", "truth"} for the first
    `num_examples` pairs of each bin; seconds[method] = time spent inpainting.
    features[method or "truth"] = [N, D] array of `features_fn` (uint8
    images -> [B, D]) of the composited outputs and the ground truth, or
    None without a `features_fn`.
  """
  methods = [model.label for model in models] + list(baseline_methods)
  scores = {
      method: {
          "psnr": [],
          "ssim": [],
          "l1_percent": []
      } for method in methods
  }
  seconds = dict.fromkeys(methods, 0.0)
  examples = {}
  features = {name: [] for name in methods + ["truth"]} if features_fn else None
  with tqdm.tqdm(total=len(pairs), desc="evaluate", unit="image") as progress:
    for start in range(0, len(pairs), batch_size):
      batch = pairs[start:start + batch_size]
      truth = np.stack([pair.image for pair in batch])
      known = np.stack([pair.known for pair in batch])
      # The model never sees the ground truth in the holes.
      masked = truth.astype(np.float32) / 255.0 * known
      outputs = {}
      for model in models:
        begin = time.perf_counter()
        filled = model.inpaint(tf.constant(masked), tf.constant(known))
        outputs[model.label] = _to_uint8(filled)
        seconds[model.label] += time.perf_counter() - begin
      for method in baseline_methods:
        begin = time.perf_counter()
        outputs[method] = baselines.inpaint_batch(truth,
                                                  known,
                                                  method,
                                                  radius=radius)
        seconds[method] += time.perf_counter() - begin
      for method in methods:
        # Known pixels come from the ground truth bit-exact, after rounding too.
        filled = np.where(known >= 0.5, truth, outputs[method])
        for name, values in _scores(filled, truth).items():
          scores[method][name].extend(values)
        if features is not None:
          features[method].append(np.asarray(features_fn(filled)))
      if features is not None:
        features["truth"].append(np.asarray(features_fn(truth)))
      for i, pair in enumerate(batch):
        rows = examples.setdefault(pair.bin, [])
        if len(rows) < num_examples:
          hole = pair.known < 0.5
          rows.append({
              "input":
                  np.where(hole, 255, pair.image).astype(np.uint8),
              "mask":
                  np.repeat(np.where(hole, 255, 0), 3,
                            axis=-1).astype(np.uint8),
              "truth":
                  pair.image,
              **{
                  method: outputs[method][i] for method in methods
              }
          })
      progress.update(len(batch))
  if features is not None:
    features = {
        name: np.concatenate(arrays) for name, arrays in features.items()
    }
  return scores, examples, seconds, features


def summarize(pairs, scores):
  """table[method][bin label or ALL_BINS] = {count, psnr, ssim, l1_percent}."""
  bins = np.array([pair.bin for pair in pairs])
  num_bins = len(masks_lib.HOLE_RATIO_BINS)
  table = {}
  for method, values in scores.items():
    rows = {}
    for label, selected in (
        [(masks_lib.bin_label(b), bins == b) for b in range(num_bins)] +
        [(ALL_BINS, np.ones_like(bins, bool))]):
      row = {"count": int(selected.sum())}
      for name, per_image in values.items():
        row[name] = float(np.mean(
            np.array(per_image)[selected])) if selected.any() else None
      rows[label] = row
    table[method] = rows
  return table


# ---------------------------------------------------------------- outputs

_METRIC_ROWS = (("psnr", "PSNR (dB)", "{:.2f}"), ("ssim", "SSIM", "{:.3f}"),
                ("l1_percent", "Mean L1 (%)", "{:.2f}"))


def _display(method):
  return baselines.DISPLAY_NAMES.get(method, method)


def markdown_table(table):
  """Rows metric x bin, a column per method: the paper's Table 1 layout."""
  methods = list(table)
  bin_labels = list(next(iter(table.values())))
  counts = table[methods[0]]
  lines = [
      "| Metric | Mask ratio | Images | " + " | ".join(map(_display, methods)) +
      " |", "|---|---|---:|" + "---:|" * len(methods)
  ]
  for name, title, fmt in _METRIC_ROWS:
    for label in bin_labels:
      cells = [
          fmt.format(table[m][label][name])
          if table[m][label][name] is not None else "–" for m in methods
      ]
      lines.append(f"| {title} | {label} | {counts[label]['count']} | " +
                   " | ".join(cells) + " |")
  return "\n".join(lines)


def ablation_table(table):
  """Rows method, columns bin, cells PSNR/SSIM: the paper's Table 2 layout."""
  bin_labels = [
      label for label in next(iter(table.values())) if label != ALL_BINS
  ]
  lines = [
      "| Method | " + " | ".join(bin_labels) + " |",
      "|---|" + "---:|" * len(bin_labels)
  ]
  for method, rows in table.items():
    cells = [
        f"{rows[b]['psnr']:.2f}/{rows[b]['ssim']:.3f}"
        if rows[b]["count"] else "–" for b in bin_labels
    ]
    lines.append(f"| {_display(method)} | " + " | ".join(cells) + " |")
  return "\n".join(lines)


def _label_strip(width, text, height=24):
  # Light grey, so that white holes in the first row stand apart from it.
  strip = np.full((height, width, 3), 235, np.uint8)
  cv2.putText(strip, text, (4, height - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
              (0, 0, 0), 1, cv2.LINE_AA)
  return strip


def write_grid(path, rows, columns):
  """A row per example, a column per key in `columns`, labelled on top."""
  size = rows[0]["truth"].shape[1]
  header = np.concatenate([_label_strip(size, _display(c)) for c in columns],
                          axis=1)
  body = [np.concatenate([row[c] for c in columns], axis=1) for row in rows]
  grid = np.concatenate([header] + body, axis=0)
  cv2.imwrite(path, cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))


#: Line colours (BGR) of the PSNR plot, one per method in order.
_PLOT_COLOURS = ((180, 119, 31), (14, 127, 255), (44, 160, 44), (40, 39, 214),
                 (189, 103, 148), (75, 86, 140), (194, 119, 227), (127, 127,
                                                                   127))


def write_psnr_plot(path, table, width=760, height=460):
  """PSNR per bin, a line per method, drawn with OpenCV (no matplotlib)."""
  bin_labels = [
      label for label in next(iter(table.values())) if label != ALL_BINS
  ]
  values = [[rows[b]["psnr"] for b in bin_labels] for rows in table.values()]
  present = [v for line in values for v in line if v is not None]
  low, high = (min(present), max(present)) if present else (0.0, 1.0)
  # Six whole-dB steps or more, with a margin of at least 1 dB at both ends.
  low = np.floor(low) - 1
  step = max(1.0, np.ceil((np.ceil(high) + 1 - low) / 6))
  ticks = low + step * np.arange(7)
  high = ticks[-1]
  left, right, top, bottom = 70, 200, 40, 60
  canvas = np.full((height, width, 3), 255, np.uint8)
  font = cv2.FONT_HERSHEY_SIMPLEX

  def x_of(i):
    return int(left + (i + 0.5) * (width - left - right) / len(bin_labels))

  def y_of(value):
    return int(top + (high - value) / (high - low) * (height - top - bottom))

  cv2.putText(canvas, "PSNR (dB) per hole-ratio bin", (left, 25), font, 0.6,
              (0, 0, 0), 1, cv2.LINE_AA)
  for tick in ticks:
    cv2.line(canvas, (left, y_of(tick)), (width - right, y_of(tick)),
             (225, 225, 225), 1)
    cv2.putText(canvas, f"{tick:g}", (12, y_of(tick) + 4), font, 0.4, (0, 0, 0),
                1, cv2.LINE_AA)
  cv2.rectangle(canvas, (left, top), (width - right, height - bottom),
                (0, 0, 0), 1)
  for i, label in enumerate(bin_labels):
    cv2.putText(canvas, label, (x_of(i) - 30, height - bottom + 20), font, 0.4,
                (0, 0, 0), 1, cv2.LINE_AA)
  cv2.putText(canvas, "hole ratio",
              (left + (width - left - right) // 2 - 35, height - 12), font,
              0.45, (0, 0, 0), 1, cv2.LINE_AA)
  for k, (method, line) in enumerate(zip(table, values)):
    colour = _PLOT_COLOURS[k % len(_PLOT_COLOURS)]
    points = [(x_of(i), y_of(v)) for i, v in enumerate(line) if v is not None]
    for a, b in zip(points, points[1:]):
      cv2.line(canvas, a, b, colour, 2, cv2.LINE_AA)
    for point in points:
      cv2.circle(canvas, point, 4, colour, -1, cv2.LINE_AA)
    legend_y = top + 10 + 22 * k
    cv2.line(canvas, (width - right + 12, legend_y),
             (width - right + 40, legend_y), colour, 2)
    cv2.putText(canvas,
                _display(method)[:18], (width - right + 46, legend_y + 5), font,
                0.45, (0, 0, 0), 1, cv2.LINE_AA)
  cv2.imwrite(path, canvas)


def write_results(output_dir, table, pairs, scores, examples, models, data,
                  flag_values, seconds, fid, notes):
  """Writes results.md/.json/.csv, grid_bin<k>.png and psnr_per_bin.png."""
  os.makedirs(output_dir, exist_ok=True)
  methods = list(table)
  model_info = [{
      "label": m.label,
      "path": m.path,
      "kind": m.kind,
      **m.config
  } for m in models]
  per_pair = [{
      "image": p.image_key,
      "mask": p.mask_key,
      "hole_ratio": p.hole_ratio,
      "bin": masks_lib.bin_label(p.bin),
      "metrics": {
          m: {
              name: scores[m][name][i] for name in scores[m]
          } for m in methods
      }
  } for i, p in enumerate(pairs)]
  seconds_per_image = {m: seconds[m] / max(len(pairs), 1) for m in methods}
  with open(os.path.join(output_dir, "results.json"), "w") as f:
    json.dump(
        {
            "models": model_info,
            "data": data,
            "flags": flag_values,
            "methods": methods,
            "table": table,
            "fid": fid,
            "seconds_per_image": seconds_per_image,
            "notes": notes,
            "pairs": per_pair
        },
        f,
        indent=1)

  with open(os.path.join(output_dir, "results.csv"), "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(["method", "bin", "count", "psnr", "ssim", "l1_percent"])
    for method, rows in table.items():
      for label, row in rows.items():
        writer.writerow([
            method, label, row["count"], row["psnr"], row["ssim"],
            row["l1_percent"]
        ])

  command = "python -m lbam_tf.evaluate " + " ".join(
      f"--{name}={','.join(map(str, v)) if isinstance(v, list) else v}"
      for name, v in flag_values.items())
  lines = [
      "# Evaluation", "",
      "Per hole-ratio bin: PSNR, SSIM (Gaussian 11x11, sigma 1.5) and mean "
      "L1 (%) of the composited 8-bit output against the ground truth, over "
      f"all pixels of the {data['crop_size']}x{data['crop_size']} image, data "
      "range 1 (see README.md, section evaluation). Means over the images of "
      "each bin.", "",
      markdown_table(table), ""
  ]
  if len(models) > 1:
    lines += [
        "PSNR/SSIM per bin (the layout of the paper's Table 2):", "",
        ablation_table(table), ""
    ]
  if fid is not None:
    lines += [
        f"FID over all {len(pairs)} pairs (composited outputs against the "
        "ground truth, InceptionV3 pool features):", "",
        "| | " + " | ".join(map(_display, methods)) + " |",
        "|---|" + "---:|" * len(methods),
        "| FID | " + " | ".join(f"{fid[m]:.2f}" for m in methods) + " |", ""
    ]
  lines += ["## Model", ""]
  lines += [
      f"- `{m['label']}`: {m['kind']} `{m['path']}`" +
      "".join(f", {k} `{m[k]}`"
              for k in ("variant", "ablation")
              if k in m)
      for m in model_info
  ]
  lines += ["", "## Data", ""]
  lines += [f"- {key}: `{value}`" for key, value in data.items()]
  lines += ["", "## Flags", "", f"`{command}`", "", "## Time", ""]
  lines += [
      f"- {_display(m)}: {seconds_per_image[m]:.3f} s per image"
      for m in methods
  ]
  lines += ["", "## Notes", ""] + [f"- {note}" for note in notes]
  with open(os.path.join(output_dir, "results.md"), "w") as f:
    f.write("\n".join(lines) + "\n")

  columns = (["input", "mask"] + [m.label for m in models]
             + [m for m in ("telea", "patchmatch") if m in table] + ["truth"])
  for index, rows in sorted(examples.items()):
    write_grid(os.path.join(output_dir, f"grid_bin{index}.png"), rows, columns)
  write_psnr_plot(os.path.join(output_dir, "psnr_per_bin.png"), table)


def run(model_paths,
        output_dir,
        *,
        data_dir=None,
        split="test",
        image_dir=None,
        mask_dir=None,
        mask_polarity="white",
        num_images=120,
        seed=0,
        crop_size=256,
        batch_size=8,
        num_examples=4,
        radius=5,
        inception_weights=None,
        labels=None,
        baseline_methods=baselines.METHODS):
  """Evaluates `model_paths` (one, or several: an ablation), writes the outputs.

  Args:
    model_paths: list of paths, each anything `load_model` reads.
    output_dir: where the results go (created).
    data_dir / split: a preprocessing output folder; or
    image_dir / mask_dir / mask_polarity: folders of images and masks.
    num_images, seed, crop_size, batch_size, num_examples, radius,
      inception_weights: as the flags.
    baseline_methods: the classical methods scored beside (--baselines).
    labels: column names for the models; default "ours" for one model, the
      directory names for several.

  Returns:
    The parsed results.json as a dict.
  """
  if (data_dir is None) == (image_dir is None):
    raise ValueError("give either --data_dir or --image_dir (with --mask_dir), "
                     "not both or neither")
  if image_dir is not None and mask_dir is None:
    raise ValueError("--image_dir needs --mask_dir: a folder of masks to pair "
                     "the images with")
  if crop_size < metrics.SSIM_FILTER_SIZE:
    raise ValueError(f"--crop_size {crop_size} is smaller than the SSIM window "
                     f"{metrics.SSIM_FILTER_SIZE}: use 128 or more")
  if not model_paths:
    raise ValueError("nothing to evaluate: give --model or --ablation")
  if labels is None:
    labels = ["ours"] if len(model_paths) == 1 else _labels(model_paths)
  # The equivalent command line, recorded in results.md and results.json.
  flag_values = {
      "model": model_paths[0]
  } if len(model_paths) == 1 else {
      "ablation": model_paths
  }
  flag_values.update(data_dir=data_dir,
                     split=split if data_dir else None,
                     image_dir=image_dir,
                     mask_dir=mask_dir,
                     mask_polarity=mask_polarity if mask_dir else None,
                     output_dir=output_dir,
                     num_images=num_images,
                     seed=seed,
                     crop_size=crop_size,
                     batch_size=batch_size,
                     num_examples=num_examples,
                     baseline_radius=radius,
                     baselines=list(baseline_methods),
                     inception_weights=inception_weights)
  flag_values = {
      name: value for name, value in flag_values.items() if value is not None
  }

  if data_dir is not None:
    images, masks = read_data_dir(data_dir, split, crop_size)
    data = {"data_dir": data_dir, "split": split}
  else:
    images = read_image_folder(image_dir, crop_size)
    masks = read_mask_folder(mask_dir, mask_polarity, crop_size)
    data = {
        "image_dir": image_dir,
        "mask_dir": mask_dir,
        "mask_polarity": mask_polarity
    }
  pairs, dropped = pair_images_with_masks(images, masks, num_images, seed)
  data.update({
      "images_available": len(images),
      "masks_available": len(masks),
      "masks_outside_bins": dropped,
      "pairs": len(pairs),
      "seed": seed,
      "crop_size": crop_size
  })

  models = [load_model(path, label) for path, label in zip(model_paths, labels)]
  features_fn = inception_features(
      inception_weights) if inception_weights else None
  for method in baseline_methods:
    baselines.check_method(method)
  scores, examples, seconds, features = evaluate_pairs(
      pairs, models, batch_size, radius, num_examples, features_fn,
      baseline_methods)
  table = summarize(pairs, scores)
  fid = None
  if features is not None:
    fid = {
        method: metrics.frechet_distance(features[method], features["truth"])
        for method in table
    }
  notes = [
      "LPIPS: not computed (its network weights cannot be downloaded here "
      "and it is not part of this build); no number is given rather than a "
      "made-up one.",
      (f"FID from --inception_weights {inception_weights} over {len(pairs)} "
       "pairs: with fewer pairs than the 2048 feature dimensions it is biased "
       "upwards; compare methods within this run only." if fid else
       "FID: not computed; give --inception_weights (a Keras InceptionV3 "
       "no-top weights file) to add it. No number is given rather than a "
       "made-up one."),
      f"{dropped} of {len(masks)} masks had a hole ratio outside "
      f"({masks_lib.FULL_RANGE[0]}, {masks_lib.FULL_RANGE[1]}] and "
      "were not used.",
  ]
  empty = [
      masks_lib.bin_label(b)
      for b in range(len(masks_lib.HOLE_RATIO_BINS))
      if not table[labels[0]][masks_lib.bin_label(b)]["count"]
  ]
  if empty:
    notes.append(f"No masks, hence no images, in bins {', '.join(empty)}.")
  if len(pairs) < 30 * (len(masks_lib.HOLE_RATIO_BINS)):
    notes.append(
        f"Only {len(pairs)} pairs (fewer than 30 per bin): per-bin means of "
        "so few images change with the seed; compare methods within this "
        "table, not across runs.")
  write_results(output_dir, table, pairs, scores, examples, models, data,
                flag_values, seconds, fid, notes)
  with open(os.path.join(output_dir, "results.json")) as f:
    return json.load(f)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(
        f"unexpected arguments {argv[1:]}: every input is a --flag")
  if (_MODEL.value is None) == (_ABLATION.value is None):
    raise app.UsageError(
        "give --model (one model) or --ablation (several), exactly one of them")
  run([_MODEL.value] if _MODEL.value else _ABLATION.value,
      _OUTPUT_DIR.value,
      data_dir=_DATA_DIR.value,
      split=_SPLIT.value,
      image_dir=_IMAGE_DIR.value,
      mask_dir=_MASK_DIR.value,
      mask_polarity=_MASK_POLARITY.value,
      num_images=_NUM_IMAGES.value,
      seed=_SEED.value,
      crop_size=_CROP_SIZE.value,
      batch_size=_BATCH_SIZE.value,
      num_examples=_NUM_EXAMPLES.value,
      radius=_RADIUS.value,
      baseline_methods=_BASELINES.value,
      inception_weights=_INCEPTION_WEIGHTS.value)
  with open(os.path.join(_OUTPUT_DIR.value, "results.md")) as f:
    sys.stdout.write(f.read())


if __name__ == "__main__":
  app.run(main)
