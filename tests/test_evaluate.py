"""lbam_tf.evaluation and its command line lbam_tf.evaluate end to end: pairing, binning, baselines, outputs, ablation.

Expected values are computed here independently (numpy, direct generator
calls), never read back from the module under test.
"""

import csv
import dataclasses
import json
import os
import subprocess
import sys

import cv2
import keras
import numpy as np
import pytest
import tensorflow as tf

from lbam_tf.data import masks as masks_lib
from lbam_tf.data import records
from lbam_tf.evaluation import config as config_lib
from lbam_tf.evaluation import metrics
from lbam_tf.evaluation import pairs as pairs_lib
from lbam_tf.evaluation import runner
from lbam_tf.model import generator as generator_lib

CROP = 128
#: Hole ratios of the test masks: one per bin, plus two outside every bin.
RATIOS = (0.05, 0.15, 0.25, 0.35, 0.45, 0.55, 0.005, 0.8)
NUM_IMAGES = 12


def _hole_mask_picture(ratio, size=CROP):
  """uint8 [size, size], 255 = hole: whole rows from the top, then a part."""
  holes = int(round(ratio * size * size))
  flat = np.zeros(size * size, np.uint8)
  flat[:holes] = 255
  return flat.reshape(size, size)


def _images(count=NUM_IMAGES, size=CROP):
  """Smooth colour ramps with a little texture, different per image."""
  y, x = np.mgrid[0:size, 0:size].astype(np.float64) / size
  images = []
  for k in range(count):
    phase = 2 * np.pi * k / count
    image = np.stack([
        0.5 + 0.4 * np.sin(3 * x + phase), 0.5 + 0.4 * np.cos(2 * y + phase),
        0.3 + 0.4 * x * y
    ],
                     axis=-1)
    image += (0.03 * np.sin(40 * x) * np.cos(37 * y))[..., None]
    images.append(np.round(np.clip(image, 0, 1) * 255).astype(np.uint8))
  return images


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
  root = tmp_path_factory.mktemp("eval_data")
  image_dir = root / "images"
  mask_dir = root / "masks"
  black_dir = root / "masks_black"
  for d in (image_dir, mask_dir, black_dir):
    d.mkdir()
  for k, image in enumerate(_images()):
    cv2.imwrite(str(image_dir / f"img{k:02d}.png"),
                cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
  # One larger, non-square photo: resized (shorter side) and centre-cropped.
  big = cv2.resize(_images(1)[0], (300, 200), interpolation=cv2.INTER_LINEAR)
  cv2.imwrite(str(image_dir / "wide.jpg"), big)
  for k, ratio in enumerate(RATIOS):
    picture = _hole_mask_picture(ratio)
    cv2.imwrite(str(mask_dir / f"mask{k}.png"), picture)
    cv2.imwrite(str(black_dir / f"mask{k}.png"), 255 - picture)
  return {
      "image_dir": str(image_dir),
      "mask_dir": str(mask_dir),
      "black_dir": str(black_dir)
  }


class _Identity(tf.Module):
  """A SavedModel "inpainter" returning its input: holes stay as given (0)."""

  @tf.function(input_signature=[
      tf.TensorSpec([None, None, None, 3], tf.float32, name="image"),
      tf.TensorSpec([None, None, None, 1], tf.float32, name="mask")
  ])
  def inpaint_tensor(self, image, mask):
    del mask
    return {"image": image}


@pytest.fixture(scope="module")
def identity_model(tmp_path_factory):
  path = str(tmp_path_factory.mktemp("identity") / "1")
  module = _Identity()
  tf.saved_model.save(module,
                      path,
                      signatures={"inpaint_tensor": module.inpaint_tensor})
  return path


def _model_dir(root, ablation, checkpoint):
  """A training model_dir: config.json plus a TF checkpoint or final weights."""
  model_dir = root / ablation
  model_dir.mkdir()
  generator = generator_lib.build_generator(ablation=ablation)
  if checkpoint:
    tf.train.CheckpointManager(tf.train.Checkpoint(generator=generator),
                               str(model_dir),
                               max_to_keep=1).save()
  else:
    generator.save_weights(str(model_dir / "generator.weights.h5"))
  with open(model_dir / "config.json", "w") as f:
    json.dump({"variant": "head", "ablation": ablation, "crop_size": CROP}, f)
  return str(model_dir), generator


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory):
  root = tmp_path_factory.mktemp("models")
  return [
      _model_dir(root, "none", checkpoint=False),
      _model_dir(root, "sigmoid", checkpoint=True)
  ]


