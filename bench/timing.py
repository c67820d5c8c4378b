"""Wall-clock timing shared by the benchmarks, so that they measure alike."""

import time

import numpy as np
import tensorflow as tf


def timed_seconds(fn, repeats):
  """Calls fn once to warm up, then `repeats` times: (median, min) wall time.

  The warm-up pays for tracing and compilation. The median is the usual
  figure; the minimum is the least disturbed run when other processes share
  the cores.
  """
  fn()
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return float(np.median(times)), float(np.min(times))


def graph_flops(graph):
  """Float ops TF's profiler counts in a traced graph (Conv2D, MatMul, ...)."""
  options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
  options["output"] = "none"
  return tf.compat.v1.profiler.profile(graph, options=options).total_float_ops


def matmul_gflops(dtype, n, repeats):
  """Measured GFLOP/s of an n x n matmul, the practical compute limit."""
  a = tf.cast(tf.random.normal([n, n]), dtype)
  b = tf.cast(tf.random.normal([n, n]), dtype)
  matmul = tf.function(lambda: tf.matmul(a, b))
  seconds, _ = timed_seconds(lambda: matmul().numpy(), repeats)
  return 2 * n**3 / seconds / 1e9


def cpu_bfloat16_flags():
  """The CPU's bfloat16 features (Linux /proc/cpuinfo), e.g. "avx512_bf16".

  oneDNN runs bfloat16 convolutions and matmuls natively only with these;
  without them TF emulates bfloat16 and it is slower than float32.
  """
  try:
    with open("/proc/cpuinfo") as f:
      flags = next((line.split(":", 1)[1].split() for line in f
                    if line.startswith("flags")), [])
  except OSError:
    return ""
  return " ".join(sorted({f for f in flags if f in ("avx512_bf16",
                                                     "amx_bf16")}))
