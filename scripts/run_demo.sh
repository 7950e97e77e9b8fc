#!/usr/bin/env bash
# The offline CPU demo: the bundled 32x32 demo models (ckpts/demo/) sample a 3x9 viewset (27 views of
# one scene, each conditioned on all earlier ones) for a few seeds, then every scene is fusion-rendered
# into a swing video. No network, no GPU; about 2-3 minutes on 2 CPU cores (see ckpts/demo/README.md).
#
#   bash scripts/run_demo.sh [OUTPUT_DIR]        # default OUTPUT_DIR: samples/demo
#
# Environment: PYTHON (default: python), SEEDS (default 0-3), STEPS_UNCOND (DDIM steps of G_u,
# default 100), STEPS_COND (DDIM steps of G_c per view, default 20), FRAMES (video frames, default 60),
# DEVICE (default: auto).
#
# Settings that differ from the sample.py / render.py defaults, and why (32x32 models):
#   --atol/--rtol 0.1, --erode_rgb 1: at 32x32 one pixel spans ~4x the depth change of a 128x128
#     pixel, so the 128x128 defaults (0.03, 3) mark almost every pixel as a depth edge and erode all
#     colour out of the conditions; these values keep ~50-70% of a neighbouring view conditioned.
#   --replace_rgb/--replace_depth 0.5: pull each new view's prediction harder towards what the earlier
#     views already show (the small G_c alone follows its condition only loosely).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${1:-samples/demo}"
PYTHON="${PYTHON:-python}"
SEEDS="${SEEDS:-0-3}"
STEPS_UNCOND="${STEPS_UNCOND:-100}"
STEPS_COND="${STEPS_COND:-20}"
FRAMES="${FRAMES:-60}"
DEVICE_ARGS=()
if [[ -n "${DEVICE:-}" ]]; then DEVICE_ARGS=(--device "$DEVICE"); fi
GEOMETRY=(--atol 0.1 --rtol 0.1 --erode_rgb 1)
cd "$REPO"

start=$(date +%s)
"$PYTHON" inference/sample.py --preset demo --viewset 3x9 --seeds "$SEEDS" --steps_uncond "$STEPS_UNCOND" \
    --steps_cond "$STEPS_COND" --replace_rgb 0.5 --replace_depth 0.5 "${GEOMETRY[@]}" --output_dir "$OUT" \
    "${DEVICE_ARGS[@]}"
run_dir="$OUT/viewset_3x9_steps_u${STEPS_UNCOND}_c${STEPS_COND}_guidance3.0"
sampled=$(date +%s)
"$PYTHON" inference/render.py --scene_dir "$run_dir/scenes" --frames "$FRAMES" "${GEOMETRY[@]}" "${DEVICE_ARGS[@]}"
# the models are 32x32, so are the rendered videos: add 256x256 copies for viewing (ffmpeg of imageio-ffmpeg)
FFMPEG="$("$PYTHON" -c 'import imageio_ffmpeg; print(imageio_ffmpeg.get_ffmpeg_exe())')"
mkdir -p "$run_dir/videos_256"
for video in "$run_dir"/videos/*.mp4; do
    "$FFMPEG" -loglevel error -y -i "$video" -vf scale=256:256:flags=bicubic -pix_fmt yuv420p \
        "$run_dir/videos_256/$(basename "$video")"
done
done_at=$(date +%s)

echo
echo "demo written to $run_dir"
echo "  grids/   3x9 grids of every sample (rows: pitch -0.15, 0, +0.15; columns: yaw +0.6 .. -0.6), RGB and depth"
echo "  conds/   what each view was conditioned on (colour and depth rendered from the earlier views)"
echo "  scenes/  every view's RGB, depth and camera (ivid.scene .npz)"
echo "  videos/  swing videos (colour and depth, 32x32, 60 frames at 30 fps) fused from all 27 views of each scene"
echo "  videos_256/  the same videos upscaled to 256x256 for viewing"
echo "time: sampling $((sampled - start)) s, rendering $((done_at - sampled)) s, total $((done_at - start)) s"
