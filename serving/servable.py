"""One SavedModel version answered as TF Serving's REST API answers.

The model side of `serving.local_server`: which version to serve
(`latest_version`), TF Serving's JSON encoding of inputs and outputs (row and
column forms, `{"b64": ...}` for binary values), its predict and metadata
bodies, and its mapping of TF error codes to HTTP statuses. Errors a client
caused are `RequestError`s carrying the status. The HTTP part (connections,
limits, URLs) is `serving.local_server`.
"""

import base64
import binascii
import json
import os

from google.protobuf import json_format
import numpy as np
import tensorflow as tf
from tensorflow.core.framework import types_pb2
from tensorflow.core.protobuf import saved_model_pb2

from lbam_tf.inference import module as inference
from lbam_tf.inference import signatures

#: TF Serving's canonical error code -> HTTP status (its http_rest_api_util).
HTTP_STATUS = {
    tf.errors.INVALID_ARGUMENT: 400,
    tf.errors.FAILED_PRECONDITION: 400,
    tf.errors.OUT_OF_RANGE: 400,
    tf.errors.UNAUTHENTICATED: 401,
    tf.errors.PERMISSION_DENIED: 403,
    tf.errors.NOT_FOUND: 404,
    tf.errors.ALREADY_EXISTS: 409,
    tf.errors.RESOURCE_EXHAUSTED: 429,
    tf.errors.CANCELLED: 499,
    tf.errors.UNIMPLEMENTED: 501,
    tf.errors.UNAVAILABLE: 503,
    tf.errors.DEADLINE_EXCEEDED: 504,
}

class RequestError(Exception):
  """A request the server answers with `status` and {"error": message}."""

  def __init__(self, message, status=400):
    super().__init__(message)
    self.status = status


def latest_version(model_base_path):
  """The highest numeric folder under `model_base_path` holding a SavedModel."""
  if not os.path.isdir(model_base_path):
    raise ValueError(f"--model_base_path {model_base_path} is not a folder: "
                     "give the folder that holds the numeric version folders")
  versions = [int(name) for name in os.listdir(model_base_path)
              if name.isdigit() and os.path.exists(
                  os.path.join(model_base_path, name, "saved_model.pb"))]
  if not versions:
    raise ValueError(
        f"no <version>/saved_model.pb under {model_base_path}: export one "
        "with python -m serving.export --export_dir "
        f"{os.path.join(model_base_path, '1')}")
  return max(versions)


def _from_json(value, name):
  """Replaces {"b64": ...} objects (at any depth) by their bytes."""
  if isinstance(value, dict):
    if set(value) != {"b64"} or not isinstance(value["b64"], str):
      raise RequestError(
          f"input {name}: a JSON object must be {{\"b64\": \"<base64>\"}}, "
          f"got keys {sorted(value)}")
    try:
      return base64.b64decode(value["b64"], validate=True)
    except binascii.Error as error:
      raise RequestError(f"input {name}: b64 value is not valid base64: "
                         f"{error}") from error
  if isinstance(value, list):
    return [_from_json(item, name) for item in value]
  return value


def _to_json(name, value):
  """JSON for an output: lists, with b64 objects for *_bytes outputs."""
  if isinstance(value, np.ndarray):
    return [_to_json(name, item) for item in value] if value.ndim else \
        _to_json(name, value.item())
  if isinstance(value, bytes):
    if name.endswith("_bytes"):
      return {"b64": base64.b64encode(value).decode("ascii")}
    return value.decode("utf-8", errors="replace")
  if isinstance(value, (np.floating, float)):
    return float(value)
  if isinstance(value, (np.integer, np.bool_)):
    return value.item()
  return value


