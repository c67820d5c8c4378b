"""The shared decoder and bounded reader against hostile bytes and entries.

The fuzz test mutates valid files of every accepted format and decodes them
in a child process under a time limit and an address-space limit (RLIMIT_AS):
each must decode or be a `decode.Rejected`, never another exception, a hang
or an allocation beyond the limit.
"""

import collections
import io
import json
import os
import subprocess
import sys
import time
import tracemalloc

import numpy as np
import pytest
from PIL import Image

import fuzz
import samples
from lbam_tf.images import bounded_read
from lbam_tf.images import decode
from lbam_tf.images import resize

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECONDS = 120
HEADROOM_BYTES = 512 << 20
MAX_PIXELS = 4_000_000

# Decodes every file in argv[1] as an image and as a mask with the address
# space capped at what the process maps after its imports plus argv[2] bytes;
# prints one JSON line per file and use: "decoded" or the error's type.
_CHILD = """
import json, os, resource, sys, warnings
from lbam_tf.images import decode
warnings.simplefilter("ignore")
with open("/proc/self/status") as f:
  mapped = next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmSize"))
limit = mapped + int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
max_pixels = int(sys.argv[3])
for name in sorted(os.listdir(sys.argv[1])):
  with open(os.path.join(sys.argv[1], name), "rb") as f:
    data = f.read()
  for use, run in (
      ("image", lambda: decode.decode_image(data, max_pixels, 64)),
      ("mask", lambda: decode.decode_mask(data, max_pixels, "white", 32))):
    try:
      run()
      outcome, message = "decoded", ""
    except Exception as e:
      outcome, message = type(e).__name__, str(e)
    print(json.dumps({"name": name, "use": use, "outcome": outcome,
                      "message": message[:300]}))
"""


def decode_limited(folder):
  """[{name, use, outcome, message}] of decoding `folder` in a limited child."""
  env = dict(os.environ, PYTHONPATH=ROOT, MALLOC_ARENA_MAX="2")
  try:
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(folder), str(HEADROOM_BYTES),
         str(MAX_PIXELS)], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=SECONDS)
  except subprocess.TimeoutExpired:
    pytest.fail(f"decoding {folder} did not finish in {SECONDS} s")
  assert done.returncode == 0, done.stderr[-3000:]
  return [json.loads(line) for line in done.stdout.splitlines()]


def _valid_files():
  """{name: bytes}: one small valid file per accepted format and mode."""
  rng = np.random.default_rng(5)
  y, x = np.mgrid[0:48, 0:64]
  rgb = np.stack([x * 4, y * 5, (x + y) * 2], -1).astype(np.uint8)
  rgb[::7, ::5] = rng.integers(0, 256, rgb[::7, ::5].shape)
  alpha = np.where(x > 20, 255, 0).astype(np.uint8)
  images = {
      "rgb.jpg": (Image.fromarray(rgb), "JPEG", {}),
      "grey.jpg": (Image.fromarray(rgb[..., 0]), "JPEG", {}),
      "cmyk.jpg": (Image.fromarray(rgb).convert("CMYK"), "JPEG", {}),
      "progressive.jpg": (Image.fromarray(rgb), "JPEG", {"progressive": True}),
      "grey.png": (Image.fromarray(rgb[..., 1]), "PNG", {}),
      "palette.png": (Image.fromarray(rgb).quantize(16), "PNG", {}),
      "rgba.png": (Image.fromarray(np.dstack([rgb, alpha])), "PNG", {}),
      "sixteen.png": (Image.fromarray(
          (rgb[..., 0].astype(np.uint16) * 257)), "PNG", {}),
      "plain.bmp": (Image.fromarray(rgb), "BMP", {}),
      "anim.gif": (Image.fromarray(rgb).quantize(8), "GIF",
                   {"save_all": True, "append_images": [
                       Image.fromarray(255 - rgb).quantize(8)]}),
      "lossy.webp": (Image.fromarray(rgb), "WEBP", {"quality": 60}),
      "lossless.webp": (Image.fromarray(np.dstack([rgb, alpha])), "WEBP",
                        {"lossless": True}),
  }
  files = {}
  for name, (image, fmt, options) in images.items():
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    files[name] = buffer.getvalue()
  return files


def _other_format_files():
  """{name: bytes} in formats Pillow detects by content but the project does
  not accept (truncated QOI raised IndexError through the old decoder)."""
  rgb = np.asarray(Image.open(io.BytesIO(_valid_files()["plain.bmp"])))
  files = {}
  for fmt in ("TIFF", "QOI", "ICO", "PPM", "TGA", "PCX", "SGI"):
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, fmt)
    files[f"{fmt.lower()}.png"] = buffer.getvalue()
  return files


def test_every_valid_file_decodes():
  for name, data in _valid_files().items():
    image = decode.decode_image(data, MAX_PIXELS)
    assert image.shape == (48, 64, 3) and image.dtype == np.uint8, name


