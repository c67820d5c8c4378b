"""Generator forward latency on the CPU: Keras fp32, XLA, bf16 against PyTorch.

Times one forward pass of the LBAM generator (median of repeated runs, after
a warm-up that also compiles) at --size for each --batch_sizes on --threads
threads, with the FLOP count (TF's profiler), the achieved GFLOP/s and the
machine's measured matmul GFLOP/s (its practical limit) beside each figure.
--paths: torch (the PyTorch port in tests/torch_reference.py, the
yardstick), fp32, fp32_xla, mixed_bf16 (float32 weights, bfloat16 compute),
bf16 and bf16_xla (bfloat16 weights); each bf16 output is compared with fp32
by PSNR. Without --weights the weights are random but scaled like a trained
model's. README.md ("CPU latency") and BUILD_NOTES.md have the figures.

  .venv/bin/python bench/generator_latency.py           # a few minutes
  .venv/bin/python bench/generator_latency.py --quick   # smoke run
"""

import dataclasses
import functools
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Run as a script: the package and the PyTorch port live beside bench/.
_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [_REPO, os.path.join(_REPO, "tests")]

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import torch  # noqa: E402
import tqdm  # noqa: E402
from absl import app  # noqa: E402
from PIL import Image  # noqa: E402

import torch_reference  # noqa: E402
from bench import timing  # noqa: E402
from lbam_tf import cli  # noqa: E402
from lbam_tf.evaluation import metrics  # noqa: E402
from lbam_tf.weights import model_io  # noqa: E402
from lbam_tf.weights import reference_names  # noqa: E402

PATHS = ("torch", "fp32", "fp32_xla", "mixed_bf16", "bf16", "bf16_xla")



@dataclasses.dataclass(frozen=True)
class Config:
  """What to time; the flags of the same names."""
  quick: bool = cli.option(
      False, "Smoke run: 2 timed repeats and a smaller matmul probe. Figures "
      "are then rough; run without it on a quiet machine for the reported "
      "numbers.")
  repeats: int = cli.option(
      10, "Timed forward passes per path and batch size (after one "
      "warm-up); the median is reported. --quick sets 2.")
  batch_sizes: tuple = cli.option(("1", "4"), "Batch sizes to time.")
  size: int = cli.option(256, "Image height and width; a multiple of 128.")
  threads: int = cli.option(
      2, "Threads for TF (intra- and inter-op) and for torch.")
  paths: tuple = cli.option(
      PATHS, "Which implementations to time (repeat the flag for several).",
      choices=PATHS, multi=True)
  weights: str | None = cli.option(
      None, "Generator weights for load_generator (.pth, .npz, .weights.h5, "
      "model_dir). Default: random weights scaled like a trained model's.")
  seed: int = cli.option(0, "Seed of the random weights and the masks.")


def profiled_flops(generator, size):
  """Float ops of one size x size image, counted by TF's profiler."""
  spec = {"image": tf.TensorSpec([1, size, size, 3]),
          "mask": tf.TensorSpec([1, size, size, 1])}
  return timing.graph_flops(
      tf.function(lambda x: generator(x, training=False))
      .get_concrete_function(spec).graph)


def sample_inputs(batch, size, seed):
  """The bundled example photos, resized, with a centred hole and strokes."""
  folder = os.path.join(_REPO, "examples", "images")
  names = sorted(n for n in os.listdir(folder) if n.endswith(".jpg"))
  images = [np.asarray(Image.open(os.path.join(folder, names[i % len(names)]))
                       .convert("RGB").resize((size, size)), np.float32) / 255
            for i in range(batch)]
  rng = np.random.default_rng(seed)
  masks = np.ones((batch, size, size, 1), np.float32)
  quarter = size // 4
  masks[:, quarter:3 * quarter, quarter:2 * quarter] = 0.0
  for mask in masks:
    for _ in range(4):
      row, col = rng.integers(0, size - 8, 2)
      mask[row:row + 8, col:] = 0.0
  return np.stack(images), masks


def reference_generator(config):
  if config.weights:
    return model_io.load_generator(config.weights)
  weights = torch_reference.random_state_dict(
      torch_reference.Generator("head"), seed=config.seed)
  return reference_names.generator_from_torch_state_dict(weights)


