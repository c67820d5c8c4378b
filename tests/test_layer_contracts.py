"""Every registered layer of the project through layer_testing.run_layer_test.

Shapes (symbolic, eager, compute_output_shape), config round trips, weight
counts and mixed_bfloat16, case by case; a registered layer without a case
fails `test_every_registered_layer_has_a_case`. The numbers each layer
computes are checked against numpy in test_layers.py and test_critic.py.
"""

import collections
import importlib
import os

import keras
import layer_testing
import pytest
import samples

from lbam_tf.model import critic
from lbam_tf.model import layers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: The project's packages, searched for registered layers.
PACKAGES = ("lbam_tf", "serving", "pipeline")

Case = collections.namedtuple("Case", [
    "id", "layer_cls", "init_kwargs", "input_data", "expected_output_shape",
    "trainable", "non_trainable", "call_kwargs"], defaults=[None])


def _features_and_masks(batch, height, width, channels, mask_channels):
  return [samples.uniform((batch, height, width, channels), 1, -1.0, 1.0),
          samples.uniform((batch, height, width, mask_channels), 2)]


def _decoder_inputs(with_reverse):
  """[skip, features, forward_map(, reverse_map)]: 3 filters at 8x10."""
  inputs = [samples.uniform((2, 8, 10, 3), 3, -1.0, 1.0),
            samples.uniform((2, 4, 5, 6), 4, -1.0, 1.0),
            samples.uniform((2, 8, 10, 3), 5, 0.0, 1.5)]
  if with_reverse:
    inputs.append(samples.uniform((2, 8, 10, 3), 6, 0.0, 1.5))
  return inputs


def _cases():
  # Output blocks of ForwardAttention: (out, next_mask, skip, attention_map).
  forward = [(2, 4, 5, 6)] * 4
  return [
      Case("gaussian", layers.AsymmetricGaussian,
           {"a": 1.5, "mu": 1.2, "gamma_l": 0.8, "gamma_r": 1.7},
           samples.uniform((2, 4, 6, 3), 0, 0.0, 3.0), (2, 4, 6, 3), 4, 0),
      Case("mask_update", layers.MaskUpdate, {"alpha": 0.5},
           samples.uniform((2, 4, 6, 3), 0, -1.0, 2.0), (2, 4, 6, 3), 0, 0),
      Case("forward", layers.ForwardAttention, {"filters": 6},
           _features_and_masks(2, 8, 10, 4, 3), forward, 6, 0),
      Case("forward_bn_3x3", layers.ForwardAttention,
           {"filters": 6, "mask_kernel_size": 3, "batch_norm": True},
           _features_and_masks(2, 8, 10, 4, 3), forward, 8, 2,
           {"training": True}),
      Case("forward_pconv", layers.ForwardAttention,
           {"filters": 6, "attention": "pconv"},
           _features_and_masks(2, 8, 10, 4, 3), forward, 1, 0),
      Case("forward_leaky_relu", layers.ForwardAttention,
           {"filters": 6, "attention": "leaky_relu"},
           _features_and_masks(2, 8, 10, 4, 3), forward, 2, 0),
      # 18 x 18 outputs: above cpu_conv.MATMUL_CONV_MAX_PIXELS, so the
      # convolution path rather than the matmul one.
      Case("forward_convolution_path", layers.ForwardAttention,
           {"filters": 4}, _features_and_masks(1, 36, 36, 2, 1),
           [(1, 18, 18, 4)] * 4, 6, 0),
      Case("reverse", layers.ReverseAttention, {"filters": 5},
           samples.uniform((2, 8, 10, 3), 2), [(2, 4, 5, 5)] * 2, 5, 0),
      Case("reverse_sigmoid_3x3", layers.ReverseAttention,
           {"filters": 5, "attention": "sigmoid", "mask_kernel_size": 3},
           samples.uniform((2, 8, 10, 3), 2), [(2, 4, 5, 5)] * 2, 1, 0),
      Case("reverse_pconv", layers.ReverseAttention,
           {"filters": 5, "attention": "pconv"},
           samples.uniform((2, 8, 10, 3), 2), [(2, 4, 5, 5)] * 2, 0, 0),
      Case("decoder", layers.DecoderBlock, {"filters": 3},
           _decoder_inputs(with_reverse=True), (2, 8, 10, 6), 1, 0),
      Case("decoder_bn_forward_only", layers.DecoderBlock,
           {"filters": 3, "batch_norm": True},
           _decoder_inputs(with_reverse=False), (2, 8, 10, 6), 3, 2,
           {"training": True}),
      Case("output", layers.TransposedConvOutput, {"filters": 3},
           samples.uniform((2, 4, 5, 6), 7, -1.0, 1.0), (2, 8, 10, 3), 1, 0),
      # 512 filters: cpu_conv.MATMUL_TRANSPOSE_MIN_FILTERS, the matmul path.
      Case("output_wide", layers.TransposedConvOutput, {"filters": 512},
           samples.uniform((1, 2, 3, 4), 7, -1.0, 1.0), (1, 4, 6, 512), 1, 0),
      Case("size_check", layers.InputSizeCheck, {"multiple": 64},
           [samples.uniform((1, 64, 128, 3), 8),
            samples.uniform((1, 64, 128, 1), 9)],
           [(1, 64, 128, 3), (1, 64, 128, 1)], 0, 0),
      Case("pool", critic.AdaptiveAveragePooling, {"grid": 3},
           samples.uniform((2, 8, 6, 5), 10), (2, 3, 3, 5), 0, 0),
  ]


