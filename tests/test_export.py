"""serving/export.py: signatures, any size, bad requests, warm-up file."""

import os
import re
import subprocess
import sys

from google.protobuf import descriptor_pb2
from google.protobuf import descriptor_pool
from google.protobuf import message_factory
import inpaint_reference
import numpy as np
import pytest
import samples
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2
from tensorflow.core.protobuf import saved_model_pb2

from lbam_tf.inference import module as inference
from serving import export

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAX_PIXELS = 256 * 256


@pytest.fixture(scope="module")
def export_dir(head_weights, tmp_path_factory):
  """The export CLI run once on a weights file, as a user would."""
  target = tmp_path_factory.mktemp("export") / "lbam" / "1"
  subprocess.run(
      [sys.executable, "-m", "serving.export", f"--weights={head_weights}",
       f"--export_dir={target}", f"--max_pixels={MAX_PIXELS}"],
      cwd=ROOT, check=True, timeout=300, capture_output=True)
  return str(target)


@pytest.fixture(scope="module")
def loaded(export_dir):
  return inference.Export(export_dir)


def _serve(loaded, images, masks, polarity="white"):
  """Runs serving_default on uint8 arrays; returns decoded uint8 results."""
  outputs = loaded.signatures["serving_default"](
      image_bytes=tf.constant([samples.png(x) for x in images]),
      mask_bytes=tf.constant([samples.png(m) for m in masks]),
      mask_polarity=tf.constant(polarity))["image_bytes"].numpy()
  return [tf.io.decode_png(x).numpy() for x in outputs]


