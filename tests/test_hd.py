"""High-resolution strategies (`lbam_tf.inference.hd`) through InpaintModule:
known pixels, the crops, bounded memory, limits and the local server."""

import base64
import io
import json
import resource
import time
import urllib.request

import cv2
import inpaint_reference
import numpy as np
from PIL import Image
import pytest
import samples
import tensorflow as tf

from lbam_tf import inpaint
from lbam_tf.images import ops as image_ops
from lbam_tf.inference import hd
from lbam_tf.inference import module as inference
from serving import processes

#: Small numbers, so that photos of a few megapixels test every branch fast.
MARGIN, RESIZE_LIMIT, TRIGGER = 32, 384, 256


@pytest.fixture(scope="module")
def module(varied_generator):
  return inference.InpaintModule(varied_generator, crop_margin=MARGIN,
                                 resize_limit=RESIZE_LIMIT,
                                 crop_trigger=TRIGGER)


def _strokes(height, width, count, seed=0, thickness=None):
  """bool [height, width]: `count` brush strokes (polylines) as holes."""
  rng = np.random.default_rng(seed)
  thickness = thickness or max(8, min(height, width) // 60)
  canvas = np.zeros((height, width), np.uint8)
  for _ in range(count):
    start = rng.integers([0, 0], [width, height])
    points = [start + rng.integers(-width // 10, width // 10, 2)
              for _ in range(4)]
    cv2.polylines(canvas, [np.array([start, *points], np.int32)], False, 255,
                  thickness)
  return canvas > 0


def _inpaint(module, image, hole, **options):
  """uint8 output of inpaint_tensor for uint8 `image` and bool `hole`."""
  known = (~hole).astype(np.float32)[None, ..., None]
  output = module.inpaint_tensor(
      tf.constant(image[None].astype(np.float32) / 255.0), tf.constant(known),
      **inference.hd_inputs(**options))["image"]
  return image_ops.to_uint8(output)[0].numpy()


@pytest.mark.parametrize("strategy, height, width", [
    ("crop", 2000, 3001), ("resize", 2000, 3001), ("original", 667, 1001)])
def test_known_pixels_are_bit_exact(module, strategy, height, width):
  image = samples.noise(height, width, seed=1)
  hole = _strokes(height, width, 3, seed=height)
  output = _inpaint(module, image, hole, hd_strategy=strategy)
  assert output.shape == image.shape
  np.testing.assert_array_equal(output[~hole], image[~hole])
  # The holes were filled: no generator paints the noise back.
  assert np.abs(output[hole].astype(int) - image[hole]).mean() > 20


def test_original_is_the_whole_frame_as_before(module, varied_generator):
  image = samples.noise(300, 451, seed=3)
  hole = _strokes(300, 451, 2, seed=3)
  expected = inpaint_reference.varied_expected(varied_generator, image, hole)
  output = _inpaint(module, image, hole, hd_strategy="original")
  assert np.abs(output.astype(int) - expected).max() <= 1


def test_two_far_apart_holes_are_two_crops_each_run_alone(module,
                                                          varied_generator):
  height, width = 700, 900
  image = samples.noise(height, width, seed=2)
  hole = np.zeros((height, width), bool)
  # On the 16-pixel grid holes are grouped on, so the boxes are the holes
  # grown by the margin.
  holes = [(96, 160, 144, 240), (560, 720, 608, 800)]
  for y0, x0, y1, x1 in holes:
    hole[y0:y1, x0:x1] = True
  expected_boxes = [(y0 - MARGIN, x0 - MARGIN, y1 + MARGIN, x1 + MARGIN)
                    for y0, x0, y1, x1 in holes]
  boxes, sizes = hd.plan(tf.constant((~hole)[..., None].astype(np.float32)),
                         "crop", MARGIN, RESIZE_LIMIT, TRIGGER)
  assert sorted(map(tuple, boxes.numpy())) == expected_boxes
  assert sorted(map(tuple, sizes.numpy())) == [(128, 256), (128, 256)]

  output = _inpaint(module, image, hole)  # crop: the module's default
  outside = np.ones((height, width), bool)
  for y0, x0, y1, x1 in expected_boxes:
    alone = inpaint_reference.varied_expected(
        varied_generator, image[y0:y1, x0:x1], hole[y0:y1, x0:x1])
    assert np.abs(output[y0:y1, x0:x1].astype(int) - alone).max() <= 1
    outside[y0:y1, x0:x1] = False
  np.testing.assert_array_equal(output[outside], image[outside])


@pytest.mark.parametrize("holes", ["one huge", "hundreds of tiny"])
def test_generator_calls_stay_under_the_limit_whatever_the_holes(holes):
  height, width = 3000, 4000
  hole = np.zeros((height, width), bool)
  if holes == "one huge":
    hole[100:-100, 100:-100] = True
  else:
    rng = np.random.default_rng(0)
    for y, x in rng.integers([0, 0], [height - 4, width - 4], (400, 2)):
      hole[y:y + 4, x:x + 4] = True
  known = tf.constant((~hole)[..., None].astype(np.float32))
  boxes, sizes = hd.plan(known, "crop", hd.DEFAULT_CROP_MARGIN,
                         hd.DEFAULT_RESIZE_LIMIT, hd.DEFAULT_CROP_TRIGGER)
  pixels = np.prod(sizes.numpy(), axis=1)
  assert len(boxes) == 1  # the whole photo, or the many holes' bounding box
  assert pixels.max() <= inference.DEFAULT_MAX_GENERATOR_PIXELS
  assert max(sizes.numpy()[0]) == image_ops.padded_size(
      hd.DEFAULT_RESIZE_LIMIT)


def test_original_above_the_generator_limit_names_the_remedy(
    varied_generator):
  small = inference.InpaintModule(
      varied_generator, max_generator_pixels=256 * 256, crop_margin=16,
      resize_limit=256, crop_trigger=200)
  image = samples.noise(300, 300, seed=4)
  hole = _strokes(300, 300, 1, seed=4)
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match="use hd_strategy crop or resize"):
    _inpaint(small, image, hole, hd_strategy="original")
  output = _inpaint(small, image, hole, hd_strategy="crop")
  np.testing.assert_array_equal(output[~hole], image[~hole])


@pytest.mark.parametrize("options, message", [
    ({"crop_margin": -1}, "crop_margin -1 is negative"),
    ({"resize_limit": 0}, "resize_limit 0 is not positive"),
    ({"crop_trigger": -5}, "crop_trigger -5 is not positive"),
    ({"hd_strategy": "tiles"}, "hd_strategy 'tiles' is not one of"),
])
def test_nonsense_numbers_are_refused(module, tmp_path, options, message):
  with pytest.raises(ValueError, match=message):
    hd.check_options(**{"hd_strategy": "crop", "crop_margin": 0,
                        "resize_limit": 1, "crop_trigger": 1, **options})
  image = tmp_path / "a.png"
  image.write_bytes(samples.png(samples.noise(8, 8)))
  config = inpaint.Config(model="m", image=str(image), mask=str(image),
                          output=str(tmp_path / "out.png"), **options)
  with pytest.raises(ValueError, match=message):
    config.check()
  in_graph = {"crop_margin": "crop_margin -1 is negative",
              "resize_limit": "resize_limit 0 and crop_trigger",
              "crop_trigger": "resize_limit 384 and crop_trigger -5",
              "hd_strategy": "hd_strategy tiles is not one of"}
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match=in_graph[next(iter(options))]):
    _inpaint(module, samples.noise(8, 8), np.ones((8, 8), bool), **options)


