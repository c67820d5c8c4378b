"""A development stand-in for TF Serving's REST API, for machines without it.

    python -m serving.local_server --model_base_path out/export/lbam --port 8501

Serves the highest numeric version under `--model_base_path` with the same
URLs, JSON bodies and status codes as TF Serving's REST API (status,
metadata, `:predict` in row or column form, `{"error": ...}` bodies), so that
clients (`serving.client`, curl, the benchmark) work unchanged against
either; `GET /` is the inpainting page (`serving.web`). Not a production
server: no gRPC, reloading or batching, one Python process. Bounded against
any client: asyncio connections, a whole request within --request_timeout,
bodies of at most --max_request_bytes (Content-Length, no chunks), the model
on --workers threads, 503 past --max_connections; bad requests get a 4xx,
failures a generic 500, and none stops it. README.md, "Local server" and
"Limits and bad input", has the details.

The model side (which version, TF Serving's JSON encoding, predict and
metadata) is `serving.servable`; this module is the HTTP side and the
command line.
"""

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import http.client
import json
import os
import re
import signal
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
from absl import logging  # noqa: E402

from lbam_tf import cli  # noqa: E402
from serving import web  # noqa: E402
from serving.servable import latest_version  # noqa: E402
from serving.servable import RequestError  # noqa: E402
from serving.servable import Servable  # noqa: E402


_PATH = re.compile(
    r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>\d+))?"
    r"(?:(?P<metadata>/metadata)|:(?P<method>[a-z]+))?/?$")


#: Request line and header section: larger ones get 431.
MAX_HEADER_BYTES = 64 << 10
MAX_HEADERS = 100