def _sample(height, width, seed=0):
  image = samples.noise(height, width, seed)
  hole = np.zeros((height, width), bool)
  hole[height // 4:height // 2, width // 3:2 * width // 3] = True
  return image, hole


def test_saved_model_cli_lists_both_signatures(export_dir):
  cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
  shown = subprocess.run([cli, "show", "--dir", export_dir, "--all"],
                         check=True, timeout=120, capture_output=True,
                         text=True).stdout
  serving, tensor = (shown.split("signature_def['serving_default']")[1],
                     shown.split("signature_def['inpaint_tensor']")[1])
  serving = serving.split("signature_def[")[0]
  tensor = tensor.split("signature_def[")[0]
  for name in ("inputs['image_bytes']", "inputs['mask_bytes']",
               "inputs['mask_polarity']", "outputs['image_bytes']",
               "DT_STRING", "tensorflow/serving/predict"):
    assert name in serving
  assert "unknown_rank" in serving.split("inputs['mask_polarity']")[1]
  for name in ("inputs['image']", "inputs['mask']", "outputs['image']",
               "(-1, -1, -1, 3)", "(-1, -1, -1, 1)", "DT_FLOAT"):
    assert name in tensor


def test_mask_polarity_defaults_to_white(export_dir):
  saved_model = saved_model_pb2.SavedModel()
  with open(os.path.join(export_dir, "saved_model.pb"), "rb") as f:
    saved_model.ParseFromString(f.read())
  signature = saved_model.meta_graphs[0].signature_def["serving_default"]
  defaults = signature.defaults
  assert tf.make_ndarray(defaults["mask_polarity"]) == b"white"


def test_bytes_signature_any_size_known_pixels_exact(loaded,
                                                     varied_generator):
  image, hole = _sample(100, 150)
  (result,) = _serve(loaded, [image], [hole[..., None] * 255])
  assert result.shape == image.shape
  np.testing.assert_array_equal(result[~hole], image[~hole])
  expected = inpaint_reference.varied_expected(varied_generator, image, hole)
  assert np.abs(result.astype(int) - expected).max() <= 1


def test_tensor_signature_any_size_known_pixels_exact(loaded,
                                                      varied_generator):
  image, hole = _sample(130, 70, seed=1)
  x = image.astype(np.float32) / 255.0
  result = loaded.signatures["inpaint_tensor"](
      image=tf.constant(x[None]),
      mask=tf.constant((~hole).astype(np.float32)[None, ..., None]))["image"]
  result = result.numpy()[0]
  np.testing.assert_array_equal(result[~hole], x[~hole])
  expected = inpaint_reference.varied_expected(varied_generator, image, hole)
  expected = expected.astype(np.float32) / 255.0
  assert np.abs(result - expected).max() <= 1.0 / 255.0 + 1e-6


def test_all_known_mask_returns_input_and_all_hole_returns_image(
    loaded, varied_generator):
  image, _ = _sample(64, 96, seed=2)
  known, holes = _serve(
      loaded, [image, image],
      [np.zeros((64, 96, 1)), np.full((64, 96, 1), 255)])
  np.testing.assert_array_equal(known, image)
  # Nothing known: the generator's output is one colour (from its biases).
  expected = inpaint_reference.expected(varied_generator, image,
                                        np.ones((64, 96), bool))
  assert holes.shape == image.shape
  assert np.abs(holes.astype(int) - expected).max() <= 1
  # Alone in its request too: a batch with a known pixel somewhere must not
  # decide how an all-hole image is served.
  (alone,) = _serve(loaded, [image], [np.full((64, 96, 1), 255)])
  assert np.abs(alone.astype(int) - expected).max() <= 1


def test_polarity_channels_and_threshold_agree(loaded):
  image, hole = _sample(96, 80, seed=3)
  grey = hole[..., None].astype(np.uint8) * 255
  (reference,) = _serve(loaded, [image], [grey])
  rgb = np.repeat(grey, 3, axis=-1)
  rgba = np.concatenate([rgb, np.full_like(grey, 7)], axis=-1)
  # 127/255 is below the 0.5 threshold and 128/255 above it.
  soft = np.where(grey > 0, 128, 127).astype(np.uint8)
  for mask, polarity in ((255 - grey, "black"), (rgb, "white"),
                         (rgba, "white"), (soft, "white")):
    (result,) = _serve(loaded, [image], [mask], polarity)
    np.testing.assert_array_equal(result, reference)
  # One polarity per image, as TF Serving's batching concatenates them.
  for result in _serve(loaded, [image, image], [grey, 255 - grey],
                       ["white", "black"]):
    np.testing.assert_array_equal(result, reference)


def test_mixed_sizes_in_one_batch_match_single_requests(loaded,
                                                        varied_generator):
  pairs = [_sample(70, 90, seed=4), _sample(129, 64, seed=5)]
  batch = _serve(loaded, [image for image, _ in pairs],
                 [hole[..., None] * 255 for _, hole in pairs])
  for result, (image, hole) in zip(batch, pairs):
    (single,) = _serve(loaded, [image], [hole[..., None] * 255])
    assert result.shape == image.shape
    assert np.abs(result.astype(int) - single).max() <= 1
    expected = inpaint_reference.varied_expected(varied_generator, image, hole)
    assert np.abs(result.astype(int) - expected).max() <= 1


_IMAGE, _HOLE = _sample(40, 60, seed=6)
_MASK = _HOLE[..., None].astype(np.uint8) * 255
_BAD_BYTES_REQUESTS = {
    "undecodable image": (
        {"image_bytes": [b"not an image"], "mask_bytes": [samples.png(_MASK)]},
        "image_bytes[0] is not an image"),
    "undecodable mask": (
        {"image_bytes": [samples.png(_IMAGE)],
         "mask_bytes": [b"\x89PNG broken"]},
        "PNG"),
    "size mismatch": (
        {"image_bytes": [samples.png(_IMAGE)],
         "mask_bytes": [samples.png(_MASK[:30])]},
        "mask_bytes[0] is 30x60 but image_bytes[0] is 40x60"),
    "batch mismatch": (
        {"image_bytes": [samples.png(_IMAGE)] * 2,
         "mask_bytes": [samples.png(_MASK)]},
        "image_bytes has 2 images but mask_bytes has 1"),
    "empty batch": (
        {"image_bytes": tf.constant([], tf.string),
         "mask_bytes": tf.constant([], tf.string)},
        "empty batch"),
    "unknown polarity": (
        {"image_bytes": [samples.png(_IMAGE)],
         "mask_bytes": [samples.png(_MASK)],
         "mask_polarity": "grey"},
        "mask_polarity grey is not one of white / black"),
    "polarity count": (
        {"image_bytes": [samples.png(_IMAGE)] * 3,
         "mask_bytes": [samples.png(_MASK)] * 3,
         "mask_polarity": ["white", "black"]},
        "mask_polarity has 2 values for 3 images"),
    "too large": (
        {"image_bytes": [samples.png(np.zeros((300, 300, 3)))],
         "mask_bytes": [samples.png(np.zeros((300, 300, 1)))]},
        f"300x300 = 90000 pixels, above the limit of {MAX_PIXELS}"),
}


@pytest.mark.parametrize("case", sorted(_BAD_BYTES_REQUESTS))
def test_bad_bytes_request_is_invalid_argument(loaded, case):
  inputs, message = _BAD_BYTES_REQUESTS[case]
  inputs = {"mask_polarity": "white", **inputs}
  # Several calls: graph ops run in whatever order their inputs allow, and
  # an op not held behind its check failed first on half the calls.
  for _ in range(12):
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=re.escape(message)):
      loaded.signatures["serving_default"](
          **{k: tf.constant(v) for k, v in inputs.items()})


