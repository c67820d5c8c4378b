"""Inpainting at any size from encoded files or tensors, and its CLI.

    python -m lbam_tf.inpaint --model runs/paris --image photo.jpg \
        --mask hole.png --output filled.png
    python -m lbam_tf.inpaint --model runs/paris --image photos/ \
        --mask masks/ --output filled/ --batch_size 4

`InpaintModule` is the one implementation of the serving rules; the CLI calls
it directly and `serving.export` saves it as the SavedModel's signatures, so
files and requests are treated alike:
- `serve_bytes` (`serving_default` in the export): `image_bytes` string [B]
  (any format `tf.io.decode_image` reads: JPEG, PNG, GIF, BMP, WebP, JPEG XL),
  `mask_bytes` string [B] (grey, RGB or RGBA; the hole colour is bright unless
  `mask_polarity` says "black"; thresholded at 0.5), optional `mask_polarity`
  string, a scalar (default "white") or one value per image -> `image_bytes`
  string [B] of PNGs. Per-image values let TF Serving's server-side batching,
  which concatenates every input along dimension 0, batch requests that send
  it. Images of any size are reflect-padded to a multiple of 128, inpainted,
  cropped back and composited, so known pixels come back bit-exact. A batch
  may mix sizes: same-size batches run as one generator call, mixed ones
  image by image.
- `inpaint_tensor`: `image` float32 [B, H, W, 3] in [0, 1], `mask` float32
  [B, H, W, 1] (1 = known, thresholded at 0.5) -> `image` float32
  [B, H, W, 3], composited.

Bad input (undecodable bytes, mask and image sizes that differ, batch sizes
that differ, an empty batch, an unknown polarity, images above `max_pixels`,
requests above `max_images` or `max_request_pixels`) fails with
INVALID_ARGUMENT and a message naming the value and the remedy. Sizes are
read from the files' headers (PNG IHDR, JPEG SOF, GIF screen, BMP, WebP and
JPEG XL size fields) and checked before anything is decoded, in the graph, so
that TF Serving gets the same guard: a small file declaring a huge image never
allocates it.
"""

import os
import re

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
import tensorflow as tf  # noqa: E402

from lbam_tf import image_files  # noqa: E402
from lbam_tf import image_ops  # noqa: E402
from lbam_tf import model_io  # noqa: E402

SERVING_SIGNATURE = "serving_default"
TENSOR_SIGNATURE = "inpaint_tensor"
#: 2048 x 2048, 16 times the area of the 512 x 512 training crops: a guard
#: against one request exhausting the server's memory.
DEFAULT_MAX_PIXELS = 2048 * 2048
#: Per request (after TF Serving's batching, per merged batch): images, and
#: their pixels in all (four images at the per-image limit).
DEFAULT_MAX_IMAGES = 64
DEFAULT_MAX_REQUEST_PIXELS = 4 * DEFAULT_MAX_PIXELS

#: The formats tf.io.decode_image reads, by leading bytes (WebP apart: "RIFF",
#: then "WEBP" at byte 8), in the order of `_HEADER_SIZES` below.
_FORMATS = ("PNG", "JPEG", "GIF", "BMP", "JPEG XL", "JPEG XL", "WebP")
_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"BM", b"\xff\x0a",
          b"\x00\x00\x00\x0cJXL ")
#: Boxes of a JPEG XL container searched for its codestream.
_JXL_BOXES = 16


def _check(condition, message):
  """An assert that fails with INVALID_ARGUMENT carrying `message`."""
  return tf.debugging.Assert(condition, [message], summarize=1)


def _bytes(data, start, length):
  """int64 [length]: the bytes of `data` from `start`, zeros past its end."""
  start = tf.minimum(tf.cast(start, tf.int64),
                     tf.cast(tf.strings.length(data), tf.int64))
  piece = tf.strings.substr(data, tf.cast(start, tf.int32), length)
  piece = tf.strings.substr(tf.strings.join([piece, b"\0" * length]), 0,
                            length)
  return tf.cast(tf.io.decode_raw(piece, tf.uint8), tf.int64)