def _run(model_paths, output_dir, folders, **kwargs):
  options = dict(image_dir=folders["image_dir"],
                 mask_dir=folders["mask_dir"],
                 crop_size=CROP,
                 num_images=NUM_IMAGES,
                 batch_size=6,
                 num_examples=2)
  options.update(kwargs)
  return _evaluate(model_paths, output_dir, **options)


def _evaluate(model_paths, output_dir, **options):
  """runner.run for one model (--model) or several (--ablation)."""
  models = ({"model": model_paths[0]} if len(model_paths) == 1 else
            {"ablation": model_paths})
  return runner.run(
      config_lib.EvalConfig(output_dir=str(output_dir), **models, **options))


def _truth_and_mask(folders, pair):
  image = cv2.cvtColor(
      cv2.imread(os.path.join(folders["image_dir"], pair["image"])),
      cv2.COLOR_BGR2RGB)
  if image.shape[:2] == (200, 300):
    # The README's rule: shorter side to the crop size (area), centre square.
    image = cv2.resize(image, (192, 128), interpolation=cv2.INTER_AREA)[:,
                                                                        32:160]
  hole = cv2.imread(os.path.join(folders["mask_dir"], pair["mask"]),
                    cv2.IMREAD_GRAYSCALE) > 127
  return image, hole


def _numpy_psnr_l1(output, truth):
  diff = output.astype(np.float64) / 255 - truth.astype(np.float64) / 255
  mse = np.mean(diff**2)
  psnr = 100.0 if mse == 0 else min(100.0, 10 * np.log10(1.0 / mse))
  return psnr, 100 * np.mean(np.abs(diff))


def test_pairing_is_deterministic_bin_balanced_and_drops_out_of_bin_masks():
  images = [(f"k{k}", np.full((4, 4, 3), k, np.uint8)) for k in range(12)]
  masks = []
  for k, ratio in enumerate(RATIOS):
    known = (_hole_mask_picture(ratio, 20) == 0).astype(np.float32)[..., None]
    masks.append((f"m{k}", known))
  pairs, dropped = pairs_lib.pair_images_with_masks(images, masks, 0, seed=3)
  again, _ = pairs_lib.pair_images_with_masks(list(reversed(images)),
                                             masks[::-1],
                                             0,
                                             seed=3)
  other, _ = pairs_lib.pair_images_with_masks(images, masks, 0, seed=4)

  assert dropped == 2
  assert [(p.image_key, p.mask_key) for p in pairs
         ] == [(p.image_key, p.mask_key) for p in again]
  assert [p.image_key for p in pairs] != [p.image_key for p in other]
  assert sorted(p.image_key for p in pairs) == sorted(k for k, _ in images)
  # 12 images over 6 bins: two each, and each mask's ratio lies in its bin.
  assert np.bincount([p.bin for p in pairs], minlength=6).tolist() == [2] * 6
  for p in pairs:
    holes = np.mean(p.known < 0.5)
    lower, upper = masks_lib.HOLE_RATIO_BINS[p.bin]
    assert lower < holes <= upper
  # num_images keeps a prefix of the same permutation.
  first, _ = pairs_lib.pair_images_with_masks(images, masks, 5, seed=3)
  assert [p.image_key for p in first] == [p.image_key for p in pairs[:5]]


