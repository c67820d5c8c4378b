"""Mask polarity, padding and compositing: conventions all entry points use."""

import numpy as np
import pytest
import tensorflow as tf

from lbam_tf import image_ops


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
