"""Inpainting at any size from encoded files or tensors: the serving rules.

`InpaintModule` is their one implementation: the CLI calls it directly and
`serving.export` saves it as the SavedModel's signatures, so files and
requests are treated alike. `serve_bytes` (`serving_default`): image and mask
files, string [B], to PNGs; `inpaint_tensor`: float images and masks (1 =
known) to composited images. Any size: the high-resolution strategy
(`lbam_tf.inference.hd`) decides what the generator runs on, each piece
reflect-padded to a multiple of 128; known pixels come back bit-exact. Bad input fails with
INVALID_ARGUMENT naming the value and the remedy, checked in the graph (sizes
from the file headers, before decoding) so that TF Serving gets the same
guard. Inputs, limits and errors: README.md, "Export" and "Limits and bad
input"; why: BUILD_NOTES.md, "Serving".
"""

import os
import re

import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from lbam_tf.images import files as image_files
from lbam_tf.images import ops as image_ops
from lbam_tf.images import polarity as polarity_rule
from lbam_tf.images.headers import check
from lbam_tf.images.headers import check_pixels
from lbam_tf.images.headers import header_size
from lbam_tf.images.headers import size_text
from lbam_tf.inference import hd
from lbam_tf.weights import model_io

from lbam_tf.inference.signatures import SERVING_SIGNATURE
from lbam_tf.inference.signatures import TENSOR_SIGNATURE

