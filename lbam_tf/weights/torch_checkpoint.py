"""Reads PyTorch `.pth` checkpoints into numpy, without PyTorch or running code.

A `.pth` is a pickle, and unpickling can call any importable function, so a
restricted unpickler resolves only the globals a state dict needs; any other
stops the load, naming it. Nothing the file declares is trusted: a small
hostile file can neither run code nor make the reader hang or exhaust memory,
and a corrupt one is a ValueError naming the file. Both of PyTorch's layouts
(zip and legacy) are read. The checks, the limits and both layouts:
BUILD_NOTES.md, "Hostile and unlucky input".

Example:

    tensors = torch_checkpoint.read_pth("LBAM_G_500.pth")
    tensors["ec1.conv.conv.weight"].shape  # (64, 4, 4, 4)
"""

import collections
import dataclasses
import io
import math
import os
import pickle
import pickletools
import struct
import zipfile

import numpy as np

from lbam_tf.images import bounded_read

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001

# torch.save stores zip members uncompressed; a recompressed checkpoint's
# float weights deflate less than 2:1. 200 leaves room for zero-filled
# buffers and refuses bombs (deflate reaches about 1,000:1, bzip2 far more).
_MAX_EXPANSION = 200
_MEMBER_SLACK = 1 << 20
# Views of one storage: a state dict's tensors hold about 1x their storages.
_MAX_VIEW_FACTOR = 4
_VIEW_SLACK = 1 << 20
_MEMO_PUTS = ("PUT", "BINPUT", "LONG_BINPUT")
_IN_PROGRESS = object()

# torch.<Name>Storage -> element dtype. bfloat16 has no numpy dtype: it is read
# as uint16 and widened to float32 (exact).
_STORAGE_DTYPES = {
    "FloatStorage": np.dtype(np.float32),
    "DoubleStorage": np.dtype(np.float64),
    "HalfStorage": np.dtype(np.float16),
    "BFloat16Storage": np.dtype(np.uint16),
    "LongStorage": np.dtype(np.int64),
    "IntStorage": np.dtype(np.int32),
    "ShortStorage": np.dtype(np.int16),
    "CharStorage": np.dtype(np.int8),
    "ByteStorage": np.dtype(np.uint8),
    "BoolStorage": np.dtype(np.bool_),
}


class UnsafeCheckpointError(pickle.UnpicklingError):
  """The pickle asked for something a plain state dict never needs."""


class _Sealed:
  """An object of this reader's that the pickle's BUILD opcode may not change
  (BUILD calls __setstate__ when there is one)."""
  __slots__ = ()

  def __setstate__(self, state):
    raise UnsafeCheckpointError(
        f"the checkpoint tries to change the reader's {type(self).__name__} "
        "(pickle BUILD): a state dict never does; re-save the weights alone "
        "(torch.save(model.state_dict(), path)) from a source you trust.")


class _Allowed(_Sealed):
  """A global the pickle may call, that it cannot change."""
  __slots__ = ("_function",)

  def __init__(self, function):
    self._function = function

  def __call__(self, *args):
    return self._function(*args)


@dataclasses.dataclass(frozen=True)
class _StorageType(_Sealed):
  name: str

  @property
  def dtype(self):
    return _STORAGE_DTYPES[self.name]


@dataclasses.dataclass(frozen=True)
class _StorageRef(_Sealed):
  key: str
  storage_type: _StorageType
  numel: int


@dataclasses.dataclass(frozen=True)
class _TensorRef(_Sealed):
  """A tensor whose storage bytes may not have been read yet (legacy files)."""
  storage: _StorageRef
  offset: int
  size: tuple
  stride: tuple


def _ints(values, what):
  if (not isinstance(values, (tuple, list))
      or not all(type(v) is int for v in values)):  # noqa: E721 -- no bool
    raise ValueError(f"tensor {what} {values!r:.200} is not a tuple of ints")
  return tuple(values)


def _rebuild_tensor(storage, storage_offset, size, stride, *unused):
  """Stands in for torch._utils._rebuild_tensor(_v2); the extra arguments
  (requires_grad, backward hooks, metadata) do not matter for weights."""
  if not isinstance(storage, _StorageRef):
    raise ValueError(f"tensor storage {storage!r:.200} is not a storage")
  (offset,) = _ints([storage_offset], "offset")
  return _TensorRef(storage, offset, _ints(size, "size"),
                    _ints(stride, "stride"))


