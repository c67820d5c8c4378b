r"""Beam job: image crops and hole masks into sharded, gzipped TFRecords.

Reads images (a file glob or a TFDS dataset), takes --crops_per_image random
--crop_size crops of each (resized to --load_size; placed by --seed and the
image's key), splits train/val/test by a hash of the key and writes
OUTPUT/images/; draws --num_masks masks and/or ingests --mask_dir into
OUTPUT/masks/; unusable files go to OUTPUT/rejected.jsonl, the counts to
OUTPUT/manifest.json. lbam_tf.data.records reads the result (its docstring is
the schema). Any other argument is a Beam pipeline option, written with '=':

  python -m pipeline.preprocess --input_pattern='examples/images/*.jpg' \
      --output_dir=out/data --num_masks=600
  python -m pipeline.preprocess ... --direct_num_workers=2 \
      --direct_running_mode=multi_processing

DirectRunner by default; Dask, Dataflow and the job's limits: README.md,
"Data pipeline". The job uses only what every runner supports (see build()).
"""

import dataclasses
import logging
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402
import apache_beam as beam  # noqa: E402
from apache_beam.options.pipeline_options import PipelineOptions  # noqa: E402

from lbam_tf import cli  # noqa: E402
from lbam_tf.data import masks  # noqa: E402
from lbam_tf.data import records  # noqa: E402
from lbam_tf.images import decode  # noqa: E402
from lbam_tf.images import polarity as polarity_rule  # noqa: E402
from pipeline import outcomes as outcomes_lib  # noqa: E402
from pipeline import shards  # noqa: E402
from pipeline import sources  # noqa: E402
from pipeline import transforms  # noqa: E402

SMALL_IMAGE_POLICIES = ("upscale", "reject")
MASK_DIR_SPLITS = ("hash", "train", "test")


