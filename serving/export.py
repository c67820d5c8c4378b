"""Exports a generator as a SavedModel for TF Serving.

    python -m serving.export --weights runs/paris --export_dir exports/lbam/1

`--weights` is anything `lbam_tf.model_io.load_generator` reads: a training
model_dir, a `.weights.h5`, a `.keras` file, or the authors' `.pth` / `.npz`.
The last folder of `--export_dir` is the version number TF Serving serves
(`<model_base_path>/<version>`).

Signatures (TF Serving's `tensorflow/serving/predict` method):
- `serving_default`: `image_bytes` string [B] (any format `tf.io.decode_image`
  reads: JPEG, PNG, GIF, BMP, WebP, JPEG XL), `mask_bytes` string [B] (grey,
  RGB or RGBA; the hole colour is bright unless `mask_polarity` says
  "black"; thresholded at 0.5), optional `mask_polarity` string, a scalar
  (default "white") or one value per image -> `image_bytes` string [B] of
  PNGs. (Per-image values let TF Serving's server-side batching, which
  concatenates every input along dimension 0, batch requests that send it.) Images of any size
  are reflect-padded to a multiple of 128, inpainted, cropped back and
  composited, so known pixels come back bit-exact. A batch may mix sizes
  (TF Serving's server-side batching concatenates requests): same-size
  batches run as one generator call, mixed ones image by image.
- `inpaint_tensor`: `image` float32 [B, H, W, 3] in [0, 1], `mask` float32
  [B, H, W, 1] (1 = known, thresholded at 0.5) -> `image` float32
  [B, H, W, 3], composited.

Bad requests (undecodable bytes, mask and image sizes that differ, batch sizes
that differ, an empty batch, an unknown polarity, images above `--max_pixels`)
fail with INVALID_ARGUMENT and a message naming the value and the remedy.

The export also holds warm-up requests in
`assets.extra/tf_serving_warmup_requests`, which TF Serving replays before it
reports the model AVAILABLE, so the first user request does not pay for graph
optimisation.
"""

import os
import shutil

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from lbam_tf import image_ops  # noqa: E402
from lbam_tf import model_io  # noqa: E402

SERVING_SIGNATURE = "serving_default"
TENSOR_SIGNATURE = "inpaint_tensor"
WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
#: 2048 x 2048: the generator's activations at this size take about 6 GB.
DEFAULT_MAX_PIXELS = 2048 * 2048

#: Leading bytes of the formats tf.io.decode_image reads, checked first so that
#: the error names the input instead of only the decoder's complaint.
_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"BM", b"\xff\x0a",
          b"\x00\x00\x00\x0cJXL ")
_HEAD = 12


def _check(condition, message):
  """An assert that fails with INVALID_ARGUMENT carrying `message`."""
  return tf.debugging.Assert(condition, [message], summarize=1)


def _is_image_format(data):
  """True if the string starts like a format tf.io.decode_image reads."""
  head = tf.strings.substr(
      tf.strings.join([tf.strings.substr(data, 0, _HEAD), b"\0" * _HEAD]),
      0, _HEAD)
  known = [tf.strings.substr(head, 0, len(magic)) == magic for magic in _MAGIC]
  webp = tf.logical_and(tf.strings.substr(head, 0, 4) == b"RIFF",
                        tf.strings.substr(head, 8, 4) == b"WEBP")
  return tf.reduce_any(tf.stack(known + [webp]))


def _decode(data, name, index):
  """Decodes one image string to uint8 [H, W, 3], naming it in errors."""
  where = tf.strings.join([name, "[", tf.strings.as_string(index), "]"])
  checked = _check(
      _is_image_format(data),
      tf.strings.join([where, " is not an image TF can decode (JPEG, PNG, "
                       "GIF, BMP, WebP, JPEG XL): send the bytes of an image "
                       "file, base64-encoded in a b64 object over REST"]))
  with tf.control_dependencies([checked]):
    # channels=3: grey repeats, alpha is dropped, as known_mask_from_image
    # expects for masks.
    return tf.io.decode_image(data, channels=3, expand_animations=False)


def _size_text(height, width):
  return tf.strings.format("{}x{}", (height, width))


def _check_pixels(height, width, max_pixels, where):
  pixels = tf.cast(height, tf.int64) * tf.cast(width, tf.int64)
  return _check(
      pixels <= max_pixels,
      tf.strings.join([
          where, " is ", _size_text(height, width), " = ",
          tf.strings.as_string(pixels), " pixels, above the limit of ",
          str(max_pixels), " set at export: downscale it, or re-export with "
          "a larger --max_pixels"]))


def _known_mask(mask_image, polarity):
  """Model mask (1 = known) from a decoded mask for a polarity tensor."""
  return tf.where(polarity == "black",
                  image_ops.known_mask_from_image(mask_image, "black"),
                  image_ops.known_mask_from_image(mask_image, "white"))


def _to_uint8(images):
  return tf.cast(tf.round(tf.clip_by_value(images, 0.0, 1.0) * 255.0),
                 tf.uint8)


