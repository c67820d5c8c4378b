"""Serving benchmark: the float32 and bfloat16 exports through the local REST
server in one run, their outputs compared, and the signature's overhead.

    python -m bench.serving            # full: 256 and 512, 1 and 4 clients
    python -m bench.serving --quick    # smoke run: 128, 1 and 2 clients
    python -m bench.serving --weights out/model --output_json b.json

The same weights (`--weights`, or random ones scaled like a trained model's)
are exported once per `--precisions` and each export is served by
`serving.local_server` in a subprocess on a free loopback port. Clients send
one example photo (resized, a centred square hole) per request, one request
after another: latency p50/p99 and images/s per setting. Each export's PNGs
are compared with the first one's by PSNR over the hole pixels. In this
process, `serving_default` on one PNG is timed against the bare generator on
float tensors: the signature's overhead. README.md ("Benchmark") and
BUILD_NOTES.md have the figures.
"""

import concurrent.futures
import dataclasses
import json
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.append(os.path.join(_REPO, "tests"))  # the random trained-like weights

from absl import app  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402
import tensorflow as tf  # noqa: E402

from bench import timing  # noqa: E402
from lbam_tf import cli  # noqa: E402
from lbam_tf.inference import module as inference  # noqa: E402
from lbam_tf.inference import signatures  # noqa: E402
from lbam_tf.weights import model_io  # noqa: E402
from lbam_tf.weights import reference_names  # noqa: E402
from serving import client as client_lib  # noqa: E402
from serving import export  # noqa: E402
from serving import processes



@dataclasses.dataclass(frozen=True)
class Config:
  """What to measure; the flags of the same names."""
  weights: str | None = cli.option(
      None, "Generator weights (anything serving.export --weights takes); "
      "default: random weights scaled like a trained model's.")
  precisions: tuple = cli.option(
      tuple(model_io.PRECISION_POLICIES), "Exports to compare, as "
      "serving.export --precision; the first is the reference of the PSNR "
      "and the speed-ups.")
  sizes: tuple = cli.option(("256", "512"), "Square image sizes.")
  clients: tuple = cli.option(("1", "4"), "Concurrent client counts.")
  requests: int = cli.option(8, "Requests per client per setting.")
  repeats: int = cli.option(
      5, "Timed runs per size for the overhead measurement.")
  quick: bool = cli.option(
      False, "Smoke run: size 128, 1 and 2 clients, 2 requests, 2 repeats "
      "(overrides the flags above).")
  output_json: str | None = cli.option(None, "Also write the figures here.")

  def check(self):
    """Raises ValueError naming the bad value."""
    for precision in self.precisions:
      if precision not in model_io.PRECISION_POLICIES:
        raise ValueError(f"--precisions {precision} is not one of "
                         f"{sorted(model_io.PRECISION_POLICIES)}")


