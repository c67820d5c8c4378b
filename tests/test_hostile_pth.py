"""The `.pth` reader against hostile checkpoints, crafted here.

Each file is read in a child process under a time limit and an address-space
limit (RLIMIT_AS), so that one which would hang the reader or make it
allocate gigabytes fails the test instead of the machine. The reader must
answer every one with its documented error, quickly.
"""

import collections
import io
import json
import os
import pickle
import struct
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch

import fuzz

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECONDS = 60
HEADROOM_BYTES = 512 << 20

# Reads argv[1] (a file, or a folder of files) with the address space capped
# at what the process maps after its imports plus argv[2] bytes; prints one
# JSON line per file: "read" or the error's type, and its message.
_CHILD = """
import json, os, resource, sys
from lbam_tf.weights import torch_checkpoint
with open("/proc/self/status") as f:
  mapped = next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmSize"))
limit = mapped + int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
target = sys.argv[1]
paths = ([os.path.join(target, n) for n in sorted(os.listdir(target))]
         if os.path.isdir(target) else [target])
for path in paths:
  try:
    got = torch_checkpoint.read_pth(path)
    print(json.dumps({"path": path, "outcome": "read"}))
  except Exception as e:
    print(json.dumps({"path": path, "outcome": type(e).__name__,
                      "message": str(e)}))
"""


def read_limited(path):
  """[{path, outcome, message}] of reading `path` in a limited child."""
  env = dict(os.environ, PYTHONPATH=ROOT, MALLOC_ARENA_MAX="2")
  try:
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path), str(HEADROOM_BYTES)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=SECONDS)
  except subprocess.TimeoutExpired:
    pytest.fail(f"reading {path} did not finish in {SECONDS} s")
  assert done.returncode == 0, done.stderr[-3000:]
  return [json.loads(line) for line in done.stdout.splitlines()]


def _read_one(path):
  (result,) = read_limited(path)
  return result


class _Storage:
  """Pickles as the persistent id torch gives a storage."""

  def __init__(self, key, numel, storage_type="FloatStorage"):
    self.key, self.numel, self.storage_type = key, numel, storage_type


class _Tensor:
  """Pickles as torch does a tensor, with any size, stride and offset."""

  def __init__(self, storage, offset, size, stride):
    self.args = (storage, offset, size, stride, False,
                 collections.OrderedDict())

  def __reduce__(self):
    return torch._utils._rebuild_tensor_v2, self.args


class _TorchPickler(pickle.Pickler):

  def persistent_id(self, obj):
    if isinstance(obj, _Storage):
      return ("storage", getattr(torch, obj.storage_type), obj.key, "cpu",
              obj.numel)
    return None


def _pickled(obj):
  buffer = io.BytesIO()
  _TorchPickler(buffer, protocol=2).dump(obj)
  return buffer.getvalue()


def write_zip(path, pickled, storages=(), compression=zipfile.ZIP_STORED):
  """A zip checkpoint in torch's layout: archive/data.pkl, archive/data/KEY."""
  with zipfile.ZipFile(path, "w", compression) as archive:
    archive.writestr("archive/data.pkl", pickled)
    for key, data in dict(storages).items():
      archive.writestr(f"archive/data/{key}", data)
  return path


def write_legacy(path, sys_info, obj, keys=()):
  with open(path, "wb") as f:
    for part in (0x1950A86A20F9469CFC6C, 1001, sys_info):
      pickle.dump(part, f, protocol=2)
    f.write(_pickled(obj))
    pickle.dump(list(keys), f, protocol=2)
  return path


def _doubling_lists(levels):
  node = [0]
  for _ in range(levels):
    node = [node, node]
  return node


def test_shared_references_are_visited_once(tmp_path):
  # A few hundred bytes whose tree has 2**40 leaves; walked per reference,
  # 22 levels took seconds and hundreds of MB, 40 would never finish.
  path = write_zip(tmp_path / "shared.pth", _pickled(_doubling_lists(40)))
  assert os.path.getsize(path) < 1000
  result = _read_one(path)
  assert result["outcome"] == "read"
  # And in process: the result keeps the sharing.
  from lbam_tf.weights import torch_checkpoint
  got = torch_checkpoint.read_pth(path)
  assert got[0] is got[1]


