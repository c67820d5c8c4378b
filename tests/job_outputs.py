"""Compares two output_dirs of pipeline.preprocess, for tests across runners."""

import glob
import json
import os


def files(out):
  """Paths of every file under `out`, relative to it, sorted."""
  return sorted(os.path.relpath(p, out)
                for p in glob.glob(os.path.join(out, "**", "*"), recursive=True)
                if os.path.isfile(p))


def assert_same_outputs(first, second):
  """Same file names, same bytes; manifest.json equal but for output_dir."""
  names = files(first)
  assert names == files(second)
  for name in names:
    with open(os.path.join(first, name), "rb") as a, \
        open(os.path.join(second, name), "rb") as b:
      one, other = a.read(), b.read()
    if name == "manifest.json":
      one, other = json.loads(one), json.loads(other)
      for manifest in (one, other):
        del manifest["flags"]["output_dir"]
    assert one == other, name
  return names
