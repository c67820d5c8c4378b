"""Sends images and masks to TF Serving (or the local stand-in) and saves PNGs.

    python -m serving.client --image photo.jpg --mask hole.png --output out.png
    python -m serving.client --image photos/ --mask masks/ --output filled/ \
        --server http://127.0.0.1:8501 --batch_size 4
    python -m serving.client --protocol grpc --server localhost:8500 ...

REST needs only the standard library (the client starts without importing
TensorFlow). gRPC talks to TF Serving's PredictionService and needs the
optional `tensorflow-serving-api` package, which pulls in the full
`tensorflow` wheel; it is imported only when `--protocol grpc` is asked for.

`--image`, `--mask` and `--output` pair files as `lbam_tf.inpaint` does
(`lbam_tf.images.files`). A request that fails is retried image by image, so a
bad file costs only its own result.
"""

import base64
import dataclasses
import json
import sys
import urllib.error
import urllib.request

from absl import app

from lbam_tf import cli
from lbam_tf.images import files as image_files
from lbam_tf.images import polarity as polarity_rule
from lbam_tf.inference import signatures

PROTOCOLS = ("rest", "grpc")


class ServerError(Exception):
  """The server refused a request or replied wrongly; `status`: the HTTP
  status, the gRPC code, or "bad reply"."""

  def __init__(self, status, message):
    super().__init__(f"{status}: {message}")
    self.status = status
    self.message = message


def _check_count(sent, results):
  """Raises ServerError unless the reply holds one result per image sent:
  a short reply would pair results with the wrong files or drop some."""
  if len(results) != sent:
    raise ServerError(
        "bad reply", f"sent {sent} image(s) but the server returned "
        f"{len(results)} prediction(s); nothing was written for them: check "
        "that the server runs this project's export")
  return results


