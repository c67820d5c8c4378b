"""Hostile and unlucky input to serving and export, crafted here.

Each case asserts the clear error or status, that good requests are still
answered correctly, and a bound: decompression bombs run in a subprocess
under RLIMIT_AS, the server in a subprocess whose threads are counted.
"""

import base64
import http.client
import io
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import time

import conftest
import numpy as np
from PIL import Image
import pytest
import samples
import tensorflow as tf

from lbam_tf.inference import module as inference
from serving import export
from serving import processes

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAX_PIXELS = conftest.EXPORT_MAX_PIXELS
MAX_IMAGES = conftest.EXPORT_MAX_IMAGES
MAX_REQUEST_PIXELS = conftest.EXPORT_MAX_REQUEST_PIXELS
MAX_REQUEST_BYTES = 1 << 20
REQUEST_TIMEOUT = 3
TIMEOUT = 120
PREDICT = "/v1/models/lbam:predict"


_IMAGE, _HOLE = samples.sample(40, 60)
_GOOD_IMAGE, _GOOD_MASK = samples.png(_IMAGE), samples.png(_HOLE)


# Files whose headers declare far more pixels than they hold.

def png_bomb(width, height):
  """A valid PNG start: IHDR for width x height RGB, a few zero rows."""
  return samples.png_declaring(width, height, zero_bytes=64 << 10, level=9)


def _pillow(array, fmt, **options):
  out = io.BytesIO()
  Image.fromarray(array).save(out, fmt, **options)
  return bytearray(out.getvalue())


def jpeg_bomb(width, height):
  """An 8x8 JPEG whose SOF0 marker is rewritten to width x height."""
  data = bytearray(tf.io.encode_jpeg(np.zeros((8, 8, 3), np.uint8)).numpy())
  sof = data.index(b"\xff\xc0")
  data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
  return bytes(data)


def gif_bomb(width, height):
  """An 8x8 GIF whose logical screen is rewritten to width x height."""
  data = _pillow(np.zeros((8, 8, 3), np.uint8), "GIF")
  data[6:10] = struct.pack("<HH", width, height)
  return bytes(data)


def bmp_bomb(width, height):
  """An 8x8 BMP whose header says width x height (top-down: negative)."""
  data = _pillow(np.zeros((8, 8, 3), np.uint8), "BMP")
  data[18:26] = struct.pack("<ii", width, -height)
  return bytes(data)


def webp_bomb(width, height):
  """A lossless 8x8 WebP whose VP8L header says width x height."""
  data = _pillow(np.zeros((8, 8, 3), np.uint8), "WEBP", lossless=True)
  assert data[12:16] == b"VP8L"
  (bits,) = struct.unpack("<I", data[21:25])
  bits = bits & ~((1 << 28) - 1) | (width - 1) | (height - 1) << 14
  data[21:25] = struct.pack("<I", bits)
  return bytes(data)


