"""The real Beam job on the DirectRunner over good and bad files, and mask ingest."""

import collections
import glob
import io
import json
import os
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import job_outputs
from lbam_tf.data import masks
from lbam_tf.data import records
from pipeline import preprocess
from pipeline import sources
from pipeline import transforms

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLES = sorted(glob.glob(os.path.join(ROOT, "examples", "images", "*.jpg")))
CROP = 64
LOAD = 96
CROPS = 2


def _picture(height, width, seed):
  """A smooth colour picture (JPEG-friendly) with a distinct corner."""
  y, x = np.mgrid[0:height, 0:width]
  rng = np.random.default_rng(seed)
  a, b, c = rng.uniform(0.02, 0.1, size=3)
  picture = np.stack([128 + 100 * np.sin(a * x + b * y),
                      128 + 100 * np.cos(b * x - c * y),
                      (x * 255) // max(1, width - 1)], axis=-1)
  picture[:height // 4, :width // 4] = (250, 20, 20)
  return picture.astype(np.uint8)


def _good_files(folder):
  """Writes one file per good kind; returns {name: expected upright RGB array}."""
  expected = {}
  for path in SAMPLES:
    name = os.path.basename(path)
    shutil.copy(path, os.path.join(folder, name))
    # The sample JPEGs are decoded by OpenCV here, not by Pillow as in the job.
    bgr = np.fromfile(path, np.uint8)
    expected[name] = cv2.cvtColor(cv2.imdecode(bgr, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)

  rgb = _picture(90, 120, 0)
  grey = rgb[..., 0]
  Image.fromarray(grey, "L").save(os.path.join(folder, "grey.png"), "PNG")
  expected["grey.png"] = np.stack([grey] * 3, -1)

  palette = np.array([[0, 0, 0], [255, 0, 0], [0, 200, 50], [30, 60, 250]], np.uint8)
  indices = (np.arange(100 * 110).reshape(100, 110) // 7 % 4).astype(np.uint8)
  indexed = Image.fromarray(indices, "P")
  indexed.putpalette(palette.ravel().tolist())
  indexed.save(os.path.join(folder, "palette.png"), "PNG")
  expected["palette.png"] = palette[indices]

  alpha = np.full((90, 120), 255, np.uint8)
  alpha[40:, 60:] = 0
  Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(
      os.path.join(folder, "rgba.png"), "PNG")
  over_white = rgb.copy()
  over_white[40:, 60:] = 255
  expected["rgba.png"] = over_white

  sixteen = (np.arange(80 * 100).reshape(80, 100) * 8).astype(np.uint16)
  Image.fromarray(sixteen).save(os.path.join(folder, "sixteen.png"), "PNG")
  eight = np.round(sixteen / 257.0).astype(np.uint8)
  expected["sixteen.png"] = np.stack([eight] * 3, -1)

  Image.fromarray(rgb).convert("CMYK").save(os.path.join(folder, "cmyk.jpg"),
        "JPEG", quality=95)
  expected["cmyk.jpg"] = rgb

  first = palette[indices]
  second = 255 - first
  frames = [Image.fromarray(f).quantize(colors=8) for f in (first, second)]
  frames[0].save(os.path.join(folder, "anim.gif"), save_all=True,
                 append_images=frames[1:], duration=100)
  expected["anim.gif"] = first

  Image.fromarray(rgb).save(os.path.join(folder, "lossless.webp"), "WEBP",
        lossless=True)
  expected["lossless.webp"] = rgb
  Image.fromarray(rgb).save(os.path.join(folder, "plain.bmp"), "BMP")
  expected["plain.bmp"] = rgb

  # Orientation 6: the stored pixels must be turned 90 degrees clockwise.
  exif = Image.Exif()
  exif[0x0112] = 6
  Image.fromarray(rgb).save(os.path.join(folder, "rotated.jpg"), "JPEG",
        quality=95, exif=exif.tobytes())
  expected["rotated.jpg"] = np.rot90(rgb, k=-1)
  return expected


def _bad_files(folder):
  """Writes one file per bad kind; returns {name: reason}."""
  open(os.path.join(folder, "empty.jpg"), "wb").close()
  buffer = io.BytesIO()
  Image.fromarray(_picture(120, 160, 1)).save(buffer, "JPEG")
  with open(os.path.join(folder, "cut.jpg"), "wb") as f:
    f.write(buffer.getvalue()[:len(buffer.getvalue()) // 2])
  # A valid header and a scrambled pixel stream: the decoder fails mid-way.
  buffer = io.BytesIO()
  Image.fromarray(_picture(80, 100, 3)).save(buffer, "PNG")
  garbled = bytearray(buffer.getvalue())
  start = garbled.find(b"IDAT") + 20
  garbled[start:start + 40] = bytes(b ^ 0xFF for b in garbled[start:start + 40])
  with open(os.path.join(folder, "garbled.png"), "wb") as f:
    f.write(bytes(garbled))
  with open(os.path.join(folder, "notes.png"), "w") as f:
    f.write("this is not an image\n")
  Image.fromarray(_picture(20, 30, 2)).save(os.path.join(folder, "tiny.png"))
  # 600x600 = 360,000 pixels, over the run's --max_pixels but a tiny file.
  Image.new("RGB", (600, 600), (9, 9, 9)).save(os.path.join(folder, "bomb.png"))
  return {"empty.jpg": "zero_byte", "cut.jpg": "truncated", "garbled.png": "unreadable",
          "notes.png": "not_an_image", "tiny.png": "too_small",
          "bomb.png": "decompression_bomb"}


def _config(folder, output_dir, **overrides):
  values = dict(output_dir=output_dir, input_pattern=os.path.join(folder, "*"),
                load_size=LOAD, crop_size=CROP, crops_per_image=CROPS, seed=3,
                val_fraction=0.25, test_fraction=0.25, num_shards=2,
                small_images="reject", max_pixels=300_000, num_masks=24,
                mask_test_fraction=0.5)
  values.update(overrides)
  return preprocess.Config(**values)


@pytest.fixture(scope="module")
def job(tmp_path_factory):
  folder = str(tmp_path_factory.mktemp("inputs"))
  good, bad = _good_files(folder), _bad_files(folder)
  first = str(tmp_path_factory.mktemp("first"))
  second = str(tmp_path_factory.mktemp("second"))
  result = preprocess.run(_config(folder, first))
  # Beam's worker processes import the job's modules from the repository.
  with pytest.MonkeyPatch.context() as patch:
    patch.setenv("PYTHONPATH", ROOT)
    preprocess.run(_config(folder, second), [
        "--direct_num_workers=2", "--direct_running_mode=multi_processing"])
  return {"folder": folder, "good": good, "bad": bad, "out": first,
          "again": second, "counters": preprocess.counters(result)}


def _image_records(out):
  rows = []
  for split in records.IMAGE_SPLITS:
    files = sorted(glob.glob(os.path.join(out, "images", f"{split}-*")))
    for record in tf.data.TFRecordDataset(files, compression_type="GZIP"):
      parsed = tf.io.parse_single_example(record, records.IMAGE_FEATURES)
      rows.append((split, parsed["key"].numpy().decode(),
                   tuple(parsed["offset"].numpy().tolist()),
                   tf.io.decode_png(parsed["image"]).numpy()))
  return rows


def _resized(image):
  height, width = image.shape[:2]
  scale = LOAD / min(height, width)
  size = (max(LOAD, round(width * scale)), max(LOAD, round(height * scale)))
  return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BICUBIC))


def test_every_good_crop_is_there(job):
  rows = _image_records(job["out"])
  by_key = collections.defaultdict(list)
  for split, key, offset, crop in rows:
    by_key[key].append((split, offset, crop))
  assert set(by_key) == set(job["good"])
  for name, upright in job["good"].items():
    entries = by_key[name]
    assert len(entries) == CROPS
    assert len({split for split, _, _ in entries}) == 1  # split by source image
    reference = _resized(upright).astype(np.float32)
    for _, (y, x), crop in entries:
      assert crop.shape == (CROP, CROP, 3)
      window = reference[y:y + CROP, x:x + CROP]
      # JPEG decoders and DCT-scaled decoding differ by a few levels; a wrong
      # orientation, colour conversion or alpha handling differs by far more.
      assert np.mean(np.abs(crop - window)) < 6, name


def test_orientation_matters(job):
  """The crops of the EXIF-rotated JPEG match no window of the stored pixels."""
  stored = _resized(np.rot90(job["good"]["rotated.jpg"], k=1)).astype(np.float32)
  height, width = stored.shape[:2]
  for _, key, _, crop in _image_records(job["out"]):
    if key != "rotated.jpg":
      continue
    best = min(np.mean(np.abs(crop - stored[y:y + CROP, x:x + CROP]))
               for y in range(0, height - CROP + 1, 2)
               for x in range(0, width - CROP + 1, 2))
    assert best > 6


def test_every_bad_file_is_rejected_with_its_reason(job):
  with open(os.path.join(job["out"], "rejected.jsonl")) as f:
    rows = [json.loads(line) for line in f]
  got = {os.path.basename(r["path"]): r["reason"] for r in rows}
  assert got == job["bad"]
  assert all(r["detail"] for r in rows)
  for reason in job["bad"].values():
    assert job["counters"][f"rejected_{reason}"] == 1


def test_two_worker_processes_write_the_same_bytes(job):
  """The in-process run against one on 2 worker processes (image and mask
  shards, rejected.jsonl, manifest.json)."""
  names = job_outputs.assert_same_outputs(job["out"], job["again"])
  expected_shards = {records.shard_name(kind, split, s, 2) for kind, splits in
                     (("images", records.IMAGE_SPLITS), ("masks", records.MASK_SPLITS))
                     for split in splits for s in range(2)}
  assert expected_shards <= set(names)
  assert os.path.getsize(os.path.join(job["out"], "rejected.jsonl")) > 0


def test_manifest(job):
  with open(os.path.join(job["out"], "manifest.json")) as f:
    manifest = json.load(f)
  rows = _image_records(job["out"])
  for split in records.IMAGE_SPLITS:
    assert manifest["counts"]["images"][split] == sum(r[0] == split for r in rows)
  assert manifest["input_files"] == len(job["good"]) + len(job["bad"])
  assert manifest["rejected"]["total"] == len(job["bad"])
  assert manifest["flags"]["crop_size"] == CROP
  assert manifest["flags"]["max_pixels"] == 300_000
  assert manifest["schema"] == json.loads(json.dumps(records.SCHEMA))
  for split in records.MASK_SPLITS:
    ratios = [float(np.mean(m["mask"].numpy() == 0))
              for m in records.read_masks(job["out"], split)]
    assert manifest["counts"]["masks"][split] == len(ratios)
    assert manifest["mask_hole_ratio_histogram"][split] == masks.ratio_histogram(ratios)


def test_generated_masks_counts_bins_polarity(job):
  # 24 masks: 14 random-shape, 10 irregular; half of each to test, rounded to
  # a multiple of the 6 bins: 6 + 6 test, 8 + 4 train.
  test = list(records.read_masks(job["out"], "test"))
  train = list(records.read_masks(job["out"], "train"))
  assert len(test) == 12 and len(train) == 12
  sources = collections.Counter(m["source"].numpy().decode().split("/")[0]
                                for m in test + train)
  assert sources == {"random_shape": 14, "irregular": 10}
  bins = collections.Counter()
  for example in test:
    hole = example["mask"].numpy()[..., 0] == 0
    ratio = hole.mean()
    assert example["hole_ratio"].numpy() == pytest.approx(ratio)
    bins[masks.ratio_bin(ratio)] += 1
  assert bins == {b: 2 for b in range(6)}
  # Raw PNGs: one channel, 255 marks the holes counted in hole_ratio.
  files = sorted(glob.glob(os.path.join(job["out"], "masks", "train-*")))
  record = next(iter(tf.data.TFRecordDataset(files, compression_type="GZIP")))
  parsed = tf.io.parse_single_example(record, records.MASK_FEATURES)
  png = tf.io.decode_png(parsed["mask"]).numpy()
  assert png.shape == (CROP, CROP, 1)
  assert set(np.unique(png)) <= {0, 255}
  assert np.mean(png == 255) == pytest.approx(parsed["hole_ratio"].numpy())


def test_small_images_upscale_keeps_them(tmp_path):
  folder = tmp_path / "in"
  folder.mkdir()
  small = _picture(20, 30, 2)
  Image.fromarray(small).save(folder / "tiny.png")
  out = str(tmp_path / "out")
  preprocess.run(_config(str(folder), out, small_images="upscale", num_masks=0,
                         val_fraction=0.0, test_fraction=0.0))
  rows = _image_records(out)
  assert [r[1] for r in rows] == ["tiny.png"] * CROPS
  reference = _resized(small).astype(np.float32)
  for _, _, (y, x), crop in rows:
    assert np.mean(np.abs(crop - reference[y:y + CROP, x:x + CROP])) < 2
  with open(os.path.join(out, "rejected.jsonl")) as f:
    assert f.read() == ""


@pytest.mark.parametrize("polarity", ["white", "black"])
def test_mask_ingest_follows_stated_polarity(tmp_path, polarity):
  folder = tmp_path / "masks"
  folder.mkdir()
  hole = np.zeros((128, 128), bool)
  hole[:, :32] = True  # left quarter
  hole[96:, :] = True  # bottom quarter
  pixels = np.where(hole, 255, 0) if polarity == "white" else np.where(hole, 0, 255)
  Image.fromarray(pixels.astype(np.uint8)).save(folder / "a.png")
  with open(folder / "broken.png", "wb") as f:
    f.write(b"\x89PNG\r\n")
  out = str(tmp_path / "out")
  preprocess.run(preprocess.Config(output_dir=out, crop_size=CROP, load_size=CROP,
                                   num_masks=0, num_shards=1, mask_dir=str(folder),
                                   mask_polarity=polarity, mask_dir_split="test"))
  got = list(records.read_masks(out, "test"))
  assert len(got) == 1
  known = got[0]["mask"].numpy()[..., 0]
  np.testing.assert_array_equal(known == 0, hole[::2, ::2])
  assert got[0]["source"].numpy().decode() == "a.png"
  with open(os.path.join(out, "rejected.jsonl")) as f:
    rows = [json.loads(line) for line in f]
  assert [(os.path.basename(r["path"]), r["kind"]) for r in rows] == [("broken.png", "mask")]


def test_mask_dir_needs_a_polarity(tmp_path):
  with pytest.raises(ValueError, match="never guessed"):
    preprocess.Config(output_dir=str(tmp_path), mask_dir=str(tmp_path)).check()


def test_flag_checks_name_the_value(tmp_path):
  with pytest.raises(ValueError, match="--load_size 100"):
    preprocess.Config(output_dir=str(tmp_path), load_size=100).check()
  with pytest.raises(ValueError, match="matches no files"):
    preprocess.run(preprocess.Config(output_dir=str(tmp_path),
                                     input_pattern=str(tmp_path / "*.nothing")))


def test_keys_are_relative_to_the_glob_folder():
  assert sources.glob_base("data/photos/*.jpg") == "data/photos/"
  assert sources.glob_base("gs://b/x/**/[ab]*.png") == "gs://b/x/"
  assert sources.key_for("gs://b/x/y/a.png", "gs://b/x/") == "y/a.png"
  assert sources.key_for(os.path.abspath("data/p/a.jpg"), "data/p/") == "a.jpg"


_SPLITS_OF_4000_KEYS = (
    "from pipeline import transforms\n"
    "print(''.join(transforms.split_of(f'img{i}.jpg', 0.1, 0.2)[:2] "
    "for i in range(4000)))")


def test_hash_split_fractions():
  keys = [f"img{i}.jpg" for i in range(4000)]
  splits = [transforms.split_of(key, 0.1, 0.2) for key in keys]
  counts = collections.Counter(splits)
  # Binomial standard deviation at n=4000, p=0.2 is about 25.
  assert abs(counts["test"] - 800) < 125
  assert abs(counts["val"] - 400) < 100
  # A larger test fraction keeps the test keys and adds some.
  test = {key for key, split in zip(keys, splits) if split == "test"}
  wider = {key for key in keys if transforms.split_of(key, 0.1, 0.3) == "test"}
  assert test < wider
  # The same in other processes, whatever their str hash seed.
  for hash_seed in ("1", "2"):
    other = subprocess.run(
        [sys.executable, "-c", _SPLITS_OF_4000_KEYS], cwd=ROOT, check=True,
        capture_output=True, text=True, timeout=120,
        env=dict(os.environ, PYTHONHASHSEED=hash_seed)).stdout.strip()
    assert other == "".join(split[:2] for split in splits)


def test_command_line_help_and_beam_options_pass_through(tmp_path):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  helped = subprocess.run([sys.executable, "-m", "pipeline.preprocess", "--help"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)
  for name in ("input_pattern", "tfds_name", "load_size", "crop_size", "crops_per_image",
               "num_shards", "small_images", "max_pixels", "num_masks", "mask_dir",
               "mask_polarity", "val_fraction", "test_fraction", "seed"):
    assert f"--{name}" in helped.stdout
  out = str(tmp_path / "out")
  ran = subprocess.run(
      [sys.executable, "-m", "pipeline.preprocess", f"--output_dir={out}",
       "--num_masks=12", "--crop_size=32", "--load_size=32", "--num_shards=1",
       "--mask_test_fraction=0.5", "--runner=DirectRunner",
       "--direct_num_workers=1"],
      cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
  assert ran.returncode == 0, ran.stderr[-2000:]
  with open(os.path.join(out, "manifest.json")) as f:
    assert json.load(f)["counts"]["masks"] == {"train": 6, "test": 6}
  # The same job in this process writes the same bytes as the other process.
  here = str(tmp_path / "here")
  preprocess.run(preprocess.Config(output_dir=here, num_masks=12, crop_size=32,
                                   load_size=32, num_shards=1, mask_test_fraction=0.5))
  for split in records.MASK_SPLITS:
    name = records.shard_name("masks", split, 0, 1)
    with open(os.path.join(out, name), "rb") as a, open(os.path.join(here, name), "rb") as b:
      assert a.read() == b.read()


def test_tfds_source(tmp_path):
  import tensorflow_datasets as tfds

  class LbamTinyPhotos(tfds.core.GeneratorBasedBuilder):
    """Four generated photos, prepared locally (no download)."""
    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
      return tfds.core.DatasetInfo(
          builder=self, features=tfds.features.FeaturesDict(
              {"image": tfds.features.Image(shape=(None, None, 3))}))

    def _split_generators(self, dl_manager):
      return {"train": self._generate_examples()}

    def _generate_examples(self):
      for i in range(4):
        yield i, {"image": _picture(70, 90, 10 + i)}

  tfds_dir = str(tmp_path / "tfds")
  LbamTinyPhotos(data_dir=tfds_dir).download_and_prepare()
  out = str(tmp_path / "out")
  preprocess.run(_config("unused", out, input_pattern=None, tfds_name="lbam_tiny_photos",
                         tfds_data_dir=tfds_dir, tfds_readers=2, num_masks=0,
                         val_fraction=0.0, test_fraction=0.0))
  rows = _image_records(out)
  assert len(rows) == 4 * CROPS
  keys = {key for _, key, _, _ in rows}
  assert len(keys) == 4 and all(key.startswith("lbam_tiny_photos") for key in keys)
  # Each crop comes from one of the four pictures (PNG in TFDS: lossless).
  references = [_resized(_picture(70, 90, 10 + i)).astype(np.float32) for i in range(4)]
  for _, _, (y, x), crop in rows:
    assert min(np.mean(np.abs(crop - r[y:y + CROP, x:x + CROP])) for r in references) < 2