def test_identity_model_scores_match_numpy_and_outputs_are_readable(
    folders, identity_model, tmp_path):
  results = _run([identity_model], tmp_path, folders)
  methods = ["ours", "telea", "ns", "patchmatch"]
  assert results["methods"] == methods
  assert results["data"]["masks_outside_bins"] == 2

  # Ours returns the masked input: composited, the holes are black. Recompute
  # every pair's PSNR and L1 from the files.
  for pair in results["pairs"]:
    truth, hole = _truth_and_mask(folders, pair)
    expected_ratio = hole.mean()
    assert pair["hole_ratio"] == pytest.approx(expected_ratio)
    assert masks_lib.bin_label(
        masks_lib.ratio_bin(expected_ratio)) == pair["bin"]
    psnr, l1 = _numpy_psnr_l1(np.where(hole[..., None], 0, truth), truth)
    assert pair["metrics"]["ours"]["psnr"] == pytest.approx(psnr, abs=1e-3)
    assert pair["metrics"]["ours"]["l1_percent"] == pytest.approx(l1, abs=1e-3)
    # Baselines fill the holes with something closer than black.
    for method in ("telea", "ns", "patchmatch"):
      assert pair["metrics"][method]["l1_percent"] < l1

  # Bin means are the means of the per-pair values, 2 pairs per bin (12 / 6).
  table = results["table"]
  for b in range(6):
    label = masks_lib.bin_label(b)
    in_bin = [p for p in results["pairs"] if p["bin"] == label]
    assert table["ours"][label]["count"] == len(in_bin) == 2
    for method in methods:
      assert table[method][label]["psnr"] == pytest.approx(
          np.mean([p["metrics"][method]["psnr"] for p in in_bin]))

  with open(tmp_path / "results.csv") as f:
    rows = list(csv.DictReader(f))
  assert len(rows) == 4 * 7
  row = next(
      r for r in rows if r["method"] == "telea" and r["bin"] == "(0.2,0.3]")
  assert float(row["ssim"]) == pytest.approx(
      table["telea"]["(0.2,0.3]"]["ssim"])

  markdown = (tmp_path / "results.md").read_text()
  assert "| PSNR (dB) | (0.1,0.2] | 2 |" in markdown
  assert "Telea" in markdown and "Navier-Stokes" in markdown
  assert "PatchMatch" in markdown
  assert identity_model in markdown
  assert "FID: not computed" in markdown and "LPIPS: not computed" in markdown
  assert results["fid"] is None

  for b in range(6):
    grid = cv2.imread(str(tmp_path / f"grid_bin{b}.png"))
    # A label strip, then 2 example rows; input, mask, ours, Telea,
    # PatchMatch, truth.
    assert grid.shape == (24 + 2 * CROP, 6 * CROP, 3)
  plot = cv2.imread(str(tmp_path / "psnr_per_bin.png"))
  assert plot is not None and plot.shape[0] > 100
  # Three coloured lines were drawn: not only black, white and grey.
  assert len(np.unique(plot.reshape(-1, 3), axis=0)) > 20


def test_same_seed_same_table_other_seed_other_pairs(folders, identity_model,
                                                     tmp_path):
  first = _run([identity_model], tmp_path / "a", folders, seed=7)
  second = _run([identity_model], tmp_path / "b", folders, seed=7)
  third = _run([identity_model], tmp_path / "c", folders, seed=8)
  assert first["table"] == second["table"]
  assert first["pairs"] == second["pairs"]
  assert ([(p["image"], p["mask"]) for p in first["pairs"]]
          != [(p["image"], p["mask"]) for p in third["pairs"]])


def test_black_polarity_reads_the_same_masks(folders, identity_model, tmp_path):
  white = _run([identity_model], tmp_path / "w", folders, num_images=6)
  black = _run([identity_model],
               tmp_path / "b",
               folders,
               num_images=6,
               mask_dir=folders["black_dir"],
               mask_polarity="black")
  assert white["table"] == black["table"]


