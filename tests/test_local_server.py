"""serving/local_server.py on loopback: REST API, errors, concurrency."""

import base64
import concurrent.futures
import http.client
import json
import os
import subprocess
import sys

import conftest
import numpy as np
import pytest
import samples
import tensorflow as tf

from lbam_tf.inference import module as inference
from serving import processes

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAX_PIXELS = conftest.EXPORT_MAX_PIXELS
MAX_REQUEST_BYTES = 1 << 20
TIMEOUT = 120


def _call(port, method, path, body=None):
  """One HTTP request on a fresh connection; returns (status, parsed JSON)."""
  connection = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
  try:
    if isinstance(body, dict):
      body = json.dumps(body)
    connection.request(method, path, body)
    response = connection.getresponse()
    return response.status, json.loads(response.read())
  finally:
    connection.close()


@pytest.fixture(scope="module")
def port(varied_export, tmp_path_factory):
  """A server subprocess, stopped (terminate, then kill) whatever happens."""
  with open(tmp_path_factory.mktemp("log") / "server.log", "w") as log, \
      processes.subprocess_server(
          varied_export, log, [f"--max_request_bytes={MAX_REQUEST_BYTES}"],
          timeout=TIMEOUT) as port:
    yield port


@pytest.fixture(scope="module")
def loaded(varied_export):
  return inference.Export(os.path.join(varied_export, "1"))


def _b64(data):
  return {"b64": base64.b64encode(data).decode("ascii")}


def _direct(loaded, image, hole):
  """The same SavedModel called in-process: what the server must return."""
  return loaded.signatures["serving_default"](
      image_bytes=tf.constant([samples.png(image)]),
      mask_bytes=tf.constant([samples.png(hole)]),
      mask_polarity=tf.constant("white"))["image_bytes"][0]


def _decoded(value):
  return tf.io.decode_png(base64.b64decode(value["b64"])).numpy()


def test_status_and_metadata(port):
  status, body = _call(port, "GET", "/v1/models/lbam")
  assert status == 200
  assert body["model_version_status"][0]["version"] == "1"
  assert body["model_version_status"][0]["state"] == "AVAILABLE"
  status, body = _call(port, "GET", "/v1/models/lbam/versions/1/metadata")
  assert status == 200
  signatures = body["metadata"]["signature_def"]["signature_def"]
  assert set(signatures) == {"serving_default", "inpaint_tensor"}
  assert set(signatures["serving_default"]["inputs"]) == {
      "image_bytes", "mask_bytes", "mask_polarity", "hd_strategy",
      "crop_margin", "resize_limit", "crop_trigger"}
  assert set(signatures["inpaint_tensor"]["outputs"]) == {"image"}


def test_row_form_predict(port, loaded):
  images = [samples.sample(100, 150, seed) for seed in (0, 1)]
  status, body = _call(port, "POST", "/v1/models/lbam:predict", {
      "instances": [{"image_bytes": _b64(samples.png(image)),
                     "mask_bytes": _b64(samples.png(hole))}
                    for image, hole in images]})
  assert status == 200, body
  assert len(body["predictions"]) == 2
  for prediction, (image, hole) in zip(body["predictions"], images):
    result = _decoded(prediction)
    known = hole[..., 0] == 0
    np.testing.assert_array_equal(result[known], image[known])
    expected = tf.io.decode_png(_direct(loaded, image, hole)).numpy()
    assert np.abs(result.astype(int) - expected).max() <= 1


def test_column_form_predict_with_polarity(port, loaded):
  image, hole = samples.sample(90, 60, seed=2)
  status, body = _call(port, "POST", "/v1/models/lbam/versions/1:predict", {
      "signature_name": "serving_default",
      "inputs": {"image_bytes": [_b64(samples.png(image))],
                 "mask_bytes": [_b64(samples.png(255 - hole))],
                 "mask_polarity": "black"}})
  assert status == 200, body
  (output,) = body["outputs"]
  assert base64.b64decode(output["b64"]) == _direct(loaded, image, hole)