class InpaintModule(tf.Module):
  """The generator wrapped in the two serving signatures.

  Args:
    generator: a model from `lbam_tf.generator.build_generator`.
    max_pixels: the largest H * W a request may send.

  Example:

  >>> module = InpaintModule(generator)
  >>> tf.saved_model.save(module, "exports/lbam/1",
  ...                     signatures=module.signatures())
  """

  def __init__(self, generator, max_pixels=DEFAULT_MAX_PIXELS):
    super().__init__(name="lbam_inpaint")
    if max_pixels < 1:
      raise ValueError(f"max_pixels={max_pixels} must be at least 1")
    self.generator = generator
    self.max_pixels = int(max_pixels)

  def signatures(self):
    """The `signatures=` argument for `tf.saved_model.save`."""
    return {SERVING_SIGNATURE: self.serve_bytes,
            TENSOR_SIGNATURE: self.inpaint_tensor}

  def _inpaint(self, image, mask):
    """Pads, runs, crops and composites float [B,H,W,3] with mask 1 = known."""
    mask = tf.cast(mask > 0.5, tf.float32)
    padded_image, size = image_ops.pad_to_multiple(image)
    padded_mask, _ = image_ops.pad_to_multiple(mask)
    output = self.generator({"image": padded_image, "mask": padded_mask},
                            training=False)
    output = image_ops.crop_to(tf.cast(output, tf.float32), size)
    return image_ops.composite(output, image, mask)

  @tf.function(input_signature=[
      tf.TensorSpec([None, None, None, 3], tf.float32, name="image"),
      tf.TensorSpec([None, None, None, 1], tf.float32, name="mask")])
  def inpaint_tensor(self, image, mask):
    """Composited inpainting of float images; see the module docstring."""
    image_shape, mask_shape = tf.shape(image), tf.shape(mask)
    checks = [
        _check(image_shape[0] > 0, "image is an empty batch: send at least "
               "one image"),
        _check(tf.reduce_all(image_shape[:3] == mask_shape[:3]),
               tf.strings.join([
                   "mask [B,H,W] = ", tf.strings.format("{}", mask_shape[:3]),
                   " does not match image [B,H,W] = ",
                   tf.strings.format("{}", image_shape[:3]),
                   ": send one mask per image, of the same size"])),
        _check_pixels(image_shape[1], image_shape[2], self.max_pixels,
                      "image"),
    ]
    with tf.control_dependencies(checks):
      return {"image": self._inpaint(tf.identity(image), tf.identity(mask))}

  @tf.function(input_signature=[
      tf.TensorSpec([None], tf.string, name="image_bytes"),
      tf.TensorSpec([None], tf.string, name="mask_bytes"),
      tf.TensorSpec(None, tf.string, name="mask_polarity")])
  def serve_bytes(self, image_bytes, mask_bytes,
                  mask_polarity=tf.constant("white")):
    """PNG results for encoded images and masks; see the module docstring."""
    count, mask_count = tf.size(image_bytes), tf.size(mask_bytes)
    checks = [
        _check(count > 0, "image_bytes is an empty batch: send at least one "
               "image"),
        _check(count == mask_count, tf.strings.join([
            "image_bytes has ", tf.strings.as_string(count),
            " images but mask_bytes has ", tf.strings.as_string(mask_count),
            " masks: send exactly one mask per image"])),
    ]
    with tf.control_dependencies(checks):
      count = tf.identity(count)
    polarity = tf.reshape(mask_polarity, [-1])
    known_polarity = tf.reduce_any(
        polarity[:, tf.newaxis] == image_ops.POLARITIES, axis=1)
    polarity_checks = [
        _check(tf.logical_or(tf.size(polarity) == 1,
                             tf.size(polarity) == count),
               tf.strings.join([
                   "mask_polarity has ", tf.strings.as_string(tf.size(polarity)),
                   " values for ", tf.strings.as_string(count), " images: "
                   "send one value for all, or one per image"])),
        _check(tf.reduce_all(known_polarity), tf.strings.join([
            "mask_polarity ", tf.strings.reduce_join(
                tf.boolean_mask(polarity, ~known_polarity), separator=", "),
            " is not one of ", " / ".join(image_ops.POLARITIES),
            ": say which colour marks the holes"])),
    ]
    with tf.control_dependencies(polarity_checks):
      polarity = tf.broadcast_to(polarity, [count])

    images = tf.TensorArray(tf.float32, size=count, infer_shape=False,
                            element_shape=tf.TensorShape([None, None, 3]))
    masks = tf.TensorArray(tf.float32, size=count, infer_shape=False,
                           element_shape=tf.TensorShape([None, None, 1]))
    sizes = tf.TensorArray(tf.int32, size=count)
    for i in tf.range(count):
      image = _decode(image_bytes[i], "image_bytes", i)
      mask_image = _decode(mask_bytes[i], "mask_bytes", i)
      height, width = tf.shape(image)[0], tf.shape(image)[1]
      mask_height, mask_width = tf.shape(mask_image)[0], tf.shape(mask_image)[1]
      where = tf.strings.join(["image_bytes[", tf.strings.as_string(i), "]"])
      item_checks = [
          _check(tf.logical_and(height == mask_height, width == mask_width),
                 tf.strings.join([
                     "mask_bytes[", tf.strings.as_string(i), "] is ",
                     _size_text(mask_height, mask_width), " but ", where,
                     " is ", _size_text(height, width), ": each mask must "
                     "be the size of its image"])),
          _check_pixels(height, width, self.max_pixels, where),
      ]
      with tf.control_dependencies(item_checks):
        images = images.write(i, tf.image.convert_image_dtype(image,
                                                              tf.float32))
        masks = masks.write(i, _known_mask(mask_image, polarity[i]))
        sizes = sizes.write(i, tf.stack([height, width]))

    sizes = sizes.stack()
    same_size = tf.reduce_all(sizes == sizes[0])

    def as_batch():
      return _to_uint8(self._inpaint(images.stack(), masks.stack()))

    def one_by_one():
      results = tf.TensorArray(tf.string, size=count)
      for i in tf.range(count):
        result = _to_uint8(self._inpaint(images.read(i)[tf.newaxis],
                                         masks.read(i)[tf.newaxis]))
        results = results.write(i, tf.io.encode_png(result[0]))
      return results.stack()

    def encode(batch):
      return tf.map_fn(tf.io.encode_png, batch,
                       fn_output_signature=tf.TensorSpec([], tf.string))

    outputs = tf.cond(same_size, lambda: encode(as_batch()), one_by_one)
    return {"image_bytes": tf.ensure_shape(outputs, [None])}


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