def test_a_deflate_bomb_is_refused(tmp_path):
  # 64 MB of zeros in about 64 KB: read whole before, whatever it expands to.
  zeros = np.zeros(16 << 20, np.float32)
  pickled = _pickled({"w": _Tensor(_Storage("0", zeros.size), 0,
                                   (zeros.size,), (1,))})
  path = write_zip(tmp_path / "bomb.pth", pickled, {"0": zeros.tobytes()},
                   zipfile.ZIP_DEFLATED)
  assert os.path.getsize(path) < (256 << 10)
  result = _read_one(path)
  assert result["outcome"] == "ValueError"
  assert "expands beyond 200 times" in result["message"]


def _alias_member(path, name, alias):
  """Adds a central directory entry `alias` for member `name`'s bytes: two
  names over one byte range, the overlapping-member zip bomb."""
  data = bytearray(path.read_bytes())
  end = data.rfind(b"PK\x05\x06")
  entries, size, start = struct.unpack("<HII", data[end + 10:end + 20])
  found = None
  at = start
  while at < start + size:
    name_length, extra_length, comment_length = struct.unpack(
        "<HHH", data[at + 28:at + 34])
    stop = at + 46 + name_length + extra_length + comment_length
    if data[at + 46:at + 46 + name_length] == name.encode():
      found = bytearray(data[at:stop])
    at = stop
  assert found is not None and len(alias) == len(name)
  found[46:46 + len(alias)] = alias.encode()
  directory = data[start:start + size] + found
  tail = bytearray(data[end:])
  tail[8:16] = struct.pack("<HHI", entries + 1, entries + 1, len(directory))
  tail[16:20] = struct.pack("<I", start)
  path.write_bytes(bytes(data[:start] + directory + tail))


def test_overlapping_members_are_refused(tmp_path):
  storage = np.arange(4, dtype=np.float32).tobytes()
  pickled = _pickled({"a": _Tensor(_Storage("0", 4), 0, (4,), (1,)),
                      "b": _Tensor(_Storage("1", 4), 0, (4,), (1,))})
  path = write_zip(tmp_path / "overlap.pth", pickled, {"0": storage})
  _alias_member(path, "archive/data/0", "archive/data/1")
  result = _read_one(path)
  # zipfile's own BadZipFile (header name mismatch) escaped before.
  assert result["outcome"] == "ValueError"
  assert "overlaps another" in result["message"]


@pytest.mark.parametrize("size, stride, offset, match", [
    ((10_000, 10_000), (0, 0), 0, "runs past its storage"),  # 100 MB
    ((2 ** 70,), (0,), 0, "runs past its storage"),  # OverflowError before
    ((4,), (-1,), 3, "negative size or stride"),
    ((4,), (1,), -1, "runs past its storage"),
    (5, (1,), 0, "not a tuple of ints"),  # TypeError before
    ((2.5,), (1,), 0, "not a tuple of ints"),
    ((2, 2), (1,), 0, "differ in length"),
])
def test_sizes_and_strides_stay_inside_the_storage(tmp_path, size, stride,
                                                   offset, match):
  pickled = _pickled({"w": _Tensor(_Storage("0", 4, "ByteStorage"), offset,
                                   size, stride)})
  path = write_zip(tmp_path / "strided.pth", pickled, {"0": bytes(4)})
  result = _read_one(path)
  assert result["outcome"] == "ValueError", result
  assert match in result["message"]
  assert str(path) in result["message"]


def test_many_views_of_one_storage_are_refused(tmp_path):
  # 1 MB of storage seen through 1,000 offset views: 512 MB of arrays.
  views = [_Tensor(_Storage("0", 1 << 20, "ByteStorage"), i, (1 << 19,),
                   (1,)) for i in range(1000)]
  path = write_zip(tmp_path / "views.pth", _pickled(views),
                   {"0": bytes(1 << 20)})
  result = _read_one(path)
  assert result["outcome"] == "ValueError"
  assert "times the bytes of their storages" in result["message"]


def test_memo_index_beyond_the_pickle_is_refused(tmp_path):
  # PUT 2**31 - 1: the unpickler would allocate a 16 GB memo table.
  pickled = b"\x80\x02N" + b"r" + struct.pack("<I", 2 ** 31 - 1) + b"."
  result = _read_one(write_zip(tmp_path / "memo.pth", pickled))
  assert result["outcome"] == "ValueError"
  assert "memo index 2147483647" in result["message"]