@dataclasses.dataclass(frozen=True)
class Config:
  """Everything the job does, as plain values (the flags, or a test's choice)."""
  output_dir: str = cli.option(
      help="Where images/, masks/, manifest.json and rejected.jsonl go.")
  input_pattern: str | None = cli.option(
      None, "Glob of image files, local or on any filesystem Beam reads "
      "(gs://, s3://, hdfs://); quote it. Keys are paths relative to the "
      "glob's folder. Or use --tfds_name.")
  tfds_name: str | None = cli.option(
      None, "TFDS dataset to read instead of --input_pattern, e.g. "
      "places365_small; it must already be downloaded into "
      "--tfds_data_dir.")
  tfds_split: str = cli.option(
      "train", "TFDS split to read, e.g. train or train[:10%].")
  tfds_data_dir: str | None = cli.option(
      None, "TFDS data_dir (default: TFDS's own, ~/tensorflow_datasets).")
  tfds_image_key: str = cli.option(
      "image", "Feature of the TFDS examples that holds the image.")
  tfds_readers: int = cli.option(
      8, "Parts the TFDS split is cut into, read in parallel.")
  load_size: int = cli.option(
      350, "Images are resized so their short side is this many pixels.")
  crop_size: int = cli.option(
      256, "Side of the square crops and of the masks. Must be <= "
      "--load_size; training may crop smaller again.")
  crops_per_image: int = cli.option(
      1, "Random crops per image, placed by --seed and the image's key.")
  seed: int = cli.option(
      0, "Seed of crop positions and generated masks; same seed, same "
      "files.")
  val_fraction: float = cli.option(
      0.1, "Share of source images in the val split (by hash of the key).")
  test_fraction: float = cli.option(
      0.1, "Share of source images in the test split (by hash of the key).")
  num_shards: int = cli.option(
      4, "Files per split for images and for masks. A shard is assembled in "
      "one worker's memory: raise it for big data.")
  small_images: str = cli.option(
      "upscale", "Images with a side below --crop_size: upscale them, or "
      "reject them into rejected.jsonl.", choices=SMALL_IMAGE_POLICIES)
  max_pixels: int = cli.option(
      decode.DEFAULT_MAX_PIXELS, "Images (and masks) with more pixels than "
      "this are rejected as decompression bombs before decoding, and files "
      "over 8 bytes per such pixel + 64 MiB before reading. Decoding takes "
      "up to ~18 bytes per pixel.")
  num_masks: int = cli.option(
      30000, "Masks to generate (0: none, e.g. with --mask_dir only). Use a "
      "few hundred for a demo.")
  random_shape_fraction: float = cli.option(
      0.6, "Share of generated masks that are random-shape (brush strokes, "
      "boxes); the rest are PConv-style irregular.")
  mask_test_fraction: float = cli.option(
      0.2, "Share of masks in the test split; generated test masks are "
      "rounded to equal counts in the six hole-ratio bins.")
  mask_dir: str | None = cli.option(
      None, "Folder (or glob) of existing mask files to ingest, e.g. "
      "NVIDIA's irregular masks; needs --mask_polarity.")
  mask_polarity: str | None = cli.option(
      None, "Which colour marks holes in --mask_dir files: white or black "
      "(NVIDIA's zip: black). Required with --mask_dir.",
      choices=polarity_rule.POLARITIES)
  mask_dir_split: str = cli.option(
      "hash", "Split of ingested masks: by hash of the file key (with "
      "--mask_test_fraction), or all train, or all test.",
      choices=MASK_DIR_SPLITS)

  def check(self):
    """Raises ValueError naming the bad value and what to do instead."""
    if self.input_pattern and self.tfds_name:
      raise ValueError("give --input_pattern or --tfds_name, not both")
    if self.crop_size < 1 or self.load_size < self.crop_size:
      raise ValueError(
          f"--load_size {self.load_size} must be >= --crop_size "
          f"{self.crop_size} >= 1: crops are taken from the resized image")
    if self.crops_per_image < 1:
      raise ValueError(f"--crops_per_image {self.crops_per_image} must be >= 1")
    if not (0 <= self.val_fraction and 0 <= self.test_fraction
            and self.val_fraction + self.test_fraction < 1):
      raise ValueError(
          f"--val_fraction {self.val_fraction} and --test_fraction "
          f"{self.test_fraction} must be >= 0 and sum to less than 1")
    if self.num_shards < 1:
      raise ValueError(f"--num_shards {self.num_shards} must be >= 1")
    if self.small_images not in SMALL_IMAGE_POLICIES:
      raise ValueError(
          f"--small_images {self.small_images!r} is not one of {SMALL_IMAGE_POLICIES}")
    if self.max_pixels < 1:
      raise ValueError(f"--max_pixels {self.max_pixels} must be >= 1")
    # Checks the three values.
    masks.plan(self.num_masks, self.mask_test_fraction, self.random_shape_fraction)
    if self.mask_dir:
      if self.mask_polarity is None:
        raise ValueError(
            f"--mask_dir {self.mask_dir} needs --mask_polarity white or black "
            "(which colour marks holes in those files); it is never guessed")
      polarity_rule.check(self.mask_polarity)
      if self.mask_dir_split not in MASK_DIR_SPLITS:
        raise ValueError(
            f"--mask_dir_split {self.mask_dir_split!r} is not one of {MASK_DIR_SPLITS}")
    if self.tfds_readers < 1:
      raise ValueError(f"--tfds_readers {self.tfds_readers} must be >= 1")
    return self


# The pipeline.

