"""lbam_tf/inpaint.py: CLI on files and folders, per-file errors, exports."""

import os
import subprocess
import sys

import inpaint_reference
import numpy as np
import pytest
import samples
import tensorflow as tf

from lbam_tf.images import files as image_files
from lbam_tf.inference import module as inference

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _sample(height, width, seed):
  image = samples.noise(height, width, seed)
  hole = np.zeros((height, width), bool)
  hole[height // 3:2 * height // 3, width // 4:width // 2] = True
  return image, hole


def _write(path, array, encode=tf.io.encode_png):
  path.write_bytes(encode(np.asarray(array, np.uint8)).numpy())
  return str(path)


def _read(path):
  return tf.io.decode_image(open(path, "rb").read()).numpy()


def _cli(*args):
  return subprocess.run(
      [sys.executable, "-m", "lbam_tf.inpaint", *args], cwd=ROOT,
      capture_output=True, text=True, timeout=300)


def test_single_file_cli_from_an_export(varied_export, varied_generator,
                                        tmp_path):
  # The folder test below runs the CLI from weights.
  image, hole = _sample(90, 140, seed=0)
  result = _cli(f"--model={os.path.join(varied_export, '1')}",
                f"--image={_write(tmp_path / 'a.png', image)}",
                f"--mask={_write(tmp_path / 'm.png', hole[..., None] * 255)}",
                f"--output={tmp_path / 'out' / 'a.png'}")
  assert result.returncode == 0, result.stderr
  output = _read(tmp_path / "out" / "a.png")
  np.testing.assert_array_equal(output[~hole], image[~hole])
  expected = inpaint_reference.varied_expected(varied_generator, image, hole)
  assert np.abs(output.astype(int) - expected).max() <= 1


def test_folder_cli_reports_bad_files_and_goes_on(head_weights, tmp_path):
  images, masks = tmp_path / "images", tmp_path / "masks"
  images.mkdir()
  masks.mkdir()
  good = {"a": _sample(64, 80, 1), "b": _sample(100, 50, 2)}
  for stem, (image, hole) in good.items():
    _write(images / f"{stem}.png", image)
    _write(masks / f"{stem}.png", hole[..., None] * 255)
  _write(images / "c.jpg", good["a"][0], tf.io.encode_jpeg)
  _write(masks / "c.png", good["a"][1][..., None] * 255)
  (images / "broken.png").write_bytes(b"not a png")
  _write(masks / "broken.png", np.zeros((8, 8, 1)))
  _write(images / "wrong.png", good["a"][0])
  _write(masks / "wrong.png", np.zeros((10, 10, 1)))
  _write(images / "nomask.png", good["a"][0])

  result = _cli(f"--model={head_weights}", f"--image={images}",
                f"--mask={masks}", f"--output={tmp_path / 'out'}",
                "--batch_size=3")
  assert result.returncode == 1
  assert "3 image(s) written, 3 failed" in result.stdout
  failed = {line.split(":")[0].split("/")[-1]: line
            for line in result.stdout.splitlines() if line.startswith("FAILED")}
  assert set(failed) == {"broken.png", "wrong.png", "nomask.png"}
  assert "is not an image TF can decode" in failed["broken.png"]
  assert "is 10x10 but image_bytes[0] is 64x80" in failed["wrong.png"]
  assert "no mask named nomask" in failed["nomask.png"]
  for stem, (image, hole) in good.items():
    output = _read(tmp_path / "out" / f"{stem}.png")
    np.testing.assert_array_equal(output[~hole], image[~hole])
  jpeg = _read(tmp_path / "out" / "c.png")
  decoded = _read(images / "c.jpg")
  hole = good["a"][1]
  np.testing.assert_array_equal(jpeg[~hole], decoded[~hole])


def test_export_and_weights_give_the_same_result(varied_generator,
                                                head_weights, varied_export,
                                                tmp_path):
  image, hole = _sample(70, 130, seed=3)
  image_path = _write(tmp_path / "a.png", image)
  mask_path = _write(tmp_path / "m.png", 255 - hole[..., None] * 255)
  jobs = [image_files.Job(image_path, mask_path, str(tmp_path / name / "a.png"))
          for name in ("weights", "export")]
  from_weights = inference.load(head_weights)
  from_export = inference.load(os.path.join(varied_export, "1"))
  for run, job in zip((from_weights, from_export), jobs):
    written, failures = inference.inpaint_files(run, [job], polarity="black",
                                                progress=False)
    assert written == [job.output] and not failures
  first, second = (_read(job.output) for job in jobs)
  np.testing.assert_array_equal(first[~hole], image[~hole])
  expected = inpaint_reference.varied_expected(varied_generator, image, hole)
  assert np.abs(first.astype(int) - expected).max() <= 1
  assert np.abs(first.astype(int) - second).max() <= 1


def test_unknown_polarity_is_refused():
  with pytest.raises(ValueError, match="mask polarity 'grey'"):
    inference.inpaint_files(None, [], polarity="grey")


def test_demo_masks_and_side_by_side(tmp_path):
  from PIL import Image  # pylint: disable=g-import-not-at-top
  from serving import demo  # pylint: disable=g-import-not-at-top
  images = tmp_path / "images"
  images.mkdir()
  for name, (height, width) in {"a": (40, 70), "b": (64, 33)}.items():
    _write(images / f"{name}.png", _sample(height, width, seed=0)[0])
  masks = demo.write_masks(str(images), str(tmp_path / "masks"), (0.1, 0.3))
  for path, (height, width) in zip(sorted(masks), ((40, 70), (64, 33))):
    hole = np.asarray(Image.open(path))
    assert hole.shape == (height, width)
    assert 0.1 < (hole == 255).mean() <= 0.3
  # The inputs stand in for the outputs: each panel is input | mask | input.
  count = demo.write_side_by_side(str(images), str(tmp_path / "masks"),
                                  str(images), str(tmp_path / "sheet.png"))
  assert count == 2
  panel = np.asarray(Image.open(tmp_path / "sheet" / "a.png"))
  image = _read(images / "a.png")
  assert panel.shape == (40, 3 * 70 + 2 * demo.GAP, 3)
  np.testing.assert_array_equal(panel[:, :70], image)
  np.testing.assert_array_equal(panel[:, -70:], image)
  sheet = np.asarray(Image.open(tmp_path / "sheet.png"))
  assert sheet.shape[0] == 2 * demo.ROW_HEIGHT + demo.GAP