def _bits(*fields):
  """Bytes of (value, width) fields packed least significant bit first."""
  value = shift = 0
  for field, width in fields:
    value |= field << shift
    shift += width
  return value.to_bytes((shift + 7) // 8, "little")


def jxl_bomb(width, height):
  """A JPEG XL codestream's signature and SizeHeader (U32 fields, 30 bits)."""
  return b"\xff\x0a" + _bits((0, 1), (3, 2), (height - 1, 30), (0, 3),
                             (3, 2), (width - 1, 30)) + b"\0" * 16


def jxl_container_bomb(width, height):
  """The codestream above in a container, behind a box faking a small one."""
  def box(kind, payload):
    return struct.pack(">I", 8 + len(payload)) + kind + payload
  small = b"\xff\x0a" + _bits((1, 1), (0, 5), (0, 3), (0, 5))
  return (b"\x00\x00\x00\x0cJXL \r\n\x87\n" + box(b"ftyp", b"jxl \0\0\0\0jxl ")
          + box(b"Exif", b"jxlc" + small)
          + box(b"jxlp", b"\0\0\0\0" + jxl_bomb(width, height)))


BOMBS = {"png": png_bomb(23000, 23000), "jpeg": jpeg_bomb(60000, 60000),
         "gif": gif_bomb(65535, 65535), "bmp": bmp_bomb(30000, 30000),
         "webp": webp_bomb(16384, 16384),
         "jxl": jxl_bomb(30000, 30000),
         "jxl_container": jxl_container_bomb(30000, 30000)}
BOMB_SIZES = {"png": (23000, 23000), "jpeg": (60000, 60000),
              "gif": (65535, 65535), "bmp": (30000, 30000),
              "webp": (16384, 16384), "jxl": (30000, 30000),
              "jxl_container": (30000, 30000)}


def test_bombs_are_small_files():
  # The point of a bomb: a tiny request, a huge image.
  assert max(len(bomb) for bomb in BOMBS.values()) < 1000
  assert len(BOMBS["png"]) < 200


# The signature under a memory limit.

#: Headroom over the loaded model's address space: a good 40x60 request fits
#: easily, while any bomb above would need 1.5 GB (PNG, RGB uint8) to 12 GB.
HEADROOM = 1 << 30

_SIGNATURE_SCRIPT = """
import base64, json, resource, sys, time
import tensorflow as tf
from lbam_tf.inference import module as inference
path, headroom = sys.argv[1], int(sys.argv[2])
cases = {k: [base64.b64decode(x) for x in v]
         for k, v in json.loads(sys.stdin.read()).items()}
serve = inference.Export(path).signatures["serving_default"]

def run(images, masks):
  start = time.monotonic()
  try:
    out = serve(image_bytes=tf.constant(images), mask_bytes=tf.constant(masks),
                mask_polarity=tf.constant("white"))["image_bytes"].numpy()
    result = ["ok", [base64.b64encode(x).decode() for x in out]]
  except tf.errors.OpError as error:
    result = [type(error).__name__, inference.error_text(error.message)]
  return result + [time.monotonic() - start]

good = cases.pop("good")
results = {"before": run(good[:1], good[1:])}
with open("/proc/self/status") as f:
  vm = [int(l.split()[1]) << 10 for l in f if l.startswith("VmSize")][0]
resource.setrlimit(resource.RLIMIT_AS, (vm + headroom, vm + headroom))
for name, (image, mask) in sorted(cases.items()):
  results[name] = run([image], [mask])
results["after"] = run(good[:1], good[1:])
print(json.dumps(results))
"""


def _signature_results(export_dir, cases):
  payload = {k: [base64.b64encode(x).decode() for x in v]
             for k, v in cases.items()}
  result = subprocess.run(
      [sys.executable, "-c", _SIGNATURE_SCRIPT, export_dir, str(HEADROOM)],
      input=json.dumps(payload), cwd=ROOT, capture_output=True, text=True,
      timeout=300, env=dict(os.environ, PYTHONPATH=ROOT))
  assert result.returncode == 0, result.stderr[-3000:]
  return json.loads(result.stdout.splitlines()[-1])


def test_bombs_fail_from_the_header_within_a_memory_limit(varied_export):
  cases = {"good": [_GOOD_IMAGE, _GOOD_MASK]}
  for name, bomb in BOMBS.items():
    cases[f"image {name}"] = [bomb, _GOOD_MASK]
  cases["mask png"] = [_GOOD_IMAGE, BOMBS["png"]]
  results = _signature_results(os.path.join(varied_export, "1"), cases)

  assert results["before"][0] == "ok", results["before"]
  assert results["after"][:2] == results["before"][:2]
  for name, (height, width) in BOMB_SIZES.items():
    kind, message, seconds = results[f"image {name}"]
    assert kind == "InvalidArgumentError", (name, kind, message)
    assert message.startswith(
        f"image_bytes[0] is {height}x{width} = {height * width} pixels, "
        f"above the limit of {MAX_PIXELS}"), (name, message)
    assert seconds < 10, (name, seconds)
  kind, message, _ = results["mask png"]
  assert kind == "InvalidArgumentError"
  assert message.startswith("mask_bytes[0] is 23000x23000")


@pytest.fixture(scope="module")
def loaded(varied_export):
  return inference.Export(os.path.join(varied_export, "1"))


def _serve(loaded, images, masks):
  return loaded.signatures["serving_default"](
      image_bytes=tf.constant(images), mask_bytes=tf.constant(masks),
      mask_polarity=tf.constant("white"))["image_bytes"].numpy()


@pytest.mark.parametrize("images, masks, message", [
    ([_GOOD_IMAGE] * (MAX_IMAGES + 1), [_GOOD_MASK] * (MAX_IMAGES + 1),
     f"image_bytes has {MAX_IMAGES + 1} images, above the limit of "
     f"{MAX_IMAGES} per request"),
    # Three images each under the per-image limit, together above the
    # request's.
    ([samples.png(np.zeros((110, 110, 3)))] * 3,
     [samples.png(np.zeros((110, 110, 1)))] * 3,
     f"image_bytes has 36300 pixels in all, above the limit of "
     f"{MAX_REQUEST_PIXELS} per request"),
    ([png_bomb(40, 60)[:20]], [_GOOD_MASK],
     "image_bytes[0] is a PNG whose header declares 0x40 pixels: the file is "
     "truncated or damaged"),
    ([png_bomb(0, 60)], [_GOOD_MASK],
     "image_bytes[0] is a PNG whose header declares 60x0 pixels"),
    ([bmp_bomb(-40, 60)], [_GOOD_MASK],
     "image_bytes[0] is a BMP whose header declares 60x-40 pixels"),
])
def test_request_limits_and_bad_headers(loaded, images, masks, message):
  with pytest.raises(tf.errors.InvalidArgumentError) as error:
    _serve(loaded, images, masks)
  assert message in error.value.message


def test_tensor_signature_request_limits(loaded):
  tensor = loaded.signatures["inpaint_tensor"]
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match=f"image has {MAX_IMAGES + 1} images, above"):
    tensor(image=tf.zeros([MAX_IMAGES + 1, 8, 8, 3]),
           mask=tf.ones([MAX_IMAGES + 1, 8, 8, 1]))
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match="image has 43200 pixels in all, above"):
    tensor(image=tf.zeros([3, 120, 120, 3]), mask=tf.ones([3, 120, 120, 1]))


