"""Mask polarity in the graph, padding to the generator's grid, compositing.

Inference, export and evaluation all go through these functions so that the
conventions (mask 1 = known, 0 = hole; sizes a multiple of 128; known pixels
copied back bit-exact) cannot drift apart.
"""

import tensorflow as tf

from lbam_tf.images import polarity as polarity_rule

#: Height and width of the generator's input must be multiples of this: seven
#: stride-2 stages and skip concatenations.
SIZE_MULTIPLE = 128

def known_mask_from_image(mask_image, polarity="white"):
  """Turns a mask picture into the model's mask: float32, 1 = known, 0 = hole.

  Args:
    mask_image: uint8 or float tensor [..., H, W, C] with C in 1-4: grey,
      grey and alpha, RGB or RGBA. Floats in [0, 1] are rounded to 8 bits
      first, so that both read the same.
    polarity: "white" (white = hole) or "black" (black = hole).

  Returns:
    float32 tensor [..., H, W, 1], holes where `lbam_tf.images.polarity`
    says so.
  """
  polarity_rule.check(polarity)
  mask_image = tf.convert_to_tensor(mask_image)
  if mask_image.dtype != tf.uint8:
    mask_image = tf.round(tf.clip_by_value(
        tf.cast(mask_image, tf.float32), 0.0, 1.0) * 255.0)
  pixels = tf.cast(mask_image, tf.int32)
  if mask_image.shape[-1] <= 2:
    luma = pixels[..., :1]
  else:
    weighted = tf.reduce_sum(
        pixels[..., :3] * tf.constant(polarity_rule.LUMA_WEIGHTS, tf.int32),
        axis=-1, keepdims=True)
    luma = tf.bitwise.right_shift(
        weighted + (1 << (polarity_rule.LUMA_SHIFT - 1)),
        polarity_rule.LUMA_SHIFT)
  bright = tf.cast(luma >= polarity_rule.BRIGHT_LUMA, tf.float32)
  return 1.0 - bright if polarity == "white" else bright


def hole_image_from_known_mask(mask):
  """The inverse of `known_mask_from_image` for white = hole: uint8, 255 = hole."""
  return tf.cast(tf.round((1.0 - mask) * 255.0), tf.uint8)


def to_uint8(images):
  """Float images in [0, 1] to uint8: clipped, times 255, rounded half to even.

  The one conversion of model outputs to 8 bits (serving's PNGs and the
  evaluation's scores). Returns a uint8 tensor of the same shape.
  """
  return tf.cast(tf.round(tf.clip_by_value(images, 0.0, 1.0) * 255.0),
                 tf.uint8)


def padded_size(size, multiple=SIZE_MULTIPLE):
  """Smallest multiple of `multiple` that is >= size (size may be a tensor)."""
  return (size + multiple - 1) // multiple * multiple


def pad_to_multiple(images, multiple=SIZE_MULTIPLE, mode="REFLECT"):
  """Pads [B, H, W, C] at the bottom and right up to multiples of `multiple`.

  Reflection keeps the padded border looking like image content, so the
  generator does not see artificial edges. Reflection cannot pad more than the
  image size minus one, so very small images are reflected repeatedly.

  Returns:
    (padded, (height, width)): the padded tensor and the original size, for
    `crop_to`.
  """
  images = tf.convert_to_tensor(images)
  shape = tf.shape(images)
  height, width = shape[1], shape[2]
  target_h, target_w = padded_size(height, multiple), padded_size(width, multiple)

  # Reflection needs at least two pixels; a single row or column is repeated.
  single = tf.cast(tf.stack([height, width]) == 1, tf.int32)
  images = tf.pad(images, [[0, 0], [0, single[0]], [0, single[1]], [0, 0]],
                  mode="SYMMETRIC")

  def pad_step(x):
    h, w = tf.shape(x)[1], tf.shape(x)[2]
    if mode == "REFLECT":
      step_h = tf.minimum(target_h - h, h - 1)
      step_w = tf.minimum(target_w - w, w - 1)
    else:
      step_h, step_w = target_h - h, target_w - w
    return [tf.pad(x, [[0, 0], [0, step_h], [0, step_w], [0, 0]], mode=mode)]

  # One step suffices unless the image is smaller than half the padding.
  padded = tf.while_loop(
      lambda x: tf.logical_or(tf.shape(x)[1] < target_h, tf.shape(x)[2] < target_w),
      pad_step, [images],
      shape_invariants=[tf.TensorShape([None, None, None, images.shape[-1]])])[0]
  return padded, (height, width)


def crop_to(images, size):
  """Crops [B, H, W, C] back to the top-left `size` = (height, width)."""
  height, width = size
  return images[:, :height, :width, :]


def composite(output, image, mask):
  """Known pixels from `image`, holes from `output` (mask: 1 = known).

  Uses a select rather than `out * (1 - M) + image * M` so that known pixels
  come back bit-exact for a binary mask.
  """
  known = tf.broadcast_to(mask > 0.5, tf.shape(image))
  return tf.where(known, image, output)


def check_spatial_size(height, width, multiple=SIZE_MULTIPLE):
  """Raises ValueError unless height and width are positive multiples of `multiple`."""
  if height is None or width is None:
    return
  if height <= 0 or width <= 0 or height % multiple or width % multiple:
    raise ValueError(
        f"input size {height}x{width} is not a multiple of {multiple}: the "
        f"generator has seven stride-2 stages. Pad with "
        f"lbam_tf.images.ops.pad_to_multiple (or resize/crop) to "
        f"{padded_size(max(height, 1), multiple)}x"
        f"{padded_size(max(width, 1), multiple)}")
