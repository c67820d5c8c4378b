#!/usr/bin/env bash
# Installs headless Chromium and its WebDriver from the distribution's packages,
# only when missing: the browser test (tests/test_web.py) drives them. Needs
# root (CI runs as root); without root it says what to install by hand.
set -euo pipefail
if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "[setup] chromium and chromium-driver are missing and this is not root:" \
    "install them (apt-get install chromium chromium-driver) or the browser" \
    "test is skipped" >&2
  exit 0
fi
echo "[setup] installing chromium and chromium-driver (Debian packages)" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