def photos(size):
  """The example photos resized to size x size, and one centred hole."""
  folder = os.path.join(_REPO, "examples", "images")
  images = [np.asarray(Image.open(os.path.join(folder, name)).convert("RGB")
                       .resize((size, size), Image.BICUBIC))
            for name in sorted(os.listdir(folder)) if name.endswith(".jpg")]
  hole = np.zeros((size, size, 1), np.uint8)
  hole[size // 4:3 * size // 4, size // 4:3 * size // 4] = 255
  return images, hole


def _png(array):
  return tf.io.encode_png(array).numpy()


def _percentile(values, q):
  return float(np.percentile(np.asarray(values) * 1000.0, q))


def rest_load(rest, size, clients, requests):
  """Latency p50/p99 (ms) and images/s for `clients` concurrent clients."""
  images, hole = photos(size)
  image, hole = _png(images[0]), _png(hole)
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


def served_photos(rest, size):
  """uint8 [N, size, size, 3]: every example photo inpainted by the server."""
  images, hole = photos(size)
  return np.stack([tf.io.decode_png(rest.inpaint([_png(x)], [_png(hole)])[0])
                   .numpy() for x in images])


def hole_psnr(output, reference, size):
  """PSNR (dB) over the hole pixels of all images together."""
  hole = photos(size)[1][..., 0] > 0
  error = np.mean((output[:, hole].astype(np.float64)
                   - reference[:, hole]) ** 2)
  return float(10 * np.log10(255.0**2 / error)) if error else float("inf")


def overhead(generator, signature, size, repeats):
  """serving_default vs the bare generator at one size, best of `repeats`."""
  images, hole = photos(size)
  image_bytes = tf.constant([_png(images[0])])
  mask_bytes = tf.constant([_png(hole)])
  x = tf.constant(images[0][None].astype(np.float32) / 255.0)
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


def load_weights(weights):
  if weights:
    return model_io.load_generator(weights)
  import torch_reference  # pylint: disable=g-import-not-at-top
  return reference_names.generator_from_torch_state_dict(
      torch_reference.random_state_dict(torch_reference.Generator("head"),
                                        seed=0))


def main(argv):
  del argv
  config = cli.from_flags(Config)
  sizes = [int(s) for s in config.sizes]
  clients = [int(c) for c in config.clients]
  requests, repeats = config.requests, config.repeats
  if config.quick:
    sizes, clients, requests, repeats = [128], [1, 2], 2, 2
  precisions = config.precisions
  # Shared cores inflate every figure, and bfloat16 is fast only with
  # AVX512_BF16 / AMX: both are printed beside the figures.
  print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs; "
        f"CPU bfloat16 support: {timing.cpu_bfloat16_flags() or 'none'}",
        flush=True)

  generator = load_weights(config.weights)
  results = {"device": "cpu" if not tf.config.list_physical_devices("GPU")
             else "gpu", "cpu_bfloat16_flags": timing.cpu_bfloat16_flags(),
             "rest": [], "psnr": [], "overhead": []}
  served = {}
  with tempfile.TemporaryDirectory() as tmp:
    for precision in precisions:
      export_dir = os.path.join(tmp, precision, "lbam", "1")
      export.export(generator, export_dir, warmup_sizes=(),
                    precision=precision)
      with open(os.path.join(tmp, f"{precision}.log"), "w") as log, \
          processes.subprocess_server(os.path.dirname(export_dir),
                                      log) as port:
        rest = client_lib.RestClient(f"http://127.0.0.1:{port}", timeout=600)
        for size in sizes:
          for count in clients:
            row = {"precision": precision,
                   **rest_load(rest, size, count, requests)}
            results["rest"].append(row)
            print(f"REST {precision} {size}x{size} clients={count}: p50 "
                  f"{row['p50_ms']:.0f} ms, p99 {row['p99_ms']:.0f} ms, "
                  f"{row['images_per_s']:.2f} images/s", flush=True)
          served[precision, size] = served_photos(rest, size)

    for precision in precisions[1:]:
      for size in sizes:
        row = {"precision": precision, "reference": precisions[0],
               "size": size, "images": len(served[precision, size]),
               "hole_psnr_db": hole_psnr(served[precision, size],
                                         served[precisions[0], size], size)}
        results["psnr"].append(row)
        print(f"{precision} vs {precisions[0]} {size}x{size}: PSNR "
              f"{row['hole_psnr_db']:.1f} dB over the holes of "
              f"{row['images']} photos", flush=True)
    print("images/s against " + precisions[0] + " (same run):")
    by_key = {(r["precision"], r["size"], r["clients"]): r["images_per_s"]
              for r in results["rest"]}
    for precision, size, count in by_key:
      if precision == precisions[0]:
        continue
      base = by_key[precisions[0], size, count]
      print(f"  {precision} {size}x{size} clients={count}: "
            f"{by_key[precision, size, count] / base:.2f}x")

    for precision in precisions:
      model = model_io.with_dtype_policy(
          generator, model_io.PRECISION_POLICIES[precision])
      signature = inference.Export(os.path.join(
          tmp, precision, "lbam", "1")).signatures[
              signatures.SERVING_SIGNATURE]
      for size in sizes:
        row = {"precision": precision,
               **overhead(model, signature, size, repeats)}
        results["overhead"].append(row)
        print(f"overhead {precision} {size}x{size}: signature "
              f"{row['signature_ms']:.0f} ms, bare model "
              f"{row['bare_model_ms']:.0f} ms, overhead "
              f"{row['overhead_ms']:.0f} ms ({row['overhead_percent']:.1f}%)",
              flush=True)
  if config.output_json:
    with open(config.output_json, "w") as f:
      json.dump(results, f, indent=2)


if __name__ == "__main__":
  cli.define_flags(Config)
  app.run(main)
