"""Where the Beam job's bytes come from: file globs and TFDS splits.

Every source yields outcomes (`pipeline.outcomes`): kept (key, path, bytes),
or a rejected row for what cannot be read. Keys are location-independent, so
a job's splits and crops do not depend on where the files lie.
"""

import os

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystem import FileMetadata
from apache_beam.io.filesystems import FileSystems

from lbam_tf.images import bounded_read
from pipeline.outcomes import kept
from pipeline.outcomes import rejected

_WILDCARDS = "*?["


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


def check_matches(pattern, flag):
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
      yield rejected(path, e.reason, e.detail)
      return
    except Exception as e:  # noqa: BLE001 -- one unreadable file must not stop the job
      yield rejected(path, "unreadable", f"{type(e).__name__}: {e}")
      return
    yield kept((key_for(metadata.path, self._base), path, payload))


class ReadTfds(beam.DoFn):
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
      yield kept((tfds_id, tfds_id, example[config.tfds_image_key]))


def tfds_parts(config):
  """The TFDS split cut into --tfds_readers even parts, read in parallel."""
  import tensorflow_datasets as tfds
  return tfds.even_splits(config.tfds_split, n=config.tfds_readers)


def mask_pattern(mask_dir):
  """--mask_dir as a file pattern: a folder means every file in it."""
  if any(c in mask_dir for c in _WILDCARDS):
    return mask_dir
  return FileSystems.join(mask_dir, "*")
