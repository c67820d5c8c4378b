"""`run(config)`: one evaluation from an `EvalConfig` to its written results.

Exists so that code (tests, benchmarks) and the command line
(`lbam_tf.evaluate`) run the very same steps: check the options, read and
pair the data, load the models, score every method, write the reports.
"""

import json
import os

from lbam_tf.evaluation import pairs as pairs_lib
from lbam_tf.evaluation import report
from lbam_tf.evaluation import scoring


def run(config):
  """Evaluates the config's model(s) (one, or several: an ablation).

  Args:
    config: an `EvalConfig`; checked here (ValueError on a bad value).

  Returns:
    The results structure the reports are built from, as written to
    OUTPUT_DIR/results.json: models, data, flags, methods, table, fid,
    seconds_per_image, notes and per-pair metrics.
  """
  config.check()
  model_paths = config.model_paths
  labels = scoring.model_labels(model_paths)

  if config.eval_size:
    pairs, data = pairs_lib.read_photo_pairs(config)
    largest = data["largest_side"]
  else:
    images, masks, data = pairs_lib.read_inputs(config)
    pairs, dropped = pairs_lib.pair_images_with_masks(images, masks,
                                                      config.num_images,
                                                      config.seed)
    data.update({
        "images_available": len(images),
        "masks_available": len(masks),
        "masks_outside_bins": dropped,
        "pairs": len(pairs),
        "seed": config.seed,
        "crop_size": config.crop_size
    })
    largest = config.crop_size
  hd_options = config.hd_options()
  data.update(hd_options)

  methods, extra_notes = _baselines_for(config, largest)
  models = [
      scoring.load_model(path, label, hd_options, config.eval_size)
      for path, label in zip(model_paths, labels)
  ]
  if config.eval_size:
    pixels = [scoring.generator_pixels(pair.known, hd_options)
              for pair in pairs]
    data["generator_pixels_per_photo"] = (
        int(round(sum(pixels) / len(pixels))) if pixels else 0)
  features_fn = (scoring.inception_features(config.inception_weights)
                 if config.inception_weights else None)
  scores, examples, seconds, features = scoring.evaluate_pairs(
      pairs, models, 1 if config.eval_size else config.batch_size,
      config.baseline_radius, config.num_examples, features_fn, methods,
      scoring.THUMBNAIL_SIDE if config.eval_size else None)
  table = scoring.summarize(pairs, scores)
  fid = (scoring.frechet_distances(features, table)
         if features is not None else None)
  notes = report.notes(pairs, data, table, labels[0], fid,
                       config.inception_weights) + extra_notes
  report.write_results(config.output_dir, table, pairs, scores, examples,
                       models, data, config.flag_values(), seconds, fid, notes)
  with open(os.path.join(config.output_dir, "results.json")) as f:
    return json.load(f)


def _baselines_for(config, largest_side):
  """(baselines to run, notes): --baselines, less PatchMatch when the largest
  scored photo's long side is above --patchmatch_max_side."""
  methods = list(config.baselines)
  limit = config.patchmatch_max_side
  if "patchmatch" not in methods or not limit or largest_side <= limit:
    return methods, []
  methods.remove("patchmatch")
  return methods, [
      f"PatchMatch: not run: the largest photo scored has a long side of "
      f"{largest_side} px, above --patchmatch_max_side {limit} (it takes "
      "minutes per photo at 2000 px on a CPU). Raise --patchmatch_max_side "
      "(0 = no limit) to include it."
  ]