def _rebuild_parameter(data, *unused):
  """Stands in for torch._utils._rebuild_parameter: a Parameter is its data."""
  return data


_ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"): _Allowed(collections.OrderedDict),
    ("torch._utils", "_rebuild_tensor"): _Allowed(_rebuild_tensor),
    ("torch._utils", "_rebuild_tensor_v2"): _Allowed(_rebuild_tensor),
    ("torch._utils", "_rebuild_parameter"): _Allowed(_rebuild_parameter),
}


class _RestrictedUnpickler(pickle.Unpickler):
  """Resolves only _ALLOWED_GLOBALS and torch storage types, refuses others."""

  def find_class(self, module, name):
    if (module, name) in _ALLOWED_GLOBALS:
      return _ALLOWED_GLOBALS[(module, name)]
    if module == "torch" and name in _STORAGE_DTYPES:
      return _StorageType(name)
    raise UnsafeCheckpointError(
        f"refusing to load global {module}.{name} from the checkpoint: a state "
        "dict needs only tensors and dicts, and unpickling this could run "
        "code. Re-save the weights alone (torch.save(model.state_dict(), path))"
        " from a source you trust.")

  def persistent_load(self, pid):
    if (not isinstance(pid, tuple) or len(pid) < 5 or pid[0] != "storage"
        or not isinstance(pid[1], _StorageType)):
      raise UnsafeCheckpointError(
          f"unexpected persistent id {pid!r:.200} in the checkpoint")
    if len(pid) > 5 and pid[5] is not None:
      raise ValueError(
          "this legacy checkpoint uses storage views (PyTorch < 0.4); load it "
          "with torch and re-save it with a current PyTorch")
    (numel,) = _ints([pid[4]], "storage size")
    if numel < 0:
      raise ValueError(f"storage {pid[2]!r:.100} has {numel} elements")
    return _StorageRef(str(pid[2]), pid[1], numel)


class _Clamped:
  """A file whose reads never ask for more than the file holds: the
  unpickler reads a declared length at once, and a buffered read allocates
  all of it before reading."""

  def __init__(self, f):
    self._f = f
    self._size = os.fstat(f.fileno()).st_size

  def _left(self, n):
    left = self._size - self._f.tell()
    return left if n is None or n < 0 else min(n, left)

  def read(self, n=-1):
    return self._f.read(self._left(n))

  def readline(self, n=-1):
    return self._f.readline(self._left(n))

  def tell(self):
    return self._f.tell()

  def seek(self, offset):
    return self._f.seek(offset)


def _load_pickle(f):
  """One pickle from `f` (at its position), its opcodes checked first."""
  start = f.tell()
  ops = 0
  for opcode, arg, _ in pickletools.genops(f):
    ops += 1
    if opcode.name in _MEMO_PUTS and arg > ops:
      raise ValueError(
          f"pickle memo index {arg} after {ops} opcodes: a real pickle "
          "numbers its memo from 0")
  f.seek(start)
  return _RestrictedUnpickler(f).load()


def _array_from_bytes(data, storage, byteorder):
  dtype = storage.storage_type.dtype.newbyteorder(byteorder)
  expected = storage.numel * dtype.itemsize
  if len(data) < expected:
    raise ValueError(
        f"storage {storage.key!r} has {len(data)} bytes, expected {expected}: "
        "the checkpoint is truncated or corrupt")
  array = np.frombuffer(data, dtype=dtype, count=storage.numel)
  if storage.storage_type.name == "BFloat16Storage":
    return (array.astype(np.uint32) << 16).view(np.float32)
  return array.astype(dtype.newbyteorder("="))


def _tensor_from_storage(ref, storages):
  storage = storages[ref.storage.key]
  if len(ref.size) != len(ref.stride):
    raise ValueError(f"tensor size {ref.size} and stride {ref.stride} differ "
                     "in length: corrupt checkpoint")
  if any(s < 0 for s in ref.size) or any(s < 0 for s in ref.stride):
    raise ValueError(f"negative size or stride in tensor {ref}")
  numel = math.prod(ref.size)
  if numel == 0:
    return np.zeros(ref.size, storage.dtype)
  # Bounds are checked before as_strided, which would otherwise read memory
  # outside the storage for a hostile or corrupt size/stride. A stride of 0
  # repeats elements: no more elements than the storage holds are accepted.
  extent = sum((n - 1) * s for n, s in zip(ref.size, ref.stride))
  if (ref.offset < 0 or ref.offset + extent >= storage.size
      or numel > storage.size):
    raise ValueError(
        f"tensor of size {ref.size}, stride {ref.stride}, offset {ref.offset} "
        f"runs past its storage of {storage.size} elements: corrupt checkpoint")
  flat = storage[ref.offset:]
  return np.lib.stride_tricks.as_strided(
      flat, shape=ref.size,
      strides=[s * storage.itemsize for s in ref.stride]).copy()