def test_build_cannot_change_the_reader(tmp_path):
  # GLOBAL torch._utils._rebuild_tensor_v2, BUILD (None, {"marker": 1}):
  # setattr on the reader's own function, for the whole process.
  pickled = (b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\nN}"
             b"X\x06\x00\x00\x00markerK\x01s\x86b.")
  path = write_zip(tmp_path / "build.pth", pickled)
  from lbam_tf.weights import torch_checkpoint
  with pytest.raises(torch_checkpoint.UnsafeCheckpointError, match="BUILD"):
    torch_checkpoint.read_pth(path)
  rebuild = torch_checkpoint._ALLOWED_GLOBALS[
      ("torch._utils", "_rebuild_tensor_v2")]
  assert not hasattr(rebuild, "marker")
  assert not hasattr(torch_checkpoint._rebuild_tensor, "marker")


def _missing_storage(tmp_path):
  pickled = _pickled({"w": _Tensor(_Storage("7", 4), 0, (4,), (1,))})
  return write_zip(tmp_path / "missing.pth", pickled)


def _deep(tmp_path):
  # 100,000 empty lists, each APPENDed into the one before: nested 100,000
  # deep (Python's pickler itself would refuse to write it).
  pickled = b"\x80\x02" + b"]" * 100_000 + b"a" * 99_999 + b"."
  return write_zip(tmp_path / "deep.pth", pickled)


def _bad_sys_info(tmp_path):
  return write_legacy(tmp_path / "sysinfo.pth", ["not", "a", "dict"], {})


def _legacy_huge_storage(tmp_path):
  # A storage declaring 2**60 elements: a buffered read allocated them.
  path = write_legacy(tmp_path / "huge.pth", {"little_endian": True},
                      {"w": _Tensor(_Storage("0", 4), 0, (4,), (1,))}, ["0"])
  with open(path, "ab") as f:
    f.write(struct.pack("<q", 2 ** 60) + bytes(16))
  return path


def _cut_zip(tmp_path):
  path = tmp_path / "cut.pth"
  torch.save({"w": torch.ones(3)}, path)
  data = path.read_bytes()
  # The end record survives, the local headers do not.
  path.write_bytes(data[:40] + bytes(len(data) - 40 - 200) + data[-200:])
  return path


# Each id names what escaped the reader before.
@pytest.mark.parametrize("craft", [
    pytest.param(_missing_storage, id="KeyError"),
    pytest.param(_deep, id="RecursionError"),
    pytest.param(_bad_sys_info, id="AttributeError"),
    pytest.param(_legacy_huge_storage, id="MemoryError"),
    pytest.param(_cut_zip, id="BadZipFile"),
])
def test_every_failure_is_a_value_error_naming_the_file(tmp_path, craft):
  path = craft(tmp_path)
  result = _read_one(path)
  assert result["outcome"] == "ValueError", result
  assert str(path) in result["message"]


def test_a_fifo_is_refused_not_waited_for(tmp_path):
  path = tmp_path / "pipe.pth"
  os.mkfifo(path)
  result = _read_one(path)
  assert result["outcome"] == "FileRefused"
  assert "FIFO" in result["message"]


def test_fuzz_mutated_checkpoints(tmp_path):
  rng = np.random.default_rng(11)
  state = collections.OrderedDict(
      w=torch.arange(12.0).view(3, 4), b=torch.tensor([1, 2], dtype=torch.int32),
      t=torch.arange(6.0).view(2, 3).t(), h=torch.ones(2).half())
  folder = tmp_path / "fuzz"
  folder.mkdir()
  for fmt, options in (("zip", {}),
                       ("legacy", {"_use_new_zipfile_serialization": False})):
    clean = tmp_path / f"{fmt}.pth"
    torch.save(state, clean, **options)
    for index, data in enumerate(fuzz.mutations(clean.read_bytes(), rng, 150)):
      (folder / f"{fmt}-{index:03d}.pth").write_bytes(data)
  results = read_limited(folder)
  assert len(results) == 300
  outcomes = collections.Counter(r["outcome"] for r in results)
  # Read (a byte of a value changed), or one of the documented errors.
  assert set(outcomes) <= {"read", "ValueError", "UnsafeCheckpointError"}, (
      outcomes, [r for r in results if r["outcome"] not in
                 ("read", "ValueError", "UnsafeCheckpointError")][:3])
  assert outcomes["ValueError"] > 50
