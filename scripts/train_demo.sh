#!/usr/bin/env bash
# Train the bundled demo models (configs/demo_*.json) from scratch on the procedural toy
# dataset and export their EMA weights to ckpts/demo/ (see ckpts/demo/README.md).
#
#   bash scripts/train_demo.sh [RUNS_DIR]        # default RUNS_DIR: ../runs (outside the repo)
#
# Steps (each is skipped when its output already exists, so the script can be re-run to resume):
#   1. 5,000 32x32 RGBD toy images, 10 classes     -> RUNS_DIR/toy_demo
#   2. G_u and G_c trained concurrently, one single-threaded CPU process each
#                                                  -> RUNS_DIR/demo_uncond, RUNS_DIR/demo_cond
#   3. last EMA weights as float16 state dicts     -> ckpts/demo/uncond.pt, ckpts/demo/cond.pt
#   4. loss curves from both log.jsonl files       -> ckpts/demo/loss_curves.png
#
# Environment: PYTHON (default: python), THREADS (torch threads per training process, default 1),
# WEIGHTS (ema or model: which weights of the last checkpoint to export, default ema).
# On a GPU machine add DEVICE=cuda (both runs then share the GPU).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUNS="${1:-$REPO/../runs}"
PYTHON="${PYTHON:-python}"
THREADS="${THREADS:-1}"
WEIGHTS="${WEIGHTS:-ema}"
DEVICE_ARGS=()
if [[ -n "${DEVICE:-}" ]]; then DEVICE_ARGS=(--device "$DEVICE"); fi
cd "$REPO"
mkdir -p "$RUNS" ckpts/demo

# 1. dataset (deterministic: image i depends on (seed, i) only)
if [[ ! -f "$RUNS/toy_demo/dataset.json" ]]; then
    "$PYTHON" scripts/make_toy_dataset.py --output_dir "$RUNS/toy_demo" --num_images 5000 --image_size 32 \
        --layout imagenet --num_classes 10 --seed 0
fi

# 2. both models at once; a run folder that holds checkpoints is resumed by train.py
train() {  # train <name>
    OMP_NUM_THREADS="$THREADS" MKL_NUM_THREADS="$THREADS" "$PYTHON" train.py --config "configs/demo_$1.json" \
        --data_dir "$RUNS/toy_demo" --output_dir "$RUNS/demo_$1" --no_progress "${DEVICE_ARGS[@]}" \
        > "$RUNS/demo_$1.out" 2>&1
}
start=$(date +%s)
train uncond & pid_u=$!
train cond & pid_c=$!
status=0
wait "$pid_u" || status=$?
wait "$pid_c" || status=$?
echo "training took $(( $(date +%s) - start )) s (logs: $RUNS/demo_uncond.out, $RUNS/demo_cond.out)"
if [[ $status -ne 0 ]]; then echo "a training run failed (exit $status)" >&2; exit "$status"; fi

# 3. export the last checkpoint's weights of each run (bare state dicts; float16 halves the size and the
#    loaders cast every tensor to the model's dtype; the timestep frequencies stay float32, since
#    float16 rounding of t * freq would shift the time embedding by up to ~0.5 rad at t = 999)
"$PYTHON" - "$RUNS" "$WEIGHTS" <<'EOF'
import glob, os, sys
import torch
from ivid.utils.io import atomic_torch_save
runs, kind = sys.argv[1], {"ema": "ema_*", "model": "model"}[sys.argv[2]]
for name in ("uncond", "cond"):
    source = sorted(glob.glob(os.path.join(runs, f"demo_{name}", "ckpts", f"{kind}_step*.pt")))[-1]
    state = torch.load(source, map_location="cpu", weights_only=True)
    half = {k: v.half() if v.is_floating_point() and not k.endswith("freqs") else v
            for k, v in state.items()}
    atomic_torch_save(half, os.path.join("ckpts", "demo", f"{name}.pt"))
    print(f"{source} -> ckpts/demo/{name}.pt")
EOF

# 4. loss curves
"$PYTHON" scripts/plot_training_log.py --log "$RUNS/demo_uncond/log.jsonl" "$RUNS/demo_cond/log.jsonl" \
    --label "G_u (demo_uncond)" "G_c (demo_cond)" --output ckpts/demo/loss_curves.png