def test_fuzz_mutated_images(tmp_path):
  rng = np.random.default_rng(7)
  folder = tmp_path / "fuzz"
  folder.mkdir()
  valid = _valid_files()
  for name, data in valid.items():
    for index, mutated in enumerate(fuzz.mutations(data, rng, 30)):
      (folder / f"{index:02d}-{name}").write_bytes(mutated)
  others = _other_format_files()
  for name, data in others.items():
    for index, mutated in enumerate(fuzz.mutations(data, rng, 10)):
      (folder / f"other-{index:02d}-{name}").write_bytes(mutated)
  start = time.monotonic()
  results = decode_limited(folder)
  assert len(results) == 2 * (30 * len(valid) + 10 * len(others))
  outcomes = collections.Counter(r["outcome"] for r in results)
  escaped = [r for r in results if r["outcome"] not in ("decoded", "Rejected")]
  assert not escaped, (outcomes, escaped[:3])
  assert outcomes["Rejected"] > 100 and outcomes["decoded"] > 100
  assert all(r["outcome"] == "Rejected" for r in results
             if r["name"].startswith("other-"))
  assert time.monotonic() - start < 60


def test_size_is_checked_from_the_header_before_decoding(tmp_path):
  bomb = samples.png_declaring(23_000, 23_000)  # 529 M pixels in 69 bytes
  with pytest.raises(decode.Rejected, match="23000x23000") as error:
    decode.check_header(bomb, decode.DEFAULT_MAX_PIXELS)
  assert error.value.reason == "decompression_bomb"
  assert decode.check_header(_valid_files()["rgb.jpg"], MAX_PIXELS) == (64, 48)
  folder = tmp_path / "bomb"
  folder.mkdir()
  (folder / "bomb.png").write_bytes(bomb)
  results = decode_limited(folder)
  assert {r["outcome"] for r in results} == {"Rejected"}


def test_pillow_limit_is_ours_per_call_and_untouched_by_import():
  # Importing decode leaves Pillow's process-wide limit as Pillow sets it;
  # a header over that limit but within --max_pixels is still accepted.
  assert Image.MAX_IMAGE_PIXELS == 1024 * 1024 * 1024 // 4 // 3
  # 529 M pixels: Pillow alone refuses.
  huge = samples.png_declaring(23_000, 23_000)
  assert decode.check_header(huge, 600_000_000) == (23_000, 23_000)
  assert Image.MAX_IMAGE_PIXELS == 1024 * 1024 * 1024 // 4 // 3


def test_other_formats_are_not_decoded():
  buffer = io.BytesIO()
  Image.new("RGB", (40, 30)).save(buffer, "TIFF")
  with pytest.raises(decode.Rejected, match="convert it to PNG") as error:
    decode.decode_image(buffer.getvalue(), MAX_PIXELS)
  assert error.value.reason == "not_an_image"


def test_sixteen_bits_decode_in_few_bytes_per_pixel():
  pixels = (np.arange(1000 * 1000).reshape(1000, 1000) % 65536).astype(
      np.uint16)
  buffer = io.BytesIO()
  Image.fromarray(pixels).save(buffer, "PNG")
  tracemalloc.start()
  try:
    image = decode.decode_image(buffer.getvalue(), MAX_PIXELS)
    peak = tracemalloc.get_traced_memory()[1]
  finally:
    tracemalloc.stop()
  # numpy's allocations (Pillow's own are not traced): 24 bytes per pixel
  # with the float64 conversion, 6 with integer steps.
  assert peak < 10 * pixels.size
  expected = np.round(pixels / 257.0).astype(np.uint8)
  np.testing.assert_array_equal(image, np.stack([expected] * 3, -1))


@pytest.mark.parametrize("shape, size", [
    ((300, 500), 96), ((60, 90), 96), ((480, 640), 350), ((1, 1000), 96)])
def test_crops_equal_windows_of_the_whole_resized_image(shape, size):
  rng = np.random.default_rng(3)
  image = rng.integers(0, 256, shape + (3,), np.uint8)
  resized_shape = resize.resized_shape(image.shape, size)
  whole = np.asarray(Image.fromarray(image).resize(
      resized_shape[::-1], Image.Resampling.BICUBIC)).astype(int)
  offsets = resize.crop_offsets("k", 0, resized_shape, 64, 8)
  for (y, x), crop in zip(offsets, resize.resized_crops(
      image, resized_shape, offsets, 64)):
    assert crop.shape == (64, 64, 3)
    assert np.abs(crop - whole[y:y + 64, x:x + 64]).max() <= 1


def test_bounded_read_refuses_what_is_not_a_regular_file(tmp_path):
  good = tmp_path / "good.bin"
  good.write_bytes(b"x" * 100)
  assert bounded_read.read_file(str(good), 100) == b"x" * 100
  os.mkfifo(tmp_path / "pipe")
  os.symlink("/dev/zero", tmp_path / "zero")
  os.symlink("nowhere", tmp_path / "gone")
  os.symlink("loop", tmp_path / "loop")
  expected = {"good.bin": "too_large", "pipe": "not_a_regular_file",
              "zero": "not_a_regular_file", "gone": "broken_symlink",
              "loop": "broken_symlink", "absent": "missing"}
  for name, reason in expected.items():
    with pytest.raises(bounded_read.FileRefused) as error:
      bounded_read.read_file(str(tmp_path / name), 99)
    assert error.value.reason == reason, name
    assert isinstance(error.value, OSError)
  with pytest.raises(bounded_read.FileRefused, match="is a folder"):
    bounded_read.read_file(str(tmp_path), 99)
