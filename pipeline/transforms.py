"""The Beam job's per-element steps: splits, crops, masks, and the reports.

Each DoFn turns one element into outcomes (`pipeline.outcomes`), so one bad
file is a rejected.jsonl row, never a failed job.
"""

import dataclasses
import json

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from lbam_tf import seeding
from lbam_tf.data import masks
from lbam_tf.data import records
from lbam_tf.images import bounded_read
from lbam_tf.images import decode
from lbam_tf.images import resize
from pipeline import shards
from pipeline.outcomes import kept
from pipeline.outcomes import NAMESPACE
from pipeline.outcomes import outputs_or_rejection

#: Every reason a rejected.jsonl row can give.
REJECT_REASONS = decode.REASONS + bounded_read.REASONS + ("unexpected_error",)


def split_of(key, val_fraction, test_fraction):
  """train, val or test from a hash of the key (independent of --seed)."""
  u = shards.key_fraction("split", key)
  if u < test_fraction:
    return "test"
  return "val" if u < test_fraction + val_fraction else "train"


class CropImage(beam.DoFn):
  """(key, path, bytes) -> outcomes: kept (split, record key, serialized
  example) per crop, or rejected."""

  def __init__(self, config):
    self._config = config

  def process(self, element):
    key, path, payload = element
    outcomes = outputs_or_rejection(
        path, "image", lambda: [kept(r) for r in self._records(key, payload)])
    if outcomes and outcomes[0][0] == "kept":
      Metrics.counter(NAMESPACE, "images_decoded").inc()
      Metrics.counter(NAMESPACE, "crops_written").inc(len(outcomes))
    yield from outcomes

  def _records(self, key, payload):
    config = self._config
    image = decode.decode_image(payload, config.max_pixels, config.load_size)
    if min(image.shape[:2]) < config.crop_size and config.small_images == "reject":
      raise decode.Rejected(
          "too_small", f"{image.shape[1]}x{image.shape[0]} is below "
          f"--crop_size {config.crop_size}; --small_images=upscale would "
          "keep it")
    shape = resize.resized_shape(image.shape, config.load_size)
    split = split_of(key, config.val_fraction, config.test_fraction)
    offsets = resize.crop_offsets(key, config.seed, shape, config.crop_size,
                                  config.crops_per_image)
    crops = resize.resized_crops(image, shape, offsets, config.crop_size)
    return [(split, f"{key}#{index:04d}", records.image_example(crop, key, offset))
            for index, (crop, offset) in enumerate(zip(crops, offsets))]


def generate_mask(spec, config):
  """(split, kind, index, hole_range) -> (split, source, example, hole ratio)."""
  split, kind, index, hole_range = spec
  mask = masks.generate(kind, seeding.seeded_rng(config.seed, "mask", split, kind, index),
                        (config.crop_size, config.crop_size), hole_range)
  Metrics.counter(NAMESPACE, f"masks_{kind}").inc()
  source = f"{kind}/{split}/{index:06d}"
  return split, source, records.mask_example(mask, source), masks.hole_ratio(mask)


class IngestMask(beam.DoFn):
  """(key, path, bytes) of a mask file -> outcome: kept (split, source,
  example, hole ratio), or rejected."""

  def __init__(self, config):
    self._config = config

  def process(self, element):
    key, path, payload = element
    outcomes = outputs_or_rejection(
        path, "mask", lambda: [kept(self._record(key, payload))])
    if outcomes[0][0] == "kept":
      Metrics.counter(NAMESPACE, "masks_ingested").inc()
    yield from outcomes

  def _record(self, key, payload):
    config = self._config
    mask = decode.decode_mask(payload, config.max_pixels, config.mask_polarity,
                              config.crop_size)
    split = config.mask_dir_split
    if split == "hash":
      split = split_of(key, 0.0, config.mask_test_fraction)
    return split, key, records.mask_example(mask, key), masks.hole_ratio(mask)


def write_reports(grouped, config):
  """(None, stats and rejected rows) -> rejected.jsonl and manifest.json."""
  _, entries = grouped
  rows = [value for section, _, value in entries if section == "rejected_row"]
  lines = sorted(json.dumps(row, sort_keys=True) for row in rows)
  shards.write_text_file(FileSystems.join(config.output_dir, "rejected.jsonl"),
                         "".join(line + "\n" for line in lines))
  counts = {"images": {s: 0 for s in records.IMAGE_SPLITS},
            "masks": {s: 0 for s in records.MASK_SPLITS}}
  histogram = {s: masks.ratio_histogram([]) for s in records.MASK_SPLITS}
  rejected = {"total": len(rows),
              "by_reason": {r: 0 for r in REJECT_REASONS}}
  for row in rows:
    rejected["by_reason"][row["reason"]] += 1
  input_files = 0
  for section, name, value in entries:
    if section in counts:
      counts[section][name] += value
    elif section == "hole_ratio":
      split, label = name
      histogram[split][label] += value
    elif section == "input_files":
      input_files += value
  manifest = {
      "counts": counts,
      "input_files": input_files,
      "rejected": rejected,
      "mask_hole_ratio_histogram": histogram,
      "flags": dataclasses.asdict(config),
      "schema": records.SCHEMA,
  }
  shards.write_text_file(
      FileSystems.join(config.output_dir, records.MANIFEST_NAME),
      json.dumps(manifest, indent=2, sort_keys=True) + "\n")
