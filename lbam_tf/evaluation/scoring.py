"""The methods being compared, and their scores per pair, per bin and as FID.

Exists so that every method (a trained model, an exported SavedModel, a
classical baseline) is run on the same masked inputs and scored the same way:
outputs rounded to 8 bits, known pixels copied from the ground truth, then
PSNR, SSIM and mean L1 (%) per pair (definitions in `lbam_tf.evaluation.metrics`),
per-bin means, and FID from InceptionV3 features when weights are given.
A model gets the high-resolution options (hd_strategy, crop_margin,
resize_limit, crop_trigger) with every call, as the export's inputs.
"""

import dataclasses
import os
import time

import cv2
import keras
import numpy as np
import tensorflow as tf
import tqdm

from lbam_tf.data import masks as masks_lib
from lbam_tf.evaluation import baselines
from lbam_tf.evaluation import metrics
from lbam_tf.images import ops as image_ops
from lbam_tf.inference import hd
from lbam_tf.inference import module as inference
from lbam_tf.weights import model_io
from lbam_tf.weights import reference_names

#: Row label of the table's line over all bins together.
ALL_BINS = "all"

#: With --eval_size, the grid PNGs show each image fitted into a square of
#: this side (area downscale, grey borders), so that photos of any shape
#: line up.
THUMBNAIL_SIDE = 512


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


def load_model(path, label, hd_options=None, eval_size=0):
  """A `Model` for a SavedModel or anything `model_io.load_generator` reads.

  A generator goes through `inference.InpaintModule`, the code behind the
  export's `inpaint_tensor`, so both kinds pad, crop and composite alike.

  Args:
    path: the --model (or one --ablation entry).
    label: its column name.
    hd_options: {hd_strategy, crop_margin, resize_limit, crop_trigger},
      passed with every call (`EvalConfig.hd_options`); None: the module's
      (or the export's) defaults.
    eval_size: the config's; > 0 refuses a SavedModel exported before the
      high-resolution options (its `inpaint_tensor` lacks those inputs).
  """
  if not os.path.exists(path):
    raise FileNotFoundError(f"--model {path} does not exist")
  hd_inputs = inference.hd_inputs(**(hd_options or {}))
  if inference.is_export(path):
    loaded = tf.saved_model.load(path)
    if inference.TENSOR_SIGNATURE not in loaded.signatures:
      raise ValueError(
          f"SavedModel {path} has signatures {sorted(loaded.signatures)}, not "
          "`inpaint_tensor`: export it with `python -m serving.export`")
    inputs = set(loaded.signatures[inference.TENSOR_SIGNATURE]
                 .structured_input_signature[1])
    config = {}
    if not set(inference.HD_INPUTS) <= inputs:
      if eval_size:
        raise ValueError(
            f"SavedModel {path}'s `inpaint_tensor` has inputs "
            f"{sorted(inputs)}, without {sorted(inference.HD_INPUTS)}: it was "
            "exported before the high-resolution strategies; re-export it "
            "with `python -m serving.export` to evaluate with --eval_size")
      # An older export at the crop size: the whole frame, as before.
      hd_inputs, config = {}, {"hd_inputs": False}

    def inpaint(image, known):
      # Looked up through `loaded` on every call, which keeps the SavedModel's
      # variables alive as long as this function.
      return loaded.signatures[inference.TENSOR_SIGNATURE](
          image=image, mask=known, **hd_inputs)["image"]

    return Model(label, path, "SavedModel", config, inpaint)

  generator = model_io.load_generator(path)
  module = inference.InpaintModule(generator)
  kind = "model_dir" if os.path.isdir(path) else os.path.splitext(
      path)[1].lstrip(".")
  return Model(label, path, kind, reference_names.generator_options(generator),
               lambda image, known: module.inpaint_tensor(
                   image=image, mask=known, **hd_inputs)["image"])


