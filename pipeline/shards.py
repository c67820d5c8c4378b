"""Deterministic sharded TFRecord output for Beam.

Beam's WriteToTFRecord fixes the number of shards but spreads records over
them at random, so two runs give the same records in different files and
orders. Here a record's shard comes from a hash of its key and records are
sorted by key within a shard, so the same input gives byte-identical files on
any runner. Every shard is written, empty or not, so the `-of-NNNNN` names are
always complete. A shard is held in one worker's memory: choose --num_shards
so that a shard stays well under a worker's RAM.
"""

import hashlib
import struct

import apache_beam as beam
import google_crc32c
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from lbam_tf.data import records


def key_fraction(*parts):
  """A number in [0, 1) determined by `parts`, for hash splits and sharding."""
  text = ":".join(str(p) for p in parts)
  digest = hashlib.sha256(text.encode("utf-8")).digest()
  return int.from_bytes(digest[:8], "big") / 2.0 ** 64


def _masked_crc(payload):
  crc = google_crc32c.value(payload)
  return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def frame_record(payload):
  """One record in the TFRecord framing: length, its CRC, payload, its CRC."""
  length = struct.pack("<Q", len(payload))
  return (length + struct.pack("<I", _masked_crc(length)) + payload
          + struct.pack("<I", _masked_crc(payload)))


def write_gzip_file(path, chunks):
  """Writes byte chunks gzipped (zlib's header carries no timestamp)."""
  with FileSystems.create(path, compression_type=CompressionTypes.GZIP) as f:
    for chunk in chunks:
      f.write(chunk)


def write_text_file(path, text):
  with FileSystems.create(path, mime_type="text/plain",
                          compression_type=CompressionTypes.UNCOMPRESSED) as f:
    f.write(text.encode("utf-8"))


class _WriteShard(beam.DoFn):

  def __init__(self, output_dir, kind, num_shards):
    self._output_dir = output_dir
    self._kind = kind
    self._num_shards = num_shards

  def process(self, element):
    (split, shard), entries = element
    examples = sorted(entry for entry in entries if entry is not None)
    path = FileSystems.join(
        self._output_dir,
        records.shard_name(self._kind, split, shard, self._num_shards))
    write_gzip_file(path, (frame_record(payload) for _, payload in examples))
    yield split, len(examples)


class WriteShards(beam.PTransform):
  """Writes (split, sort_key, serialized) to OUTPUT/kind/split-SSSSS-of-NNNNN.tfrecord.gz.

  Returns a PCollection of (split, records in shard), one per shard written.
  """

  def __init__(self, output_dir, kind, splits, num_shards):
    super().__init__()
    self._output_dir = output_dir
    self._kind = kind
    self._splits = tuple(splits)
    self._num_shards = num_shards

  def expand(self, examples):
    num_shards = self._num_shards
    keyed = examples | "KeyByShard" >> beam.Map(
        lambda r: ((r[0], int(key_fraction("shard", r[1]) * num_shards)),
                   (r[1], r[2])))
    every_shard = examples.pipeline | "EveryShard" >> beam.Create(
        [((split, shard), None) for split in self._splits
         for shard in range(num_shards)])
    return ((keyed, every_shard)
            | "Flatten" >> beam.Flatten()
            | "GroupByShard" >> beam.GroupByKey()
            | "Write" >> beam.ParDo(
                _WriteShard(self._output_dir, self._kind, num_shards)))