#: A photo's limit, from its header: 6144 x 4096 takes a 24-megapixel photo
#: (6016 x 4016 and smaller).
DEFAULT_MAX_PIXELS = 6144 * 4096
#: One generator call's padded input, all its images: 2048 x 2048, 16 times
#: the 512 x 512 training crops. What bounds a request's memory, whatever
#: the photo's size (the high-resolution strategies stay under it).
DEFAULT_MAX_GENERATOR_PIXELS = 2048 * 2048
#: Per request (after TF Serving's batching, per merged batch): images, and
#: their pixels in all (one photo at the per-photo limit).
DEFAULT_MAX_IMAGES = 64
DEFAULT_MAX_REQUEST_PIXELS = DEFAULT_MAX_PIXELS


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
    max_pixels: the largest H * W of one photo, checked from its header.
    max_generator_pixels: the most pixels one generator call runs on (its
      padded input, all images of the call): what bounds memory.
    max_images: the most images in one request (one merged batch under TF
      Serving's batching).
    max_request_pixels: the most pixels of all a request's images together.
    hd_strategy, crop_margin, resize_limit, crop_trigger: the defaults of
      both signatures' optional inputs of the same names
      (`lbam_tf.inference.hd`).

  Example:

  >>> module = InpaintModule(generator)
  >>> tf.saved_model.save(module, "exports/lbam/1",
  ...                     signatures=module.signatures())
  """

  def __init__(self, generator, max_pixels=DEFAULT_MAX_PIXELS,
               max_generator_pixels=DEFAULT_MAX_GENERATOR_PIXELS,
               max_images=DEFAULT_MAX_IMAGES,
               max_request_pixels=DEFAULT_MAX_REQUEST_PIXELS,
               hd_strategy=hd.DEFAULT_STRATEGY,
               crop_margin=hd.DEFAULT_CROP_MARGIN,
               resize_limit=hd.DEFAULT_RESIZE_LIMIT,
               crop_trigger=hd.DEFAULT_CROP_TRIGGER):
    super().__init__(name="lbam_inpaint")
    for name, value in (("max_pixels", max_pixels),
                        ("max_generator_pixels", max_generator_pixels),
                        ("max_images", max_images),
                        ("max_request_pixels", max_request_pixels)):
      if value < 1:
        raise ValueError(f"{name}={value} must be at least 1")
    hd.check_options(hd_strategy, crop_margin, resize_limit, crop_trigger)
    self.generator = generator
    self.max_pixels = int(max_pixels)
    self.max_generator_pixels = int(max_generator_pixels)
    self.max_images = int(max_images)
    self.max_request_pixels = int(max_request_pixels)
    hd_defaults = (tf.constant(hd_strategy), tf.constant(crop_margin),
                   tf.constant(resize_limit), tf.constant(crop_trigger))
    hd_specs = [tf.TensorSpec(None, tf.string, name="hd_strategy"),
                tf.TensorSpec(None, tf.int32, name="crop_margin"),
                tf.TensorSpec(None, tf.int32, name="resize_limit"),
                tf.TensorSpec(None, tf.int32, name="crop_trigger")]

    def serve_bytes(image_bytes, mask_bytes,
                    mask_polarity=tf.constant("white"),
                    hd_strategy=hd_defaults[0], crop_margin=hd_defaults[1],
                    resize_limit=hd_defaults[2], crop_trigger=hd_defaults[3]):
      """PNG results for encoded images and masks (module docstring)."""
      return self._serve_bytes(image_bytes, mask_bytes, mask_polarity,
                               hd_strategy, crop_margin, resize_limit,
                               crop_trigger)

    def inpaint_tensor(image, mask, hd_strategy=hd_defaults[0],
                       crop_margin=hd_defaults[1],
                       resize_limit=hd_defaults[2],
                       crop_trigger=hd_defaults[3]):
      """Composited inpainting of float images (module docstring)."""
      return self._inpaint_tensor(image, mask, hd_strategy, crop_margin,
                                  resize_limit, crop_trigger)

    self.serve_bytes = tf.function(serve_bytes, input_signature=[
        tf.TensorSpec([None], tf.string, name="image_bytes"),
        tf.TensorSpec([None], tf.string, name="mask_bytes"),
        tf.TensorSpec(None, tf.string, name="mask_polarity")] + hd_specs)
    self.inpaint_tensor = tf.function(inpaint_tensor, input_signature=[
        tf.TensorSpec([None, None, None, 3], tf.float32, name="image"),
        tf.TensorSpec([None, None, None, 1], tf.float32, name="mask")]
                                      + hd_specs, autograph=False)

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

  def _check_whole_frame(self, whole, height, width, where):
    """A photo the generator runs on whole fits `max_generator_pixels`."""
    padded_height, padded_width = hd.generator_size(height, width)
    pixels = (tf.cast(padded_height, tf.int64)
              * tf.cast(padded_width, tf.int64))
    return check(tf.logical_or(tf.logical_not(whole),
                               pixels <= self.max_generator_pixels),
                 tf.strings.join([
        where, " is ", size_text(height, width), ": run whole, it takes ",
        tf.strings.as_string(pixels), " generator pixels, above the limit "
        f"of {self.max_generator_pixels} per call: use hd_strategy crop or "
        "resize (for a served model: or re-export with a higher "
        "--max_generator_pixels)"]))

  def _hd_options(self, strategy, margin, limit, trigger):
    """The four hd inputs as scalars, checked: each a scalar or one equal
    value per image (TF Serving's batching concatenates them)."""
    values, checks = [], []
    for name, value in (("hd_strategy", strategy), ("crop_margin", margin),
                        ("resize_limit", limit), ("crop_trigger", trigger)):
      flat = tf.reshape(value, [-1])
      checks.append(check(
          tf.logical_and(tf.size(flat) > 0, tf.reduce_all(flat == flat[:1])),
          f"{name} must be one value, or the same value for every image"))
      values.append(flat[0])
    strategy, margin, limit, trigger = values
    padded_limit = tf.cast(image_ops.padded_size(limit), tf.int64)
    checks += [
        check(tf.reduce_any(strategy == hd.STRATEGIES), tf.strings.join([
            "hd_strategy ", strategy, " is not one of ",
            " / ".join(hd.STRATEGIES)])),
        check(margin >= 0, tf.strings.join([
            "crop_margin ", tf.strings.as_string(margin), " is negative: "
            "give the pixels of context around each hole, 0 or more"])),
        check(tf.logical_and(limit >= 1, trigger >= 1), tf.strings.join([
            "resize_limit ", tf.strings.as_string(limit), " and crop_trigger ",
            tf.strings.as_string(trigger), " must be positive sides in "
            "pixels"])),
        check(tf.logical_or(strategy == "original",
                            padded_limit * padded_limit
                            <= self.max_generator_pixels), tf.strings.join([
            "resize_limit ", tf.strings.as_string(limit), " runs the "
            "generator on up to ", tf.strings.as_string(
                padded_limit * padded_limit), " pixels, above the limit of "
            f"{self.max_generator_pixels} per call: give a smaller "
            "resize_limit"])),
    ]
    with tf.control_dependencies(checks):
      return [tf.identity(value) for value in values]

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

  def _inpaint_photo(self, image, mask, options):
    """One photo [H, W, 3] with its mask [H, W, 1] by the hd strategy."""
    boxes, sizes = hd.plan_boxes(mask, *options)
    return hd.fill(self._inpaint, image, mask, boxes, sizes)

  def _fits_one_call(self, count, height, width):
    padded_height, padded_width = hd.generator_size(height, width)
    return (tf.cast(count, tf.int64) * tf.cast(padded_height, tf.int64)
            * tf.cast(padded_width, tf.int64) <= self.max_generator_pixels)

  def _inpaint_tensor(self, image, mask, *options):
    image_shape, mask_shape = tf.shape(image), tf.shape(mask)
    options = self._hd_options(*options)
    height, width = image_shape[1], image_shape[2]
    whole = hd.runs_whole(height, width, options[0], options[2], options[3])
    checks = [
        check(image_shape[0] > 0, "image is an empty batch: send at least "
               "one image"),
        check(tf.reduce_all(image_shape[:3] == mask_shape[:3]),
               tf.strings.join([
                   "mask [B,H,W] = ", tf.strings.format("{}", mask_shape[:3]),
                   " does not match image [B,H,W] = ",
                   tf.strings.format("{}", image_shape[:3]),
                   ": send one mask per image, of the same size"])),
        check_pixels(height, width, self.max_pixels, "image"),
        self._check_count(image_shape[0], "image"),
        self._check_total(tf.reduce_prod(tf.cast(image_shape[:3], tf.int64)),
                          "image"),
        self._check_whole_frame(whole, height, width, "image"),
    ]
    with tf.control_dependencies(checks):
      image, mask = tf.identity(image), tf.identity(mask)

    def one_by_one():
      return tf.map_fn(
          lambda pair: self._inpaint_photo(pair[0], pair[1], options),
          (image, mask), fn_output_signature=tf.TensorSpec(
              [None, None, 3], tf.float32))

    batch = tf.logical_and(whole, self._fits_one_call(image_shape[0], height,
                                                      width))
    return {"image": tf.cond(batch, lambda: self._inpaint(image, mask),
                             one_by_one)}

  def _serve_bytes(self, image_bytes, mask_bytes, mask_polarity, *options):
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
    options = self._hd_options(*options)
    strategy, _, limit, trigger = options
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
    all_whole = tf.constant(True)
    for i in tf.range(count):
      image = _decode(image_bytes[i])
      mask_image = _decode(mask_bytes[i])
      height, width = tf.shape(image)[0], tf.shape(image)[1]
      mask_height, mask_width = tf.shape(mask_image)[0], tf.shape(mask_image)[1]
      where = tf.strings.join(["image_bytes[", tf.strings.as_string(i), "]"])
      whole = hd.runs_whole(height, width, strategy, limit, trigger)
      item_checks = [
          check(tf.logical_and(height == mask_height, width == mask_width),
                 tf.strings.join([
                     "mask_bytes[", tf.strings.as_string(i), "] is ",
                     size_text(mask_height, mask_width), " but ", where,
                     " is ", size_text(height, width), ": each mask must "
                     "be the size of its image"])),
          # Decoders follow their headers; this holds if one did not.
          check_pixels(height, width, self.max_pixels, where),
          self._check_whole_frame(whole, height, width, where),
      ]
      with tf.control_dependencies(item_checks):
        images = images.write(i, tf.image.convert_image_dtype(image,
                                                              tf.float32))
        masks = masks.write(i, _known_mask(mask_image, polarity[i]))
        sizes = sizes.write(i, tf.stack([height, width]))
        all_whole = tf.logical_and(all_whole, whole)

    sizes = sizes.stack()
    same_size = tf.reduce_all(sizes == sizes[0])
    batch = tf.logical_and(tf.logical_and(all_whole, same_size),
                           self._fits_one_call(count, sizes[0][0],
                                               sizes[0][1]))

    def as_batch():
      return image_ops.to_uint8(self._inpaint(images.stack(), masks.stack()))

    def one_by_one():
      results = tf.TensorArray(tf.string, size=count)
      for i in tf.range(count):
        result = image_ops.to_uint8(self._inpaint_photo(
            images.read(i), masks.read(i), options))
        results = results.write(i, tf.io.encode_png(result))
      return results.stack()

    def encode(batch):
      return tf.map_fn(tf.io.encode_png, batch,
                       fn_output_signature=tf.TensorSpec([], tf.string))

    outputs = tf.cond(batch, lambda: encode(as_batch()), one_by_one)
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


#: The optional signature inputs of the high-resolution strategies.
HD_INPUTS = {"hd_strategy": tf.string, "crop_margin": tf.int32,
             "resize_limit": tf.int32, "crop_trigger": tf.int32}


def hd_inputs(**values):
  """The hd inputs given (not None) as tensors for a signature call."""
  return {name: tf.constant(value, HD_INPUTS[name])
          for name, value in values.items() if value is not None}


def signature_defaults(export_dir):
  """{signature: {input: tensor}}: the defaults an export's SignatureDefs
  hold (read from its saved_model.pb)."""
  saved_model = saved_model_pb2.SavedModel()
  with open(os.path.join(export_dir, "saved_model.pb"), "rb") as f:
    saved_model.ParseFromString(f.read())
  return {name: {key: tf.constant(tf.make_ndarray(value))
                 for key, value in signature.defaults.items()}
          for name, signature in
          saved_model.meta_graphs[0].signature_def.items()}


class Export:
  """A loaded export whose signatures take keyword tensors and fill the
  inputs left out with their SignatureDef's defaults, as TF Serving does (a
  loaded signature alone wants every input).

  Attributes:
    model: what `tf.saved_model.load` returned.
    signatures: {name: function of keyword tensors -> dict of outputs}.
  """

  def __init__(self, export_dir):
    self.model = tf.saved_model.load(export_dir)
    defaults = signature_defaults(export_dir)
    self.signatures = {
        name: self._with_defaults(self.model.signatures[name],
                                  defaults[name])
        for name in (SERVING_SIGNATURE, TENSOR_SIGNATURE)}

  @staticmethod
  def _with_defaults(function, defaults):
    return lambda **inputs: function(**{**defaults, **inputs})


def load(model, max_pixels=DEFAULT_MAX_PIXELS,
         max_generator_pixels=DEFAULT_MAX_GENERATOR_PIXELS):
  """A function (image_bytes, mask_bytes, mask_polarity, **hd) -> PNGs [B].

  Args:
    model: an export (a folder with saved_model.pb, run through its
      serving_default signature), or anything `model_io.load_generator` reads.
    max_pixels, max_generator_pixels: the limits when `model` is not an
      export (an export keeps the limits it was exported with).

  The function's `hd` keywords are `hd_inputs`' tensors; those left out
  take the module's (or the export's) defaults.
  """
  if is_export(model):
    signature = Export(model).signatures[SERVING_SIGNATURE]
    return lambda image_bytes, mask_bytes, mask_polarity, **hd: signature(
        image_bytes=image_bytes, mask_bytes=mask_bytes,
        mask_polarity=mask_polarity, **hd)["image_bytes"]
  module = InpaintModule(model_io.load_generator(model), max_pixels,
                         max_generator_pixels)
  return lambda image_bytes, mask_bytes, mask_polarity, **hd: (
      module.serve_bytes(image_bytes, mask_bytes, mask_polarity,
                         **hd)["image_bytes"])


def inpaint_files(run, jobs, batch_size=4, polarity="white", progress=True,
                  hd=None):
  """Inpaints `image_files.Job`s in batches, writing each result as a PNG.

  Args:
    run: a function from `load`.
    jobs: `image_files.Job`s.
    batch_size: images per generator call.
    polarity: "white" or "black", the hole colour of the mask files.
    progress: show a progress bar.
    hd: `hd_inputs` for every call, or None for the model's defaults.

  Returns:
    (written, failures) as `image_files.run_jobs`: a bad file is reported
    and the others go on.
  """
  polarity_rule.check(polarity)

  def send(images, masks):
    return run(tf.constant(images), tf.constant(masks),
               tf.constant(polarity), **(hd or {})).numpy()

  return image_files.run_jobs(
      send, jobs, batch_size, errors=(tf.errors.InvalidArgumentError,),
      describe=lambda error: error_text(error.message), progress=progress)