class RestClient:
  """TF Serving's REST predict API for the `serving_default` signature.

  Args:
    server: base URL, e.g. http://127.0.0.1:8501.
    model_name: the model's name in the URL.
    timeout: seconds to wait for one request.

  Example:

  >>> client = RestClient("http://127.0.0.1:8501")
  >>> (png,) = client.inpaint([open("a.jpg", "rb").read()],
  ...                         [open("m.png", "rb").read()])
  """

  def __init__(self, server="http://127.0.0.1:8501", model_name="lbam",
               timeout=300):
    self.url = f"{server.rstrip('/')}/v1/models/{model_name}"
    self.timeout = timeout

  def _request(self, url, body=None):
    request = urllib.request.Request(
        url, data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json"})
    try:
      with urllib.request.urlopen(request, timeout=self.timeout) as response:
        return json.loads(response.read())
    except urllib.error.HTTPError as error:
      try:
        message = json.loads(error.read()).get("error", error.reason)
      except ValueError:
        message = error.reason
      raise ServerError(error.code, message) from error

  def status(self):
    """GET /v1/models/<name>: the version status."""
    return self._request(self.url)

  def inpaint(self, images, masks, polarity="white"):
    """Inpaints encoded images with encoded masks; returns PNG bytes per image.

    Args:
      images: list of encoded image files (bytes).
      masks: list of encoded mask files (bytes), one per image.
      polarity: "white" or "black", the hole colour of the masks.
    """
    def b64(data):
      return {"b64": base64.b64encode(data).decode("ascii")}
    body = {"signature_name": signatures.SERVING_SIGNATURE,
            "instances": [{"image_bytes": b64(image), "mask_bytes": b64(mask),
                           "mask_polarity": polarity}
                          for image, mask in zip(images, masks)]}
    predictions = self._request(f"{self.url}:predict", body)["predictions"]
    return [base64.b64decode(p["b64"])
            for p in _check_count(len(images), predictions)]


class GrpcClient:
  """TF Serving's gRPC PredictionService for the `serving_default` signature.

  Args:
    target: host:port of TF Serving's gRPC port (8500 by default).
    model_name: the served model's name.
    timeout: seconds to wait for one request.
  """

  def __init__(self, target="localhost:8500", model_name="lbam", timeout=300):
    try:
      # pylint: disable=g-import-not-at-top
      import grpc
      import tensorflow as tf
      from tensorflow_serving.apis import predict_pb2
      from tensorflow_serving.apis import prediction_service_pb2_grpc
    except ImportError as error:
      raise ImportError(
          "--protocol grpc needs the optional tensorflow-serving-api package "
          "(it pulls in the full tensorflow wheel): pip install "
          "tensorflow-serving-api grpcio, or use --protocol rest") from error
    self._grpc, self._tf, self._predict_pb2 = grpc, tf, predict_pb2
    self._stub = prediction_service_pb2_grpc.PredictionServiceStub(
        grpc.insecure_channel(target))
    self.model_name, self.timeout = model_name, timeout

  def inpaint(self, images, masks, polarity="white"):
    """As `RestClient.inpaint`."""
    request = self._predict_pb2.PredictRequest()
    request.model_spec.name = self.model_name
    request.model_spec.signature_name = signatures.SERVING_SIGNATURE
    make = self._tf.make_tensor_proto
    request.inputs["image_bytes"].CopyFrom(make(list(images)))
    request.inputs["mask_bytes"].CopyFrom(make(list(masks)))
    request.inputs["mask_polarity"].CopyFrom(make([polarity] * len(images)))
    try:
      response = self._stub.Predict(request, timeout=self.timeout)
    except self._grpc.RpcError as error:
      raise ServerError(error.code().name, error.details()) from error
    return _check_count(len(images),
                        list(response.outputs["image_bytes"].string_val))


def inpaint_files(client, jobs, batch_size=4, polarity="white", progress=True):
  """Sends `image_files.Job`s in requests of `batch_size`, writing PNGs.

  Returns:
    (written, failures) as `image_files.run_jobs`.
  """
  return image_files.run_jobs(
      lambda images, masks: client.inpaint(images, masks, polarity), jobs,
      batch_size, errors=(ServerError,), progress=progress)


@dataclasses.dataclass
class Config(image_files.FileOptions):
  """One run of the command line, as plain values (the flags, or a test's):
  --image, --mask, --output and these."""
  protocol: str = cli.option(
      "rest", "rest: TF Serving or serving.local_server; grpc: TF Serving "
      "only, needs tensorflow-serving-api.", choices=PROTOCOLS)
  server: str | None = cli.option(
      None, "REST base URL (default http://127.0.0.1:8501) or gRPC "
      "host:port (default localhost:8500).")
  model_name: str = cli.option("lbam", "The served model's name.")
  mask_polarity: str = cli.option(
      "white", "Which colour marks the holes in the mask files.",
      choices=polarity_rule.POLARITIES)
  batch_size: int = cli.option(4, "Images per request.")
  timeout: int = cli.option(300, "Seconds to wait for one request.")

  def check(self):
    """Raises ValueError naming the bad value and what to do instead."""
    for name in ("image", "mask", "output"):
      if not getattr(self, name):
        raise ValueError(f"--{name} is required")
    if self.protocol not in PROTOCOLS:
      raise ValueError(f"--protocol {self.protocol!r} is not one of "
                       f"{PROTOCOLS}")
    polarity_rule.check(self.mask_polarity)
    for name in ("batch_size", "timeout"):
      if getattr(self, name) < 1:
        raise ValueError(f"--{name} {getattr(self, name)} must be at least 1")
    image_files.plan(self.image, self.mask, self.output)


def run(config):
  """Sends the files `config` names; returns the exit status (1 if any image
  failed, 2 if the server cannot be reached, else 0)."""
  jobs, problems = image_files.plan(config.image, config.mask, config.output)
  rest = config.protocol == "rest"
  server = config.server or ("http://127.0.0.1:8501" if rest
                             else "localhost:8500")
  client = (RestClient if rest else GrpcClient)(server, config.model_name,
                                                config.timeout)
  try:
    written, failures = inpaint_files(client, jobs, config.batch_size,
                                      config.mask_polarity)
  except urllib.error.URLError as error:
    print(f"cannot reach {server}: "
          f"{error.reason}; is the server running?", file=sys.stderr)
    return 2
  return image_files.report(written, problems + failures)


def main(argv):
  return cli.run_flags(Config, run)


if __name__ == "__main__":
  cli.define_flags(Config)
  app.run(main)
