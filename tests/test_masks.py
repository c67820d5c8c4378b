"""Mask generators: shape, polarity, hole-ratio bins, determinism, variety."""

import collections

import numpy as np
import pytest

from lbam_tf import seeding
from lbam_tf.data import masks
from lbam_tf.images import ops as image_ops

SIZES = [(256, 256), (128, 192), (200, 96)]


@pytest.mark.parametrize("kind", masks.KINDS)
@pytest.mark.parametrize("size", SIZES)
def test_shape_dtype_and_values(kind, size):
  mask = masks.generate(kind, seeding.seeded_rng(0, kind), size)
  assert mask.shape == size
  assert mask.dtype == np.uint8
  assert set(np.unique(mask)) <= {0, 255}


@pytest.mark.parametrize("kind", masks.KINDS)
@pytest.mark.parametrize("bin_index", range(len(masks.HOLE_RATIO_BINS)))
def test_hole_ratio_falls_in_requested_bin(kind, bin_index):
  lower, upper = masks.HOLE_RATIO_BINS[bin_index]
  for i in range(5):
    mask = masks.generate(kind, seeding.seeded_rng(1, i), (128, 128), (lower, upper))
    # Hole = 255 (white): count the white pixels directly.
    ratio = np.count_nonzero(mask == 255) / mask.size
    assert lower < ratio <= upper


def test_hole_ratio_counts_hole_pixels_of_pictures_and_model_masks():
  picture = np.zeros((10, 10), np.uint8)
  picture[:3] = 255  # 30 of 100 pixels are holes
  picture[3, 0] = 127  # below 128: known
  assert masks.hole_ratio(picture) == pytest.approx(0.3)
  # A model mask (1 = known) is counted through the one conversion.
  known = np.ones((10, 10, 1), np.float32)
  known[:3] = 0.0
  hole_picture = image_ops.hole_image_from_known_mask(known)
  assert masks.hole_ratio(hole_picture) == pytest.approx(0.3)
  assert masks.hole_ratio(
      image_ops.hole_image_from_known_mask(np.ones((4, 4, 1)))) == 0.0


@pytest.mark.parametrize("kind", masks.KINDS)
def test_same_seed_same_mask_other_seed_other_mask(kind):
  first = masks.generate(kind, seeding.seeded_rng(7, "a", 3), (128, 128))
  again = masks.generate(kind, seeding.seeded_rng(7, "a", 3), (128, 128))
  other = masks.generate(kind, seeding.seeded_rng(7, "a", 4), (128, 128))
  np.testing.assert_array_equal(first, again)
  assert not np.array_equal(first, other)


@pytest.mark.parametrize("kind", masks.KINDS)
def test_shapes_are_not_all_alike(kind):
  drawn = [masks.generate(kind, seeding.seeded_rng(2, i), (128, 128), (0.2, 0.3)) > 0
           for i in range(8)]
  # Intersection over union of two independent masks at ratio ~0.25 is near
  # 0.14 for random placement; identical shapes would give 1.
  ious = [np.sum(a & b) / np.sum(a | b)
          for i, a in enumerate(drawn) for b in drawn[i + 1:]]
  assert max(ious) < 0.6
  hole_rows = {tuple(np.flatnonzero(m.any(axis=1))[[0, -1]]) for m in drawn}
  assert len(hole_rows) > 4


def test_ratio_bin_edges():
  assert masks.ratio_bin(0.01) is None
  assert masks.ratio_bin(0.0100001) == 0
  assert masks.ratio_bin(0.1) == 0
  assert masks.ratio_bin(0.6) == 5
  assert masks.ratio_bin(0.61) is None
  assert masks.bin_label(0) == "(0.01,0.1]"
  assert masks.bin_label(5) == "(0.5,0.6]"
  histogram = masks.ratio_histogram([0.05, 0.15, 0.15, 0.7])
  assert histogram["(0.01,0.1]"] == 1
  assert histogram["(0.1,0.2]"] == 2
  assert histogram["outside"] == 1
  assert sum(histogram.values()) == 4


def test_masks_drawn_for_stratified_bins_have_equal_counts_per_bin():
  bins = masks.stratified_bins(12)
  drawn = np.stack([
      masks.generate("irregular", seeding.seeded_rng(3, "test", i), (96, 96),
                     masks.HOLE_RATIO_BINS[b]) for i, b in enumerate(bins)])
  assert drawn.shape == (12, 96, 96)
  ratios = [np.count_nonzero(m == 255) / m.size for m in drawn]
  counts = collections.Counter(masks.ratio_bin(r) for r in ratios)
  assert counts == {b: 2 for b in range(6)}
  assert [masks.ratio_bin(r) for r in ratios] == bins


def test_stratified_count_must_divide_into_bins():
  with pytest.raises(ValueError, match="multiple of 6"):
    masks.stratified_bins(10)


@pytest.mark.parametrize("num_masks", [30000, 600, 61, 6, 0])
def test_plan_counts_and_stratification(num_masks):
  specs = masks.plan(num_masks, test_fraction=0.2, random_shape_fraction=0.6)
  assert len(specs) == num_masks
  kinds = collections.Counter(kind for _, kind, _, _ in specs)
  assert kinds["random_shape"] == round(num_masks * 0.6)
  test_bins = collections.Counter(r for split, _, _, r in specs if split == "test")
  assert len(set(test_bins.values())) <= 1
  if num_masks == 30000:
    # 18,000 random-shape + 12,000 irregular; a fifth of each in the test split.
    assert kinds == {"random_shape": 18000, "irregular": 12000}
    assert test_bins == {b: 1000 for b in masks.HOLE_RATIO_BINS}
  if num_masks == 600:
    assert test_bins == {b: 20 for b in masks.HOLE_RATIO_BINS}
  keys = {(split, kind, index) for split, kind, index, _ in specs}
  assert len(keys) == num_masks


def test_bad_arguments_name_the_value():
  with pytest.raises(ValueError, match="cubist"):
    masks.generate("cubist", seeding.seeded_rng(0), (64, 64))
  with pytest.raises(ValueError, match="4x4"):
    masks.irregular_mask(seeding.seeded_rng(0), (4, 4))


@pytest.mark.parametrize("ratio, expected",
                         [(0.0, None), (0.01, None), (0.0100001, 0), (0.05, 0),
                          (0.1, 0), (0.1000001, 1), (0.2, 1), (0.25, 2),
                          (0.3, 2), (0.4, 3), (0.45, 4), (0.5, 4), (0.55, 5),
                          (0.6, 5), (0.6000001, None), (0.9, None), (1.0, None)])
def test_ratio_bin_edges_lower_exclusive_upper_inclusive(ratio, expected):
  assert masks.ratio_bin(ratio) == expected