class Server:
  """TF Serving's REST URLs over asyncio, answered by one `Servable`.

  Args:
    servable: the `Servable` to answer with.
    max_request_bytes: larger bodies get 413 (read and discarded, never
      held).
    workers: threads running requests; the model never sees more at once.
    request_timeout: seconds for a whole request (headers and body) to
      arrive, and for its answer to be taken; an idle keep-alive connection
      is closed after as long.
    max_connections: open connections; more are answered 503 and closed.
    verbose: log every request.

  At most `max_connections` requests are buffered, so memory stays under
  about `max_connections * max_request_bytes` beyond the model's own.
  """

  def __init__(self, servable, max_request_bytes=64 << 20, workers=4,
               request_timeout=30.0, max_connections=1000, verbose=False):
    self.servable = servable
    self.max_request_bytes = max_request_bytes
    self.request_timeout = request_timeout
    self.max_connections = max_connections
    self.verbose = verbose
    self.pool = concurrent.futures.ThreadPoolExecutor(
        workers, thread_name_prefix="predict")
    self.connections = 0

  def route(self, method, path, body):
    """(status, JSON-able body) for one request; runs on a worker thread."""
    try:
      return 200, self._route(method, path, body)
    except RequestError as error:
      return error.status, {"error": str(error)}
    except Exception:  # pylint: disable=broad-except
      # The client learns that it failed, the log learns why.
      logging.exception("internal error answering %s %s", method, path)
      return 500, {"error": "internal error: see the server's log"}

  def _route(self, method, path, body):
    found = _PATH.match(path.split("?")[0])
    servable = self.servable
    if not found:
      raise RequestError(f"Malformed request: {method} {path}", 404)
    if found["name"] != servable.name:
      raise RequestError(
          f"Servable not found for request: Latest({found['name']})", 404)
    servable.check_version(found["version"])
    if method == "GET" and found["method"] is None:
      return servable.metadata() if found["metadata"] else servable.status()
    if method == "POST" and found["method"] == "predict":
      return servable.predict(body)
    if method == "POST" and found["method"] in ("classify", "regress"):
      raise RequestError(f"{found['method']} is not supported by this model; "
                         "use :predict", 400)
    raise RequestError(f"Malformed request: {method} {path}", 404)

  async def _read_head(self, line, reader):
    """(method, path, version, headers) of a request from its first line."""
    parts = line.decode("latin-1").split()
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
      raise RequestError(f"malformed request line {line[:100]!r}")
    headers, size = {}, len(line)
    while True:
      line = await reader.readuntil(b"\r\n")
      size += len(line)
      if size > MAX_HEADER_BYTES or len(headers) > MAX_HEADERS:
        raise RequestError(
            f"the request's headers are above {MAX_HEADER_BYTES} bytes or "
            f"{MAX_HEADERS} lines", 431)
      if line == b"\r\n":
        return (*parts, headers)
      name, colon, value = line.decode("latin-1").partition(":")
      if not colon:
        raise RequestError(f"malformed header line {line[:100]!r}")
      name = name.strip().lower()
      if name in headers and headers[name] != value.strip():
        raise RequestError(f"header {name} is given twice, differently")
      headers[name] = value.strip()

  def _body_length(self, method, headers):
    """The declared body length, checked: a number, bounded, no chunks."""
    if "transfer-encoding" in headers:
      raise RequestError(
          "Transfer-Encoding is not supported: send the body with a "
          "Content-Length", 411)
    length = headers.get("content-length")
    if length is None:
      if method == "POST":
        raise RequestError("a POST needs a Content-Length header", 411)
      return 0
    if not length.isdigit():
      raise RequestError(
          f"Content-Length {length[:40]!r} is not a non-negative integer")
    return int(length)

  async def _read_request(self, line, reader):
    """(method, path, body, keep_alive) of the request starting with `line`.

    Raises RequestError with a 4xx, after which the connection closes, so
    that nothing left of a bad request is read as the next one.
    """
    method, path, version, headers = await self._read_head(line, reader)
    length = self._body_length(method, headers)
    if length > self.max_request_bytes:
      # Discarded in chunks, never held, while it keeps coming: a client
      # still sending gets the answer rather than a reset connection.
      remaining = length
      with contextlib.suppress(asyncio.TimeoutError):
        while remaining > 0:
          chunk = await asyncio.wait_for(
              reader.read(min(remaining, 1 << 20)), 1.0)
          if not chunk:
            break
          remaining -= len(chunk)
      raise RequestError(
          f"request of {length} bytes is above --max_request_bytes="
          f"{self.max_request_bytes}: send fewer or smaller images per "
          "request", 413)
    # Read for every method: a GET's body must not be taken for the next
    # request.
    body = await reader.readexactly(length)
    keep_alive = (version == "HTTP/1.1"
                  and headers.get("connection", "").lower() != "close")
    return method, path, body, keep_alive

  async def _reply(self, writer, status, body, keep_alive,
                   content_type="application/json"):
    """Writes a JSON-able `body`, or bytes of `content_type`."""
    data = (body if isinstance(body, bytes)
            else json.dumps(body).encode("utf-8"))
    phrase = http.client.responses.get(status, "")  # none for 499
    writer.write(
        f"HTTP/1.1 {status} {phrase}\r\nServer: lbam-local-serving\r\n"
        f"Content-Type: {content_type}\r\n"
        f"Content-Length: {len(data)}\r\n"
        f"Connection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n"
        .encode("latin-1") + data)
    await asyncio.wait_for(writer.drain(), self.request_timeout)

  async def _connection(self, reader, writer):
    """Serves one connection's requests in turn, then closes it."""
    self.connections += 1
    try:
      if self.connections > self.max_connections:
        await self._reply(writer, 503, {
            "error": f"the server has {self.max_connections} open "
                     "connections (--max_connections): retry later"}, False)
        return
      keep_alive = True
      while keep_alive:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.request_timeout
        try:
          try:
            line = await asyncio.wait_for(reader.readuntil(b"\r\n"),
                                          self.request_timeout)
          except (asyncio.IncompleteReadError, asyncio.TimeoutError):
            return  # the client is done, or idle too long
          request = await asyncio.wait_for(self._read_request(line, reader),
                                           deadline - loop.time())
        except RequestError as error:
          await self._reply(writer, error.status, {"error": str(error)},
                            False)
          return
        except asyncio.IncompleteReadError:
          return  # the client left mid-request: nobody to answer
        except asyncio.LimitOverrunError:
          await self._reply(writer, 431, {
              "error": f"a request or header line is above "
                       f"{MAX_HEADER_BYTES} bytes"}, False)
          return
        except asyncio.TimeoutError:
          await self._reply(writer, 408, {
              "error": f"the request did not arrive within "
                       f"{self.request_timeout:g} s (--request_timeout)"},
                            False)
          return
        method, path, body, keep_alive = request
        page = web.static_file(path) if method == "GET" else None
        if page:
          content_type, data = page
          await self._reply(writer, 200, data, keep_alive, content_type)
          continue
        status, answer = await loop.run_in_executor(
            self.pool, self.route, method, path, body)
        if self.verbose:
          logging.info("%s %s -> %d", method, path, status)
        await self._reply(writer, status, answer, keep_alive)
    except (ConnectionError, asyncio.TimeoutError):
      pass  # the client went away or stopped reading its answer
    finally:
      self.connections -= 1
      writer.close()

  async def serve(self, host, port, on_ready=None):
    """Serves until SIGTERM or SIGINT; `on_ready(host, port)` once bound."""
    server = await asyncio.start_server(self._connection, host, port,
                                        limit=MAX_HEADER_BYTES)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
      loop.add_signal_handler(signum, stop.set)
    if on_ready:
      on_ready(*server.sockets[0].getsockname()[:2])
    async with server:
      await stop.wait()
    self.pool.shutdown(wait=False, cancel_futures=True)


