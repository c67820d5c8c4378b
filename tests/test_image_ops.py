"""Mask polarity, padding and compositing: conventions all entry points use."""

import io

import numpy as np
from PIL import Image
import pytest
import tensorflow as tf

from lbam_tf.images import decode
from lbam_tf.images import ops as image_ops
from lbam_tf.images import polarity as polarity_rule
from lbam_tf.inference import module as inference


def test_known_mask_from_image_white_and_black_polarity():
  picture = np.array([[0, 100, 127, 128, 255]], np.uint8)[..., None]
  white = image_ops.known_mask_from_image(picture, "white").numpy()[..., 0]
  black = image_ops.known_mask_from_image(picture, "black").numpy()[..., 0]
  # 128/255 >= 0.5 is the hole colour for white; the threshold is 0.5 exactly.
  np.testing.assert_array_equal(white, [[1, 1, 1, 0, 0]])
  np.testing.assert_array_equal(black, [[0, 0, 0, 1, 1]])


def test_known_mask_from_rgba_ignores_alpha():
  rgba = np.zeros((2, 2, 4), np.uint8)
  rgba[0, 0, :3] = 255
  rgba[..., 3] = 255
  mask = image_ops.known_mask_from_image(rgba, "white").numpy()
  assert mask.shape == (2, 2, 1)
  np.testing.assert_array_equal(mask[..., 0], [[0, 1], [1, 1]])


def test_unknown_polarity_names_the_value():
  with pytest.raises(ValueError, match="'grey'"):
    image_ops.known_mask_from_image(np.zeros((2, 2, 1), np.uint8), "grey")


def test_hole_image_round_trips_known_mask():
  mask = tf.constant([[[[1.0], [0.0]]]])
  picture = image_ops.hole_image_from_known_mask(mask)
  np.testing.assert_array_equal(picture.numpy().ravel(), [0, 255])
  np.testing.assert_array_equal(
      image_ops.known_mask_from_image(picture, "white").numpy(), mask.numpy())


@pytest.mark.parametrize("height,width",
                         [(100, 300), (128, 256), (10, 30), (1, 1)])
def test_pad_to_multiple_then_crop_is_identity(height, width):
  images = tf.random.uniform([2, height, width, 3])
  padded, size = image_ops.pad_to_multiple(images)
  assert padded.shape[1] % 128 == 0 and padded.shape[2] % 128 == 0
  assert padded.shape[1] == -(-height // 128) * 128
  np.testing.assert_array_equal(image_ops.crop_to(padded, size).numpy(),
                                images.numpy())


def test_pad_reflects_content():
  row = tf.reshape(tf.range(1, 4, dtype=tf.float32), [1, 1, 3, 1])
  padded, _ = image_ops.pad_to_multiple(tf.tile(row, [1, 2, 1, 1]), multiple=5)
  # numpy's "reflect" is TF's REFLECT: mirror without repeating the edge.
  np.testing.assert_array_equal(padded.numpy()[0, 0, :, 0], [1, 2, 3, 2, 1])


def test_composite_keeps_known_pixels_bit_exact():
  image = tf.random.uniform([1, 4, 4, 3])
  output = tf.random.uniform([1, 4, 4, 3])
  mask = tf.cast(tf.random.uniform([1, 4, 4, 1]) > 0.5, tf.float32)
  result = image_ops.composite(output, image, mask).numpy()
  known = np.broadcast_to(mask.numpy() > 0.5, result.shape)
  np.testing.assert_array_equal(result[known], image.numpy()[known])
  np.testing.assert_array_equal(result[~known], output.numpy()[~known])


def test_check_spatial_size_error_names_size_and_remedy():
  image_ops.check_spatial_size(128, 384)
  with pytest.raises(ValueError, match=r"200x256.*256x256"):
    image_ops.check_spatial_size(200, 256)


def test_to_uint8_clips_scales_and_rounds_half_to_even():
  values = np.array([-0.5, 0.0, 0.5 / 255, 1.5 / 255, 0.5, 1.0, 2.0],
                    np.float32)
  expected = np.round(np.clip(values, 0.0, 1.0) * 255.0).astype(np.uint8)
  result = image_ops.to_uint8(values)
  assert result.dtype == tf.uint8
  np.testing.assert_array_equal(result.numpy(), expected)
  assert result.numpy().tolist() == [0, 0, 0, 2, 128, 255, 255]


def _mask_files(holes):
  """PNG bytes of one hole layout in four colour modes: holes bright green
  and known pixels red (their RGB means say the opposite of their luma),
  grey, RGBA with alpha against the colours, and a palette."""
  green, red = (0, 255, 0), (255, 0, 0)
  rgb = np.where(holes[..., None], green, red).astype(np.uint8)
  alpha = np.where(holes, 0, 255).astype(np.uint8)[..., None]
  palette = Image.fromarray(holes.astype(np.uint8), "P")
  palette.putpalette(red + green)
  images = {"coloured": Image.fromarray(rgb),
            "grey": Image.fromarray(np.where(holes, 255, 0).astype(np.uint8)),
            "rgba": Image.fromarray(np.concatenate([rgb, alpha], -1)),
            "palette": palette}
  files = {}
  for name, image in images.items():
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    files[name] = buffer.getvalue()
  return files


@pytest.mark.parametrize("polarity", ["white", "black"])
def test_every_mask_mode_gives_one_known_mask_through_every_entry_point(
    polarity):
  holes = np.random.default_rng(3).random((16, 16)) < 0.4
  if polarity == "black":
    holes = ~holes  # the same files, read with the other polarity
  for name, data in _mask_files(holes).items():
    expected = np.where(holes, 0.0, 1.0)
    if polarity == "black":
      expected = 1.0 - expected
    # The Beam job's --mask_dir and lbam_tf.evaluate --mask_dir.
    hole = decode.decode_mask(data, 1 << 20, polarity, 16)
    np.testing.assert_array_equal(hole == 0, expected == 1, err_msg=name)
    # serving_default, lbam_tf.inpaint and the local server: decoded and
    # binarised in the graph, as InpaintModule.serve_bytes does.
    known = inference._known_mask(inference._decode(tf.constant(data)),
                                  tf.constant(polarity)).numpy()[..., 0]
    np.testing.assert_array_equal(known, expected, err_msg=name)


def test_green_is_bright_by_luma_whatever_its_mean():
  green = np.zeros((1, 1, 3), np.uint8)
  green[..., 1] = 255  # luma 150, RGB mean 85
  assert polarity_rule.holes(green, "white")[0, 0]
  assert image_ops.known_mask_from_image(green, "white").numpy()[0, 0, 0] == 0
