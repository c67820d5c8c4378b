#!/usr/bin/env bash
# Assembles freely licensed photographs for training, outside git, from Debian packages (no other download).
# Usage: get_training_photos.sh [output dir, default ./out/photos]
# Reads examples/training_photos.tsv (package, path in the package, author, licence); writes the photos, the
# 7 sample images of examples/images, and LICENSES.tsv (one row per file) to the output dir. Needs apt-get
# (Debian or Ubuntu); `apt-get update` runs first when the package lists are missing. Nothing is installed:
# the .deb files are downloaded and unpacked in a temporary folder.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="$(realpath -m "${1:-$root/out/photos}")"
list="$root/examples/training_photos.tsv"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

packages=$(grep -v '^#' "$list" | tail -n +2 | cut -f1 | sort -u)
if ! apt-cache show $packages >/dev/null 2>&1; then
  echo "[photos] apt-get update (package lists missing)" >&2
  apt-get update -qq
fi
echo "[photos] downloading" $packages >&2
(cd "$work" && apt-get download -qq $packages 2>/dev/null)
for deb in "$work"/*.deb; do
  dpkg-deb -x "$deb" "$work/root"
done

mkdir -p "$out"
printf 'file\tsource\tauthor\tlicence\n' > "$out/LICENSES.tsv"
count=0
while IFS=$'\t' read -r package path author licence; do
  case "$package" in ''|'#'*|package) continue ;; esac
  name="$(basename "$path")"
  cp "$work/root/$path" "$out/$name"
  printf '%s\tDebian package %s, /%s\t%s\t%s\n' "$name" "$package" "$path" "$author" "$licence" >> "$out/LICENSES.tsv"
  count=$((count + 1))
done < "$list"
for sample in "$root"/examples/images/*.jpg; do
  printf '%s\texamples/images\tsee examples/LICENSE.md\tsee examples/LICENSE.md\n' "$(basename "$sample")" \
    >> "$out/LICENSES.tsv"
done
cp "$root"/examples/images/*.jpg "$out/"
echo "[photos] $count photographs + $(ls "$root"/examples/images/*.jpg | wc -l) sample images in $out (licences: $out/LICENSES.tsv)" >&2
