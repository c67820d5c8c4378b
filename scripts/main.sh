#!/usr/bin/env bash
# The main job: the whole pipeline on the sample images in examples/images, from nothing.
#   Beam preprocessing -> short cpu_small training -> SavedModel export -> local TF Serving stand-in on
#   loopback -> samples inpainted through the REST client -> side-by-side PNGs -> server stopped.
# Usage: bash scripts/main.sh [output dir, default ./out]
# Environment: LBAM_TRAIN_STEPS (default 300), LBAM_PORT (default 8501), LBAM_NUM_MASKS (default 600),
#   LBAM_KEEP_SERVING=1 (keep the server and its inpainting page up at the end until Ctrl-C).
# About 10 minutes on 2 CPU cores, most of it training the cpu_fast recipe: the fills follow the surrounding
# colours and edges, blurry as a few hundred L1 steps make them, not the paper's quality.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="$(realpath -m "${1:-$root/out}")"
steps="${LBAM_TRAIN_STEPS:-300}"
port="${LBAM_PORT:-8501}"
num_masks="${LBAM_NUM_MASKS:-600}"
keep_serving="${LBAM_KEEP_SERVING:-0}"

bash "$root/scripts/ensure_venv.sh"
cd "$root"
py="$root/.venv/bin/python"
export TF_CPP_MIN_LOG_LEVEL=2
step() { echo "[main $(date -u +%H:%M:%S)] $*" >&2; }

# Each run starts clean, so the outputs always come from this run.
rm -rf "$out/data" "$out/model" "$out/export" "$out/demo" "$out/server.log"
mkdir -p "$out"

step "1/6 Beam preprocessing of examples/images/*.jpg into $out/data"
"$py" -m pipeline.preprocess --input_pattern 'examples/images/*.jpg' --output_dir "$out/data" \
  --num_masks "$num_masks" --crops_per_image 16 --val_fraction 0.2  # 7 images: make sure val gets some

step "2/6 training cpu_fast for $steps steps into $out/model (no VGG weights can be downloaded here)"
"$py" -m lbam_tf.train --preset cpu_fast --data_dir "$out/data" --model_dir "$out/model" \
  --train_steps "$steps" --vgg_weights none

step "3/6 export to $out/export/lbam/1"
"$py" -m serving.export --weights "$out/model" --export_dir "$out/export/lbam/1"

step "4/6 local TF Serving stand-in on 127.0.0.1:$port (log: $out/server.log)"
"$py" -m serving.local_server --model_base_path "$out/export/lbam" --port "$port" \
  >"$out/server.log" 2>&1 &
server=$!
stop_server() {
  if kill -0 "$server" 2>/dev/null; then
    kill "$server"
    wait "$server" 2>/dev/null || true
    step "server stopped"
  fi
}
trap stop_server EXIT
"$py" -c 'import sys; from serving import processes as s; pid = int(sys.argv[2])
print(s.wait_until_answers(int(sys.argv[1]), lambda: s.process_alive(pid)), file=sys.stderr)' \
  "$port" "$server" || { tail -20 "$out/server.log" >&2; exit 1; }
step "inpainting page: http://127.0.0.1:$port/ (open it while the server runs; LBAM_KEEP_SERVING=1 keeps it up)"

step "5/6 inpainting the samples through the REST client"
"$py" -m serving.demo --mode masks --image_dir examples/images --mask_dir "$out/demo/masks"
"$py" -m serving.client --image examples/images --mask "$out/demo/masks" \
  --output "$out/demo/inpainted" --server "http://127.0.0.1:$port" --batch_size 2

step "6/6 side-by-side PNGs (input | mask | output)"
"$py" -m serving.demo --mode side_by_side --image_dir examples/images --mask_dir "$out/demo/masks" \
  --output_dir "$out/demo/inpainted" --side_by_side "$out/demo/side_by_side.png"

if [ "$keep_serving" = 1 ]; then
  step "done: $out/demo/side_by_side.png; the inpainting page stays at http://127.0.0.1:$port/ until Ctrl-C"
  wait "$server" || true
  exit 0
fi
stop_server
trap - EXIT
step "done: $out/demo/side_by_side.png (rows: input | mask | output), per image in $out/demo/side_by_side/"
