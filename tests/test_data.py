"""lbam_tf.data.records: records written by its helpers read back exactly; batching rules."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from lbam_tf.data import records

STORED = 32
NUM_IMAGES = 5
NUM_MASKS = 3


def _image(i):
  rng = np.random.default_rng(i)
  return rng.integers(0, 256, size=(STORED, STORED, 3), dtype=np.uint8)


def _mask(i):
  mask = np.zeros((STORED, STORED), np.uint8)
  mask[:, : 4 * (i + 1)] = 255  # holes: the left 4(i+1) columns
  return mask


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  root = str(tmp_path_factory.mktemp("data"))
  # Two shards for train to exercise the file glob and interleave.
  for shard, indices in enumerate([range(0, 3), range(3, NUM_IMAGES)]):
    records.write_tfrecords(
        os.path.join(root, records.shard_name("images", "train", shard, 2)),
        [records.image_example(_image(i), f"img{i}.jpg", (i, 2 * i))
         for i in indices])
  records.write_tfrecords(
      os.path.join(root, records.shard_name("images", "test", 0, 1)),
      [records.image_example(_image(i), f"img{i}.jpg") for i in range(NUM_IMAGES)])
  for split in records.MASK_SPLITS:
    records.write_tfrecords(
        os.path.join(root, records.shard_name("masks", split, 0, 1)),
        [records.mask_example(_mask(i), f"m/{split}/{i}") for i in range(NUM_MASKS)])
  with open(os.path.join(root, records.MANIFEST_NAME), "w") as f:
    json.dump({"flags": {"crop_size": STORED}}, f)
  return root


def test_shard_names_follow_the_contract():
  assert records.shard_name("images", "val", 3, 10) == os.path.join(
      "images", "val-00003-of-00010.tfrecord.gz")


def test_read_images_round_trip(data_dir):
  got = list(records.read_images(data_dir, "test"))
  assert len(got) == NUM_IMAGES
  for i, example in enumerate(got):
    assert example["image"].dtype == tf.uint8
    np.testing.assert_array_equal(example["image"].numpy(), _image(i))
    assert example["key"].numpy().decode() == f"img{i}.jpg"


def test_offset_is_stored(data_dir):
  files = sorted(tf.io.gfile.glob(os.path.join(data_dir, "images", "train-*")))
  # Record 0's (0, 0) is also the feature's default; the others are not.
  offsets = [tf.io.parse_single_example(record, records.IMAGE_FEATURES)["offset"]
             .numpy().tolist() for record in
             tf.data.TFRecordDataset(files[0], compression_type="GZIP")]
  assert offsets == [[0, 0], [1, 2], [2, 4]]
  record = list(tf.data.TFRecordDataset(files[1], compression_type="GZIP"))[0]
  parsed = tf.io.parse_single_example(record, records.IMAGE_FEATURES)
  assert parsed["offset"].numpy().tolist() == [3, 6]


def test_read_masks_polarity_and_ratio(data_dir):
  got = list(records.read_masks(data_dir, "train"))
  assert len(got) == NUM_MASKS
  for i, example in enumerate(got):
    mask = example["mask"].numpy()
    assert mask.shape == (STORED, STORED, 1) and mask.dtype == np.float32
    expected_known = (_mask(i) == 0).astype(np.float32)[..., None]
    np.testing.assert_array_equal(mask, expected_known)
    assert example["hole_ratio"].numpy() == pytest.approx(4 * (i + 1) / STORED)
    assert example["source"].numpy().decode() == f"m/train/{i}"


def _take(dataset, n):
  return [{k: v.numpy() for k, v in batch.items()} for batch in dataset.take(n)]


def test_training_batches_shapes_values_and_crops(data_dir):
  batches = _take(records.make_dataset(data_dir, "train", batch_size=4,
                                       crop_size=16, seed=1), 3)
  sources = [_image(i).astype(np.float32) / 255.0 for i in range(NUM_IMAGES)]
  for batch in batches:
    assert batch["image"].shape == (4, 16, 16, 3)
    assert batch["mask"].shape == (4, 16, 16, 1)
    assert set(np.unique(batch["mask"])) <= {0.0, 1.0}
    for crop in batch["image"]:
      # Each crop is a 16x16 window of some source, possibly mirrored.
      found = any(
          np.array_equal(crop, view[y:y + 16, x:x + 16])
          for src in sources for view in (src, src[:, ::-1])
          for y in range(STORED - 15) for x in range(STORED - 15))
      assert found


def test_training_is_reproducible_from_seed(data_dir):
  first = _take(records.make_dataset(data_dir, batch_size=2, crop_size=16, seed=5), 4)
  again = _take(records.make_dataset(data_dir, batch_size=2, crop_size=16, seed=5), 4)
  other = _take(records.make_dataset(data_dir, batch_size=2, crop_size=16, seed=6), 4)
  for a, b in zip(first, again):
    np.testing.assert_array_equal(a["image"], b["image"])
    np.testing.assert_array_equal(a["mask"], b["mask"])
  assert any(not np.array_equal(a["image"], c["image"]) for a, c in zip(first, other))


def test_training_pairs_masks_at_random(data_dir):
  batches = _take(records.make_dataset(data_dir, batch_size=5, seed=2), 4)
  hole_columns = {int(np.sum(m[0, :, 0] == 0)) for b in batches for m in b["mask"]}
  # Masks have 4, 8 or 12 hole columns; flips keep the count.
  assert hole_columns == {4, 8, 12}


def test_evaluation_is_deterministic_centre_crops_with_cycled_masks(data_dir):
  dataset = records.make_dataset(data_dir, "test", batch_size=2, crop_size=16,
                                 training=False)
  batches = _take(dataset, 10)
  assert [len(b["image"]) for b in batches] == [2, 2, 1]
  images = np.concatenate([b["image"] for b in batches])
  masks = np.concatenate([b["mask"] for b in batches])
  for i in range(NUM_IMAGES):
    expected = _image(i)[8:24, 8:24].astype(np.float32) / 255.0
    np.testing.assert_allclose(images[i], expected, atol=1e-7)
    # A 32-px mask resized to 16 by nearest neighbour: every second column.
    expected_mask = (_mask(i % NUM_MASKS) == 0)[::2, ::2].astype(np.float32)
    np.testing.assert_array_equal(masks[i, ..., 0], expected_mask)
  again = np.concatenate([b["image"] for b in _take(dataset, 10)])
  np.testing.assert_array_equal(images, again)


def test_too_large_crop_names_the_remedy(data_dir):
  with pytest.raises(ValueError, match="--crop_size 64"):
    records.make_dataset(data_dir, crop_size=64)


def test_missing_records_name_the_remedy(tmp_path):
  with pytest.raises(FileNotFoundError, match="pipeline.preprocess"):
    records.read_images(str(tmp_path), "train")
  with pytest.raises(ValueError, match="validation"):
    records.read_masks(str(tmp_path), "validation")


def test_read_manifest(data_dir, tmp_path):
  assert records.read_manifest(data_dir) == {"flags": {"crop_size": STORED}}
  with pytest.raises(FileNotFoundError,
                     match="manifest.json does not exist: run python -m "
                           "pipeline.preprocess first"):
    records.read_manifest(str(tmp_path))
  assert records.stored_crop_size(str(tmp_path)) is None