def test_chosen_baselines_only(folders, identity_model, tmp_path):
  all_methods = _run([identity_model], tmp_path / "all", folders, num_images=6)
  telea = _run([identity_model], tmp_path / "telea", folders, num_images=6,
               baselines=("telea",))
  assert sorted(telea["table"]) == ["ours", "telea"]
  assert telea["table"]["telea"] == all_methods["table"]["telea"]
  assert telea["flags"]["baselines"] == ["telea"]
  with pytest.raises(ValueError, match="'sift' is not one of"):
    _run([identity_model], tmp_path / "bad", folders, num_images=6,
         baselines=("sift",))


def _check_against_direct_calls(results, column, generator, folders):
  """Each pair's `column` score equals the generator called here, composited."""
  for pair in results["pairs"]:
    truth, hole = _truth_and_mask(folders, pair)
    known = (~hole).astype(np.float32)[None, ..., None]
    image = truth.astype(np.float32)[None] / 255
    raw = generator({
        "image": image * known,
        "mask": known
    }, training=False).numpy()[0]
    filled = np.round(np.clip(raw, 0, 1) * 255).astype(np.uint8)
    filled = np.where(hole[..., None], filled, truth)
    psnr, l1 = _numpy_psnr_l1(filled, truth)
    assert pair["metrics"][column]["psnr"] == pytest.approx(psnr, abs=1e-2)
    assert pair["metrics"][column]["l1_percent"] == pytest.approx(l1, abs=1e-2)


def test_real_generator_model_dir_matches_a_direct_call(folders, model_dirs,
                                                        tmp_path):
  model_dir, generator = model_dirs[0]
  results = _run([model_dir], tmp_path, folders, num_images=6)
  assert results["models"][0]["kind"] == "model_dir"
  assert results["models"][0]["ablation"] == "none"
  _check_against_direct_calls(results, "ours", generator, folders)


def test_ablation_puts_two_model_dirs_side_by_side(folders, model_dirs,
                                                   tmp_path):
  paths = [path for path, _ in model_dirs]
  results = _run(paths, tmp_path, folders, num_images=6)
  assert results["methods"] == ["none", "sigmoid", "telea", "ns",
                                "patchmatch"]
  assert [m["ablation"] for m in results["models"]] == ["none", "sigmoid"]
  # The second model_dir holds a TF checkpoint, as training writes it.
  _check_against_direct_calls(results, "sigmoid", model_dirs[1][1], folders)
  markdown = (tmp_path / "results.md").read_text()
  assert "the layout of the paper's Table 2" in markdown
  assert "| sigmoid |" in markdown
  grid = cv2.imread(str(tmp_path / "grid_bin0.png"))
  # input, mask, two models, Telea, PatchMatch, truth
  assert grid.shape[1] == 7 * CROP


def test_fid_from_a_given_inception_weights_file(folders, identity_model,
                                                 tmp_path):
  # Random InceptionV3 weights stand in for the ImageNet file: the features
  # differ, the computation does not.
  inception = keras.applications.InceptionV3(include_top=False,
                                             weights=None,
                                             pooling="avg",
                                             input_shape=(299, 299, 3))
  weights = str(tmp_path / "inception.weights.h5")
  inception.save_weights(weights)
  results = _run([identity_model],
                 tmp_path / "out",
                 folders,
                 num_images=4,
                 inception_weights=weights)

  truth, filled = [], []
  for pair in results["pairs"]:
    image, hole = _truth_and_mask(folders, pair)
    truth.append(image)
    filled.append(np.where(hole[..., None], 0, image))

  def features(images):
    x = tf.image.resize(np.stack(images).astype(np.float32),
                        (299, 299)) / 127.5 - 1.0
    return inception(x, training=False).numpy().astype(np.float64)

  # The Fréchet distance is tested in test_metrics; this pins the features.
  expected = metrics.frechet_distance(features(filled), features(truth))
  assert results["fid"]["ours"] == pytest.approx(expected, rel=1e-3, abs=1e-3)
  assert set(results["fid"]) == {"ours", "telea", "ns", "patchmatch"}
  assert "| FID |" in (tmp_path / "out" / "results.md").read_text()


