"""Wall-clock timing shared by the benchmarks, so that they measure alike."""

import time

import numpy as np


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
