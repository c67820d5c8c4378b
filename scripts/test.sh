#!/usr/bin/env bash
# The test command: sets up .venv, then runs the whole suite on the CPU.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/ensure_venv.sh" requirements-test.txt
bash "$root/scripts/ensure_browser.sh"  # tests/test_web.py drives Chromium
cd "$root"
# Whole files per worker (module fixtures built once), in conftest's order:
# the heavy files first.
exec .venv/bin/python -m pytest -n 2 --dist loadfile --no-loadscope-reorder "$@"