def generator_pixels(known, hd_options):
  """How many pixels the generator runs on for one photo's known mask
  (float32 [H, W, 1]) under `hd_options`: the sum over the boxes of
  `hd.plan`'s generator input sizes (padded to 128)."""
  _, sizes = hd.plan(tf.constant(known, tf.float32),
                     tf.constant(hd_options["hd_strategy"]),
                     *(tf.constant(hd_options[name], tf.int32)
                       for name in ("crop_margin", "resize_limit",
                                    "crop_trigger")))
  sizes = np.asarray(sizes, np.int64).reshape(-1, 2)
  return int(np.sum(sizes[:, 0] * sizes[:, 1]))


def model_labels(paths):
  """Column names: "ours" for one model, else the directory names, unique."""
  if len(paths) == 1:
    return ["ours"]
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


def _scores(filled, truth):
  """Per-image metrics of uint8 [B, S, S, 3] against uint8 truth, as lists."""
  filled = filled.astype(np.float32) / 255.0
  truth = truth.astype(np.float32) / 255.0
  return {
      "psnr": metrics.psnr(filled, truth).numpy().tolist(),
      "ssim": metrics.ssim(filled, truth).numpy().tolist(),
      "l1_percent": metrics.l1_percent(filled, truth).numpy().tolist()
  }


def fit_square(image, side, fill=64):
  """uint8 [H, W, 3] fitted into side x side: area downscale (never
  enlarged), centred on `fill` grey (darker than an untrained model's
  flat fill)."""
  height, width = image.shape[:2]
  scale = min(1.0, side / max(height, width))
  shape = (max(1, int(round(height * scale))),
           max(1, int(round(width * scale))))
  if shape != (height, width):
    image = cv2.resize(image, shape[::-1], interpolation=cv2.INTER_AREA)
  square = np.full((side, side, 3), fill, np.uint8)
  top, left = (side - shape[0]) // 2, (side - shape[1]) // 2
  square[top:top + shape[0], left:left + shape[1]] = image
  return square


def _example_row(pair, outputs, index, thumbnail=None):
  """The grid row of one pair: input, mask, truth and every method's output,
  each fitted into a `thumbnail` square if given."""
  hole = pair.known < 0.5
  row = {
      "input": np.where(hole, 255, pair.image).astype(np.uint8),
      "mask": np.repeat(np.where(hole, 255, 0), 3, axis=-1).astype(np.uint8),
      "truth": pair.image,
      **{method: output[index] for method, output in outputs.items()}
  }
  if thumbnail:
    row = {name: fit_square(image, thumbnail) for name, image in row.items()}
  return row


def evaluate_pairs(pairs,
                   models,
                   batch_size,
                   radius,
                   num_examples,
                   features_fn=None,
                   baseline_methods=baselines.METHODS,
                   thumbnail=None):
  """Inpaints every pair with every model and baseline and scores the results.

  Pairs of different sizes (--eval_size) need batch_size 1; `thumbnail`
  then fits the example images into squares of that side.

  Returns:
    (scores, examples, seconds, features): scores[method] = {"psnr": [...],
    "ssim": [...], "l1_percent": [...]} in pair order; examples[bin] = list of
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
        try:
          filled = model.inpaint(tf.constant(masked), tf.constant(known))
        except tf.errors.InvalidArgumentError as error:
          raise ValueError(
              f"{model.label} ({model.path}) refused "
              f"{', '.join(pair.image_key for pair in batch)} "
              f"({truth.shape[2]}x{truth.shape[1]}): "
              f"{inference.error_text(error.message)}"
          ) from None
        outputs[model.label] = image_ops.to_uint8(filled).numpy()
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
          rows.append(_example_row(pair, outputs, i, thumbnail))
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


def frechet_distances(features, methods):
  """{method: FID of its composited outputs against the ground truth}."""
  return {
      method: metrics.frechet_distance(features[method], features["truth"])
      for method in methods
  }
