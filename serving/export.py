"""Exports a generator as a SavedModel for TF Serving.

    python -m serving.export --weights runs/paris --export_dir exports/lbam/1

`--weights` is anything `lbam_tf.weights.model_io.load_generator` reads; the
last folder of `--export_dir` is the version number TF Serving serves
(`<model_base_path>/<version>`). The signatures are
`lbam_tf.inference.module.InpaintModule`'s: `serving_default` (encoded images
and masks in, PNGs out, any size, known pixels bit-exact) and
`inpaint_tensor` (float tensors, composited). `--precision bfloat16` stores
and computes the generator in bfloat16 (fast only with AVX512_BF16 or AMX;
`bench/serving.py` compares). The export holds warm-up requests in
`assets.extra/tf_serving_warmup_requests`, replayed by TF Serving before the
model is AVAILABLE. Inputs, limits and errors: README.md, "Export".
"""

import dataclasses
import os
import shutil
import uuid

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tensorflow.core.protobuf import saved_model_pb2  # noqa: E402

from lbam_tf import cli  # noqa: E402
from lbam_tf.inference import hd  # noqa: E402
from lbam_tf.inference import module as inference  # noqa: E402
from lbam_tf.inference.signatures import SERVING_SIGNATURE  # noqa: E402
from lbam_tf.inference.signatures import TENSOR_SIGNATURE  # noqa: E402
from lbam_tf.model import generator as generator_lib  # noqa: E402
from lbam_tf.weights import model_io  # noqa: E402

DEFAULT_MAX_PIXELS = inference.DEFAULT_MAX_PIXELS
DEFAULT_MAX_IMAGES = inference.DEFAULT_MAX_IMAGES
DEFAULT_MAX_REQUEST_PIXELS = inference.DEFAULT_MAX_REQUEST_PIXELS
#: What `tf.saved_model.save` and `write_warmup_requests` put in a version
#: folder; --overwrite replaces only a folder holding nothing else.
EXPORT_ENTRIES = {"saved_model.pb", "fingerprint.pb", "variables", "assets",
                  "assets.extra"}
WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")

def _varint(value):
  out = bytearray()
  while True:
    byte = value & 0x7F
    value >>= 7
    if value:
      out.append(byte | 0x80)
    else:
      out.append(byte)
      return bytes(out)


def _field(number, payload):
  """A length-delimited protobuf field (wire type 2)."""
  return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def prediction_log_bytes(inputs, signature_name=SERVING_SIGNATURE,
                         model_name="lbam"):
  """A serialized `tensorflow.serving.PredictionLog` holding one PredictRequest.

  Written field by field (numbers from tensorflow_serving/apis/
  prediction_log.proto, predict.proto, model.proto) because the
  `tensorflow-serving-api` wheel would pull in the full `tensorflow` wheel.

  Args:
    inputs: dict of input name -> array-like, converted with
      `tf.make_tensor_proto`.
    signature_name: which signature the request calls.
    model_name: ModelSpec.name (TF Serving replaces it with the served model).

  Returns:
    bytes: PredictionLog{predict_log: PredictLog{request: PredictRequest}}.
  """
  model_spec = (_field(1, model_name.encode())
                + _field(3, signature_name.encode()))
  request = _field(1, model_spec)
  for name in sorted(inputs):
    tensor = tf.make_tensor_proto(inputs[name]).SerializeToString()
    request += _field(2, _field(1, name.encode()) + _field(2, tensor))
  return _field(6, _field(1, request))