def _uint(octets, big_endian=False):
  """The unsigned integer of at most 7 bytes (int64 [n])."""
  if big_endian:
    octets = tf.reverse(octets, [0])
  shifts = 8 * tf.range(tf.size(octets, out_type=tf.int64), dtype=tf.int64)
  return tf.reduce_sum(tf.bitwise.left_shift(octets, shifts))


def _is(octets, text):
  return tf.reduce_all(octets == tf.constant(list(text), tf.int64))


def _format_index(data):
  """Index in `_FORMATS` of the format `data` starts like, or len(_FORMATS)."""
  head = _bytes(data, 0, 12)
  known = [_is(head[:len(magic)], magic) for magic in _MAGIC]
  known.append(_is(head[:4], b"RIFF") & _is(head[8:12], b"WEBP"))
  known.append(tf.constant(True))
  return tf.cast(tf.argmax(tf.cast(tf.stack(known), tf.int32)), tf.int32)


def _png_size(data):
  # The IHDR chunk comes first: width, height as big-endian uint32.
  octets = _bytes(data, 12, 12)
  size = tf.stack([_uint(octets[8:12], True), _uint(octets[4:8], True)])
  return tf.where(_is(octets[:4], b"IHDR"), size, tf.zeros_like(size))


def _jpeg_size(data):
  # Reads the SOF marker's fields only; nothing is decoded.
  return tf.cast(tf.image.extract_jpeg_shape(data)[:2], tf.int64)


def _gif_size(data):
  # The logical screen, which tf.io.decode_gif returns whatever the frames.
  octets = _bytes(data, 6, 4)
  return tf.stack([_uint(octets[2:4]), _uint(octets[0:2])])


def _bmp_size(data):
  # Signed little-endian int32 at 18 and 22, as tf.io.decode_bmp reads them;
  # a negative height means top-down rows.
  octets = _bytes(data, 18, 8)
  width, height = _uint(octets[0:4]), _uint(octets[4:8])
  width, height = [tf.where(v >= 2**31, v - 2**32, v) for v in (width, height)]
  return tf.stack([tf.abs(height), width])


def _webp_size(data):
  octets = _bytes(data, 12, 18)  # chunk name at 12, its payload from 20

  def bits(value, shift, count):
    return tf.bitwise.bitwise_and(tf.bitwise.right_shift(value, shift),
                                  2**count - 1)

  lossless = _uint(octets[9:13])  # after the 0x2f signature
  sizes = tf.stack([
      # VP8: 14-bit width and height after the frame tag and start code.
      [bits(_uint(octets[16:18]), 0, 14), bits(_uint(octets[14:16]), 0, 14)],
      # VP8L: width - 1, height - 1 in 14 bits each.
      [bits(lossless, 14, 14) + 1, bits(lossless, 0, 14) + 1],
      # VP8X: the canvas, width - 1 and height - 1 in 24 bits each.
      [_uint(octets[15:18]) + 1, _uint(octets[12:15]) + 1],
      tf.zeros([2], tf.int64)])
  kind = tf.argmax(tf.cast(tf.stack(
      [_is(octets[:4], name) for name in (b"VP8 ", b"VP8L", b"VP8X")]
      + [tf.constant(True)]), tf.int32))
  return sizes[kind]


