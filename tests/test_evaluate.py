"""lbam_tf.evaluation and its command line lbam_tf.evaluate end to end: pairing, binning, baselines, outputs, ablation.

Expected values are computed here independently (numpy, direct generator
calls), never read back from the module under test.
"""

import csv
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