CASES = _cases()


def _run(case):
  return layer_testing.run_layer_test(
      case.layer_cls, case.init_kwargs, case.input_data,
      call_kwargs=case.call_kwargs,
      expected_output_shape=case.expected_output_shape,
      expected_num_trainable_weights=case.trainable,
      expected_num_non_trainable_weights=case.non_trainable)


def _case(case_id):
  (case,) = [case for case in CASES if case.id == case_id]
  return case


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_layer_contract(case):
  _run(case)


def _registered_layers():
  """Layer classes of the project's modules in Keras' serialization registry.

  Every module whose source registers something is imported first, so a
  layer registered anywhere in the project is found.
  """
  for package in PACKAGES:
    for folder, _, names in os.walk(os.path.join(ROOT, package)):
      for file_name in names:
        path = os.path.join(folder, file_name)
        if not file_name.endswith(".py"):
          continue
        with open(path, encoding="utf-8") as f:
          if "register_keras_serializable" not in f.read():
            continue
        module = os.path.relpath(path, ROOT)[:-len(".py")].replace(os.sep, ".")
        importlib.import_module(module.removesuffix(".__init__"))
  return {obj for obj in keras.saving.get_custom_objects().values()
          if isinstance(obj, type) and issubclass(obj, keras.layers.Layer)
          and obj.__module__.split(".")[0] in PACKAGES}


def test_every_registered_layer_has_a_case():
  registered = _registered_layers()
  covered = {case.layer_cls for case in CASES}
  assert registered, "found no registered layers: is the search broken?"
  missing = sorted(cls.__name__ for cls in registered - covered)
  assert not missing, f"registered layers without a contract case: {missing}"
  assert covered <= registered, (
      f"cases for unregistered layers: {covered - registered}")


# The helper itself must fail on broken layers: each test breaks one
# contract of a real layer for the test's duration only.

def test_helper_fails_on_a_wrong_compute_output_shape(monkeypatch):
  def unscaled(self, input_shape):
    return input_shape[:-1] + (self.filters,)

  monkeypatch.setattr(layers.TransposedConvOutput, "compute_output_shape",
                      unscaled)
  with pytest.raises(AssertionError, match="compute_output_shape disagrees"):
    _run(_case("output"))


def test_helper_fails_on_a_compute_output_shape_wrong_for_unknown_sizes(
    monkeypatch):
  right = layers.DecoderBlock.compute_output_shape

  def wrong_when_unknown(self, input_shape):
    batch, height, width, channels = right(self, input_shape)
    return batch, height or 1, width or 1, channels

  monkeypatch.setattr(layers.DecoderBlock, "compute_output_shape",
                      wrong_when_unknown)
  with pytest.raises(AssertionError, match="traced call"):
    _run(_case("decoder"))


def test_helper_fails_on_a_config_without_an_argument(monkeypatch):
  right = layers.ForwardAttention.get_config

  def without_batch_norm(self):
    config = right(self)
    del config["batch_norm"]
    return config

  monkeypatch.setattr(layers.ForwardAttention, "get_config",
                      without_batch_norm)
  with pytest.raises(AssertionError, match="lacks __init__ arguments"):
    _run(_case("forward_bn_3x3"))


def test_helper_fails_on_a_wrong_weight_count():
  case = _case("reverse")._replace(trainable=4)
  with pytest.raises(AssertionError, match="weights"):
    _run(case)


def test_helper_fails_on_a_float32_output_under_mixed_precision(monkeypatch):
  right = layers.MaskUpdate.call
  monkeypatch.setattr(layers.MaskUpdate, "call",
                      lambda self, x: keras.ops.cast(right(self, x),
                                                     "float32"))
  with pytest.raises(AssertionError, match="mixed_bfloat16"):
    _run(_case("mask_update"))