def test_cli_writes_results(folders, identity_model, tmp_path):
  output_dir = tmp_path / "cli"
  completed = subprocess.run([
      sys.executable, "-m", "lbam_tf.evaluate", f"--model={identity_model}",
      f"--image_dir={folders['image_dir']}",
      f"--mask_dir={folders['mask_dir']}", f"--output_dir={output_dir}",
      "--num_images=6", f"--crop_size={CROP}"
  ],
                             capture_output=True,
                             text=True,
                             timeout=240,
                             cwd=os.path.dirname(
                                 os.path.dirname(os.path.abspath(__file__))))
  assert completed.returncode == 0, completed.stderr[-3000:]
  assert "| Mean L1 (%) | (0.5,0.6] |" in completed.stdout
  with open(output_dir / "results.json") as f:
    recorded = json.load(f)["flags"]
  assert recorded["num_images"] == 6 and recorded["model"] == identity_model


def test_data_dir_scores_match_the_records_written(folders, identity_model,
                                                   tmp_path):
  data_dir = tmp_path / "data"
  images = _images()
  # Two crops of one photo share a key, as the pipeline writes them.
  keys = [f"photo{k // 2}" for k in range(len(images))]
  records.write_tfrecords(
      str(data_dir / records.shard_name("images", "test", 0, 1)),
      [records.image_example(image, key) for image, key in zip(images, keys)])
  pictures = [_hole_mask_picture(ratio) for ratio in RATIOS]
  records.write_tfrecords(
      str(data_dir / records.shard_name("masks", "test", 0, 1)),
      [records.mask_example(p, f"m{k}") for k, p in enumerate(pictures)])
  from_records = _evaluate([identity_model],
                           tmp_path / "records",
                           data_dir=str(data_dir),
                           crop_size=CROP,
                           num_images=NUM_IMAGES)
  assert from_records["data"]["images_available"] == NUM_IMAGES
  assert from_records["data"]["masks_outside_bins"] == 2
  assert len({p["image"] for p in from_records["pairs"]}) == NUM_IMAGES
  # Every pair's score, recomputed from the arrays written above.
  # Repeated keys are numbered in file order: photo0, photo0#1, photo1, ...
  by_key = {
      key + ("#1" if k % 2 else ""): image
      for k, (key, image) in enumerate(zip(keys, images))
  }
  for pair in from_records["pairs"]:
    truth = by_key[pair["image"]]
    hole = pictures[int(pair["mask"][1:])] > 127
    psnr, l1 = _numpy_psnr_l1(np.where(hole[..., None], 0, truth), truth)
    assert pair["metrics"]["ours"]["psnr"] == pytest.approx(psnr, abs=1e-3)
    assert pair["metrics"]["ours"]["l1_percent"] == pytest.approx(l1, abs=1e-3)


def test_rejects_ambiguous_inputs(folders, identity_model, tmp_path):
  with pytest.raises(ValueError, match="--data_dir or --image_dir"):
    _evaluate([identity_model],
              tmp_path,
              data_dir="x",
              image_dir=folders["image_dir"],
              mask_dir=folders["mask_dir"])
  with pytest.raises(ValueError, match="needs --mask_dir"):
    _evaluate([identity_model],
              tmp_path,
              image_dir=folders["image_dir"])
  only_large = tmp_path / "large_holes"
  only_large.mkdir()
  cv2.imwrite(str(only_large / "m.png"), _hole_mask_picture(0.8))
  with pytest.raises(ValueError, match="mask_polarity"):
    _evaluate([identity_model],
              tmp_path,
              image_dir=folders["image_dir"],
              mask_dir=str(only_large),
              crop_size=CROP)


def test_config_check_names_the_bad_value():
  good = dict(model="m", image_dir="i", mask_dir="k")
  assert config_lib.EvalConfig(**good).check().crop_size == 256
  with pytest.raises(ValueError, match="exactly one"):
    config_lib.EvalConfig(image_dir="i", mask_dir="k").check()
  with pytest.raises(ValueError, match="--crop_size 8"):
    config_lib.EvalConfig(crop_size=8, **good).check()
  with pytest.raises(ValueError, match="--batch_size 0"):
    config_lib.EvalConfig(batch_size=0, **good).check()
  with pytest.raises(ValueError, match="'sift' is not one of"):
    config_lib.EvalConfig(baselines=("sift",), **good).check()