@pytest.mark.parametrize("image_shape, mask_shape, message", [
    ([1, 40, 60, 3], [1, 40, 61, 1], r"mask \[B,H,W\] = \[1 40 61\] does not "
     r"match image \[B,H,W\] = \[1 40 60\]"),
    ([2, 40, 60, 3], [1, 40, 60, 1], "does not match"),
    ([0, 40, 60, 3], [0, 40, 60, 1], "empty batch"),
    ([1, 300, 300, 3], [1, 300, 300, 1], "above the limit"),
])
def test_bad_tensor_request_is_invalid_argument(loaded, image_shape,
                                                mask_shape, message):
  with pytest.raises(tf.errors.InvalidArgumentError, match=message):
    loaded.signatures["inpaint_tensor"](image=tf.zeros(image_shape),
                                        mask=tf.ones(mask_shape))


def _prediction_log_class():
  """PredictionLog parsed by the protobuf library from its .proto field numbers.

  Built independently of the hand-written encoder in serving/export.py, from
  tensorflow_serving/apis/{prediction_log,predict,model}.proto.
  """
  pool = descriptor_pool.DescriptorPool()
  added = set()

  def add(file_descriptor):
    for dependency in file_descriptor.dependencies:
      add(dependency)
    if file_descriptor.name not in added:
      proto = descriptor_pb2.FileDescriptorProto()
      file_descriptor.CopyToProto(proto)
      pool.Add(proto)
      added.add(file_descriptor.name)

  add(tensor_pb2.DESCRIPTOR)
  f = descriptor_pb2.FieldDescriptorProto
  def field(name, number, kind, type_name=None, repeated=False):
    return f(name=name, number=number, type=kind, type_name=type_name,
             label=f.LABEL_REPEATED if repeated else f.LABEL_OPTIONAL)

  proto = descriptor_pb2.FileDescriptorProto(
      name="warmup_test.proto", package="tensorflow.serving", syntax="proto3",
      dependency=[tensor_pb2.DESCRIPTOR.name])
  proto.message_type.add(name="ModelSpec", field=[
      field("name", 1, f.TYPE_STRING),
      field("signature_name", 3, f.TYPE_STRING)])
  request = proto.message_type.add(name="PredictRequest", field=[
      field("model_spec", 1, f.TYPE_MESSAGE, ".tensorflow.serving.ModelSpec"),
      field("inputs", 2, f.TYPE_MESSAGE,
            ".tensorflow.serving.PredictRequest.InputsEntry", repeated=True)])
  entry = request.nested_type.add(name="InputsEntry", field=[
      field("key", 1, f.TYPE_STRING),
      field("value", 2, f.TYPE_MESSAGE, ".tensorflow.TensorProto")])
  entry.options.map_entry = True
  proto.message_type.add(name="PredictLog", field=[
      field("request", 1, f.TYPE_MESSAGE,
            ".tensorflow.serving.PredictRequest")])
  proto.message_type.add(name="PredictionLog", field=[
      field("predict_log", 6, f.TYPE_MESSAGE,
            ".tensorflow.serving.PredictLog")])
  pool.Add(proto)
  return message_factory.GetMessageClass(
      pool.FindMessageTypeByName("tensorflow.serving.PredictionLog"))


