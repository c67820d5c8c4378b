"""The Beam job against hostile and unlucky files, crafted here.

The job runs in a child process under a time limit and an address-space limit
(RLIMIT_AS), so that an input that would hang it or make it allocate
gigabytes fails the test instead of the machine. Each hostile input must give
its rejected.jsonl row, and every good input its records.
"""

import glob
import io
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from lbam_tf.data import records
from pipeline import sources

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CROP = 64
LOAD = 96
SECONDS = 240
# Above what the job holds after its imports: decoding and cropping these
# inputs needs a few MB; the old code asked several GB for one strip.
HEADROOM_BYTES = 1536 << 20

# Runs the job with the address space capped at what the process already
# maps plus HEADROOM_BYTES, set once the imports are done.
_CHILD = """
import json, resource, sys
from pipeline import preprocess
config = preprocess.Config(**json.loads(sys.argv[1]))
with open("/proc/self/status") as f:
  mapped = next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmSize"))
limit = mapped + int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
preprocess.run(config)
"""


def _png(image, path):
  Image.fromarray(image).save(path, "PNG")


def _good_images(folder):
  """{key: (height, width)} of the good images written into `folder`."""
  rng = np.random.default_rng(0)
  _png(rng.integers(0, 256, (90, 120, 3), np.uint8), os.path.join(folder, "good.png"))
  buffer = io.BytesIO()
  Image.fromarray(rng.integers(0, 256, (100, 80, 3), np.uint8)).save(buffer, "JPEG")
  # A valid image whose name is not UTF-8 (Latin-1 e-acute).
  with open(os.path.join(os.fsencode(folder), b"caf\xe9.jpg"), "wb") as f:
    f.write(buffer.getvalue())
  # Extreme aspect ratios, kept by the default --small_images=upscale:
  # 1x1,000 and 1x100,000 pixels in 74 and a few hundred bytes.
  _png(np.zeros((1, 1000), np.uint8), os.path.join(folder, "strip.png"))
  _png(np.full((100_000, 1), 200, np.uint8), os.path.join(folder, "tower.png"))
  return {"good.png": (90, 120), "caf\\xe9.jpg": (100, 80),
          "strip.png": (1, 1000), "tower.png": (100_000, 1)}


def _hostile_images(folder):
  """{file name: reason} of the hostile entries written into `folder`."""
  # QOI, detected by content whatever the extension; cut at 402 bytes,
  # Pillow's QOI decoder raised IndexError through the job.
  qoi = io.BytesIO()
  Image.fromarray(np.random.default_rng(1).integers(
      0, 256, (60, 80, 3), np.uint8)).save(qoi, "QOI")
  with open(os.path.join(folder, "cut.png"), "wb") as f:
    f.write(qoi.getvalue()[:402])
  os.mkfifo(os.path.join(folder, "pipe.png"))  # reading it would wait forever
  os.symlink("nowhere.png", os.path.join(folder, "gone.png"))
  os.symlink("/dev/zero", os.path.join(folder, "zero.png"))  # never ends
  return {"cut.png": "not_an_image", "pipe.png": "not_a_regular_file",
          "gone.png": "broken_symlink", "zero.png": "not_a_regular_file"}


