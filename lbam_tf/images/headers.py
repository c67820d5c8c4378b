"""Image sizes read from file headers, in the graph, before any decoding.

`header_size` reads (height, width) from the header of a PNG (IHDR), JPEG
(SOF), GIF (logical screen), BMP, WebP (VP8, VP8L, VP8X) or JPEG XL (bare
codestream or container) held in a string tensor, and checks it against a
pixel limit, so that a small file declaring a huge image fails with
INVALID_ARGUMENT instead of allocating it. Being graph ops, the checks travel
inside the exported SavedModel, where TF Serving runs them too.
`lbam_tf.inference.module.InpaintModule` is the user; `check`, `size_text` and
`check_pixels` are shared with it so that its messages read alike.
"""

import tensorflow as tf

#: The formats tf.io.decode_image reads, by leading bytes (WebP apart: "RIFF",
#: then "WEBP" at byte 8), in the order of `_HEADER_SIZES` below.
_FORMATS = ("PNG", "JPEG", "GIF", "BMP", "JPEG XL", "JPEG XL", "WebP")
_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"BM", b"\xff\x0a",
          b"\x00\x00\x00\x0cJXL ")
#: Boxes of a JPEG XL container searched for its codestream.
_JXL_BOXES = 16


def check(condition, message):
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


def size_text(height, width):
  return tf.strings.format("{}x{}", (height, width))


def check_pixels(height, width, max_pixels, where):
  pixels = tf.cast(height, tf.int64) * tf.cast(width, tf.int64)
  return check(
      pixels <= max_pixels,
      tf.strings.join([
          where, " is ", size_text(height, width), " = ",
          tf.strings.as_string(pixels), " pixels, above the limit of ",
          str(max_pixels), ": downscale it, or raise --max_pixels (for a "
          "served model: re-export with it)"]))


@tf.autograph.experimental.do_not_convert
def header_size(data, name, index, max_pixels):
  """(height, width) int64 as `data`'s header declares them, checked.

  Nothing is decoded: a small file declaring a huge image fails here instead
  of allocating it. Graph ops only (`tf.while_loop` and `tf.switch_case`
  where it branches), so AutoGraph is kept out: it converted the readers anew
  for every lambda of the switch, 117 conversions and 3 of 17 s per export.
  """
  where = tf.strings.join([name, "[", tf.strings.as_string(index), "]"])
  kind = _format_index(data)
  known = check(
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
    readable = check(
        tf.logical_and(height > 0, width > 0),
        tf.strings.join([
            where, " is a ", tf.gather(tf.constant(_FORMATS), kind),
            " whose header declares ", size_text(height, width), " pixels: "
            "the file is truncated or damaged"]))
  with tf.control_dependencies([readable]):
    small_enough = check_pixels(height, width, max_pixels, where)
  with tf.control_dependencies([small_enough]):
    return tf.identity(size)
