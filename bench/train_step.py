r"""Seconds per G+D training step (VGG losses) against the FLOP limit.

  python -m bench.train_step            # batch 4, 256 and 128, fp32 and bf16
  python -m bench.train_step --quick    # smoke: 128, batch 1, fp32, 1 step

For each crop size and precision it prints the measured seconds per
`LbamGan.train_step`, the step's floating-point operations as TF's profiler
counts them in the traced step graph (every Conv2D/MatMul forward, backward,
and the gradient penalty's double backward), the machine's measured dense
matmul rate in that precision, and the ratio measured / (FLOPs / rate): how
many times slower the step runs than its arithmetic at matmul speed would.
"""

import dataclasses
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app  # noqa: E402

from bench import timing  # noqa: E402
from lbam_tf import cli  # noqa: E402
from lbam_tf.model import critic  # noqa: E402
from lbam_tf.model import generator  # noqa: E402
from lbam_tf.model import vgg  # noqa: E402
from lbam_tf.training import gan  # noqa: E402
from lbam_tf.training import losses  # noqa: E402



@dataclasses.dataclass(frozen=True)
class Config:
  """What to time; the flags of the same names."""
  quick: bool = cli.option(
      False, "Smoke run: 128 crop, batch 1, fp32, 1 step.")
  batch_size: int = cli.option(4, "Global batch per step.")
  crop_sizes: tuple = cli.option(("256", "128"), "Crop sides to time.")
  precisions: tuple = cli.option(("float32", "mixed_bfloat16"),
                                 "Keras dtype policies to time.")
  threads: int = cli.option(2, "TF intra- and inter-op threads.")
  steps: int = cli.option(
      3, "Timed steps after one warm-up step (median).")
  matmul_size: int = cli.option(2048, "Side of the square matmul timed.")


def time_step(crop, batch_size, policy, steps):
  """(seconds per step, GFLOP per step) for one configuration."""
  keras.mixed_precision.set_global_policy(policy)
  keras.utils.set_random_seed(0)
  model = gan.LbamGan(generator.build_generator(), critic.build_critic(),
                      vgg.build_feature_extractor("none"),
                      losses.PRESETS["reference"], global_batch_size=batch_size)
  model.compile(gan.make_optimizer(1e-4, 0.5, 0.9),
                gan.make_optimizer(1e-5, 0.0, 0.9))
  model.build_optimizers()
  rng = np.random.default_rng(0)
  mask = np.ones((batch_size, crop, crop, 1), np.float32)
  mask[:, crop // 4:crop // 2, crop // 4:3 * crop // 4] = 0.0
  batch = {"image": tf.constant(rng.uniform(size=(batch_size, crop, crop, 3)),
                                tf.float32),
           "mask": tf.constant(mask)}
  train_step = tf.function(model.train_step)
  flops = timing.graph_flops(train_step.get_concrete_function(batch).graph)
  seconds, _ = timing.timed_seconds(
      lambda: train_step(batch)["generator_loss"].numpy(), steps)
  return seconds, flops / 1e9


def main(argv):
  del argv
  config = cli.from_flags(Config)
  tf.config.threading.set_intra_op_parallelism_threads(config.threads)
  tf.config.threading.set_inter_op_parallelism_threads(config.threads)
  if config.quick:
    crops, precisions, batch, steps, size = [128], ["float32"], 1, 1, 512
  else:
    crops = [int(c) for c in config.crop_sizes]
    precisions, batch, steps = config.precisions, config.batch_size, config.steps
    size = config.matmul_size
  rates = {p: timing.matmul_gflops(
                tf.bfloat16 if "bfloat16" in p else tf.float32, size, 5)
           for p in precisions}
  rate_text = ", ".join(f"{p} {r:.1f} GFLOP/s" for p, r in rates.items())
  print(f"{config.threads} threads, batch {batch}; matmul {size}^2: {rate_text}")
  print(f"{'crop':>5} {'precision':>15} {'s/step':>8} {'GFLOP/step':>11} "
        f"{'limit s':>8} {'ratio':>6}")
  for crop in crops:
    for policy in precisions:
      seconds, gflop = time_step(crop, batch, policy, steps)
      limit = gflop / rates[policy]
      print(f"{crop:>5} {policy:>15} {seconds:>8.2f} {gflop:>11.1f} "
            f"{limit:>8.2f} {seconds / limit:>6.1f}")


if __name__ == "__main__":
  cli.define_flags(Config)
  app.run(main)