def test_tensor_signature_in_column_form(port, loaded):
  # Two requests, each its own image and size, so that a reply reused from
  # the last request shows.
  for seed, (height, width) in ((3, (20, 30)), (8, (26, 18))):
    rng = np.random.default_rng(seed)
    image = rng.random((1, height, width, 3), dtype=np.float32)
    mask = np.ones((1, height, width, 1), np.float32)
    mask[0, 5:10, 5:20] = 0
    status, body = _call(port, "POST", "/v1/models/lbam:predict", {
        "signature_name": "inpaint_tensor",
        "inputs": {"image": image.tolist(), "mask": mask.tolist()}})
    assert status == 200, body
    result = np.asarray(body["outputs"], np.float32)
    assert result.shape == image.shape
    known = mask[..., 0] == 1
    np.testing.assert_array_equal(result[known], image[known])
    direct = loaded.signatures["inpaint_tensor"](
        image=tf.constant(image), mask=tf.constant(mask))["image"].numpy()
    assert direct[~known].std() > 0.02, "a flat hole would prove little"
    # float32 -> JSON -> float32 is exact; the graph may differ in the last
    # bit.
    np.testing.assert_allclose(result, direct, rtol=0, atol=1e-6)


_IMAGE, _HOLE = samples.sample(40, 60, seed=4)
_GOOD = {"image_bytes": _b64(samples.png(_IMAGE)),
         "mask_bytes": _b64(samples.png(_HOLE))}
_PREDICT = "/v1/models/lbam:predict"
BAD_REQUESTS = {
    "malformed json": ("POST", _PREDICT, "{not json", 400, "JSON Parse error"),
    "rows and columns": ("POST", _PREDICT, {
        "instances": [_GOOD], "inputs": {}}, 400, "exactly one of"),
    "neither": ("POST", _PREDICT, {"signature_name": "serving_default"}, 400,
                "exactly one of"),
    "unknown signature": ("POST", _PREDICT, {
        "signature_name": "nope", "instances": [_GOOD]}, 400,
                          "Serving signature key \"nope\" not found"),
    "undecodable image": ("POST", _PREDICT, {"instances": [{
        **_GOOD, "image_bytes": _b64(b"GIF89a\x08\x00\x08\x00 but not "
                                     b"really")}]}, 400,
                          "Invalid GIF data"),
    "size mismatch": ("POST", _PREDICT, {"instances": [{
        **_GOOD, "mask_bytes": _b64(samples.png(_HOLE[:, :50]))}]}, 400,
                      "mask_bytes[0] is 40x50 but image_bytes[0] is 40x60"),
    "batch mismatch": ("POST", _PREDICT, {"inputs": {
        "image_bytes": [_GOOD["image_bytes"]] * 2,
        "mask_bytes": [_GOOD["mask_bytes"]]}}, 400,
                       "image_bytes has 2 images but mask_bytes has 1"),
    "too large": ("POST", _PREDICT, {"instances": [{
        "image_bytes": _b64(samples.png(np.zeros((260, 260, 3)))),
        "mask_bytes": _b64(samples.png(np.zeros((260, 260, 1))))}]}, 400,
                  f"above the limit of {MAX_PIXELS}"),
    "bad base64": ("POST", _PREDICT, {"instances": [{
        **_GOOD, "image_bytes": {"b64": "***"}}]}, 400, "not valid base64"),
    "extra input": ("POST", _PREDICT, {"instances": [{
        **_GOOD, "colour": "red"}]}, 400, "sent extra ['colour']"),
    "missing input": ("POST", _PREDICT, {"inputs": {
        "image_bytes": [_GOOD["image_bytes"]]}}, 400,
                      "missing but required ['mask_bytes']"),
    "rows differ": ("POST", _PREDICT, {"instances": [
        _GOOD, {"image_bytes": _GOOD["image_bytes"]}]}, 400,
                    "every instance needs the same named inputs"),
    "numbers for bytes": ("POST", _PREDICT, {"inputs": {
        "image_bytes": [1, 2], "mask_bytes": [3, 4]}}, 400,
                          "cannot be read as a DT_STRING tensor"),
    "ragged floats": ("POST", _PREDICT, {
        "signature_name": "inpaint_tensor",
        "inputs": {"image": [[[[0.1, 0.2, 0.3]], [[0.1]]]],
                   "mask": [[[[1.0]], [[1.0]]]]}}, 400,
                      "cannot be read as a DT_FLOAT tensor"),
    "wrong rank": ("POST", _PREDICT, {
        "signature_name": "inpaint_tensor",
        "inputs": {"image": [[0.1, 0.2, 0.3]], "mask": [[1.0]]}}, 400,
                   "input image has shape (1, 3) but the signature expects "
                   "(-1, -1, -1, 3)"),
    "unknown model": ("POST", "/v1/models/other:predict", {
        "instances": [_GOOD]}, 404, "Servable not found"),
    "unknown version": ("GET", "/v1/models/lbam/versions/7", None, 404,
                        "Specific(lbam, 7)"),
    "malformed path": ("GET", "/v2/anything", None, 404, "Malformed request"),
    "body too large": ("POST", _PREDICT, b"x" * (MAX_REQUEST_BYTES + 1), 413,
                       f"request of {MAX_REQUEST_BYTES + 1} bytes is above "
                       "--max_request_bytes"),
}


