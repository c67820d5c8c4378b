"""The inpainting page (serving/static), and a server for it in front of TF
Serving.

    python -m serving.web --tf_serving http://127.0.0.1:8501 --port 8080
    # then open http://127.0.0.1:8080/

The page paints a hole over a photo and sends one `:predict` request to
`serving_default` (see serving/static/inpaint.js). It asks the server it was
loaded from, so it needs no configuration and no CORS: `serving.local_server`
serves it at `/` beside the API, and for real TF Serving, which serves no
files and sends no CORS headers, this module serves it and forwards every
`/v1/` request to `--tf_serving` unchanged, status and body included.
"""

import dataclasses
import http.server
import json
import mimetypes
import os
import signal
import sys
import threading
import urllib.error
import urllib.request

from absl import app

from lbam_tf import cli

STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                          "static")
INDEX = "index.html"


def static_file(url_path):
  """(content type, bytes) of the page's file at `url_path`, else None.

  `/` is the page itself; `/static/<name>` its scripts and styles. Only files
  directly in STATIC_DIR are served, so no URL reaches outside it.
  """
  path = url_path.split("?", 1)[0]
  if path in ("/", "/" + INDEX):
    name = INDEX
  elif path.startswith("/static/"):
    name = path[len("/static/"):]
  else:
    return None
  if name not in os.listdir(STATIC_DIR):
    return None
  with open(os.path.join(STATIC_DIR, name), "rb") as f:
    data = f.read()
  content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
  if content_type.startswith("text/") or content_type.endswith("javascript"):
    content_type += "; charset=utf-8"
  return content_type, data


def send(handler, status, content_type, data):
  """Writes one complete HTTP response on a BaseHTTPRequestHandler."""
  handler.send_response(status)
  handler.send_header("Content-Type", content_type)
  handler.send_header("Content-Length", str(len(data)))
  handler.end_headers()
  handler.wfile.write(data)


def _json_error(message):
  return json.dumps({"error": message}).encode("utf-8")


class ProxyHandler(http.server.BaseHTTPRequestHandler):
  """The page's files, and /v1/ forwarded to the server's `upstream`."""

  protocol_version = "HTTP/1.1"
  server_version = "lbam-web"

  def _forward(self, method):
    length = int(self.headers.get("Content-Length") or 0)
    body = self.rfile.read(length) if length else None
    request = urllib.request.Request(
        self.server.upstream + self.path, data=body, method=method,
        headers={"Content-Type": self.headers.get("Content-Type",
                                                   "application/json")})
    try:
      with urllib.request.urlopen(request,
                                  timeout=self.server.timeout) as response:
        status, data = response.status, response.read()
        content_type = response.headers.get("Content-Type",
                                            "application/json")
    except urllib.error.HTTPError as error:
      # TF Serving's own errors ({"error": ...}) reach the page unchanged.
      status, data = error.code, error.read()
      content_type = error.headers.get("Content-Type", "application/json")
    except OSError as error:
      status, content_type = 502, "application/json"
      data = _json_error(
          f"cannot reach TF Serving at {self.server.upstream}: "
          f"{getattr(error, 'reason', error)}; is it running, and is "
          "--tf_serving its REST address?")
    send(self, status, content_type, data)

  def do_GET(self):  # pylint: disable=invalid-name
    if self.path.startswith("/v1/"):
      self._forward("GET")
      return
    found = static_file(self.path)
    if found is None:
      send(self, 404, "application/json",
           _json_error(f"no page at {self.path}: open /"))
    else:
      send(self, 200, *found)

  def do_POST(self):  # pylint: disable=invalid-name
    if self.path.startswith("/v1/"):
      self._forward("POST")
    else:
      send(self, 404, "application/json",
           _json_error(f"POST {self.path}: only /v1/ is forwarded"))

  def log_message(self, format, *args):  # pylint: disable=redefined-builtin
    if self.server.verbose:
      super().log_message(format, *args)


class ProxyServer(http.server.ThreadingHTTPServer):
  """Serves the page and forwards /v1/ to `upstream` (TF Serving's REST).

  Args:
    address: (host, port) to listen on; port 0 picks a free one.
    upstream: TF Serving's REST base URL, e.g. http://127.0.0.1:8501.
    timeout: seconds to wait for TF Serving's answer to one request.
    verbose: log every request to stderr.
  """

  daemon_threads = True
  allow_reuse_address = True

  def __init__(self, address, upstream, timeout=300, verbose=False):
    super().__init__(address, ProxyHandler)
    self.upstream = upstream.rstrip("/")
    self.timeout = timeout
    self.verbose = verbose


@dataclasses.dataclass
class Config:
  """One page server, as plain values (the flags, or a test's choice)."""
  tf_serving: str = cli.option(
      "http://127.0.0.1:8501",
      "TF Serving's REST base URL; /v1/ requests go there.")
  host: str = cli.option(
      "127.0.0.1", "Address to listen on; 0.0.0.0 exposes the page to the "
      "network.")
  port: int = cli.option(8080, "Port of the page; 0 picks a free one.")
  timeout: int = cli.option(300, "Seconds to wait for TF Serving's answer.")
  verbose: bool = cli.option(False, "Log every request to stderr.")

  def check(self):
    """Raises ValueError naming the bad value and what to do instead."""
    if not self.tf_serving.startswith(("http://", "https://")):
      raise ValueError(f"--tf_serving {self.tf_serving!r} is not an http(s) "
                       "URL: give TF Serving's REST base URL, e.g. "
                       "http://127.0.0.1:8501")
    if self.timeout < 1:
      raise ValueError(f"--timeout {self.timeout} must be at least 1")


def run(config):
  """Serves the page and forwards /v1/ until SIGTERM or Ctrl-C."""
  server = ProxyServer((config.host, config.port), config.tf_serving,
                       config.timeout, config.verbose)
  host, port = server.server_address[:2]
  signal.signal(signal.SIGTERM, lambda *_: threading.Thread(
      target=server.shutdown, daemon=True).start())
  print(f"inpainting page on http://{host}:{port}/ (model requests go to "
        f"{server.upstream})", flush=True)
  try:
    server.serve_forever()
  except KeyboardInterrupt:
    pass
  finally:
    server.server_close()
  print("page server stopped", file=sys.stderr, flush=True)


def main(argv):
  return cli.run_flags(Config, run)


if __name__ == "__main__":
  cli.define_flags(Config)
  app.run(main)