def _jxl_codestream_size(data, start=0):
  """The SizeHeader after a JPEG XL codestream's FF 0A signature.

  Fields are read least significant bit first: `small` (1 bit), the height
  as (u(5) + 1) * 8 when small, else U32(1 + u(9), 1 + u(13), 1 + u(18),
  1 + u(30)) with a 2-bit selector, then a 3-bit aspect ratio that gives the
  width, or (ratio 0) the width coded as the height.
  """
  octets = _bytes(data, start + 2, 16)
  bits = tf.reshape(tf.bitwise.bitwise_and(tf.bitwise.right_shift(
      octets[:, tf.newaxis], tf.range(8, dtype=tf.int64)), 1), [-1])
  widest = tf.range(30, dtype=tf.int64)

  def read(position, count):
    taken = tf.gather(bits, position + widest)
    shifted = tf.bitwise.left_shift(taken, widest)
    return tf.reduce_sum(
        tf.where(widest < count, shifted, tf.zeros_like(shifted)))

  def dimension(position, small):
    selector = read(position, 2)
    count = tf.gather(tf.constant([9, 13, 18, 30], tf.int64), selector)
    return (tf.where(small, (read(position, 5) + 1) * 8,
                     1 + read(position + 2, count)),
            position + tf.where(small, tf.constant(5, tf.int64), 2 + count))

  small = read(0, 1) == 1
  height, position = dimension(tf.constant(1, tf.int64), small)
  ratio = read(position, 3)
  width, _ = dimension(position + 3, small)
  numerator = tf.gather(tf.constant([1, 1, 12, 4, 3, 16, 5, 2], tf.int64),
                        ratio)
  denominator = tf.gather(tf.constant([1, 1, 10, 3, 2, 9, 4, 1], tf.int64),
                          ratio)
  width = tf.where(ratio == 0, width, height * numerator // denominator)
  return tf.stack([height, width])


def _jxl_container_size(data):
  """The codestream's size, found by walking the container's boxes."""
  length = tf.cast(tf.strings.length(data), tf.int64)

  def search(position, found, boxes):
    head = _bytes(data, position, 16)
    size = _uint(head[0:4], True)
    header = tf.where(size == 1, tf.constant(16, tf.int64), 8)
    # size 1: a 64-bit size follows; above 4 GB it is past any request.
    large = _uint(head[12:16], True)
    size = tf.where(size == 1, tf.where(tf.reduce_any(head[8:12] > 0),
                                        tf.zeros_like(large), large), size)
    found = tf.where(_is(head[4:8], b"jxlc"), position + header,
                     tf.where(_is(head[4:8], b"jxlp"), position + header + 4,
                              found))
    # size 0: the box runs to the end of the file.
    position = tf.where(size < header, length, position + size)
    return position, found, boxes + 1

  _, start, _ = tf.while_loop(
      lambda position, found, boxes: (found < 0) & (boxes < _JXL_BOXES)
      & (position + 8 <= length),
      search, [tf.constant(0, tf.int64), tf.constant(-1, tf.int64),
               tf.constant(0)])
  size = _jxl_codestream_size(data, tf.maximum(start, 0))
  return tf.where((start >= 0) & _is(_bytes(data, start, 2), b"\xff\x0a"),
                  size, tf.zeros_like(size))


#: (height, width) int64 [2] from a file's header, per `_FORMATS`.
_HEADER_SIZES = (_png_size, _jpeg_size, _gif_size, _bmp_size,
                 _jxl_codestream_size, _jxl_container_size, _webp_size)


def _size_text(height, width):
  return tf.strings.format("{}x{}", (height, width))


def _check_pixels(height, width, max_pixels, where):
  pixels = tf.cast(height, tf.int64) * tf.cast(width, tf.int64)
  return _check(
      pixels <= max_pixels,
      tf.strings.join([
          where, " is ", _size_text(height, width), " = ",
          tf.strings.as_string(pixels), " pixels, above the limit of ",
          str(max_pixels), ": downscale it, or raise --max_pixels (for a "
          "served model: re-export with it)"]))


def _header_size(data, name, index, max_pixels):
  """(height, width) int64 as `data`'s header declares them, checked.

  Nothing is decoded: a small file declaring a huge image fails here instead
  of allocating it.
  """
  where = tf.strings.join([name, "[", tf.strings.as_string(index), "]"])
  kind = _format_index(data)
  known = _check(
      kind < len(_FORMATS),
      tf.strings.join([where, " is not an image TF can decode (JPEG, PNG, "
                       "GIF, BMP, WebP, JPEG XL): give the bytes of an image "
                       "file (over REST: base64 in a b64 object)"]))
  # Everything below waits for `known`: graph ops run in any order their
  # inputs allow, and the format name below is gathered by `kind`.
  with tf.control_dependencies([known]):
    size = tf.switch_case(tf.identity(kind), [
        lambda reader=reader: reader(data) for reader in _HEADER_SIZES])
    height, width = size[0], size[1]
    readable = _check(
        tf.logical_and(height > 0, width > 0),
        tf.strings.join([
            where, " is a ", tf.gather(tf.constant(_FORMATS), kind),
            " whose header declares ", _size_text(height, width), " pixels: "
            "the file is truncated or damaged"]))
  with tf.control_dependencies([readable]):
    small_enough = _check_pixels(height, width, max_pixels, where)
  with tf.control_dependencies([small_enough]):
    return tf.identity(size)


def _decode(data):
  """One image string to uint8 [H, W, 3]; `_header_size` has checked it."""
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
    generator: a model from `lbam_tf.generator.build_generator`.
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
    return _check(count <= self.max_images, tf.strings.join([
        name, " has ", tf.strings.as_string(count), " images, above the "
        f"limit of {self.max_images} per request: send fewer per request "
        "(for a served model: or re-export with a higher --max_images)"]))

  def _check_total(self, pixels, name):
    return _check(pixels <= self.max_request_pixels, tf.strings.join([
        name, " has ", tf.strings.as_string(pixels), " pixels in all, above "
        f"the limit of {self.max_request_pixels} per request: send fewer or "
        "smaller images per request (for a served model: or re-export with "
        "a higher --max_request_pixels)"]))

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
        _check(count > 0, "image_bytes is an empty batch: send at least one "
               "image"),
        _check(count == mask_count, tf.strings.join([
            "image_bytes has ", tf.strings.as_string(count),
            " images but mask_bytes has ", tf.strings.as_string(mask_count),
            " masks: send exactly one mask per image"])),
        self._check_count(count, "image_bytes"),
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
                   "mask_polarity has ",
                   tf.strings.as_string(tf.size(polarity)),
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

    # Every header is read and checked before anything is decoded.
    pixels = tf.constant(0, tf.int64)
    for i in tf.range(count):
      size = _header_size(image_bytes[i], "image_bytes", i, self.max_pixels)
      mask_size = _header_size(mask_bytes[i], "mask_bytes", i,
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
          _check(tf.logical_and(height == mask_height, width == mask_width),
                 tf.strings.join([
                     "mask_bytes[", tf.strings.as_string(i), "] is ",
                     _size_text(mask_height, mask_width), " but ", where,
                     " is ", _size_text(height, width), ": each mask must "
                     "be the size of its image"])),
          # Decoders follow their headers; this holds if one did not.
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
  image_ops.check_polarity(polarity)

  def send(images, masks):
    return run(tf.constant(images), tf.constant(masks),
               tf.constant(polarity)).numpy()

  return image_files.run_jobs(
      send, jobs, batch_size, errors=(tf.errors.InvalidArgumentError,),
      describe=lambda error: error_text(error.message), progress=progress)


FLAGS = flags.FLAGS


def define_flags():
  """Defines the CLI's flags, only when run as a program.

  serving.export, serving.local_server and lbam_tf.evaluate import this module
  and define flags of their own (serving.export a --max_pixels too).
  """
  flags.DEFINE_string(
      "model", None,
      "What to run: a training model_dir, a .weights.h5 / .keras / .pth / .npz "
      "file, or a SavedModel export folder (<model_base_path>/<version>).")
  image_files.define_flags()
  flags.DEFINE_enum("mask_polarity", "white", list(image_ops.POLARITIES),
                    "Which colour marks the holes in the mask files: white "
                    "(the reference code's masks) or black (NVIDIA's zip).")
  flags.DEFINE_integer("batch_size", 4,
                       "Images per generator call in folder mode; images of "
                       "different sizes in one batch run one by one.")
  flags.DEFINE_integer("max_pixels", DEFAULT_MAX_PIXELS,
                       "Largest height*width accepted; bigger images are "
                       "reported and skipped.")
  flags.mark_flag_as_required("model")


def main(argv):
  del argv
  jobs, problems = image_files.plan_flags()
  run = load(FLAGS.model, FLAGS.max_pixels)
  written, failures = inpaint_files(run, jobs, FLAGS.batch_size,
                                    FLAGS.mask_polarity)
  return image_files.report(written, problems + failures)


if __name__ == "__main__":
  define_flags()
  app.run(main)