def _materialize(obj, storages):
  """`obj` with every _TensorRef inside dicts, lists and tuples replaced by
  its array. Each object is visited once: shared references stay shared (and
  cycles cycles) instead of being walked again at every use."""
  budget = _MAX_VIEW_FACTOR * sum(s.nbytes for s in storages.values())
  budget += _VIEW_SLACK
  done = {}

  def visit(node):
    if done.get(id(node)) is _IN_PROGRESS:
      raise ValueError("a tuple contains itself: a state dict never does")
    if id(node) in done:
      return done[id(node)]
    if isinstance(node, _TensorRef):
      # At most one storage's bytes each (checked): the sum is what grows.
      done[id(node)] = array = _tensor_from_storage(node, storages)
      nonlocal budget
      budget -= array.nbytes
      if budget < 0:
        raise ValueError(
            f"the tensors hold over {_MAX_VIEW_FACTOR} times the bytes of "
            "their storages: a state dict does not view its storages that "
            "often")
    elif isinstance(node, dict):
      done[id(node)] = copy = type(node)()
      for key, value in node.items():
        copy[key] = visit(value)
    elif isinstance(node, list):
      done[id(node)] = copy = []
      copy.extend(visit(value) for value in node)
    elif isinstance(node, tuple):
      done[id(node)] = _IN_PROGRESS
      done[id(node)] = tuple(visit(value) for value in node)
    else:
      return node
    return done[id(node)]

  return visit(obj)


def _storage_refs(obj):
  """The _StorageRefs of the tensors in `obj`, each container visited once."""
  refs, seen, todo = [], set(), [obj]
  while todo:
    node = todo.pop()
    if id(node) in seen:
      continue
    seen.add(id(node))
    if isinstance(node, _TensorRef):
      refs.append(node.storage)
    elif isinstance(node, dict):
      todo.extend(node.values())
    elif isinstance(node, (list, tuple)):
      todo.extend(node)
  return refs


def _check_members(f, infos):
  """Refuses members that overlap (one byte range listed as many members is
  the classic zip bomb) or run past the end of the file."""
  file_size = os.fstat(f.fileno()).st_size
  end = 0
  for info in sorted(infos, key=lambda i: i.header_offset):
    f.seek(info.header_offset)
    header = f.read(30)  # the local header, whose name and extra lengths
    if len(header) < 30:  # may differ from the central directory's
      raise ValueError(f"zip member {info.filename!r} starts past the end of "
                       "the file")
    name_length, extra_length = struct.unpack("<HH", header[26:30])
    stop = (info.header_offset + 30 + name_length + extra_length
            + info.compress_size)
    if info.header_offset < end or stop > file_size:
      raise ValueError(
          f"zip member {info.filename!r} overlaps another or runs past the "
          "end of the file: not a checkpoint torch.save wrote")
    end = stop


def _read_member(archive, info, size=None):
  """The member's first `size` bytes (all if None), refusing an expansion
  beyond _MAX_EXPANSION times its compressed size whatever it declares."""
  limit = _MAX_EXPANSION * info.compress_size + _MEMBER_SLACK
  want = limit + 1 if size is None else min(size, limit + 1)
  data = bytearray()
  with archive.open(info) as member:
    while len(data) < want:
      chunk = member.read(min(want - len(data), 1 << 20))
      if not chunk:
        break
      data += chunk
  if len(data) > limit:
    raise ValueError(
        f"zip member {info.filename!r} expands beyond "
        f"{_MAX_EXPANSION} times its {info.compress_size} compressed bytes: "
        "a zip bomb, not a checkpoint")
  return bytes(data)


