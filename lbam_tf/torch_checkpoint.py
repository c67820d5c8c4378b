"""Reads PyTorch `.pth` checkpoints into numpy, without PyTorch or running code.

A `.pth` is a pickle, and unpickling can call any importable function. This
reader uses a restricted unpickler: the only globals it resolves are the few a
state dict needs (an OrderedDict, the tensor rebuild functions, the storage
types), each mapped to a small function here that builds a numpy array from the
storage bytes. Any other global, `os.system` included, stops the load with an
error naming it.

Both of PyTorch's layouts are read:
- the zip format (PyTorch >= 1.6): `<name>/data.pkl` plus one raw file per
  storage, `<name>/data/<key>`;
- the legacy format: magic number, protocol, system info, the pickle, the list
  of storage keys, then each storage as an int64 element count and raw bytes.

Example:

    tensors = torch_checkpoint.read_pth("LBAM_G_500.pth")
    tensors["ec1.conv.conv.weight"].shape  # (64, 4, 4, 4)
"""

import collections
import dataclasses
import io
import pickle
import struct
import zipfile

import numpy as np

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001

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


@dataclasses.dataclass(frozen=True)
class _StorageType:
  name: str

  @property
  def dtype(self):
    return _STORAGE_DTYPES[self.name]


@dataclasses.dataclass(frozen=True)
class _StorageRef:
  key: str
  storage_type: _StorageType
  numel: int


@dataclasses.dataclass(frozen=True)
class _TensorRef:
  """A tensor whose storage bytes may not have been read yet (legacy files)."""
  storage: _StorageRef
  offset: int
  size: tuple
  stride: tuple


def _rebuild_tensor(storage, storage_offset, size, stride, *unused):
  """Stands in for torch._utils._rebuild_tensor(_v2); the extra arguments
  (requires_grad, backward hooks, metadata) do not matter for weights."""
  return _TensorRef(storage, int(storage_offset), tuple(size), tuple(stride))


def _rebuild_parameter(data, *unused):
  """Stands in for torch._utils._rebuild_parameter: a Parameter is its data."""
  return data


_ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
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
    return _StorageRef(str(pid[2]), pid[1], int(pid[4]))


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
  if any(s < 0 for s in ref.size) or any(s < 0 for s in ref.stride):
    raise ValueError(f"negative size or stride in tensor {ref}")
  if 0 in ref.size:
    return np.zeros(ref.size, storage.dtype)
  # Bounds are checked before as_strided, which would otherwise read memory
  # outside the storage for a hostile or corrupt size/stride.
  extent = sum((n - 1) * s for n, s in zip(ref.size, ref.stride))
  if ref.offset < 0 or ref.offset + extent >= storage.size:
    raise ValueError(
        f"tensor of size {ref.size}, stride {ref.stride}, offset {ref.offset} "
        f"runs past its storage of {storage.size} elements: corrupt checkpoint")
  flat = storage[ref.offset:]
  return np.lib.stride_tricks.as_strided(
      flat, shape=ref.size,
      strides=[s * storage.itemsize for s in ref.stride]).copy()


def _materialize(obj, storages):
  """Replaces every _TensorRef inside dicts, lists and tuples by its array."""
  if isinstance(obj, _TensorRef):
    return _tensor_from_storage(obj, storages)
  if isinstance(obj, dict):
    return type(obj)((k, _materialize(v, storages)) for k, v in obj.items())
  if isinstance(obj, (list, tuple)):
    return type(obj)(_materialize(v, storages) for v in obj)
  return obj


def _storage_refs(obj):
  if isinstance(obj, _TensorRef):
    yield obj.storage
  elif isinstance(obj, dict):
    for value in obj.values():
      yield from _storage_refs(value)
  elif isinstance(obj, (list, tuple)):
    for value in obj:
      yield from _storage_refs(value)


def _read_zip(path):
  with zipfile.ZipFile(path) as archive:
    names = archive.namelist()
    pickles = [n for n in names
               if n.endswith("/data.pkl") and n.count("/") == 1]
    if len(pickles) != 1:
      raise ValueError(
          f"{path} is a zip file but not a PyTorch checkpoint (no single "
          "<name>/data.pkl inside)")
    prefix = pickles[0][:-len("data.pkl")]
    byteorder = "<"
    if prefix + "byteorder" in names:
      byteorder = {"little": "<", "big": ">"}[
          archive.read(prefix + "byteorder").decode().strip()]
    obj = _RestrictedUnpickler(io.BytesIO(archive.read(pickles[0]))).load()
    storages = {}
    for ref in _storage_refs(obj):
      if ref.key not in storages:
        data = archive.read(f"{prefix}data/{ref.key}")
        storages[ref.key] = _array_from_bytes(data, ref, byteorder)
  return _materialize(obj, storages)


def _read_legacy(path):
  with open(path, "rb") as f:
    # The legacy layout is five pickles in a row, each read with restrictions.
    def load():
      return _RestrictedUnpickler(f).load()

    if load() != _LEGACY_MAGIC:
      raise ValueError(
          f"{path} is neither a zip nor a legacy PyTorch checkpoint (bad magic "
          "number); was it written by torch.save?")
    protocol = load()
    if protocol != _LEGACY_PROTOCOL:
      raise ValueError(f"{path}: unsupported legacy protocol {protocol!r}")
    sys_info = load()
    byteorder = "<" if sys_info.get("little_endian", True) else ">"
    obj = load()
    refs = {ref.key: ref for ref in _storage_refs(obj)}
    keys = load()
    storages = {}
    for key in keys:
      (numel,) = struct.unpack(byteorder + "q", f.read(8))
      ref = refs.get(key)
      if ref is None:
        raise ValueError(f"{path}: storage {key!r} is not used by any tensor")
      data = f.read(numel * ref.storage_type.dtype.itemsize)
      storages[key] = _array_from_bytes(data, ref, byteorder)
  missing = sorted(set(refs) - set(storages))
  if missing:
    raise ValueError(f"{path}: storages {missing} are missing: truncated file?")
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
      does not need (it may be an attempt to run code).
    ValueError: the file is not a PyTorch checkpoint, or is corrupt.
  """
  path = str(path)
  if zipfile.is_zipfile(path):
    return _read_zip(path)
  return _read_legacy(path)