def check_export_dir(export_dir, overwrite=False):
  """Raises ValueError unless `export_dir` ends in a version folder we may write."""
  version = os.path.basename(os.path.normpath(export_dir))
  if not version.isdigit():
    raise ValueError(
        f"--export_dir {export_dir} must end in a numeric version folder, e.g. "
        f"{os.path.join(export_dir, '1')}: TF Serving loads "
        "<model_base_path>/<version>")
  if os.path.exists(export_dir) and os.listdir(export_dir):
    if not overwrite:
      raise ValueError(
          f"--export_dir {export_dir} exists and is not empty: pick a new "
          "version number or pass --overwrite")
    shutil.rmtree(export_dir)


def export(generator, export_dir, max_pixels=DEFAULT_MAX_PIXELS,
           warmup_sizes=(256,), overwrite=False):
  """Saves `generator` with both signatures and warm-up requests.

  Args:
    generator: a model from `build_generator` (or `model_io.load_generator`).
    export_dir: `<model_base_path>/<version>`.
    max_pixels: the largest H * W a request may send.
    warmup_sizes: square sizes of the warm-up requests; empty for none.
    overwrite: replace an existing, non-empty `export_dir`.

  Returns:
    `export_dir`.
  """
  check_export_dir(export_dir, overwrite)
  module = InpaintModule(generator, max_pixels)
  tf.saved_model.save(module, export_dir, signatures=module.signatures())
  if warmup_sizes:
    write_warmup_requests(export_dir, warmup_sizes)
  return export_dir


FLAGS = flags.FLAGS
flags.DEFINE_string(
    "weights", None,
    "What to export: a training model_dir, a .weights.h5 (with a config.json "
    "beside it for non-default variants), a .keras file, or the authors' "
    ".pth / .npz checkpoint.")
flags.DEFINE_string(
    "export_dir", None,
    "Where to write the SavedModel: <model_base_path>/<version>, e.g. "
    "exports/lbam/1. TF Serving serves the highest version.")
flags.DEFINE_enum("variant", None, ["head", "original_bn"],
                  "Generator layout, only needed for a .weights.h5 without a "
                  "config.json beside it.")
flags.DEFINE_string("ablation", None,
                    "Generator ablation, as for --variant.")
flags.DEFINE_integer(
    "max_pixels", DEFAULT_MAX_PIXELS,
    "Largest height*width a request may send; larger ones get "
    "INVALID_ARGUMENT instead of exhausting the server's memory.")
flags.DEFINE_list("warmup_sizes", ["256"],
                  "Square sizes of the warm-up requests written to "
                  "assets.extra (empty for none).")
flags.DEFINE_bool("overwrite", False,
                  "Replace an existing, non-empty --export_dir.")
flags.mark_flags_as_required(["weights", "export_dir"])


def main(argv):
  del argv
  try:
    check_export_dir(FLAGS.export_dir, FLAGS.overwrite)
  except ValueError as error:
    raise app.UsageError(str(error))
  generator = model_io.load_generator(FLAGS.weights, variant=FLAGS.variant,
                                      ablation=FLAGS.ablation)
  export(generator, FLAGS.export_dir, FLAGS.max_pixels,
         [int(size) for size in FLAGS.warmup_sizes], FLAGS.overwrite)
  print(f"exported {FLAGS.weights} to {FLAGS.export_dir} "
        f"(signatures {SERVING_SIGNATURE}, {TENSOR_SIGNATURE})")


if __name__ == "__main__":
  app.run(main)
