r"""Beam job: image crops and hole masks into sharded, gzipped TFRecords.

Reads images (a file glob or a TFDS dataset), decodes them robustly, resizes the
short side to --load_size, takes --crops_per_image random --crop_size crops
(determined by --seed and the image's key), splits train/val/test by a hash of
the key, and writes OUTPUT/images/{split}-SSSSS-of-NNNNN.tfrecord.gz. Draws
--num_masks masks (60 % random-shape, 40 % PConv-style irregular; the test
split stratified into hole-ratio bins) and/or ingests --mask_dir, writing
OUTPUT/masks/{train,test}-*.tfrecord.gz. Files that cannot be used go to
OUTPUT/rejected.jsonl and to Beam counters; OUTPUT/manifest.json sums it up.
lbam_tf.data reads the result; its docstring is the schema.

Runs on the DirectRunner by default. Any other argument is a Beam pipeline
option and passes through unchanged, written with '=':

  python -m pipeline.preprocess --input_pattern='examples/images/*.jpg' \
      --output_dir=out/data --num_masks=600
  python -m pipeline.preprocess ... --direct_num_workers=2 \
      --direct_running_mode=multi_processing
  python -m pipeline.preprocess ... --dask_npartitions=8 \
      --runner=apache_beam.runners.dask.dask_runner.DaskRunner \
      --dask_client_address=tcp://SCHEDULER:8786
  python -m pipeline.preprocess ... --runner=DataflowRunner --project=P \
      --region=R --temp_location=gs://B/tmp --sdk_container_image=IMAGE

(on Dataflow, IMAGE is a container with this repository and requirements.txt
installed, so workers can import lbam_tf and pipeline; Dask workers need the
same). The job uses only what every runner supports (see build()).
"""

import dataclasses
import json
import logging
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402
import apache_beam as beam  # noqa: E402
from apache_beam.io.filesystem import CompressionTypes  # noqa: E402
from apache_beam.io.filesystem import FileMetadata  # noqa: E402
from apache_beam.io.filesystems import FileSystems  # noqa: E402
from apache_beam.metrics import Metrics  # noqa: E402
from apache_beam.options.pipeline_options import PipelineOptions  # noqa: E402

from lbam_tf import bounded_read, data, decode, image_ops, masks  # noqa: E402
from pipeline import shards  # noqa: E402

NAMESPACE = "preprocess"
SMALL_IMAGE_POLICIES = ("upscale", "reject")
MASK_DIR_SPLITS = ("hash", "train", "test")
_WILDCARDS = "*?["
#: Every reason a rejected.jsonl row can give.
REJECT_REASONS = decode.REASONS + bounded_read.REASONS + ("unexpected_error",)


@dataclasses.dataclass(frozen=True)
class Config:
  """Everything the job does, as plain values (the flags, or a test's choice)."""
  output_dir: str
  input_pattern: str | None = None
  tfds_name: str | None = None
  tfds_split: str = "train"
  tfds_data_dir: str | None = None
  tfds_image_key: str = "image"
  tfds_readers: int = 8
  load_size: int = 350
  crop_size: int = 256
  crops_per_image: int = 1
  seed: int = 0
  val_fraction: float = 0.1
  test_fraction: float = 0.1
  num_shards: int = 4
  small_images: str = "upscale"
  max_pixels: int = decode.DEFAULT_MAX_PIXELS
  num_masks: int = 30000
  random_shape_fraction: float = 0.6
  mask_test_fraction: float = 0.2
  mask_dir: str | None = None
  mask_polarity: str | None = None
  mask_dir_split: str = "hash"

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
      image_ops.check_polarity(self.mask_polarity)
      if self.mask_dir_split not in MASK_DIR_SPLITS:
        raise ValueError(
            f"--mask_dir_split {self.mask_dir_split!r} is not one of {MASK_DIR_SPLITS}")
    if self.tfds_readers < 1:
      raise ValueError(f"--tfds_readers {self.tfds_readers} must be >= 1")
    return self


# Sources.

def glob_base(pattern):
  """The folder part of a glob before its first wildcard, keys are relative to it."""
  cut = min([pattern.find(c) for c in _WILDCARDS if c in pattern] or [len(pattern)])
  head = pattern[:cut]
  return head[:head.rfind("/") + 1] if "/" in head else ""