def forward_fns(fp32_generator, paths):
  """{path: function(image, mask) -> float32 numpy output} for `paths`."""
  fns = {}

  def keras_fn(generator, jit_compile):
    call = tf.function(lambda x: generator(x, training=False),
                       jit_compile=jit_compile)
    return lambda image, mask: call(
        {"image": tf.constant(image), "mask": tf.constant(mask)}).numpy()

  if "torch" in paths:
    options = reference_names.generator_options(fp32_generator)
    model = torch_reference.load_numpy_state_dict(
        torch_reference.Generator(options["variant"]).eval(),
        reference_names.generator_to_torch_state_dict(fp32_generator))
    fns["torch"] = functools.partial(torch_reference.nhwc_output, model)
  if "fp32" in paths:
    fns["fp32"] = keras_fn(fp32_generator, False)
  if "fp32_xla" in paths:
    fns["fp32_xla"] = keras_fn(fp32_generator, True)
  if "mixed_bf16" in paths:
    fns["mixed_bf16"] = keras_fn(
        model_io.with_dtype_policy(fp32_generator, "mixed_bfloat16"), False)
  bf16 = None
  if "bf16" in paths or "bf16_xla" in paths:
    bf16 = model_io.with_dtype_policy(fp32_generator, "bfloat16")
  if "bf16" in paths:
    fns["bf16"] = keras_fn(bf16, False)
  if "bf16_xla" in paths:
    fns["bf16_xla"] = keras_fn(bf16, True)
  return fns


def main(argv):
  config = cli.from_flags(Config, argv)
  # Thread pools are fixed when TF first runs an op: set them before any.
  tf.config.threading.set_intra_op_parallelism_threads(config.threads)
  tf.config.threading.set_inter_op_parallelism_threads(config.threads)
  torch.set_num_threads(config.threads)
  tf.get_logger().setLevel("ERROR")  # the v1 profiler's deprecation notes
  repeats = 2 if config.quick else config.repeats
  batch_sizes = [int(b) for b in config.batch_sizes]

  matmul_n = 1024 if config.quick else 2048
  limits = {"fp32": timing.matmul_gflops(tf.float32, matmul_n, repeats + 1),
            "bf16": timing.matmul_gflops(tf.bfloat16, matmul_n, repeats + 1)}
  # Other processes inflate every figure: the load shows how quiet it was.
  print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs; "
        f"threads {config.threads}; matmul {matmul_n}x{matmul_n}: "
        f"{limits['fp32']:.0f} GFLOP/s float32, {limits['bf16']:.0f} GFLOP/s "
        f"bfloat16 (the limits)")

  fp32_generator = reference_generator(config)
  flops = profiled_flops(fp32_generator, config.size)
  print(f"generator {reference_names.generator_options(fp32_generator)}, "
        f"{config.size}x{config.size}: {flops / 1e9:.2f} GFLOP per image "
        f"(TF profiler), {repeats} timed repeats, median")

  fns = forward_fns(fp32_generator, config.paths)
  results = {}
  runs = [(path, batch) for batch in batch_sizes for path in fns]
  for path, batch in tqdm.tqdm(runs, desc="timing", unit="run"):
    image, mask = sample_inputs(batch, config.size, config.seed)
    seconds, fastest = timing.timed_seconds(lambda: fns[path](image, mask),
                                            repeats)
    results[path, batch] = (seconds, fastest, fns[path](image, mask))

  header = (f"{'path':<11}{'batch':>6}{'median s':>10}{'min s':>8}"
            f"{'s/image':>9}"
            f"{'GFLOP/s':>9}{'% limit':>8}{'vs torch':>9}  output vs fp32")
  print(header)
  for (path, batch), (seconds, fastest, output) in results.items():
    gflops = flops * batch / seconds / 1e9
    limit = limits["bf16" if "bf16" in path else "fp32"]
    torch_seconds = results.get(("torch", batch), (None,))[0]
    speedup = (f"{torch_seconds / seconds:.2f}x" if torch_seconds else "-")
    reference = results.get(("fp32", batch), (None, None, None))[2]
    if reference is None or path == "fp32":
      versus = "-"
    elif "bf16" in path:
      psnr = float(np.mean(metrics.psnr(output, reference)))
      versus = f"PSNR {psnr:.1f} dB"
    else:
      versus = f"max abs diff {np.abs(output - reference).max():.1e}"
    print(f"{path:<11}{batch:>6}{seconds:>10.3f}{fastest:>8.3f}"
          f"{seconds / batch:>9.3f}"
          f"{gflops:>9.1f}{100 * gflops / limit:>7.0f}%{speedup:>9}  {versus}")


if __name__ == "__main__":
  cli.define_flags(Config)
  app.run(main)