# High resolution (--eval_size): whole photos of different, odd sizes.

#: (width, height) of the two photos: one below EVAL_SIZE (kept as is), one
#: above it (its long side resized to EVAL_SIZE).
PHOTO_SIZES = {"wide.png": (611, 403), "tall.png": (500, 750)}
EVAL_SIZE = 640
#: Their sizes (height, width) as scored: 750 -> 640, 500 * 640 / 750 -> 427.
SCORED_SIZES = {"wide.png": [403, 611], "tall.png": [640, 427]}


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
  """Two PNG photos and a folder of two (square, 128 px) masks."""
  root = tmp_path_factory.mktemp("photos")
  image_dir, mask_dir = root / "images", root / "masks"
  image_dir.mkdir()
  mask_dir.mkdir()
  base = _images(1, size=256)[0]
  arrays = {}
  for name, (width, height) in PHOTO_SIZES.items():
    arrays[name] = cv2.resize(base, (width, height),
                              interpolation=cv2.INTER_CUBIC)
    cv2.imwrite(str(image_dir / name),
                cv2.cvtColor(arrays[name], cv2.COLOR_RGB2BGR))
  for k, ratio in enumerate((0.05, 0.15)):
    cv2.imwrite(str(mask_dir / f"mask{k}.png"), _hole_mask_picture(ratio))
  return {"image_dir": str(image_dir), "mask_dir": str(mask_dir),
          "arrays": arrays}


def test_photos_are_resized_whole_and_masks_stretched_to_them(photos):
  config = config_lib.EvalConfig(model="m", image_dir=photos["image_dir"],
                                 mask_dir=photos["mask_dir"],
                                 eval_size=EVAL_SIZE, crop_size=CROP,
                                 num_images=0).check()
  pairs, data = pairs_lib.read_photo_pairs(config)
  assert data["pairs"] == data["images_available"] == 2
  assert data["eval_size"] == EVAL_SIZE and data["largest_side"] == EVAL_SIZE
  by_key = {pair.image_key: pair for pair in pairs}
  # The small photo as decoded; the tall one area-resized, aspect kept.
  np.testing.assert_array_equal(by_key["wide.png"].image,
                                photos["arrays"]["wide.png"])
  np.testing.assert_array_equal(
      by_key["tall.png"].image,
      cv2.resize(photos["arrays"]["tall.png"], (427, 640),
                 interpolation=cv2.INTER_AREA))
  # The same seed pairs the same masks with the same images as at the crop
  # size; each mask is stretched to its photo and its ratio counted there.
  at_crop = pairs_lib.pair_images_with_masks(
      *pairs_lib.read_inputs(dataclasses.replace(config, eval_size=0))[:2],
      0, config.seed)[0]
  assert ({(p.image_key, p.mask_key) for p in pairs}
          == {(p.image_key, p.mask_key) for p in at_crop})
  for pair in pairs:
    assert list(pair.known.shape) == SCORED_SIZES[pair.image_key] + [1]
    assert set(np.unique(pair.known)) <= {0.0, 1.0}
    hole = cv2.imread(os.path.join(photos["mask_dir"], pair.mask_key),
                      cv2.IMREAD_GRAYSCALE) > 127
    assert pair.hole_ratio == pytest.approx(np.mean(pair.known < 0.5))
    assert pair.hole_ratio == pytest.approx(hole.mean(), abs=0.01)
    assert masks_lib.ratio_bin(pair.hole_ratio) == pair.bin


