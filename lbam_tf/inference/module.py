"""Inpainting at any size from encoded files or tensors: the serving rules.

`InpaintModule` is their one implementation: the CLI calls it directly and
`serving.export` saves it as the SavedModel's signatures, so files and
requests are treated alike. `serve_bytes` (`serving_default`): image and mask
files, string [B], to PNGs; `inpaint_tensor`: float images and masks (1 =
known) to composited images. Any size is reflect-padded to a multiple of 128
and cropped back; known pixels come back bit-exact. Bad input fails with
INVALID_ARGUMENT naming the value and the remedy, checked in the graph (sizes
from the file headers, before decoding) so that TF Serving gets the same
guard. Inputs, limits and errors: README.md, "Export" and "Limits and bad
input"; why: BUILD_NOTES.md, "Serving".
"""

import os
import re

import tensorflow as tf

from lbam_tf.images import files as image_files
from lbam_tf.images import ops as image_ops
from lbam_tf.images import polarity as polarity_rule
from lbam_tf.images.headers import check
from lbam_tf.images.headers import check_pixels
from lbam_tf.images.headers import header_size
from lbam_tf.images.headers import size_text
from lbam_tf.weights import model_io

from lbam_tf.inference.signatures import SERVING_SIGNATURE
from lbam_tf.inference.signatures import TENSOR_SIGNATURE

#: 2048 x 2048, 16 times the area of the 512 x 512 training crops: a guard
#: against one request exhausting the server's memory.
DEFAULT_MAX_PIXELS = 2048 * 2048
#: Per request (after TF Serving's batching, per merged batch): images, and
#: their pixels in all (four images at the per-image limit).
DEFAULT_MAX_IMAGES = 64
DEFAULT_MAX_REQUEST_PIXELS = 4 * DEFAULT_MAX_PIXELS

def _decode(data):
  """One image string to uint8 [H, W, 3]; `header_size` has checked it."""
  # channels=3: grey repeats, alpha is dropped, as known_mask_from_image
  # expects for masks.
  return tf.io.decode_image(data, channels=3, expand_animations=False)


def _known_mask(mask_image, polarity):
  """Model mask (1 = known) from a decoded mask for a polarity tensor."""
  return tf.where(polarity == "black",
                  image_ops.known_mask_from_image(mask_image, "black"),
                  image_ops.known_mask_from_image(mask_image, "white"))


