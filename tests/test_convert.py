"""Reference checkpoint import and export against the independent PyTorch port.

The yardstick is `torch_reference.Generator`, whose `state_dict()` has the
authors' exact names: the same random weights loaded there and through
`convert` must give the same outputs to float32 precision.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch_reference

from lbam_tf.model import generator as generator_lib
from lbam_tf.weights import model_io
from lbam_tf.weights import reference_names

# float32 outputs in [0, 1] of a 68M-parameter network computed by two
# libraries (different conv algorithms and summation orders): measured max abs
# differences are 4e-7 to 9e-7 with these weights (3e-6 with kernels scaled
# up until a quarter of the outputs saturate), so 1e-5 leaves margin and
# still catches a wrong layout, whose differences are orders of magnitude
# larger.
PARITY_TOLERANCE = 1e-5

# Trainable parameter counts of the reference generator
# (docs/reference.md#parameter-counts).
REFERENCE_PARAMETERS = {"head": 68_304_948, "original_bn": 68_317_748}

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _torch_model(weights, variant):
  return torch_reference.load_numpy_state_dict(
      torch_reference.Generator(variant).eval(), weights)


def _inputs(batch, height, width, seed=0):
  rng = np.random.default_rng(seed)
  image = rng.uniform(size=(batch, height, width, 3)).astype(np.float32)
  mask = np.ones((batch, height, width, 1), np.float32)
  # A rectangular hole plus scattered ones, so every mask branch sees both.
  mask[:, height // 4:height // 2, width // 3:2 * width // 3] = 0.0
  mask[rng.uniform(size=mask.shape) < 0.1] = 0.0
  return image, mask


@pytest.fixture(scope="module", params=generator_lib.VARIANTS)
def converted(request):
  """(variant, reference weights, torch model, Keras generator), built once."""
  variant = request.param
  weights = torch_reference.random_state_dict(
      torch_reference.Generator(variant), seed=len(variant))
  generator = reference_names.generator_from_torch_state_dict(weights)
  return variant, weights, _torch_model(weights, variant), generator


@pytest.mark.parametrize("batch,height,width",
                         [(1, 256, 256), (2, 128, 384)])
def test_outputs_match_the_pytorch_reference(converted, batch, height, width):
  variant, weights, torch_model, generator = converted
  assert reference_names.generator_options(generator) == {"variant": variant,
                                                          "ablation": "none"}
  clamped = [name for name, value in weights.items()
             if name.endswith(".a") and not 1.01 <= value <= 6.0]
  assert clamped, "random_state_dict should draw g_A values outside the clamp"
  image, mask = _inputs(batch, height, width)
  want = torch_reference.nhwc_output(torch_model, image, mask)
  got = generator({"image": image, "mask": mask}, training=False).numpy()
  assert want.std() > 0.05, "a flat output would make the comparison weak"
  assert got.shape == (batch, height, width, 3)
  np.testing.assert_allclose(got, want, rtol=0, atol=PARITY_TOLERANCE)


def test_round_trip_through_reference_names(converted):
  variant, weights, torch_model, generator = converted
  exported = reference_names.generator_to_torch_state_dict(generator)
  assert list(exported) == list(torch_model.state_dict())
  for name, value in weights.items():
    if not name.endswith("num_batches_tracked"):
      np.testing.assert_array_equal(exported[name], value, err_msg=name)
      assert exported[name].dtype == np.float32, name
  trainable = sum(value.size for name, value in exported.items()
                  if not name.endswith(("running_mean", "running_var",
                                        "num_batches_tracked")))
  assert trainable == REFERENCE_PARAMETERS[variant]
  # PyTorch's strict loading accepts the export as it is.
  _torch_model(exported, variant)

  reloaded = reference_names.generator_from_torch_state_dict(exported)
  image, mask = _inputs(1, 128, 128)
  np.testing.assert_array_equal(
      reloaded({"image": image, "mask": mask}, training=False).numpy(),
      generator({"image": image, "mask": mask}, training=False).numpy())


@pytest.mark.parametrize("ablation",
                         ["forward_only", "unlearned", "mask3x3", "sigmoid"])
def test_ablations_round_trip(ablation):
  generator = generator_lib.build_generator(ablation=ablation)
  exported = reference_names.generator_to_torch_state_dict(generator)
  if ablation == "sigmoid":
    with pytest.raises(ValueError, match="pass ablation='sigmoid'"):
      reference_names.detect_options(exported)
    reloaded = reference_names.generator_from_torch_state_dict(exported,
                                                               ablation=ablation)
  else:
    assert reference_names.detect_options(exported) == {"variant": "head",
                                                        "ablation": ablation}
    reloaded = reference_names.generator_from_torch_state_dict(exported)
  assert reference_names.generator_options(reloaded) == {"variant": "head",
                                                         "ablation": ablation}
  for want, got in zip(generator.weights, reloaded.weights):
    assert want.path == got.path
    np.testing.assert_array_equal(got.numpy(), want.numpy(), err_msg=want.path)


def test_a_real_pth_file_loads_like_torch(converted, tmp_path):
  variant, weights, torch_model, _ = converted
  path = tmp_path / "lbam.pth"
  torch.save(torch_model.state_dict(), path)
  loaded = reference_names.load_state_dict_file(path)
  assert list(loaded) == list(torch_model.state_dict())
  for name, tensor in torch_model.state_dict().items():
    np.testing.assert_array_equal(loaded[name], tensor.numpy(), err_msg=name)
  # A training checkpoint that wraps the state dict is unwrapped.
  wrapped = tmp_path / "checkpoint.pth"
  torch.save({"epoch": 500, "state_dict": torch_model.state_dict()}, wrapped)
  assert list(reference_names.load_state_dict_file(wrapped)) == list(loaded)
  assert reference_names.detect_options(loaded)["variant"] == variant


def test_key_errors_name_every_bad_key_with_expected_shapes():
  weights = torch_reference.random_state_dict(torch_reference.Generator())
  weights["ec1.conv.extra.weight"] = np.zeros((2, 2), np.float32)
  del weights["dc3.conv.weight"]
  # A Keras-layout kernel where the PyTorch layout belongs.
  weights["ec2.conv.conv.weight"] = weights["ec2.conv.conv.weight"].transpose(
      2, 3, 1, 0)
  with pytest.raises(ValueError) as error:
    reference_names.generator_from_torch_state_dict(weights)
  message = str(error.value)
  assert "1 unknown keys: ec1.conv.extra.weight" in message
  assert "1 missing keys: dc3.conv.weight [1024, 512, 4, 4]" in message
  assert ("1 mis-shaped keys: ec2.conv.conv.weight has [4, 4, 64, 128], "
          "expected [128, 64, 4, 4]") in message


def test_a_discriminator_state_dict_is_refused():
  weights = torch_reference.random_state_dict(torch_reference.Discriminator())
  with pytest.raises(ValueError, match="unknown keys: fusionLayer.0.bias"):
    reference_names.generator_from_torch_state_dict(weights)


def test_load_state_dict_file_refuses_other_files(tmp_path):
  with pytest.raises(ValueError, match="expected a .pth/.pt file"):
    reference_names.load_state_dict_file(tmp_path / "weights.h5")
  path = tmp_path / "two_models.pth"
  torch.save({"generator": {"w": torch.zeros(1)},
              "critic": {"w": torch.zeros(1)}}, path)
  with pytest.raises(ValueError, match=r"keys \['critic', 'generator'\]"):
    reference_names.load_state_dict_file(path)


def _run_cli(*args, block_torch=False):
  """Runs the convert CLI in a fresh process; with block_torch, `import
  torch` fails there, which shows a .pth converts without PyTorch."""
  code = ("import runpy, sys\n"
          + ("sys.modules['torch'] = None\n" if block_torch else "")
          + f"sys.argv = ['convert'] + {list(map(str, args))!r}\n"
          "runpy.run_module('lbam_tf.convert', run_name='__main__')\n")
  result = subprocess.run(
      [sys.executable, "-c", code], cwd=_REPO, capture_output=True, text=True,
      timeout=300, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
      check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  return result.stdout


def test_cli_end_to_end(tmp_path):
  # original_bn, so that config.json must carry the detected variant.
  weights = torch_reference.random_state_dict(
      torch_reference.Generator("original_bn"), seed=3)
  torch_model = _torch_model(weights, "original_bn")
  pth = tmp_path / "lbam.pth"
  torch.save(torch_model.state_dict(), pth)
  weights_path = tmp_path / "keras" / "lbam.weights.h5"
  _run_cli("--input", pth, "--output", weights_path, block_torch=True)
  with open(tmp_path / "keras" / "config.json") as f:
    assert json.load(f) == {"variant": "original_bn", "ablation": "none"}

  generator = model_io.load_generator(weights_path)
  image, mask = _inputs(1, 128, 256)
  np.testing.assert_allclose(
      generator({"image": image, "mask": mask}, training=False).numpy(),
      torch_reference.nhwc_output(torch_model, image, mask), rtol=0,
      atol=PARITY_TOLERANCE)

  npz = tmp_path / "back.npz"
  _run_cli("--input", weights_path, "--output", npz, "--to_reference")
  with np.load(npz) as exported:
    for name, value in weights.items():
      if not name.endswith("num_batches_tracked"):
        np.testing.assert_array_equal(exported[name], value, err_msg=name)