def printable(path):
  """`path` as valid UTF-8 text: bytes that are not UTF-8 in a file name (read
  by Python as lone surrogates, which no UTF-8 encoder takes) become \\xNN."""
  return path.encode("utf-8", "surrogateescape").decode("utf-8",
                                                       "backslashreplace")


def key_for(path, base):
  """A location-independent key: `path` relative to the glob's base folder,
  as printable text whatever bytes the file name holds."""
  if "://" not in path and "://" not in base:
    path, base = os.path.abspath(path), os.path.abspath(base or ".") + os.sep
  return printable(path[len(base):] if base and path.startswith(base) else path)


def _check_matches(pattern, flag):
  found = FileSystems.match([pattern], limits=[1])[0].metadata_list
  if not found:
    raise ValueError(f"{flag} {pattern!r} matches no files: check the path and quote the glob")


def list_files(pattern):
  """Metadata of the files matching a glob; listed when the job is built.

  A listed Create, unlike fileio.MatchFiles, is split into partitions by every
  runner (MatchFiles' one output bundle stays on one DaskRunner worker, where
  Reshuffle does nothing)."""
  return list(FileSystems.match([pattern])[0].metadata_list)


class ReadFiles(beam.PTransform):
  """Files matching a glob -> outcomes: kept (key, path, bytes), or rejected:
  read failures, files over `max_bytes` and entries that are not regular
  files."""

  def __init__(self, pattern, max_bytes):
    super().__init__()
    self._pattern = pattern
    self._max_bytes = max_bytes

  def expand(self, pipeline):
    entries = sorted(list_files(self._pattern)
                     + _unlisted_entries(self._pattern), key=lambda m: m.path)
    return (pipeline
            | "List" >> beam.Create(entries)
            | "Spread" >> beam.Reshuffle()
            | "Read" >> beam.ParDo(_ReadFile(glob_base(self._pattern),
                                             self._max_bytes)))


def _unlisted_entries(pattern):
  """Metadata of the entries a local glob matches that Beam's listing drops
  without a word (it skips what it cannot stat: broken symlinks, loops), so
  that reading them gives each a rejected.jsonl row."""
  if "://" in pattern:
    return []
  dropped = []
  for folder, _, names in os.walk(glob_base(pattern) or "."):
    for name in names:
      path = os.path.join(folder, name)
      try:
        os.stat(path)
      except OSError:
        dropped.append(FileMetadata(path, 0))
  return list(FileSystems.get_filesystem(pattern).match_files(dropped, pattern))