class Servable:
  """One SavedModel version and TF Serving's predict / metadata logic.

  Args:
    model_base_path: folder of numeric version folders.
    model_name: the name clients put in the URL.
  """

  def __init__(self, model_base_path, model_name="lbam"):
    self.name = model_name
    self.version = latest_version(model_base_path)
    self.path = os.path.join(model_base_path, str(self.version))
    saved_model = saved_model_pb2.SavedModel()
    with open(os.path.join(self.path, "saved_model.pb"), "rb") as f:
      saved_model.ParseFromString(f.read())
    self.signature_defs = {
        key: value
        for key, value in saved_model.meta_graphs[0].signature_def.items()
        if not key.startswith("__")}
    self.model = tf.saved_model.load(self.path)

  def status(self):
    return {"model_version_status": [{
        "version": str(self.version), "state": "AVAILABLE",
        "status": {"error_code": "OK", "error_message": ""}}]}

  def metadata(self):
    definitions = {key: json_format.MessageToDict(
        value, preserving_proto_field_name=True)
                  for key, value in self.signature_defs.items()}
    return {
        "model_spec": {"name": self.name, "signature_name": "",
                       "version": str(self.version)},
        "metadata": {"signature_def": {
            "signature_def": definitions,
            "@type": "type.googleapis.com/tensorflow.serving.SignatureDefMap"}}}

  def check_version(self, version):
    if version is not None and int(version) != self.version:
      raise RequestError(
          f"Servable not found for request: Specific({self.name}, {version})",
          404)

  def _tensor(self, name, value, tensor_info):
    value = _from_json(value, name)
    try:
      if tensor_info.dtype == types_pb2.DT_STRING:
        array = np.array(value, dtype=object)
        if any(not isinstance(x, (bytes, str)) for x in array.reshape(-1)):
          raise ValueError("values must be strings, or {\"b64\": ...} objects "
                           "for binary data")
      else:
        dtype = tf.dtypes.as_dtype(tensor_info.dtype)
        array = np.asarray(value, dtype=dtype.as_numpy_dtype)
    except (ValueError, TypeError) as error:
      raise RequestError(f"input {name} cannot be read as a "
                         f"{types_pb2.DataType.Name(tensor_info.dtype)} "
                         f"tensor: {error}") from error
    # As TF Serving's placeholders do; loaded signatures do not check ranks.
    if not tensor_info.tensor_shape.unknown_rank:
      want = tuple(d.size for d in tensor_info.tensor_shape.dim)
      if len(want) != array.ndim or any(
          w not in (-1, got) for w, got in zip(want, array.shape)):
        raise RequestError(
            f"input {name} has shape {array.shape} but the signature expects "
            f"{want} (-1: any size)")
    return tf.constant(array, tf.string if array.dtype == object else None)

  def _columns_from_rows(self, instances, signature):
    if not isinstance(instances, list) or not instances:
      raise RequestError("instances must be a non-empty list")
    if all(isinstance(row, dict) and "b64" not in row for row in instances):
      names = set(instances[0])
      for index, row in enumerate(instances):
        if set(row) != names:
          raise RequestError(
              f"instances[{index}] has inputs {sorted(row)} but instances[0] "
              f"has {sorted(names)}: every instance needs the same named "
              "inputs")
      return {name: [row[name] for row in instances] for name in names}
    if len(signature.inputs) != 1:
      raise RequestError(
          "instances must be objects naming the inputs "
          f"{sorted(signature.inputs)}, e.g. "
          '{"instances": [{"image_bytes": {"b64": ...}, ...}]}')
    return {next(iter(signature.inputs)): instances}

  def predict(self, body):
    """Answers a predict request body (bytes) with a JSON-able dict."""
    try:
      request = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
      raise RequestError(f"JSON Parse error: {error}") from error
    except RecursionError as error:
      raise RequestError("JSON Parse error: nested too deeply") from error
    if not isinstance(request, dict):
      raise RequestError("the request body must be a JSON object")
    signature_name = request.get("signature_name",
                                 signatures.SERVING_SIGNATURE)
    if not isinstance(signature_name, str):
      raise RequestError(f"signature_name must be a string, got "
                         f"{type(signature_name).__name__}")
    if signature_name not in self.signature_defs:
      raise RequestError(
          f"Serving signature key \"{signature_name}\" not found; this model "
          f"has {sorted(self.signature_defs)}")
    signature = self.signature_defs[signature_name]
    row_form = "instances" in request
    if row_form == ("inputs" in request):
      raise RequestError(
          "the request must have exactly one of \"instances\" (row form) or "
          "\"inputs\" (column form)")
    if row_form:
      columns = self._columns_from_rows(request["instances"], signature)
    else:
      columns = request["inputs"]
      named = isinstance(columns, dict) and "b64" not in columns
      if not named and len(signature.inputs) == 1:
        columns, named = {next(iter(signature.inputs)): columns}, True
      if not named:
        raise RequestError("inputs must be an object naming the inputs "
                           f"{sorted(signature.inputs)}")

    unknown = set(columns) - set(signature.inputs)
    missing = set(signature.inputs) - set(columns) - set(signature.defaults)
    if unknown or missing:
      raise RequestError(
          f"input size does not match signature {signature_name}: sent extra "
          f"{sorted(unknown)}, missing but required {sorted(missing)}")
    tensors = {name: self._tensor(name, value, signature.inputs[name])
               for name, value in columns.items()}
    for name in set(signature.defaults) - set(columns):
      tensors[name] = tf.constant(tf.make_ndarray(signature.defaults[name]))

    function = self.model.signatures[signature_name]
    try:
      outputs = function(**tensors)
    except tf.errors.OpError as error:
      if error.error_code not in HTTP_STATUS:
        raise  # INTERNAL, UNKNOWN, ...: the server's fault, logged as such
      raise RequestError(inference.error_text(error.message),
                         HTTP_STATUS[error.error_code]) from error
    except (ValueError, TypeError) as error:
      sent = ", ".join(f"{k}: {v.dtype.name} {v.shape}"
                       for k, v in sorted(tensors.items()))
      raise RequestError(f"inputs ({sent}) do not fit signature "
                         f"{signature_name}: {error}") from error

    outputs = {name: value.numpy() for name, value in outputs.items()}
    if not row_form:
      if len(outputs) == 1:
        ((name, value),) = outputs.items()
        return {"outputs": _to_json(name, value)}
      return {"outputs": {k: _to_json(k, v) for k, v in outputs.items()}}
    sizes = {len(value) for value in outputs.values()}
    if len(sizes) != 1:
      raise RequestError("outputs have different batch sizes; ask in column "
                         "form (\"inputs\")")
    if len(outputs) == 1:
      ((name, value),) = outputs.items()
      return {"predictions": _to_json(name, value)}
    return {"predictions": [{k: _to_json(k, v[i]) for k, v in outputs.items()}
                            for i in range(sizes.pop())]}