#: What the server may map beyond what it holds once the export is loaded.
HEADROOM_BYTES = 4 << 30


def _vm_size(pid):
  with open(f"/proc/{pid}/status") as f:
    return next(int(line.split()[1]) * 1024 for line in f
                if line.startswith("VmSize"))


def test_a_12_megapixel_photo_through_the_local_server(default_export,
                                                       tmp_path):
  """crop (the export's default) on a 4000x3000 phone photo with three
  strokes, in a server allowed its loaded size plus HEADROOM_BYTES."""
  height, width = 3000, 4000
  ramp = np.linspace(0, 255, width)[None, :, None]
  photo = np.clip(ramp + samples.noise(height, width, seed=5) / 8, 0,
                  255).astype(np.uint8)
  jpeg = tf.io.encode_jpeg(photo, quality=90).numpy()
  hole = _strokes(height, width, 3, seed=5, thickness=40)
  mask = samples.png(np.where(hole, 255, 0).astype(np.uint8)[..., None])
  body = json.dumps({"instances": [{
      "image_bytes": {"b64": base64.b64encode(jpeg).decode()},
      "mask_bytes": {"b64": base64.b64encode(mask).decode()}}]}).encode()
  with open(tmp_path / "server.log", "w+") as log, processes.serving_process(
      default_export, log, ["--max_request_bytes=67108864"]) as (
          port, server):
    limit = _vm_size(server.pid) + HEADROOM_BYTES
    resource.prlimit(server.pid, resource.RLIMIT_AS, (limit, limit))
    start = time.monotonic()
    with urllib.request.urlopen(urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/models/lbam:predict", data=body,
        headers={"Content-Type": "application/json"}), timeout=600) as reply:
      prediction = json.loads(reply.read())["predictions"][0]
    seconds = time.monotonic() - start
    assert server.poll() is None, "the server died"
  png = base64.b64decode(prediction.get("b64") or prediction[
      "image_bytes"]["b64"])
  output = np.asarray(Image.open(io.BytesIO(png)))
  assert output.shape == (height, width, 3)
  decoded = tf.io.decode_jpeg(jpeg).numpy()
  np.testing.assert_array_equal(output[~hole], decoded[~hole])
  assert np.abs(output[hole].astype(int) - decoded[hole]).max() > 0
  print(f"12 MP, 3 strokes, crop: {seconds:.1f} s under {limit >> 20} MiB "
        "of address space")


def test_the_inpaint_cli_passes_the_strategy_per_call(head_weights,
                                                      tmp_path):
  """lbam_tf.inpaint's run with --hd_strategy resize: a small resize_limit
  runs the photo scaled down, and known pixels stay exact."""
  image = samples.noise(300, 500, seed=6)
  hole = _strokes(300, 500, 2, seed=6)
  (tmp_path / "photo.png").write_bytes(samples.png(image))
  (tmp_path / "hole.png").write_bytes(
      samples.png(np.where(hole, 255, 0).astype(np.uint8)[..., None]))
  results = {}
  for limit in (128, 512):
    config = inpaint.Config(
        model=head_weights, image=str(tmp_path / "photo.png"),
        mask=str(tmp_path / "hole.png"),
        output=str(tmp_path / f"out{limit}.png"), hd_strategy="resize",
        resize_limit=limit)
    config.check()
    assert inpaint.run(config) == 0
    results[limit] = np.asarray(Image.open(tmp_path / f"out{limit}.png"))
    np.testing.assert_array_equal(results[limit][~hole], image[~hole])
  # 512 >= the long side runs whole; 128 runs a 77x128 copy: other fills.
  assert np.abs(results[128][hole].astype(int) - results[512][hole]).mean() > 1