def _read_bounded(metadata, max_bytes):
  """Local files through bounded_read (regular files only, never blocking);
  other filesystems by their listed size, then reading no more than that."""
  path = metadata.path
  if "://" not in path:
    return bounded_read.read_file(path, max_bytes)
  if metadata.size_in_bytes > max_bytes:
    raise bounded_read.FileRefused(
        "too_large", path, f"holds {metadata.size_in_bytes} bytes, over the "
        f"limit of {max_bytes}")
  with FileSystems.open(
      path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
    return f.read(metadata.size_in_bytes)


class _ReadFile(beam.DoFn):

  def __init__(self, base, max_bytes):
    self._base = base
    self._max_bytes = max_bytes

  def process(self, metadata):
    path = printable(metadata.path)
    try:
      payload = _read_bounded(metadata, self._max_bytes)
    except bounded_read.FileRefused as e:
      yield _rejected(path, e.reason, e.detail)
      return
    except Exception as e:  # noqa: BLE001 -- one unreadable file must not stop the job
      yield _rejected(path, "unreadable", f"{type(e).__name__}: {e}")
      return
    yield _kept((key_for(metadata.path, self._base), path, payload))


class _ReadTfds(beam.DoFn):
  """Reads one part of a TFDS split as kept (tfds_id, tfds_id, encoded image
  bytes) outcomes."""

  def __init__(self, config):
    self._config = config

  def process(self, part):
    import tensorflow_datasets as tfds  # only TFDS runs need it
    config = self._config
    builder = tfds.builder(config.tfds_name, data_dir=config.tfds_data_dir)
    dataset = builder.as_dataset(
        split=part, shuffle_files=False,
        decoders={config.tfds_image_key: tfds.decode.SkipDecoding()},
        read_config=tfds.ReadConfig(add_tfds_id=True))
    for example in dataset.as_numpy_iterator():
      tfds_id = example["tfds_id"].decode("utf-8")
      yield _kept((tfds_id, tfds_id, example[config.tfds_image_key]))


def tfds_parts(config):
  """The TFDS split cut into --tfds_readers even parts, read in parallel."""
  import tensorflow_datasets as tfds
  return tfds.even_splits(config.tfds_split, n=config.tfds_readers)


# Images.

# Outcomes. Each DoFn has one output, ("kept", value) or ("rejected", row),
# and two plain FlatMaps take it apart: Beam 2.77's DaskRunner merges a
# ParDo's tagged outputs (with_outputs) into one collection.

def _kept(value):
  return "kept", value


def _rejected(path, reason, detail, kind="image"):
  """Counts a rejection and tags its rejected.jsonl row."""
  Metrics.counter(NAMESPACE, f"rejected_{reason}").inc()
  return "rejected", {"path": path, "reason": reason, "detail": detail,
                      "kind": kind}


def _tagged(outcome, tag):
  if outcome[0] == tag:
    yield outcome[1]


class SplitOutcomes(beam.PTransform):
  """Outcomes -> (kept values, rejected rows)."""

  def expand(self, outcomes):
    return (outcomes | "Kept" >> beam.FlatMap(_tagged, "kept"),
            outcomes | "Rejected" >> beam.FlatMap(_tagged, "rejected"))


def _outputs_or_rejection(path, kind, make):
  """make()'s list of outputs, or one rejected row if it raises anything.

  One bad element must neither stop the job nor leave half its outputs
  behind; an error this code did not foresee is also logged with its trace.
  """
  try:
    return make()
  except decode.Rejected as e:
    return [_rejected(path, e.reason, e.detail, kind)]
  except Exception as e:  # noqa: BLE001 -- see the docstring
    logging.exception("rejected %s after an unexpected error", path)
    return [_rejected(path, "unexpected_error", f"{type(e).__name__}: {e}",
                      kind)]


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
    records = _outputs_or_rejection(
        path, "image", lambda: [_kept(r) for r in self._records(key, payload)])
    if records and records[0][0] == "kept":
      Metrics.counter(NAMESPACE, "images_decoded").inc()
      Metrics.counter(NAMESPACE, "crops_written").inc(len(records))
    yield from records

  def _records(self, key, payload):
    config = self._config
    image = decode.decode_image(payload, config.max_pixels, config.load_size)
    if min(image.shape[:2]) < config.crop_size and config.small_images == "reject":
      raise decode.Rejected(
          "too_small", f"{image.shape[1]}x{image.shape[0]} is below "
          f"--crop_size {config.crop_size}; --small_images=upscale would "
          "keep it")
    shape = decode.resized_shape(image.shape, config.load_size)
    split = split_of(key, config.val_fraction, config.test_fraction)
    offsets = decode.crop_offsets(key, config.seed, shape, config.crop_size,
                                  config.crops_per_image)
    crops = decode.resized_crops(image, shape, offsets, config.crop_size)
    return [(split, f"{key}#{index:04d}", data.image_example(crop, key, offset))
            for index, (crop, offset) in enumerate(zip(crops, offsets))]


# Masks.

def generate_mask(spec, config):
  """(split, kind, index, hole_range) -> (split, source, example, hole ratio)."""
  split, kind, index, hole_range = spec
  mask = masks.generate(kind, masks.seeded_rng(config.seed, "mask", split, kind, index),
                        (config.crop_size, config.crop_size), hole_range)
  Metrics.counter(NAMESPACE, f"masks_{kind}").inc()
  source = f"{kind}/{split}/{index:06d}"
  return split, source, data.mask_example(mask, source), masks.hole_ratio(mask)


class IngestMask(beam.DoFn):
  """(key, path, bytes) of a mask file -> outcome: kept (split, source,
  example, hole ratio), or rejected."""

  def __init__(self, config):
    self._config = config

  def process(self, element):
    key, path, payload = element
    records = _outputs_or_rejection(
        path, "mask", lambda: [_kept(self._record(key, payload))])
    if records[0][0] == "kept":
      Metrics.counter(NAMESPACE, "masks_ingested").inc()
    yield from records

  def _record(self, key, payload):
    config = self._config
    mask = decode.decode_mask(payload, config.max_pixels, config.mask_polarity,
                              config.crop_size)
    split = config.mask_dir_split
    if split == "hash":
      split = split_of(key, 0.0, config.mask_test_fraction)
    return split, key, data.mask_example(mask, key), masks.hole_ratio(mask)


# Reports.

def _write_reports(grouped, config):
  """(None, stats and rejected rows) -> rejected.jsonl and manifest.json."""
  _, entries = grouped
  rows = [value for section, _, value in entries if section == "rejected_row"]
  lines = sorted(json.dumps(row, sort_keys=True) for row in rows)
  shards.write_text_file(FileSystems.join(config.output_dir, "rejected.jsonl"),
                         "".join(line + "\n" for line in lines))
  counts = {"images": {s: 0 for s in data.IMAGE_SPLITS},
            "masks": {s: 0 for s in data.MASK_SPLITS}}
  histogram = {s: masks.ratio_histogram([]) for s in data.MASK_SPLITS}
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
      "schema": data.SCHEMA,
  }
  shards.write_text_file(
      FileSystems.join(config.output_dir, data.MANIFEST_NAME),
      json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def _mask_pattern(mask_dir):
  """--mask_dir as a file pattern: a folder means every file in it."""
  if any(c in mask_dir for c in _WILDCARDS):
    return mask_dir
  return FileSystems.join(mask_dir, "*")


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
      outcomes = pipeline | "ReadImages" >> ReadFiles(
          config.input_pattern, decode.max_file_bytes(config.max_pixels))
    else:
      outcomes = (pipeline
                  | "TfdsParts" >> beam.Create(tfds_parts(config))
                  | "ReadTfds" >> beam.ParDo(_ReadTfds(config))
                  | "SpreadTfds" >> beam.Reshuffle())
    files, unread = outcomes | "ReadOutcomes" >> SplitOutcomes()
    crops, undecoded = (files
                        | "Crop" >> beam.ParDo(CropImage(config))
                        | "CropOutcomes" >> SplitOutcomes())
    rejected += [unread, undecoded]
    written = crops | "WriteImages" >> shards.WriteShards(
        config.output_dir, "images", data.IMAGE_SPLITS, config.num_shards)
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
                     | "Generate" >> beam.Map(generate_mask, config))
  if config.mask_dir:
    outcomes = pipeline | "ReadMasks" >> ReadFiles(
        _mask_pattern(config.mask_dir),
        decode.max_file_bytes(config.max_pixels))
    mask_files, unread = outcomes | "MaskReadOutcomes" >> SplitOutcomes()
    ingested, undecoded = (mask_files
                           | "Ingest" >> beam.ParDo(IngestMask(config))
                           | "IngestOutcomes" >> SplitOutcomes())
    rejected += [unread, undecoded]
    mask_sets.append(ingested)
  if mask_sets:
    all_masks = mask_sets | "AllMasks" >> beam.Flatten()
    written = (all_masks
               | "MaskRecords" >> beam.Map(lambda m: (m[0], m[1], m[2]))
               | "WriteMasks" >> shards.WriteShards(
                   config.output_dir, "masks", data.MASK_SPLITS,
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
       | "WriteReports" >> beam.Map(_write_reports, config))


def run(config, beam_args=()):
  """Runs the job to completion; returns the Beam PipelineResult."""
  config.check()
  if config.input_pattern:
    _check_matches(config.input_pattern, "--input_pattern")
  if config.mask_dir:
    _check_matches(_mask_pattern(config.mask_dir), "--mask_dir")
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
  query = metrics.query(beam.metrics.MetricsFilter().with_namespace(NAMESPACE))
  totals = {}
  for counter in query["counters"]:
    name = counter.key.metric.name
    totals[name] = totals.get(name, 0) + counter.committed
  return dict(sorted(totals.items()))


# The command line.

_DEFAULT = {field.name: field.default for field in dataclasses.fields(Config)}


def define_flags():
  """Declares the command line; only when run as a program, so that importing
  this module (tests, benchmarks) cannot clash with other modules' flags.

  Defaults are Config's, so the command line and a Config built in code
  agree."""
  flags.DEFINE_string("input_pattern", _DEFAULT["input_pattern"],
                      "Glob of image files, local or on any filesystem Beam reads "
                      "(gs://, s3://, hdfs://); quote it. Keys are paths relative "
                      "to the glob's folder. Or use --tfds_name.")
  flags.DEFINE_string("tfds_name", _DEFAULT["tfds_name"],
                      "TFDS dataset to read instead of --input_pattern, e.g. "
                      "places365_small; it must already be downloaded into "
                      "--tfds_data_dir.")
  flags.DEFINE_string("tfds_split", _DEFAULT["tfds_split"],
                      "TFDS split to read, e.g. train or train[:10%].")
  flags.DEFINE_string("tfds_data_dir", _DEFAULT["tfds_data_dir"],
                      "TFDS data_dir (default: TFDS's own, ~/tensorflow_datasets).")
  flags.DEFINE_string("tfds_image_key", _DEFAULT["tfds_image_key"],
                      "Feature of the TFDS examples that holds the image.")
  flags.DEFINE_integer("tfds_readers", _DEFAULT["tfds_readers"],
                       "Parts the TFDS split is cut into, read in parallel.")
  flags.DEFINE_string("output_dir", None,
                      "Where images/, masks/, manifest.json and rejected.jsonl go.")
  flags.DEFINE_integer("load_size", _DEFAULT["load_size"],
                       "Images are resized so their short side is this many pixels.")
  flags.DEFINE_integer("crop_size", _DEFAULT["crop_size"],
                       "Side of the square crops and of the masks. Must be <= "
                       "--load_size; training may crop smaller again.")
  flags.DEFINE_integer("crops_per_image", _DEFAULT["crops_per_image"],
                       "Random crops per image, placed by --seed and the image's key.")
  flags.DEFINE_integer("seed", _DEFAULT["seed"],
                       "Seed of crop positions and generated masks; same seed, same files.")
  flags.DEFINE_float("val_fraction", _DEFAULT["val_fraction"],
                     "Share of source images in the val split (by hash of the key).")
  flags.DEFINE_float("test_fraction", _DEFAULT["test_fraction"],
                     "Share of source images in the test split (by hash of the key).")
  flags.DEFINE_integer("num_shards", _DEFAULT["num_shards"],
                       "Files per split for images and for masks. A shard is "
                       "assembled in one worker's memory: raise it for big data.")
  flags.DEFINE_enum("small_images", _DEFAULT["small_images"], SMALL_IMAGE_POLICIES,
                    "Images with a side below --crop_size: upscale them, or "
                    "reject them into rejected.jsonl.")
  flags.DEFINE_integer("max_pixels", _DEFAULT["max_pixels"],
                       "Images (and masks) with more pixels than this are "
                       "rejected as decompression bombs before decoding, and "
                       "files over 8 bytes per such pixel + 64 MiB before "
                       "reading. Decoding takes up to ~18 bytes per pixel.")
  flags.DEFINE_integer("num_masks", _DEFAULT["num_masks"],
                       "Masks to generate (0: none, e.g. with --mask_dir only). "
                       "Use a few hundred for a demo.")
  flags.DEFINE_float("random_shape_fraction", _DEFAULT["random_shape_fraction"],
                     "Share of generated masks that are random-shape (brush "
                     "strokes, boxes); the rest are PConv-style irregular.")
  flags.DEFINE_float("mask_test_fraction", _DEFAULT["mask_test_fraction"],
                     "Share of masks in the test split; generated test masks are "
                     "rounded to equal counts in the six hole-ratio bins.")
  flags.DEFINE_string("mask_dir", _DEFAULT["mask_dir"],
                      "Folder (or glob) of existing mask files to ingest, e.g. "
                      "NVIDIA's irregular masks; needs --mask_polarity.")
  flags.DEFINE_enum("mask_polarity", _DEFAULT["mask_polarity"], list(image_ops.POLARITIES),
                    "Which colour marks holes in --mask_dir files: white or "
                    "black (NVIDIA's zip: black). Required with --mask_dir.")
  flags.DEFINE_enum("mask_dir_split", _DEFAULT["mask_dir_split"], MASK_DIR_SPLITS,
                    "Split of ingested masks: by hash of the file key (with "
                    "--mask_test_fraction), or all train, or all test.")
  flags.mark_flag_as_required("output_dir")

FLAGS = flags.FLAGS


def _parse(argv):
  # Unknown flags are Beam pipeline options and pass through.
  return FLAGS(argv, known_only=True)


def main(argv):
  logging.getLogger().setLevel(logging.INFO)
  config = Config(**{field.name: FLAGS[field.name].value
                     for field in dataclasses.fields(Config)})
  try:
    config.check()
  except ValueError as e:
    raise app.UsageError(str(e)) from None
  result = run(config, argv[1:])
  totals = counters(result)
  if totals is None:
    print("this runner reports no Beam counters; manifest.json has the counts")
  for name, value in (totals or {}).items():
    print(f"{name}: {value}")
  print(f"wrote {config.output_dir}/manifest.json")


if __name__ == "__main__":
  define_flags()
  app.run(main, flags_parser=_parse)