@pytest.mark.parametrize("case", sorted(BAD_REQUESTS))
def test_bad_request_status_and_message(port, case):
  method, path, body, want_status, message = BAD_REQUESTS[case]
  status, reply = _call(port, method, path, body)
  assert status == want_status, reply
  assert set(reply) == {"error"}
  assert message in reply["error"]
  assert "Graph execution error" not in reply["error"]


def test_clients_are_served_during_and_after_bad_requests(port, loaded):
  # Each client its own image and size, so a reply sent to the wrong one
  # shows.
  pairs = [samples.sample(48 + 16 * i, 80 - 8 * i, seed=5 + i)
           for i in range(4)]
  bad = [BAD_REQUESTS[case] for case in sorted(BAD_REQUESTS)]

  def send_good(index):
    image, hole = pairs[index]
    return _call(port, "POST", _PREDICT, {"instances": [
        {"image_bytes": _b64(samples.png(image)),
         "mask_bytes": _b64(samples.png(hole))}]})

  def send_bad(request):
    method, path, body, status, _ = request
    return _call(port, method, path, body)[0] == status

  with concurrent.futures.ThreadPoolExecutor(max_workers=6) as pool:
    goods = [pool.submit(send_good, i) for i in range(len(pairs))]
    bads = [pool.submit(send_bad, request) for request in bad]
    assert all(f.result(timeout=TIMEOUT) for f in bads)
    for future, (image, hole) in zip(goods, pairs):
      status, body = future.result(timeout=TIMEOUT)
      assert status == 200, body
      assert base64.b64decode(body["predictions"][0]["b64"]) == _direct(
          loaded, image, hole)
  status, body = send_good(0)
  assert status == 200, body
  assert base64.b64decode(body["predictions"][0]["b64"]) == _direct(
      loaded, *pairs[0])


def test_missing_model_is_a_usage_error(tmp_path):
  result = subprocess.run(
      [sys.executable, "-m", "serving.local_server",
       f"--model_base_path={tmp_path}", "--port=0"],
      cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT)
  assert result.returncode != 0
  assert "no <version>/saved_model.pb under" in result.stderr


def test_client_cli_folder_through_the_server(port, loaded, tmp_path):
  images, masks = tmp_path / "images", tmp_path / "masks"
  images.mkdir()
  masks.mkdir()
  pairs = {"a": samples.sample(50, 70, seed=6),
           "b": samples.sample(80, 40, seed=7)}
  for stem, (image, hole) in pairs.items():
    (images / f"{stem}.png").write_bytes(samples.png(image))
    (masks / f"{stem}.png").write_bytes(samples.png(hole))
  (images / "c.png").write_bytes(samples.png(pairs["a"][0]))
  (masks / "c.png").write_bytes(samples.png(pairs["b"][1]))
  result = subprocess.run(
      [sys.executable, "-m", "serving.client", f"--image={images}",
       f"--mask={masks}", f"--output={tmp_path / 'out'}",
       f"--server=http://127.0.0.1:{port}", "--batch_size=3"],
      cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT)
  assert result.returncode == 1, result.stderr
  assert "2 image(s) written, 1 failed" in result.stdout
  assert "c.png: 400: mask_bytes[0] is 80x40 but image_bytes[0] is 50x70" \
      in result.stdout
  for stem, (image, hole) in pairs.items():
    written = (tmp_path / "out" / f"{stem}.png").read_bytes()
    assert written == _direct(loaded, image, hole)


def test_grpc_without_its_package_says_what_to_install():
  from serving import client  # pylint: disable=g-import-not-at-top
  try:
    # pylint: disable-next=g-import-not-at-top,unused-import
    import tensorflow_serving  # noqa: F401
  except ImportError:
    with pytest.raises(ImportError, match="pip install tensorflow-serving-api"):
      client.GrpcClient()
  else:
    assert client.GrpcClient().model_name == "lbam"