class InpaintModule(tf.Module):
  """The generator wrapped in the two serving signatures.

  Args:
    generator: a model from `lbam_tf.model.generator.build_generator`.
    max_pixels: the largest H * W of one image.
    max_images: the most images in one request (one merged batch under TF
      Serving's batching).
    max_request_pixels: the most pixels of all a request's images together.

  Example:

  >>> module = InpaintModule(generator)
  >>> tf.saved_model.save(module, "exports/lbam/1",
  ...                     signatures=module.signatures())
  """

  def __init__(self, generator, max_pixels=DEFAULT_MAX_PIXELS,
               max_images=DEFAULT_MAX_IMAGES,
               max_request_pixels=DEFAULT_MAX_REQUEST_PIXELS):
    super().__init__(name="lbam_inpaint")
    for name, value in (("max_pixels", max_pixels),
                        ("max_images", max_images),
                        ("max_request_pixels", max_request_pixels)):
      if value < 1:
        raise ValueError(f"{name}={value} must be at least 1")
    self.generator = generator
    self.max_pixels = int(max_pixels)
    self.max_images = int(max_images)
    self.max_request_pixels = int(max_request_pixels)

  def _check_count(self, count, name):
    return check(count <= self.max_images, tf.strings.join([
        name, " has ", tf.strings.as_string(count), " images, above the "
        f"limit of {self.max_images} per request: send fewer per request "
        "(for a served model: or re-export with a higher --max_images)"]))

  def _check_total(self, pixels, name):
    return check(pixels <= self.max_request_pixels, tf.strings.join([
        name, " has ", tf.strings.as_string(pixels), " pixels in all, above "
        f"the limit of {self.max_request_pixels} per request: send fewer or "
        "smaller images per request (for a served model: or re-export with "
        "a higher --max_request_pixels)"]))

  def signatures(self):
    """The `signatures=` argument for `tf.saved_model.save`."""
    return {SERVING_SIGNATURE: self.serve_bytes,
            TENSOR_SIGNATURE: self.inpaint_tensor}

  @tf.function(input_signature=[
      tf.TensorSpec([None, None, None, 3], tf.float32),
      tf.TensorSpec([None, None, None, 1], tf.float32)], autograph=False)
  def _inpaint(self, image, mask):
    """Pads, runs, crops and composites float [B,H,W,3] with mask 1 = known.

    One traced function for every call site of both signatures, traced
    without AutoGraph: the generator has no Python control flow on tensors
    for it to convert.
    """
    mask = tf.cast(mask > 0.5, tf.float32)
    padded_image, size = image_ops.pad_to_multiple(image)
    padded_mask, _ = image_ops.pad_to_multiple(mask)
    output = self.generator({"image": padded_image, "mask": padded_mask},
                            training=False)
    output = image_ops.crop_to(tf.cast(output, tf.float32), size)
    return image_ops.composite(output, image, mask)

  @tf.function(input_signature=[
      tf.TensorSpec([None, None, None, 3], tf.float32, name="image"),
      tf.TensorSpec([None, None, None, 1], tf.float32, name="mask")],
               autograph=False)
  def inpaint_tensor(self, image, mask):
    """Composited inpainting of float images; see the module docstring."""
    image_shape, mask_shape = tf.shape(image), tf.shape(mask)
    checks = [
        check(image_shape[0] > 0, "image is an empty batch: send at least "
               "one image"),
        check(tf.reduce_all(image_shape[:3] == mask_shape[:3]),
               tf.strings.join([
                   "mask [B,H,W] = ", tf.strings.format("{}", mask_shape[:3]),
                   " does not match image [B,H,W] = ",
                   tf.strings.format("{}", image_shape[:3]),
                   ": send one mask per image, of the same size"])),
        check_pixels(image_shape[1], image_shape[2], self.max_pixels,
                      "image"),
        self._check_count(image_shape[0], "image"),
        self._check_total(tf.reduce_prod(tf.cast(image_shape[:3], tf.int64)),
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
        check(count > 0, "image_bytes is an empty batch: send at least one "
               "image"),
        check(count == mask_count, tf.strings.join([
            "image_bytes has ", tf.strings.as_string(count),
            " images but mask_bytes has ", tf.strings.as_string(mask_count),
            " masks: send exactly one mask per image"])),
        self._check_count(count, "image_bytes"),
    ]
    with tf.control_dependencies(checks):
      count = tf.identity(count)
    polarity = tf.reshape(mask_polarity, [-1])
    known_polarity = tf.reduce_any(
        polarity[:, tf.newaxis] == polarity_rule.POLARITIES, axis=1)
    polarity_checks = [
        check(tf.logical_or(tf.size(polarity) == 1,
                             tf.size(polarity) == count),
               tf.strings.join([
                   "mask_polarity has ",
                   tf.strings.as_string(tf.size(polarity)),
                   " values for ", tf.strings.as_string(count), " images: "
                   "send one value for all, or one per image"])),
        check(tf.reduce_all(known_polarity), tf.strings.join([
            "mask_polarity ", tf.strings.reduce_join(
                tf.boolean_mask(polarity, ~known_polarity), separator=", "),
            " is not one of ", " / ".join(polarity_rule.POLARITIES),
            ": say which colour marks the holes"])),
    ]
    with tf.control_dependencies(polarity_checks):
      polarity = tf.broadcast_to(polarity, [count])

    # Every header is read and checked before anything is decoded.
    pixels = tf.constant(0, tf.int64)
    for i in tf.range(count):
      size = header_size(image_bytes[i], "image_bytes", i, self.max_pixels)
      mask_size = header_size(mask_bytes[i], "mask_bytes", i,
                               self.max_pixels)
      with tf.control_dependencies([mask_size]):
        pixels += size[0] * size[1]
    with tf.control_dependencies([self._check_total(pixels,
                                                    "image_bytes")]):
      count = tf.identity(count)

    images = tf.TensorArray(tf.float32, size=count, infer_shape=False,
                            element_shape=tf.TensorShape([None, None, 3]))
    masks = tf.TensorArray(tf.float32, size=count, infer_shape=False,
                           element_shape=tf.TensorShape([None, None, 1]))
    sizes = tf.TensorArray(tf.int32, size=count)
    for i in tf.range(count):
      image = _decode(image_bytes[i])
      mask_image = _decode(mask_bytes[i])
      height, width = tf.shape(image)[0], tf.shape(image)[1]
      mask_height, mask_width = tf.shape(mask_image)[0], tf.shape(mask_image)[1]
      where = tf.strings.join(["image_bytes[", tf.strings.as_string(i), "]"])
      item_checks = [
          check(tf.logical_and(height == mask_height, width == mask_width),
                 tf.strings.join([
                     "mask_bytes[", tf.strings.as_string(i), "] is ",
                     size_text(mask_height, mask_width), " but ", where,
                     " is ", size_text(height, width), ": each mask must "
                     "be the size of its image"])),
          # Decoders follow their headers; this holds if one did not.
          check_pixels(height, width, self.max_pixels, where),
      ]
      with tf.control_dependencies(item_checks):
        images = images.write(i, tf.image.convert_image_dtype(image,
                                                              tf.float32))
        masks = masks.write(i, _known_mask(mask_image, polarity[i]))
        sizes = sizes.write(i, tf.stack([height, width]))

    sizes = sizes.stack()
    same_size = tf.reduce_all(sizes == sizes[0])

    def as_batch():
      return image_ops.to_uint8(self._inpaint(images.stack(), masks.stack()))

    def one_by_one():
      results = tf.TensorArray(tf.string, size=count)
      for i in tf.range(count):
        result = image_ops.to_uint8(self._inpaint(images.read(i)[tf.newaxis],
                                         masks.read(i)[tf.newaxis]))
        results = results.write(i, tf.io.encode_png(result[0]))
      return results.stack()

    def encode(batch):
      return tf.map_fn(tf.io.encode_png, batch,
                       fn_output_signature=tf.TensorSpec([], tf.string))

    outputs = tf.cond(same_size, lambda: encode(as_batch()), one_by_one)
    return {"image_bytes": tf.ensure_shape(outputs, [None])}


def error_text(message):
  """The user's part of a TF error message: the assert text, no graph."""
  found = re.search(r"assertion failed: \[(.*)\]", message)
  if found:
    return found.group(1)
  message = message.split("\n\t [[")[0]
  return message.split("<stack traces unavailable>\n")[-1].strip()


def is_export(path):
  """Whether `path` is a SavedModel folder (an export) rather than weights."""
  return os.path.isdir(path) and os.path.exists(
      os.path.join(path, "saved_model.pb"))


def load(model, max_pixels=DEFAULT_MAX_PIXELS):
  """A function (image_bytes, mask_bytes, mask_polarity) -> PNG strings [B].

  Args:
    model: an export (a folder with saved_model.pb, run through its
      serving_default signature), or anything `model_io.load_generator` reads.
    max_pixels: the size limit when `model` is not an export (an export keeps
      the limit it was exported with).
  """
  if is_export(model):
    signature = tf.saved_model.load(model).signatures[SERVING_SIGNATURE]
    return lambda image_bytes, mask_bytes, mask_polarity: signature(
        image_bytes=image_bytes, mask_bytes=mask_bytes,
        mask_polarity=mask_polarity)["image_bytes"]
  module = InpaintModule(model_io.load_generator(model), max_pixels)
  return lambda image_bytes, mask_bytes, mask_polarity: module.serve_bytes(
      image_bytes, mask_bytes, mask_polarity)["image_bytes"]


def inpaint_files(run, jobs, batch_size=4, polarity="white", progress=True):
  """Inpaints `image_files.Job`s in batches, writing each result as a PNG.

  Args:
    run: a function from `load`.
    jobs: `image_files.Job`s.
    batch_size: images per generator call.
    polarity: "white" or "black", the hole colour of the mask files.
    progress: show a progress bar.

  Returns:
    (written, failures) as `image_files.run_jobs`: a bad file is reported
    and the others go on.
  """
  polarity_rule.check(polarity)

  def send(images, masks):
    return run(tf.constant(images), tf.constant(masks),
               tf.constant(polarity)).numpy()

  return image_files.run_jobs(
      send, jobs, batch_size, errors=(tf.errors.InvalidArgumentError,),
      describe=lambda error: error_text(error.message), progress=progress)
