"""Serving benchmark: latency and throughput through the local REST server, and
the serving signature's overhead against the bare generator call.

    python -m bench.serving            # full: 256 and 512, 1 and 4 clients
    python -m bench.serving --quick    # smoke run: 128, 1 and 2 clients
    python -m bench.serving --export_dir out/export/lbam/1 --output_json b.json

Without --export_dir, a generator with random weights is exported to a
temporary folder (speed does not depend on the weights; the bare-model
comparison always uses random "head" weights). The server is
`serving.local_server` in a subprocess on a free loopback port, stopped at
the end whatever happens. Each client sends one image per request, one
request after another; latency is the client's wall time per request.

The overhead part runs in this process: `serving_default` on one encoded PNG
and mask (decode, checks, pad, generator, crop, composite, PNG encode) against
the generator alone on float tensors of the same size, both as graphs, and
the difference is the price of the signature's extra work.
"""

import concurrent.futures
import json
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from bench import timing  # noqa: E402
from lbam_tf import generator as generator_lib  # noqa: E402
from serving import client as client_lib  # noqa: E402
from serving import export  # noqa: E402
from serving import local_server  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("export_dir", None,
                    "An existing export (<model_base_path>/<version>); "
                    "default: export random weights to a temporary folder.")
flags.DEFINE_list("sizes", ["256", "512"], "Square image sizes.")
flags.DEFINE_list("clients", ["1", "4"], "Concurrent client counts.")
flags.DEFINE_integer("requests", 8, "Requests per client per setting.")
flags.DEFINE_integer("repeats", 5,
                     "Timed runs per size for the overhead measurement.")
flags.DEFINE_bool("quick", False,
                  "Smoke run: size 128, 1 and 2 clients, 2 requests, 2 "
                  "repeats (overrides the flags above).")
flags.DEFINE_string("output_json", None, "Also write the figures here.")


def _sample(size, seed=0):
  rng = np.random.default_rng(seed)
  image = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
  hole = np.zeros((size, size, 1), np.uint8)
  hole[size // 4:3 * size // 4, size // 4:3 * size // 4] = 255
  return image, hole


def _png(array):
  return tf.io.encode_png(array).numpy()


def _percentile(values, q):
  return float(np.percentile(np.asarray(values) * 1000.0, q))


def rest_load(port, size, clients, requests):
  """Latency p50/p99 (ms) and images/s for `clients` concurrent clients."""
  image, hole = _sample(size)
  image, hole = _png(image), _png(hole)
  rest = client_lib.RestClient(f"http://127.0.0.1:{port}", timeout=600)
  rest.inpaint([image], [hole])  # the first call at a size pays for tracing

  def one_client(_):
    latencies = []
    for _ in range(requests):
      start = time.perf_counter()
      rest.inpaint([image], [hole])
      latencies.append(time.perf_counter() - start)
    return latencies

  start = time.perf_counter()
  with concurrent.futures.ThreadPoolExecutor(clients) as pool:
    latencies = sum(pool.map(one_client, range(clients)), [])
  wall = time.perf_counter() - start
  return {"size": size, "clients": clients, "requests": len(latencies),
          "p50_ms": _percentile(latencies, 50),
          "p99_ms": _percentile(latencies, 99),
          "images_per_s": len(latencies) / wall}


def overhead(generator, signature, size, repeats):
  """serving_default vs the bare generator at one size, best of `repeats`."""
  image, hole = _sample(size)
  image_bytes = tf.constant([_png(image)])
  mask_bytes = tf.constant([_png(hole)])
  x = tf.constant(image[None].astype(np.float32) / 255.0)
  m = tf.constant((hole[None] == 0).astype(np.float32))

  @tf.function
  def bare(x, m):
    return generator({"image": x, "mask": m}, training=False)

  _, signature_s = timing.timed_seconds(lambda: signature(
      image_bytes=image_bytes, mask_bytes=mask_bytes,
      mask_polarity=tf.constant("white"))["image_bytes"].numpy(), repeats)
  _, bare_s = timing.timed_seconds(lambda: bare(x, m).numpy(), repeats)
  return {"size": size, "signature_ms": signature_s * 1000,
          "bare_model_ms": bare_s * 1000,
          "overhead_ms": (signature_s - bare_s) * 1000,
          "overhead_percent": 100 * (signature_s - bare_s) / bare_s}


def main(argv):
  del argv
  sizes = [int(s) for s in FLAGS.sizes]
  clients = [int(c) for c in FLAGS.clients]
  requests, repeats = FLAGS.requests, FLAGS.repeats
  if FLAGS.quick:
    sizes, clients, requests, repeats = [128], [1, 2], 2, 2

  with tempfile.TemporaryDirectory() as tmp:
    # The bare call's cost does not depend on the weights, so a fresh
    # generator stands in for an exported one.
    generator = generator_lib.build_generator()
    export_dir = FLAGS.export_dir
    if not export_dir:
      export_dir = os.path.join(tmp, "lbam", "1")
      export.export(generator, export_dir, warmup_sizes=())
    results = {"device": "cpu" if not tf.config.list_physical_devices("GPU")
               else "gpu", "rest": [], "overhead": []}
    with open(os.path.join(tmp, "server.log"), "w") as log, \
        local_server.subprocess_server(os.path.dirname(export_dir),
                                       log) as port:
      for size in sizes:
        for count in clients:
          row = rest_load(port, size, count, requests)
          results["rest"].append(row)
          print(f"REST {size}x{size} clients={count}: p50 "
                f"{row['p50_ms']:.0f} ms, p99 {row['p99_ms']:.0f} ms, "
                f"{row['images_per_s']:.2f} images/s", flush=True)
    signature = tf.saved_model.load(export_dir).signatures["serving_default"]
    for size in sizes:
      row = overhead(generator, signature, size, repeats)
      results["overhead"].append(row)
      print(f"overhead {size}x{size}: signature {row['signature_ms']:.0f} ms, "
            f"bare model {row['bare_model_ms']:.0f} ms, overhead "
            f"{row['overhead_ms']:.0f} ms ({row['overhead_percent']:.1f}%)",
            flush=True)
  if FLAGS.output_json:
    with open(FLAGS.output_json, "w") as f:
      json.dump(results, f, indent=2)


if __name__ == "__main__":
  app.run(main)