def test_eval_size_scores_whole_photos_with_each_hd_strategy(photos,
                                                             model_dirs,
                                                             tmp_path):
  """crop (made to crop: crop_trigger below both photos) and original on
  the same pairs, masks drawn at each photo's size, Telea and Navier-Stokes
  beside the model; PatchMatch left out above --patchmatch_max_side."""
  model_dir, _ = model_dirs[0]
  common = dict(image_dir=photos["image_dir"], eval_size=EVAL_SIZE,
                num_images=0, num_examples=1)
  crop = _evaluate([model_dir], tmp_path / "crop", hd_strategy="crop",
                   crop_margin=32, crop_trigger=256, patchmatch_max_side=512,
                   **common)
  original = _evaluate([model_dir], tmp_path / "original",
                       hd_strategy="original", baselines=("telea", "ns"),
                       **common)
  bins = [masks_lib.bin_label(b) for b in (0, 1)]
  for results, strategy in ((crop, "crop"), (original, "original")):
    assert results["methods"] == ["ours", "telea", "ns"]
    assert results["data"]["pairs"] == len(results["pairs"]) == 2
    assert results["flags"]["eval_size"] == EVAL_SIZE
    assert results["flags"]["hd_strategy"] == strategy
    assert results["data"]["hd_strategy"] == strategy
    # Two photos, masks drawn in the first two bins, one each.
    assert {p["image"]: p["size"] for p in results["pairs"]} == SCORED_SIZES
    assert sorted(p["bin"] for p in results["pairs"]) == bins
    for pair in results["pairs"]:
      assert masks_lib.bin_label(masks_lib.ratio_bin(
          pair["hole_ratio"])) == pair["bin"]
      for method in results["methods"]:
        assert 0 < pair["metrics"][method]["psnr"] <= 100
    for method in results["methods"]:
      rows = results["table"][method]
      assert [rows[label]["count"] for label in rows] == [1, 1, 0, 0, 0, 0, 2]
    markdown = (tmp_path / strategy / "results.md").read_text()
    assert "| PSNR (dB) | (0.01,0.1] | 1 |" in markdown
    assert f"--hd_strategy {strategy}" in markdown
    assert "Navier-Stokes" in markdown
    with open(tmp_path / strategy / "results.csv") as f:
      rows = list(csv.DictReader(f))
    assert len(rows) == 3 * 7
    assert {(r["eval_size"], r["hd_strategy"]) for r in rows} == {
        (str(EVAL_SIZE), strategy)}
    # Examples fitted into squares, whatever the photo's shape: input, mask,
    # ours, Telea, truth.
    grid = cv2.imread(str(tmp_path / strategy / "grid_bin0.png"))
    side = 512
    assert grid.shape == (24 + side, 5 * side, 3)

  # The same pairs and masks under both strategies: the baselines agree.
  assert ([{k: p[k] for k in ("image", "mask", "size", "hole_ratio")}
           for p in crop["pairs"]] ==
          [{k: p[k] for k in ("image", "mask", "size", "hole_ratio")}
           for p in original["pairs"]])
  for method in ("telea", "ns"):
    assert crop["table"][method] == original["table"][method]
  # original runs each photo's whole padded frame; crop only boxes of holes.
  assert original["data"]["generator_pixels_per_photo"] == (
      512 * 640 + 640 * 512) // 2
  assert crop["data"]["generator_pixels_per_photo"] > 0
  assert "PatchMatch: not run" in (tmp_path / "crop" / "results.md"
                                   ).read_text()
  assert crop["flags"]["crop_trigger"] == 256


class _HdEcho(tf.Module):
  """A SavedModel with the high-resolution inputs: fills holes with grey
  level crop_margin / 255, so a test sees which value arrived."""

  @tf.function(input_signature=[
      tf.TensorSpec([None, None, None, 3], tf.float32, name="image"),
      tf.TensorSpec([None, None, None, 1], tf.float32, name="mask"),
      tf.TensorSpec(None, tf.string, name="hd_strategy"),
      tf.TensorSpec(None, tf.int32, name="crop_margin"),
      tf.TensorSpec(None, tf.int32, name="resize_limit"),
      tf.TensorSpec(None, tf.int32, name="crop_trigger")
  ])
  def inpaint_tensor(self, image, mask, hd_strategy, crop_margin,
                     resize_limit, crop_trigger):
    del resize_limit, crop_trigger
    grey = tf.cast(crop_margin, tf.float32) / 255.0
    grey = tf.where(hd_strategy == "resize", 0.0, grey)
    return {"image": image * mask + (1.0 - mask) * grey}