def test_every_format_within_the_limits_is_served(loaded):
  """The header readers agree with the decoders on real files."""
  image = _IMAGE
  files = {
      "png": samples.png(image),
      "jpeg": tf.io.encode_jpeg(image, quality=100).numpy(),
      "gif": bytes(_pillow(image, "GIF")),
      "bmp": bytes(_pillow(image, "BMP")),
      "bmp top-down": bytes(bmp_bomb(8, 8)),
      "webp lossy": bytes(_pillow(image, "WEBP", quality=100)),
      "webp lossless": bytes(_pillow(image, "WEBP", lossless=True)),
  }
  for name, data in files.items():
    decoded = tf.io.decode_image(data, channels=3,
                                 expand_animations=False).numpy()
    height, width = decoded.shape[:2]
    mask = np.zeros((height, width, 1), np.uint8)
    (output,) = _serve(loaded, [data], [samples.png(mask)])
    np.testing.assert_array_equal(tf.io.decode_png(output).numpy(), decoded,
                                  err_msg=name)


# serving.export --overwrite.

def _listing(folder):
  return sorted(
      (os.path.relpath(os.path.join(path, name), folder),
       os.path.getsize(os.path.join(path, name)))
      for path, _, names in os.walk(folder) for name in names)


def test_overwrite_refuses_a_numeric_folder_that_is_not_an_export(
    generator, tmp_path):
  folder = tmp_path / "photos" / "2024"
  folder.mkdir(parents=True)
  (folder / "holiday.jpg").write_bytes(b"precious")
  with pytest.raises(ValueError, match="holds files that are not an export "
                     r"of serving.export \(holiday.jpg\)"):
    export.export(generator, str(folder), overwrite=True)
  assert (folder / "holiday.jpg").read_bytes() == b"precious"
  # Nor a SavedModel of someone else's (no inpaint signatures).
  other = tmp_path / "other" / "1"
  tf.saved_model.save(tf.Module(), str(other))
  with pytest.raises(ValueError, match="not an export of serving.export"):
    export.check_export_dir(str(other), overwrite=True)


