#!/usr/bin/env bash
# Gathers the photographs bundled with scikit-learn and matplotlib: the project's reserved evaluation images,
# never trained on. Downloads the two wheels from PyPI (no install) and extracts the photos.
# Usage: get_eval_photos.sh [output dir, default ./out/eval_photos]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="$(realpath -m "${1:-$root/out/eval_photos}")"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
bash "$root/scripts/ensure_venv.sh"
"$root/.venv/bin/python" -m pip download --quiet --no-deps --only-binary=:all: -d "$work" scikit-learn matplotlib
mkdir -p "$out"
"$root/.venv/bin/python" - "$work" "$out" <<'PY'
import glob, os, sys, zipfile
work, out = sys.argv[1:]
wanted = ("sklearn/datasets/images/china.jpg",
          "sklearn/datasets/images/flower.jpg",
          "matplotlib/mpl-data/sample_data/grace_hopper.jpg")
for wheel in glob.glob(os.path.join(work, "*.whl")):
  with zipfile.ZipFile(wheel) as archive:
    for name in archive.namelist():
      if name in wanted:
        with open(os.path.join(out, os.path.basename(name)), "wb") as f:
          f.write(archive.read(name))
        print(f"[eval photos] {os.path.basename(name)} from "
              f"{os.path.basename(wheel)}", file=sys.stderr)
PY