def test_an_export_gets_the_hd_options_as_signature_inputs(
    photos, identity_model, tmp_path):
  path = str(tmp_path / "echo" / "1")
  module = _HdEcho()
  tf.saved_model.save(module, path,
                      signatures={"inpaint_tensor": module.inpaint_tensor})
  results = _evaluate([path], tmp_path / "out", image_dir=photos["image_dir"],
                      mask_dir=photos["mask_dir"], crop_size=CROP,
                      eval_size=EVAL_SIZE, num_images=0, crop_margin=200,
                      baselines=("telea",), num_examples=0)
  pairs = {pair.image_key: pair for pair in pairs_lib.read_photo_pairs(
      config_lib.EvalConfig(model=path, image_dir=photos["image_dir"],
                            mask_dir=photos["mask_dir"], crop_size=CROP,
                            eval_size=EVAL_SIZE, num_images=0))[0]}
  for pair in results["pairs"]:
    truth = pairs[pair["image"]].image
    hole = pairs[pair["image"]].known < 0.5
    psnr, l1 = _numpy_psnr_l1(np.where(hole, 200, truth), truth)
    assert pair["metrics"]["ours"]["psnr"] == pytest.approx(psnr, abs=1e-3)
    assert pair["metrics"]["ours"]["l1_percent"] == pytest.approx(l1,
                                                                  abs=1e-3)
  # --num_examples 0: no grids.
  assert not list((tmp_path / "out").glob("grid_bin*.png"))
  # An export without those inputs fills the whole frame as it always did:
  # fine at the crop size, refused at high resolution.
  with pytest.raises(ValueError, match="re-export"):
    _evaluate([identity_model], tmp_path / "old",
              image_dir=photos["image_dir"], eval_size=EVAL_SIZE)


def test_high_resolution_options_refuse_nonsense_naming_the_value(
    photos, tmp_path):
  good = dict(model="m", image_dir="i", mask_dir="k")
  with pytest.raises(ValueError, match="--eval_size -1 must be 0"):
    config_lib.EvalConfig(eval_size=-1, **good).check()
  with pytest.raises(ValueError, match="--eval_size 5 is smaller"):
    config_lib.EvalConfig(eval_size=5, **good).check()
  with pytest.raises(ValueError, match="--hd_strategy 'tile' is not one of"):
    config_lib.EvalConfig(hd_strategy="tile", **good).check()
  with pytest.raises(ValueError, match="--crop_margin -3"):
    config_lib.EvalConfig(crop_margin=-3, **good).check()
  with pytest.raises(ValueError, match="--resize_limit 0"):
    config_lib.EvalConfig(resize_limit=0, **good).check()
  with pytest.raises(ValueError, match="--patchmatch_max_side -1"):
    config_lib.EvalConfig(patchmatch_max_side=-1, **good).check()
  with pytest.raises(ValueError, match="--data_dir records hold only crops"):
    config_lib.EvalConfig(model="m", data_dir="d", eval_size=640).check()
  # Without --eval_size masks are never drawn.
  with pytest.raises(ValueError, match="needs --mask_dir"):
    config_lib.EvalConfig(model="m", image_dir="i").check()
  assert config_lib.EvalConfig(model="m", image_dir="i",
                               eval_size=640).check().eval_size == 640
  # On the command line: the flags' own refusal, naming the value.
  completed = subprocess.run([
      sys.executable, "-m", "lbam_tf.evaluate", "--model=m",
      f"--image_dir={photos['image_dir']}", "--eval_size=-7",
      f"--output_dir={tmp_path}"
  ], capture_output=True, text=True, timeout=240,
      cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  assert completed.returncode != 0
  assert "--eval_size -7 must be 0" in completed.stderr