def test_failed_overwrite_keeps_the_served_version(varied_export, generator,
                                                   tmp_path):
  base = tmp_path / "lbam"
  shutil.copytree(os.path.join(varied_export, "1"), base / "1")
  before = _listing(base / "1")
  # A warm-up size of -1 fails after the SavedModel is written.
  with pytest.raises(ValueError):
    export.export(generator, str(base / "1"), max_pixels=4 * MAX_PIXELS,
                  warmup_sizes=(-1,), overwrite=True)
  assert os.listdir(base) == ["1"]  # no half-written or hidden leftovers
  assert _listing(base / "1") == before
  served = inference.Export(str(base / "1"))
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match=f"above the limit of {MAX_PIXELS}:"):
    served.signatures["inpaint_tensor"](image=tf.zeros([1, 130, 130, 3]),
                                        mask=tf.ones([1, 130, 130, 1]))

  # The same export without the failure replaces the version whole.
  export.export(generator, str(base / "1"), max_pixels=4 * MAX_PIXELS,
                warmup_sizes=(64,), overwrite=True)
  assert os.listdir(base) == ["1"]
  assert os.path.isfile(base / "1" / export.WARMUP_FILE)
  served = inference.Export(str(base / "1"))
  result = served.signatures["inpaint_tensor"](
      image=tf.zeros([1, 130, 130, 3]), mask=tf.ones([1, 130, 130, 1]))
  assert result["image"].shape == (1, 130, 130, 3)


# The local server.

@pytest.fixture(scope="module")
def server(varied_export, tmp_path_factory):
  """(port, pid) of a server subprocess, stopped whatever happens."""
  with open(tmp_path_factory.mktemp("log") / "server.log", "w+") as log, \
      processes.serving_process(
          varied_export, log, [f"--max_request_bytes={MAX_REQUEST_BYTES}",
                               "--workers=2",
                               f"--request_timeout={REQUEST_TIMEOUT}"],
          timeout=TIMEOUT) as (port, process):
    yield port, process.pid


def _exchange(port, raw, timeout=10):
  """Sends raw bytes; returns every byte answered until close or `timeout`."""
  with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
    s.sendall(raw)
    received = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
      try:
        chunk = s.recv(1 << 16)
      except socket.timeout:
        break
      if not chunk:
        break
      received += chunk
      s.settimeout(max(0.01, min(1.0, deadline - time.monotonic())))
  return received


def _responses(received):
  """[(status, JSON body)] parsed from raw HTTP/1.1 responses."""
  out = []
  while received:
    head, _, rest = received.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    length = int(headers["Content-Length"])
    out.append((int(lines[0].split()[1]), json.loads(rest[:length])))
    received = rest[length:]
  return out


def _good_request():
  body = json.dumps({"instances": [{
      "image_bytes": {"b64": base64.b64encode(_GOOD_IMAGE).decode()},
      "mask_bytes": {"b64": base64.b64encode(_GOOD_MASK).decode()}}]})
  return body.encode()


