"""Seeded random generators, shared by the data, the Beam job and the demo.

A leaf module (numpy only): the image crops and the masks both draw from it,
and neither may import the other.
"""

import hashlib

import numpy as np


def seeded_rng(seed, *parts):
  """A numpy Generator determined by `seed` and any strings or ints in `parts`.

  Hashing (rather than `seed + index`) keeps the streams of neighbouring masks,
  kinds and splits independent.
  """
  text = ":".join(str(p) for p in (seed,) + parts)
  digest = hashlib.sha256(text.encode("utf-8")).digest()
  return np.random.default_rng(np.frombuffer(digest, dtype=np.uint32))
