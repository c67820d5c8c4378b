"""serving/client.py against servers that are absent or reply wrongly.

The well-behaved case runs against the real local server in
test_local_server.py.
"""

import base64
import http.server
import json
import os
import socket
import subprocess
import sys
import threading

import pytest

from lbam_tf.images import files as image_files
from serving import client

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class _ShortReplies(http.server.BaseHTTPRequestHandler):
  """Answers a predict request with one prediction fewer than it holds."""

  def do_POST(self):  # pylint: disable=invalid-name
    body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
    predictions = [{"b64": base64.b64encode(b"png %d" % i).decode("ascii")}
                   for i in range(len(body["instances"]) - 1)]
    reply = json.dumps({"predictions": predictions}).encode()
    self.send_response(200)
    self.send_header("Content-Type", "application/json")
    self.send_header("Content-Length", str(len(reply)))
    self.end_headers()
    self.wfile.write(reply)

  def log_message(self, *args):
    del args


@pytest.fixture
def short_server():
  server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ShortReplies)
  thread = threading.Thread(target=server.serve_forever, daemon=True)
  thread.start()
  try:
    yield f"http://127.0.0.1:{server.server_address[1]}"
  finally:
    server.shutdown()
    server.server_close()


def _files(folder, count):
  """`count` image/mask pairs; the client sends their bytes undecoded."""
  jobs = []
  for name in ("images", "masks"):
    (folder / name).mkdir()
    for i in range(count):
      (folder / name / f"{i}.png").write_bytes(b"%s %d" % (name.encode(), i))
  for i in range(count):
    jobs.append(image_files.Job(str(folder / "images" / f"{i}.png"),
                                str(folder / "masks" / f"{i}.png"),
                                str(folder / "out" / f"{i}.png")))
  return jobs


def test_short_reply_is_an_error_and_nothing_is_written(short_server,
                                                        tmp_path):
  jobs = _files(tmp_path, 3)
  rest = client.RestClient(short_server, timeout=30)
  with pytest.raises(client.ServerError,
                     match=r"sent 3 image\(s\) but the server returned 2 "
                     r"prediction\(s\)"):
    rest.inpaint([b"a", b"b", b"c"], [b"m", b"m", b"m"])
  # The batch is retried image by image; each reply is short again.
  written, failures = client.inpaint_files(rest, jobs, batch_size=3,
                                           progress=False)
  assert written == []
  assert [path for path, _ in failures] == [job.image for job in jobs]
  for _, message in failures:
    assert "sent 1 image(s) but the server returned 0" in message
  assert not (tmp_path / "out").exists()


def test_unreachable_server_exits_2_naming_it(tmp_path):
  with socket.socket() as probe:
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
  # Nothing listens on `port` once the probe is closed.
  (job,) = _files(tmp_path, 1)
  result = subprocess.run(
      [sys.executable, "-m", "serving.client", f"--image={job.image}",
       f"--mask={job.mask}", f"--output={job.output}",
       f"--server=http://127.0.0.1:{port}", "--timeout=30"],
      cwd=ROOT, capture_output=True, text=True, timeout=120)
  assert result.returncode == 2, result.stderr
  assert f"cannot reach http://127.0.0.1:{port}" in result.stderr
  assert "is the server running?" in result.stderr
  assert not os.path.exists(job.output)