def _check_good_answer(port, loaded):
  connection = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
  try:
    connection.request("POST", PREDICT, _good_request())
    response = connection.getresponse()
    body = json.loads(response.read())
  finally:
    connection.close()
  assert response.status == 200, body
  (expected,) = _serve(loaded, [_GOOD_IMAGE], [_GOOD_MASK])
  assert base64.b64decode(body["predictions"][0]["b64"]) == expected


def _post(headers, body=b""):
  return (f"POST {PREDICT} HTTP/1.1\r\nHost: x\r\n{headers}\r\n".encode()
          + body)


RAW_REQUESTS = {
    "negative length": (_post("Content-Length: -1\r\n"), 400,
                        "Content-Length '-1' is not a non-negative integer"),
    "no length": (_post(""), 411, "a POST needs a Content-Length"),
    "chunked": (_post("Transfer-Encoding: chunked\r\n",
                      b"5\r\nhello\r\n0\r\n\r\n"), 411,
                "Transfer-Encoding is not supported"),
    "huge declared length": (_post("Content-Length: 99999999999\r\n"), 413,
                             "request of 99999999999 bytes is above "
                             f"--max_request_bytes={MAX_REQUEST_BYTES}"),
    "half-sent body": (_post("Content-Length: 1000\r\n", b"{}"), 408,
                       f"did not arrive within {REQUEST_TIMEOUT} s"),
    "unhashable signature name": (
        _post("Content-Length: 40\r\n",
              b'{"signature_name": [], "instances": [1]}'), 400,
        "signature_name must be a string, got list"),
    "deeply nested json": (
        _post("Content-Length: 200000\r\n", b"[" * 200000), 400,
        "JSON Parse error: nested too deeply"),
}


@pytest.mark.parametrize("case", sorted(RAW_REQUESTS))
def test_raw_bad_requests_get_4xx_and_the_server_goes_on(server, loaded,
                                                         case):
  port, _ = server
  raw, status, message = RAW_REQUESTS[case]
  start = time.monotonic()
  answers = _responses(_exchange(port, raw, timeout=3 * REQUEST_TIMEOUT))
  assert time.monotonic() - start < 3 * REQUEST_TIMEOUT
  assert len(answers) == 1, answers
  assert answers[0][0] == status, answers
  assert message in answers[0][1]["error"], answers
  for internal in ("Error:", "Traceback", "Exception"):
    assert internal not in answers[0][1]["error"]
  _check_good_answer(port, loaded)


def test_a_get_body_is_not_a_second_request(server):
  port, _ = server
  smuggled = b"GET /v1/models/evil HTTP/1.1\r\nHost: x\r\n\r\n"
  raw = (b"GET /v1/models/lbam HTTP/1.1\r\nHost: x\r\nContent-Length: "
         + str(len(smuggled)).encode() + b"\r\n\r\n" + smuggled)
  answers = _responses(_exchange(port, raw, timeout=2))
  assert [status for status, _ in answers] == [200], answers
  assert answers[0][1]["model_version_status"][0]["state"] == "AVAILABLE"


def _threads(pid):
  with open(f"/proc/{pid}/status") as f:
    return [int(line.split()[1]) for line in f
            if line.startswith("Threads:")][0]


def test_half_sent_requests_hold_no_threads_nor_good_clients(server, loaded):
  port, pid = server
  idle = _threads(pid)
  slow = []
  try:
    for _ in range(300):
      s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
      s.sendall(_post("Content-Length: 1000\r\n", b'{"instances": ['))
      slow.append(s)
    time.sleep(0.5)
    assert _threads(pid) <= idle + 4  # at most the worker pool starting
    _check_good_answer(port, loaded)
    # Each half-sent request is told off and closed at its deadline.
    slow[0].settimeout(3 * REQUEST_TIMEOUT)
    answer = b""
    while chunk := slow[0].recv(1 << 16):
      answer += chunk
    assert _responses(answer)[0][0] == 408
  finally:
    for s in slow:
      s.close()
  _check_good_answer(port, loaded)