def _read_zip(f):
  with zipfile.ZipFile(f) as archive:
    infos = archive.infolist()
    _check_members(f, infos)
    members = {info.filename: info for info in infos}
    pickles = [n for n in members
               if n.endswith("/data.pkl") and n.count("/") == 1]
    if len(pickles) != 1:
      raise ValueError(
          "a zip file but not a PyTorch checkpoint (no single "
          "<name>/data.pkl inside)")
    prefix = pickles[0][:-len("data.pkl")]
    byteorder = "<"
    if prefix + "byteorder" in members:
      order = _read_member(archive, members[prefix + "byteorder"], 16)
      byteorder = {b"little": "<", b"big": ">"}.get(order.strip())
      if byteorder is None:
        raise ValueError(f"byteorder {order!r} is neither little nor big")
    obj = _load_pickle(io.BytesIO(
        _read_member(archive, members[pickles[0]])))
    storages = {}
    for ref in _storage_refs(obj):
      if ref.key not in storages:
        name = f"{prefix}data/{ref.key}"
        if name not in members:
          raise ValueError(f"storage {ref.key!r} is missing ({name})")
        size = ref.numel * ref.storage_type.dtype.itemsize
        data = _read_member(archive, members[name], size)
        storages[ref.key] = _array_from_bytes(data, ref, byteorder)
  return _materialize(obj, storages)


def _read_legacy(f):
  f = _Clamped(f)
  # The legacy layout is five pickles in a row, each read with restrictions.
  if _load_pickle(f) != _LEGACY_MAGIC:
    raise ValueError(
        "neither a zip nor a legacy PyTorch checkpoint (bad magic "
        "number); was it written by torch.save?")
  protocol = _load_pickle(f)
  if protocol != _LEGACY_PROTOCOL:
    raise ValueError(f"unsupported legacy protocol {protocol!r:.100}")
  sys_info = _load_pickle(f)
  if not isinstance(sys_info, dict):
    raise ValueError(f"system info {sys_info!r:.100} is not a dict")
  byteorder = "<" if sys_info.get("little_endian", True) else ">"
  obj = _load_pickle(f)
  refs = {ref.key: ref for ref in _storage_refs(obj)}
  keys = _load_pickle(f)
  if not isinstance(keys, list):
    raise ValueError(f"storage keys {keys!r:.100} are not a list")
  storages = {}
  for key in keys:
    ref = refs.get(key)
    if ref is None:
      raise ValueError(f"storage {key!r:.100} is not used by any tensor")
    header = f.read(8)
    if len(header) < 8:
      raise ValueError(f"storage {key!r} is missing: truncated file?")
    (numel,) = struct.unpack(byteorder + "q", header)
    if numel != ref.numel:
      raise ValueError(f"storage {key!r} holds {numel} elements, its tensors "
                       f"say {ref.numel}: corrupt checkpoint")
    storages[key] = _array_from_bytes(
        f.read(numel * ref.storage_type.dtype.itemsize), ref, byteorder)
  missing = sorted(set(refs) - set(storages))
  if missing:
    raise ValueError(f"storages {missing} are missing: truncated file?")
  return _materialize(obj, storages)


def read_pth(path):
  """Loads a `.pth` file as plain Python: dicts, lists, numbers, numpy arrays.

  Args:
    path: a file written by `torch.save`, zip or legacy format.

  Returns:
    The saved object with every tensor replaced by a numpy array of the same
    dtype (bfloat16 widened to float32), shape and values; usually an
    OrderedDict of parameter names to arrays.

  Raises:
    UnsafeCheckpointError: the pickle references a global that a state dict
      does not need (it may be an attempt to run code), or tries to change
      the reader's objects.
    ValueError: the file is not a PyTorch checkpoint, or is corrupt.
    OSError: the file cannot be opened (bounded_read.FileRefused: it is not a
      regular file).
  """
  path = os.fspath(path)
  with bounded_read.open_regular(path) as f:
    try:
      if zipfile.is_zipfile(f):
        return _read_zip(f)
      f.seek(0)
      return _read_legacy(f)
    except UnsafeCheckpointError:
      raise
    except ValueError as e:
      raise ValueError(f"{path}: {e}") from None
    except RecursionError:
      raise ValueError(f"{path}: the saved object is nested too deeply for "
                       "a state dict") from None
    except Exception as e:  # noqa: BLE001 -- corrupt bytes raise anything
      raise ValueError(
          f"{path} is corrupt or not a PyTorch checkpoint "
          f"({type(e).__name__}: {str(e):.200}); save it again with "
          "torch.save(model.state_dict(), path)") from None
