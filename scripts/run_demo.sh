#!/usr/bin/env bash
# The offline CPU demo: the bundled 32x32 demo models (ckpts/demo/) sample a 3x9 viewset (27 views of
# one scene, each conditioned on all earlier ones) for seeds 0-3, then every scene is fusion-rendered
# into a swing video. No network, no GPU; about 1.5 minutes on 2 CPU cores (see ckpts/demo/README.md).
#
#   bash scripts/run_demo.sh [OUTPUT_DIR]        # default OUTPUT_DIR: samples/demo
#
# It runs `inference/sample.py --preset demo` and `inference/render.py --preset demo`; the presets'
# defaults (steps, tolerances, video size) are in ivid/sampling/presets.py. Environment overrides:
# PYTHON (default: python), SEEDS, STEPS_UNCOND, STEPS_COND, FRAMES, DEVICE (default: auto).
set -euo pipefail
# One CPU thread unless you choose (OMP_NUM_THREADS): the 32x32 demo models are too small for a second
# thread to pay for waking it, one thread slows down least on a machine shared with other jobs, and
# the demo's files are then the same on every machine (docs/performance.md#cpu-threads).
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${1:-samples/demo}"
PYTHON="${PYTHON:-python}"
SAMPLE=(--preset demo --viewset 3x9 --output_dir "$OUT")
RENDER=(--preset demo)
if [[ -n "${SEEDS:-}" ]]; then SAMPLE+=(--seeds "$SEEDS"); fi
if [[ -n "${STEPS_UNCOND:-}" ]]; then SAMPLE+=(--steps_uncond "$STEPS_UNCOND"); fi
if [[ -n "${STEPS_COND:-}" ]]; then SAMPLE+=(--steps_cond "$STEPS_COND"); fi
if [[ -n "${FRAMES:-}" ]]; then RENDER+=(--frames "$FRAMES"); fi
if [[ -n "${DEVICE:-}" ]]; then SAMPLE+=(--device "$DEVICE"); RENDER+=(--device "$DEVICE"); fi
cd "$REPO"

start=$(date +%s)
printed=$("$PYTHON" inference/sample.py "${SAMPLE[@]}")
echo "$printed"
run_dir=$(sed -n 's/^samples written to //p' <<<"$printed" | tail -n 1)
sampled=$(date +%s)
"$PYTHON" inference/render.py "${RENDER[@]}" --scene_dir "$run_dir/scenes"
done_at=$(date +%s)

echo
echo "demo written to $run_dir"
echo "  grids/   3x9 grids of every sample (rows: pitch -0.15, 0, +0.15; columns: yaw +0.6 .. -0.6), RGB and depth"
echo "  conds/   what each view was conditioned on (colour and depth rendered from the earlier views)"
echo "  scenes/  every view's RGB, depth and camera (ivid.scene .npz)"
echo "  videos/  swing videos (colour and depth, upscaled to 256x256, 60 frames at 30 fps) fused from all 27 views"
echo "time: sampling $((sampled - start)) s, rendering $((done_at - sampled)) s, total $((done_at - start)) s"