def test_warmup_requests_parse_and_run(export_dir, loaded):
  path = os.path.join(export_dir, "assets.extra", "tf_serving_warmup_requests")
  records = [r.numpy() for r in tf.data.TFRecordDataset(path)]
  assert len(records) == 1
  log = _prediction_log_class().FromString(records[0])
  request = log.predict_log.request
  assert request.model_spec.signature_name == "serving_default"
  inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
  assert set(inputs) == {"image_bytes", "mask_bytes", "mask_polarity"}
  assert tf.io.decode_png(inputs["image_bytes"][0]).shape == (256, 256, 3)
  outputs = loaded.signatures["serving_default"](
      **{k: tf.constant(v) for k, v in inputs.items()})["image_bytes"]
  assert tf.io.decode_png(outputs[0]).shape == (256, 256, 3)


@pytest.mark.parametrize("name, message", [
    ("lbam", "must end in a numeric version folder"),
    ("lbam/1", "exists and is not empty"),
])
def test_export_dir_is_checked(tmp_path, name, message):
  (tmp_path / "lbam" / "1").mkdir(parents=True)
  (tmp_path / "lbam" / "1" / "saved_model.pb").write_bytes(b"")
  with pytest.raises(ValueError, match=message):
    export.check_export_dir(str(tmp_path / name))


def _heavy_op_dtypes(export_dir):
  """{dtype name: count} of the convolutions and matmuls in a SavedModel."""
  saved_model = saved_model_pb2.SavedModel()
  with open(os.path.join(export_dir, "saved_model.pb"), "rb") as f:
    saved_model.ParseFromString(f.read())
  heavy = {"Conv2D", "Conv2DBackpropInput", "MatMul", "BatchMatMulV2"}
  counts = {}
  for function in saved_model.meta_graphs[0].graph_def.library.function:
    for node in function.node_def:
      if node.op in heavy:
        name = tf.dtypes.as_dtype(node.attr["T"].type).name
        counts[name] = counts.get(name, 0) + 1
  return counts


def test_bfloat16_export_computes_in_bfloat16_with_same_signatures(
    head_weights, export_dir, loaded, tmp_path):
  target = tmp_path / "lbam" / "1"
  subprocess.run(
      [sys.executable, "-m", "serving.export", f"--weights={head_weights}",
       f"--export_dir={target}", f"--max_pixels={MAX_PIXELS}",
       "--precision=bfloat16", "--warmup_sizes="],
      cwd=ROOT, check=True, timeout=300, capture_output=True)
  assert set(_heavy_op_dtypes(export_dir)) == {"float32"}
  assert set(_heavy_op_dtypes(str(target))) == {"bfloat16"}

  bf16 = inference.Export(str(target))
  for name, signature in loaded.model.signatures.items():
    other = bf16.model.signatures[name]
    assert other.structured_input_signature == \
        signature.structured_input_signature
    assert other.structured_outputs == signature.structured_outputs

  image, hole = _sample(100, 150, seed=2)
  (want,) = _serve(loaded, [image], [hole[..., None] * 255])
  (got,) = _serve(bf16, [image], [hole[..., None] * 255])
  np.testing.assert_array_equal(got[~hole], image[~hole])
  error = np.mean((got[hole].astype(float) - want[hole]) ** 2)
  assert 10 * np.log10(255.0**2 / max(error, 1e-10)) > 30.0