@dataclasses.dataclass
class Config:
  """One server, as plain values (the flags, or a test's choice)."""
  model_base_path: str | None = cli.option(
      None, "Folder of numeric version folders written by serving.export "
      "(e.g. out/export/lbam); the highest version is served.",
      required=True)
  model_name: str = cli.option(
      "lbam", "Model name in the URLs: /v1/models/<model_name>.")
  host: str = cli.option(
      "127.0.0.1", "Address to listen on; 0.0.0.0 exposes the server to the "
      "network.")
  port: int = cli.option(
      8501, "REST port (TF Serving's default is 8501); 0 picks a free one, "
      "printed at start.")
  max_request_bytes: int = cli.option(
      64 << 20, "Larger request bodies get HTTP 413; such a body is read and "
      "discarded, never held.")
  workers: int = cli.option(
      4, "Threads running requests on the model; complete requests beyond "
      "them wait their turn.")
  request_timeout: float = cli.option(
      30.0, "Seconds for a whole request (headers and body) to arrive, else "
      "HTTP 408; idle connections close after as long.")
  max_connections: int = cli.option(
      1000, "Open connections; more get HTTP 503. With --max_request_bytes "
      "it bounds buffered memory.")
  verbose: bool = cli.option(False, "Log every request to stderr.")

  def check(self):
    """Raises ValueError naming the bad value and what to do instead."""
    if not self.model_base_path:
      raise ValueError("--model_base_path is required")
    for name in ("max_request_bytes", "workers", "max_connections"):
      if getattr(self, name) < 1:
        raise ValueError(f"--{name} {getattr(self, name)} must be >= 1")
    if self.request_timeout <= 0:
      raise ValueError(f"--request_timeout {self.request_timeout} must be > 0")
    latest_version(self.model_base_path)


def run(config):
  """Loads the model and serves it until SIGTERM or SIGINT."""
  servable = Servable(config.model_base_path, config.model_name)
  server = Server(servable, config.max_request_bytes, config.workers,
                  config.request_timeout, config.max_connections,
                  config.verbose)

  def ready(host, port):
    print(f"serving {servable.name} version {servable.version} from "
          f"{servable.path} on http://{host}:{port}/v1/models/{servable.name} "
          "(development stand-in for TF Serving's REST API)", flush=True)
    print(f"inpainting page: http://{host}:{port}/", flush=True)

  asyncio.run(server.serve(config.host, config.port, ready))
  print("server stopped", file=sys.stderr, flush=True)


def main(argv):
  return cli.run_flags(Config, run)


if __name__ == "__main__":
  cli.define_flags(Config)
  app.run(main)