def warmup_example(size=256):
  """A synthetic image (smooth colour ramps) and a centred square hole mask.

  Returns:
    (image uint8 [size, size, 3], mask uint8 [size, size, 1] with 255 = hole).
  """
  ramp = np.linspace(0, 255, size, dtype=np.float32)
  image = np.stack(np.broadcast_arrays(ramp[:, None], ramp[None, :],
                                       255 - ramp[:, None]), axis=-1)
  mask = np.zeros((size, size, 1), np.uint8)
  mask[size // 4:3 * size // 4, size // 4:3 * size // 4] = 255
  return image.astype(np.uint8), mask


def write_warmup_requests(export_dir, sizes=(256,)):
  """Writes one `serving_default` request per size into assets.extra.

  `mask_polarity` is sent explicitly so that warm-up also works on TF Serving
  builds that do not read SignatureDef defaults.

  Returns:
    The path of the TFRecord file.
  """
  path = os.path.join(export_dir, WARMUP_FILE)
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with tf.io.TFRecordWriter(path) as writer:
    for size in sizes:
      image, mask = warmup_example(size)
      writer.write(prediction_log_bytes({
          "image_bytes": [tf.io.encode_png(image).numpy()],
          "mask_bytes": [tf.io.encode_png(mask).numpy()],
          "mask_polarity": "white"}))
  return path


def is_our_export(path):
  """Whether `path` holds an export of this module and nothing else."""
  if not os.path.isfile(os.path.join(path, "saved_model.pb")):
    return False
  if not set(os.listdir(path)) <= EXPORT_ENTRIES:
    return False
  saved_model = saved_model_pb2.SavedModel()
  try:
    with open(os.path.join(path, "saved_model.pb"), "rb") as f:
      saved_model.ParseFromString(f.read())
  except Exception:  # pylint: disable=broad-except
    # Any parse failure means "not ours"; protobuf raises several kinds.
    return False
  return any({SERVING_SIGNATURE, TENSOR_SIGNATURE} <= set(graph.signature_def)
             for graph in saved_model.meta_graphs)


def check_export_dir(export_dir, overwrite=False):
  """Raises ValueError unless `export_dir` is a version folder we may write.

  Deletes nothing, so a command line can check before loading the weights
  and a failed load leaves the previous export in place. --overwrite only
  replaces an earlier export (`is_our_export`): a numeric folder holding
  anything else is never wiped.
  """
  version = os.path.basename(os.path.normpath(export_dir))
  if not version.isdigit():
    raise ValueError(
        f"--export_dir {export_dir} must end in a numeric version folder, e.g. "
        f"{os.path.join(export_dir, '1')}: TF Serving loads "
        "<model_base_path>/<version>")
  if os.path.exists(export_dir) and not os.path.isdir(export_dir):
    raise ValueError(f"--export_dir {export_dir} is a file, not a folder: "
                     "pick another version number")
  if os.path.isdir(export_dir) and os.listdir(export_dir):
    if not overwrite:
      raise ValueError(
          f"--export_dir {export_dir} exists and is not empty: pick a new "
          "version number or pass --overwrite")
    if not is_our_export(export_dir):
      found = ", ".join(sorted(os.listdir(export_dir))[:5])
      raise ValueError(
          f"--export_dir {export_dir} holds files that are not an export "
          f"of serving.export ({found}): --overwrite only replaces an "
          "earlier export; move them away or pick another version number")


def _sibling(path, kind):
  """A new hidden name beside `path`; TF Serving skips non-numeric names."""
  parent, version = os.path.split(path)
  return os.path.join(parent, f".{version}.{kind}-{uuid.uuid4().hex[:8]}")


def _replace(source, target):
  """Renames folder `source` to `target`, replacing `target` if it exists.

  Renames within one folder: TF Serving sees the old version or the whole
  new one, never a partial one (between the two renames of a replacement,
  for an instant, neither).
  """
  if not os.path.exists(target):
    os.rename(source, target)
    return
  old = _sibling(target, "old")
  os.rename(target, old)
  try:
    os.rename(source, target)
  except OSError:
    os.rename(old, target)
    raise
  shutil.rmtree(old)


def export(generator, export_dir, max_pixels=DEFAULT_MAX_PIXELS,
           warmup_sizes=(256,), overwrite=False,
           max_images=DEFAULT_MAX_IMAGES,
           max_request_pixels=DEFAULT_MAX_REQUEST_PIXELS, precision="float32",
           max_generator_pixels=inference.DEFAULT_MAX_GENERATOR_PIXELS,
           **hd_options):
  """Saves `generator` with both signatures and warm-up requests.

  The export is written to a hidden sibling folder (TF Serving ignores
  non-numeric names) and renamed into place when complete, so a failed
  export leaves the previous version as it was.

  Args:
    generator: a model from `build_generator` (or `model_io.load_generator`).
    export_dir: `<model_base_path>/<version>`.
    max_pixels: the largest H * W of a photo a request may send.
    warmup_sizes: square sizes of the warm-up requests; empty for none.
    overwrite: replace an earlier export at `export_dir`.
    max_images: the most images per request.
    max_request_pixels: the most pixels per request, all images together.
    precision: a key of `model_io.PRECISION_POLICIES`: the dtype the
      generator's weights and arithmetic use inside the SavedModel.
    max_generator_pixels: the most pixels one generator call runs on.
    **hd_options: hd_strategy, crop_margin, resize_limit, crop_trigger: the
      signatures' defaults (`lbam_tf.inference.hd`).

  Returns:
    `export_dir`.
  """
  check_export_dir(export_dir, overwrite)
  if precision not in model_io.PRECISION_POLICIES:
    raise ValueError(f"precision {precision!r} is not one of "
                     f"{sorted(model_io.PRECISION_POLICIES)}")
  if precision != "float32":
    generator = model_io.with_dtype_policy(
        generator, model_io.PRECISION_POLICIES[precision])
  target = os.path.abspath(export_dir)
  os.makedirs(os.path.dirname(target), exist_ok=True)
  staging = _sibling(target, "tmp")
  os.mkdir(staging)
  try:
    module = inference.InpaintModule(
        generator, max_pixels=max_pixels,
        max_generator_pixels=max_generator_pixels, max_images=max_images,
        max_request_pixels=max_request_pixels, **hd_options)
    tf.saved_model.save(module, staging, signatures=module.signatures())
    if warmup_sizes:
      write_warmup_requests(staging, warmup_sizes)
    if os.path.isdir(target) and not os.listdir(target):
      os.rmdir(target)
    _replace(staging, target)
  except BaseException:
    shutil.rmtree(staging, ignore_errors=True)
    raise
  return export_dir


@dataclasses.dataclass
class Config(hd.HdOptions):
  """One export, as plain values (the flags, or a test's choice); the
  high-resolution options become the signatures' defaults."""
  weights: str | None = cli.option(
      None, "What to export: a training model_dir, a .weights.h5 (with a "
      "config.json beside it for non-default variants), a .keras file, or "
      "the authors' .pth / .npz checkpoint.", required=True)
  export_dir: str | None = cli.option(
      None, "Where to write the SavedModel: <model_base_path>/<version>, "
      "e.g. exports/lbam/1. TF Serving serves the highest version.",
      required=True)
  variant: str | None = cli.option(
      None, "Generator layout, only needed for a .weights.h5 without a "
      "config.json beside it.", choices=generator_lib.VARIANTS)
  ablation: str | None = cli.option(
      None, "Generator ablation, as for --variant.")
  max_pixels: int = cli.option(
      DEFAULT_MAX_PIXELS, "Largest height*width of a photo a request may "
      "send; larger ones get INVALID_ARGUMENT before anything is decoded "
      "(checked from each file's header).")
  max_generator_pixels: int = cli.option(
      inference.DEFAULT_MAX_GENERATOR_PIXELS, "Most pixels one generator "
      "call runs on (its padded input, all images of the call): what bounds "
      "a request's memory. --hd_strategy crop and resize stay under it; "
      "original on a larger photo is refused.")
  max_images: int = cli.option(
      DEFAULT_MAX_IMAGES, "Most images per request (under TF Serving's "
      "batching: per merged batch, so at least its max_batch_size).")
  max_request_pixels: int = cli.option(
      DEFAULT_MAX_REQUEST_PIXELS,
      "Most pixels per request, all its images together.")
  warmup_sizes: tuple = cli.option(
      (256,), "Square sizes of the warm-up requests written to assets.extra "
      "(empty for none).")
  overwrite: bool = cli.option(
      False, "Replace an earlier export at --export_dir (a folder holding "
      "anything else is refused). The new version is written beside it and "
      "renamed into place; a failed export keeps the old one.")
  precision: str = cli.option(
      "float32", "Weights and arithmetic of the exported generator. bfloat16 "
      "is faster on CPUs with AVX512_BF16 or AMX (slower elsewhere); inputs "
      "and outputs are unchanged.", choices=model_io.PRECISION_POLICIES)

  def check(self):
    """Raises ValueError naming the bad value and what to do instead.

    Deletes and loads nothing: a bad --export_dir is refused before the
    weights are read."""
    for name in ("weights", "export_dir"):
      if not getattr(self, name):
        raise ValueError(f"--{name} is required")
    if self.variant not in (None, *generator_lib.VARIANTS):
      raise ValueError(f"--variant {self.variant!r} is not one of "
                       f"{generator_lib.VARIANTS}")
    if self.precision not in model_io.PRECISION_POLICIES:
      raise ValueError(f"--precision {self.precision!r} is not one of "
                       f"{sorted(model_io.PRECISION_POLICIES)}")
    for size in self.warmup_sizes:
      if not str(size).isdigit() or int(size) < 1:
        raise ValueError(f"--warmup_sizes {size!r} is not a positive "
                         "integer: give square sizes such as 256,512")
    if self.max_generator_pixels < 1:
      raise ValueError(f"--max_generator_pixels {self.max_generator_pixels} "
                       "must be at least 1")
    self.check_hd()
    check_export_dir(self.export_dir, self.overwrite)


def run(config):
  """Loads `config.weights` and exports it; returns what it wrote."""
  generator = model_io.load_generator(config.weights, variant=config.variant,
                                      ablation=config.ablation)
  export(generator, config.export_dir, config.max_pixels,
         [int(size) for size in config.warmup_sizes], config.overwrite,
         config.max_images, config.max_request_pixels, config.precision,
         config.max_generator_pixels, **config.hd_resolved())
  return (f"exported {config.weights} to {config.export_dir} in "
          f"{config.precision} (signatures {SERVING_SIGNATURE}, "
          f"{TENSOR_SIGNATURE})")


def main(argv):
  return cli.run_flags(Config, run)


if __name__ == "__main__":
  cli.define_flags(Config)
  app.run(main)