def _masks(folder):
  """({key: expected hole [CROP, CROP] bool}, {name: reason})."""
  hole = np.zeros((CROP, CROP), bool)
  hole[:, :CROP // 4] = True
  # 16 bits: holes at 60,000, known at 20,000 (0.3 of white, so known). 8-bit
  # clipping made every pixel 255, an all-hole mask.
  Image.fromarray(np.where(hole, 60_000, 20_000).astype(np.uint16)).save(
      os.path.join(folder, "deep.png"))
  Image.fromarray(np.where(hole, 255, 0).astype(np.uint8)).convert("LA").save(
      os.path.join(folder, "grey_alpha.png"))
  # CIELAB in a TIFF: Pillow cannot convert it; it raised ValueError.
  Image.new("LAB", (CROP, CROP)).save(os.path.join(folder, "lab.png"), "TIFF")
  return ({"deep.png": hole, "grey_alpha.png": hole},
          {"lab.png": "not_an_image"})


def _run_limited(config):
  """Runs the job in a child under SECONDS and HEADROOM_BYTES; returns its
  wall time. A hang or an over-allocation fails the test with the log."""
  start = time.monotonic()
  env = dict(os.environ, PYTHONPATH=ROOT, MALLOC_ARENA_MAX="2")
  try:
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, json.dumps(config),
         str(HEADROOM_BYTES)], cwd=ROOT, env=env, capture_output=True,
        text=True, timeout=SECONDS)
  except subprocess.TimeoutExpired:
    pytest.fail(f"the job did not finish in {SECONDS} s")
  assert done.returncode == 0, done.stderr[-3000:]
  return time.monotonic() - start


@pytest.fixture(scope="module")
def job(tmp_path_factory):
  images = str(tmp_path_factory.mktemp("images"))
  mask_dir = str(tmp_path_factory.mktemp("masks"))
  good = _good_images(images)
  hostile = _hostile_images(images)
  good_masks, hostile_masks = _masks(mask_dir)
  out = str(tmp_path_factory.mktemp("out"))
  seconds = _run_limited(dict(
      output_dir=out, input_pattern=os.path.join(images, "*"), load_size=LOAD,
      crop_size=CROP, num_masks=0, num_shards=1, mask_dir=mask_dir,
      mask_polarity="white", mask_dir_split="test"))
  with open(os.path.join(out, "rejected.jsonl")) as f:
    rejected = [json.loads(line) for line in f]
  return {"out": out, "good": good, "hostile": hostile, "seconds": seconds,
          "good_masks": good_masks, "hostile_masks": hostile_masks,
          "rejected": rejected}


def _image_records(out):
  files = sorted(glob.glob(os.path.join(out, "images", "*.tfrecord.gz")))
  crops = {}
  for record in tf.data.TFRecordDataset(files, compression_type="GZIP"):
    parsed = tf.io.parse_single_example(record, records.IMAGE_FEATURES)
    crops[parsed["key"].numpy().decode()] = tf.io.decode_png(
        parsed["image"]).numpy()
  return crops


def test_every_good_image_is_in_the_output(job):
  crops = _image_records(job["out"])
  assert sorted(crops) == sorted(job["good"])
  for key, crop in crops.items():
    assert crop.shape == (CROP, CROP, 3), key
  # The upscaled strip and tower are their one grey level.
  assert np.all(crops["strip.png"] == 0)
  assert np.all(crops["tower.png"] == 200)


def test_every_hostile_image_has_its_row(job):
  rows = {os.path.basename(r["path"]): r for r in job["rejected"]
          if r["kind"] == "image"}
  assert {name: r["reason"] for name, r in rows.items()} == job["hostile"]
  assert all(r["detail"] for r in rows.values())
  with open(os.path.join(job["out"], "manifest.json")) as f:
    manifest = json.load(f)
  assert manifest["rejected"]["total"] == len(job["rejected"])


def test_masks_in_unusual_modes(job):
  got = {m["source"].numpy().decode(): m["mask"].numpy()[..., 0]
         for m in records.read_masks(job["out"], "test")}
  assert sorted(got) == sorted(job["good_masks"])
  for name, hole in job["good_masks"].items():
    np.testing.assert_array_equal(got[name] == 0, hole, err_msg=name)
  rows = {os.path.basename(r["path"]): r["reason"] for r in job["rejected"]
          if r["kind"] == "mask"}
  assert rows == job["hostile_masks"]


def test_keys_are_text_whatever_the_bytes():
  name = os.fsdecode(b"photos/caf\xe9.jpg")
  key = sources.key_for(name, "photos/")
  assert key == "caf\\xe9.jpg"
  key.encode("utf-8")  # what the hashing, the records and JSON need
  assert sources.key_for("photos/caf\u00e9.jpg", "photos/") == "caf\u00e9.jpg"
