#!/usr/bin/env bash
# Creates .venv in the repository root from nothing, or updates it when the requirements changed.
# Usage: ensure_venv.sh [requirements file, default requirements.txt]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
reqs="$root/${1:-requirements.txt}"
stamp="$venv/.installed-$(basename "$reqs").sha256"
want="$(cat "$root/requirements.txt" "$reqs" | sha256sum | cut -d' ' -f1)"
if [ ! -x "$venv/bin/python" ]; then
  echo "[setup] creating $venv" >&2
  python3.11 -m venv "$venv" 2>/dev/null || python3 -m venv "$venv"
fi
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
  echo "[setup] installing $(basename "$reqs") into $venv (first time: a few minutes)" >&2
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  "$venv/bin/python" -m pip install --quiet -r "$reqs"
  echo "$want" > "$stamp"
fi
