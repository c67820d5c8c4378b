"""Server processes for tests, benchmarks and scripts: start, wait, stop.

Whatever measures or probes a real server must start it on a free loopback
port, wait until it answers, and never leave it running.
"""

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_ports(count):
  """`count` distinct loopback ports that were free a moment ago."""
  sockets = [socket.socket() for _ in range(count)]
  try:
    for s in sockets:
      s.bind(("127.0.0.1", 0))
    return [s.getsockname()[1] for s in sockets]
  finally:
    for s in sockets:
      s.close()


def process_alive(pid):
  """Whether process `pid` exists (for a script that started the server)."""
  try:
    os.kill(pid, 0)
    return True
  except ProcessLookupError:
    return False


def wait_until_answers(port, is_alive, model_name="lbam", timeout=180):
  """Polls GET /v1/models/<model_name> on loopback until it answers.

  Args:
    port: the server's port.
    is_alive: () -> bool, False once the server process has exited.
    model_name: as the server's --model_name.
    timeout: seconds to wait.

  Returns:
    The model's status (TF Serving's model_version_status[0]).

  Raises:
    RuntimeError: the server exited, or did not answer within `timeout`.
  """
  deadline = time.monotonic() + timeout
  while True:
    try:
      with urllib.request.urlopen(
          f"http://127.0.0.1:{port}/v1/models/{model_name}", timeout=5) as r:
        return json.loads(r.read())["model_version_status"][0]
    except OSError:
      if not is_alive():
        raise RuntimeError("the server exited at start") from None
      if time.monotonic() > deadline:
        raise RuntimeError(
            f"the server did not answer on port {port} within {timeout} s"
        ) from None
      time.sleep(0.5)


@contextlib.contextmanager
def subprocess_server(model_base_path, log, args=(), timeout=180):
  """`serving_process`, yielding the port alone."""
  with serving_process(model_base_path, log, args, timeout) as (port, _):
    yield port


@contextlib.contextmanager
def serving_process(model_base_path, log, args=(), timeout=180):
  """`serving.local_server` in a child process on a free loopback port.

  For tests and benchmarks, which must measure or probe a real server and
  must never leave one running.

  Args:
    model_base_path: as --model_base_path.
    log: an open file receiving the child's stdout and stderr.
    args: more flags, e.g. ["--max_request_bytes=1024"] (not --model_name:
      the wait asks for the default name, lbam).
    timeout: seconds to wait for the first answer.

  Yields:
    (port, subprocess.Popen), once GET /v1/models/lbam answers. On exit the
    child is terminated, and killed if it has not stopped 20 s later.

  Raises:
    RuntimeError: the child exited, or did not answer within `timeout`; the
      message carries the end of its log.
  """
  port, = free_ports(1)
  server = subprocess.Popen(
      [sys.executable, "-m", "serving.local_server",
       f"--model_base_path={model_base_path}", f"--port={port}", *args],
      cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
  try:
    try:
      wait_until_answers(port, lambda: server.poll() is None, timeout=timeout)
    except RuntimeError as error:
      log.flush()
      with open(log.name) as f:
        tail = f.read()[-2000:]
      raise RuntimeError(f"{error}; {log.name} ends:\n{tail}") from None
    yield port, server
  finally:
    server.terminate()
    try:
      server.wait(timeout=20)
    except subprocess.TimeoutExpired:
      server.kill()
      server.wait(timeout=20)
