"""The torch-free `.pth` reader against torch.load, and its refusal to run code."""

import collections
import os
import pickle
import zipfile

import numpy as np
import pytest
import torch

from lbam_tf.weights import torch_checkpoint

_FORMATS = {"zip": {}, "legacy": {"_use_new_zipfile_serialization": False}}


def _sample_state_dict():
  generator = torch.Generator().manual_seed(0)
  shared = torch.randn(12, generator=generator)
  return collections.OrderedDict(
      conv=torch.randn(8, 3, 4, 4, generator=generator),
      transposed=torch.randn(4, 4, generator=generator).t(),  # non-contiguous
      offset_view=shared[5:9],  # storage offset
      shared_view=shared.view(3, 4),  # two tensors, one storage
      scalar=torch.tensor(1.25),
      counter=torch.tensor(7),
      indices=torch.arange(5, dtype=torch.int32),
      half=torch.randn(3, generator=generator).half(),
      bfloat=torch.randn(3, generator=generator).bfloat16(),
      double=torch.randn(2, generator=generator).double(),
      flags=torch.tensor([True, False]),
      empty=torch.zeros(0, 3),
  )


def _expected(tensor):
  if tensor.dtype == torch.bfloat16:
    return tensor.float().numpy()
  return tensor.numpy()


@pytest.mark.parametrize("fmt", sorted(_FORMATS))
def test_reads_what_torch_load_reads(tmp_path, fmt):
  path = tmp_path / "weights.pth"
  torch.save(_sample_state_dict(), path, **_FORMATS[fmt])
  expected = torch.load(path, weights_only=True)
  got = torch_checkpoint.read_pth(path)
  assert list(got) == list(expected)
  for name, tensor in expected.items():
    want = _expected(tensor)
    assert got[name].dtype == want.dtype, name
    assert got[name].shape == want.shape, name
    np.testing.assert_array_equal(got[name], want, err_msg=name)


@pytest.mark.parametrize("fmt", sorted(_FORMATS))
def test_reads_a_module_state_dict_wrapped_in_a_dict(tmp_path, fmt):
  module = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
  path = tmp_path / "checkpoint.pth"
  torch.save({"epoch": 3, "state_dict": module.state_dict()}, path,
             **_FORMATS[fmt])
  got = torch_checkpoint.read_pth(path)
  assert got["epoch"] == 3
  for name, tensor in module.state_dict().items():
    np.testing.assert_array_equal(got["state_dict"][name], tensor.numpy())


class _RunsACommand:
  """Pickles to a call of os.system, as a malicious checkpoint would."""

  def __init__(self, marker):
    self.marker = marker

  def __reduce__(self):
    return (os.system, (f"touch {self.marker}",))


def test_refuses_a_zip_checkpoint_that_would_run_code(tmp_path):
  marker = tmp_path / "pwned"
  path = tmp_path / "evil.pth"
  torch.save({"w": torch.ones(2)}, path)
  with zipfile.ZipFile(path) as archive:
    entries = {n: archive.read(n) for n in archive.namelist()}
  pickle_name = next(n for n in entries if n.endswith("/data.pkl"))
  entries[pickle_name] = pickle.dumps({"w": _RunsACommand(marker)}, protocol=2)
  with zipfile.ZipFile(path, "w") as archive:
    for name, data in entries.items():
      archive.writestr(name, data)

  with pytest.raises(torch_checkpoint.UnsafeCheckpointError,
                     match=r"(posix|os)\.system"):
    torch_checkpoint.read_pth(path)
  assert not marker.exists()


def test_refuses_a_legacy_checkpoint_that_would_run_code(tmp_path):
  marker = tmp_path / "pwned"
  path = tmp_path / "evil.pth"
  with open(path, "wb") as f:
    pickle.dump(0x1950A86A20F9469CFC6C, f, protocol=2)
    pickle.dump(1001, f, protocol=2)
    pickle.dump({"little_endian": True}, f, protocol=2)
    pickle.dump(_RunsACommand(marker), f, protocol=2)
  with pytest.raises(torch_checkpoint.UnsafeCheckpointError, match=r"system"):
    torch_checkpoint.read_pth(path)
  assert not marker.exists()


def test_refuses_a_plain_pickle_of_a_module(tmp_path):
  path = tmp_path / "module.pth"
  torch.save(torch.nn.Linear(2, 2), path)
  with pytest.raises(torch_checkpoint.UnsafeCheckpointError,
                     match=r"torch\.nn\.modules\.linear\.Linear"):
    torch_checkpoint.read_pth(path)


def test_rejects_a_tensor_that_points_outside_its_storage(tmp_path):
  storage_type = torch_checkpoint._StorageType("FloatStorage")
  storage = torch_checkpoint._StorageRef("0", storage_type, 4)
  ref = torch_checkpoint._TensorRef(storage, 2, (2, 2), (2, 1))
  with pytest.raises(ValueError, match="runs past its storage"):
    torch_checkpoint._tensor_from_storage(ref, {"0": np.zeros(4, np.float32)})


def test_names_a_file_that_is_not_a_checkpoint(tmp_path):
  path = tmp_path / "notes.pth"
  with open(path, "wb") as f:
    pickle.dump("hello", f)
  with pytest.raises(ValueError, match="bad magic number"):
    torch_checkpoint.read_pth(path)


def _as_if_saved_from_cuda(pickled):
  # Protocol 2 writes the storage location as BINUNICODE: 'X', length, text.
  cpu, cuda = b"X\x03\x00\x00\x00cpu", b"X\x06\x00\x00\x00cuda:0"
  assert cpu in pickled
  return pickled.replace(cpu, cuda)


@pytest.mark.parametrize("fmt", sorted(_FORMATS))
def test_reads_a_checkpoint_saved_from_cuda(tmp_path, fmt):
  # The released LBAM weights were saved from a GPU; torch.load needs
  # map_location on a CPU-only machine, this reader ignores the location.
  state = collections.OrderedDict(w=torch.arange(6.0).view(2, 3),
                                  s=torch.tensor(2.5))
  path = tmp_path / "cuda.pth"
  torch.save(state, path, **_FORMATS[fmt])
  if fmt == "zip":
    with zipfile.ZipFile(path) as archive:
      entries = {n: archive.read(n) for n in archive.namelist()}
    name = next(n for n in entries if n.endswith("/data.pkl"))
    entries[name] = _as_if_saved_from_cuda(entries[name])
    with zipfile.ZipFile(path, "w") as archive:
      for entry, data in entries.items():
        archive.writestr(entry, data)
  else:
    path.write_bytes(_as_if_saved_from_cuda(path.read_bytes()))
  expected = torch.load(path, map_location="cpu", weights_only=True)
  got = torch_checkpoint.read_pth(path)
  for key, tensor in expected.items():
    np.testing.assert_array_equal(got[key], tensor.numpy())