def build(pipeline, config):
  """Adds the whole job to `pipeline`; reads top to bottom.

  Built from what every Beam runner runs: Create, single-output ParDo,
  GroupByKey, Flatten. No side inputs, no tagged outputs, and one last step
  that every other leads to (Beam 2.77's DaskRunner computes only what its
  last step depends on)."""
  rejected, stats = [], []

  # Images: read, decode, crop, split, write.
  if config.input_pattern or config.tfds_name:
    if config.input_pattern:
      outcomes = pipeline | "ReadImages" >> sources.ReadFiles(
          config.input_pattern, decode.max_file_bytes(config.max_pixels))
    else:
      outcomes = (pipeline
                  | "TfdsParts" >> beam.Create(sources.tfds_parts(config))
                  | "ReadTfds" >> beam.ParDo(sources.ReadTfds(config))
                  | "SpreadTfds" >> beam.Reshuffle())
    files, unread = outcomes | "ReadOutcomes" >> outcomes_lib.SplitOutcomes()
    crops, undecoded = (files
                        | "Crop" >> beam.ParDo(transforms.CropImage(config))
                        | "CropOutcomes" >> outcomes_lib.SplitOutcomes())
    rejected += [unread, undecoded]
    written = crops | "WriteImages" >> shards.WriteShards(
        config.output_dir, "images", records.IMAGE_SPLITS, config.num_shards)
    stats.append(written | "ImageCounts" >> beam.Map(lambda s: ("images", s[0], s[1])))
    stats.append(files | "InputStat" >> beam.Map(
        lambda _: ("input_files", None, 1)))

  # Masks: generated from a plan (stratified test bins) and/or ingested.
  mask_sets = []
  if config.num_masks:
    plan = masks.plan(config.num_masks, config.mask_test_fraction,
                      config.random_shape_fraction)
    mask_sets.append(pipeline
                     | "MaskPlan" >> beam.Create(plan)
                     | "SpreadMasks" >> beam.Reshuffle()
                     | "Generate" >> beam.Map(transforms.generate_mask, config))
  if config.mask_dir:
    outcomes = pipeline | "ReadMasks" >> sources.ReadFiles(
        sources.mask_pattern(config.mask_dir),
        decode.max_file_bytes(config.max_pixels))
    mask_files, unread = outcomes | "MaskReadOutcomes" >> outcomes_lib.SplitOutcomes()
    ingested, undecoded = (mask_files
                           | "Ingest" >> beam.ParDo(transforms.IngestMask(config))
                           | "IngestOutcomes" >> outcomes_lib.SplitOutcomes())
    rejected += [unread, undecoded]
    mask_sets.append(ingested)
  if mask_sets:
    all_masks = mask_sets | "AllMasks" >> beam.Flatten()
    written = (all_masks
               | "MaskRecords" >> beam.Map(lambda m: (m[0], m[1], m[2]))
               | "WriteMasks" >> shards.WriteShards(
                   config.output_dir, "masks", records.MASK_SPLITS,
                   config.num_shards))
    stats.append(written | "MaskCounts" >> beam.Map(lambda s: ("masks", s[0], s[1])))
    stats.append(all_masks | "HoleBins" >> beam.Map(
        lambda m: ("hole_ratio", (m[0], masks.ratio_label(m[3])), 1)))

  # Reports: stats summed per (section, name), with every rejected row,
  # gathered under one key into the step that writes rejected.jsonl and
  # manifest.json. The seed row makes the gathering non-empty.
  stats.append(pipeline | "SeedStat" >> beam.Create([("input_files", None, 0)]))
  entries = [stats
             | "AllStats" >> beam.Flatten()
             | "StatKeys" >> beam.Map(lambda s: ((s[0], s[1]), s[2]))
             | "SumStats" >> beam.CombinePerKey(sum)
             | "StatRows" >> beam.Map(lambda kv: (*kv[0], kv[1]))]
  if rejected:
    entries.append(rejected
                   | "AllRejected" >> beam.Flatten()
                   | "RejectedRows" >> beam.Map(
                       lambda row: ("rejected_row", None, row)))
  _ = (entries
       | "AllEntries" >> beam.Flatten()
       | "OneKey" >> beam.Map(lambda entry: (None, entry))
       | "Gather" >> beam.GroupByKey()
       | "WriteReports" >> beam.Map(transforms.write_reports, config))


def run(config, beam_args=()):
  """Runs the job to completion; returns the Beam PipelineResult."""
  config.check()
  if config.input_pattern:
    sources.check_matches(config.input_pattern, "--input_pattern")
  if config.mask_dir:
    sources.check_matches(sources.mask_pattern(config.mask_dir), "--mask_dir")
  options = PipelineOptions(list(beam_args))
  pipeline = beam.Pipeline(options=options)
  build(pipeline, config)
  result = pipeline.run()
  result.wait_until_finish()
  return result


def counters(result):
  """{name: value} of the job's Beam counters; None where the runner keeps
  none (the DaskRunner): manifest.json has the counts either way."""
  try:
    metrics = result.metrics()
  except NotImplementedError:
    return None
  query = metrics.query(beam.metrics.MetricsFilter().with_namespace(outcomes_lib.NAMESPACE))
  totals = {}
  for counter in query["counters"]:
    name = counter.key.metric.name
    totals[name] = totals.get(name, 0) + counter.committed
  return dict(sorted(totals.items()))


# The command line.

FLAGS = flags.FLAGS


def _parse(argv):
  # Unknown flags are Beam pipeline options and pass through.
  return FLAGS(argv, known_only=True)


def main(argv):
  logging.getLogger().setLevel(logging.INFO)
  config = cli.from_flags(Config)
  result = run(config, argv[1:])
  totals = counters(result)
  if totals is None:
    print("this runner reports no Beam counters; manifest.json has the counts")
  for name, value in (totals or {}).items():
    print(f"{name}: {value}")
  print(f"wrote {config.output_dir}/manifest.json")


if __name__ == "__main__":
  cli.define_flags(Config)
  app.run(main, flags_parser=_parse)
