#!/usr/bin/env bash
# Train the bundled demo models (configs/demo_*.json) on the procedural toy dataset and export their EMA
# weights to ckpts/demo/ (see ckpts/demo/README.md).
#
#   bash scripts/train_demo.sh [RUNS_DIR]        # default RUNS_DIR: ../runs (outside the repo)
#
# Steps (a run folder that already holds checkpoints is resumed, so the script can be re-run):
#   1. 5,000 32x32 RGBD toy images, 10 classes     -> RUNS_DIR/toy_demo
#   2. G_u from scratch (8,000 steps)               -> RUNS_DIR/demo_uncond, exported to ckpts/demo/uncond.pt
#   3. G_c from scratch, 24,000 steps, warp tolerances 0.1 and erosion <= 3 (suited to 32 px; with the
#      released 0.02 a 32 px condition keeps too few pixels and G_c learns to ignore it)
#                                                  -> RUNS_DIR/demo_cond, exported to ckpts/demo/cond.pt
#   4. loss and condition-usage curves from both log.jsonl files -> ckpts/demo/loss_curves.png
#
# Environment: PYTHON (default: python), THREADS (torch threads per training process, default 1),
# WEIGHTS (ema or model: which weights of G_u's last checkpoint to export, default ema), WEIGHTS_COND (the
# same for G_c, default ema), ONLY (uncond or cond: train just that model).
# On a GPU machine add DEVICE=cuda.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUNS="${1:-$REPO/../runs}"
PYTHON="${PYTHON:-python}"
THREADS="${THREADS:-1}"
WEIGHTS="${WEIGHTS:-ema}"
WEIGHTS_COND="${WEIGHTS_COND:-ema}"
ONLY="${ONLY:-}"
DEVICE_ARGS=()
if [[ -n "${DEVICE:-}" ]]; then DEVICE_ARGS=(--device "$DEVICE"); fi
cd "$REPO"
mkdir -p "$RUNS" ckpts/demo

# 1. dataset (deterministic: image i depends on (seed, i) only)
if [[ ! -f "$RUNS/toy_demo/dataset.json" ]]; then
    "$PYTHON" scripts/make_toy_dataset.py --output_dir "$RUNS/toy_demo" --num_images 5000 --image_size 32 \
        --layout imagenet --num_classes 10 --seed 0
fi

train() {  # train <name>
    local start
    start=$(date +%s)
    if ! OMP_NUM_THREADS="$THREADS" MKL_NUM_THREADS="$THREADS" "$PYTHON" train.py \
        --config "configs/demo_$1.json" --data_dir "$RUNS/toy_demo" --output_dir "$RUNS/demo_$1" \
        --no_progress "${DEVICE_ARGS[@]}" > "$RUNS/demo_$1.out" 2>&1; then
        echo "training demo_$1 failed (log: $RUNS/demo_$1.out)" >&2
        exit 1
    fi
    echo "demo_$1 trained in $(( $(date +%s) - start )) s (log: $RUNS/demo_$1.out)"
}

# The last checkpoint's weights of a run as a bare state dict. float16 halves the size and the loaders
# cast every tensor to the model's dtype; the timestep frequencies stay float32, since float16 rounding
# of t * freq would shift the time embedding by up to ~0.5 rad at t = 999.
EXPORT='
import glob, os, sys
import torch
from ivid.utils.io import atomic_torch_save
runs, kind, name = sys.argv[1], {"ema": "ema_*", "model": "model"}[sys.argv[2]], sys.argv[3]
source = sorted(glob.glob(os.path.join(runs, f"demo_{name}", "ckpts", f"{kind}_step*.pt")))[-1]
state = torch.load(source, map_location="cpu", weights_only=True)
half = {k: v.half() if v.is_floating_point() and not k.endswith("freqs") else v for k, v in state.items()}
atomic_torch_save(half, os.path.join("ckpts", "demo", f"{name}.pt"))
print(f"{source} -> ckpts/demo/{name}.pt")
'
export_weights() {  # export_weights <name> <ema|model>
    "$PYTHON" -c "$EXPORT" "$RUNS" "$2" "$1"
}

# 2. G_u, then 3. G_c (one after the other: each gets the whole CPU)
if [[ "$ONLY" != "cond" ]]; then train uncond; export_weights uncond "$WEIGHTS"; fi
if [[ "$ONLY" != "uncond" ]]; then train cond; export_weights cond "$WEIGHTS_COND"; fi

# 4. curves (of the runs whose logs are here: with ONLY=cond, G_c alone)
LOGS=() LABELS=()
for name in uncond cond; do
    if [[ -f "$RUNS/demo_$name/log.jsonl" ]]; then
        LOGS+=("$RUNS/demo_$name/log.jsonl"); LABELS+=("$([[ $name == uncond ]] && echo G_u || echo G_c) (demo_$name)")
    fi
done
"$PYTHON" scripts/plot_training_log.py --log "${LOGS[@]}" --label "${LABELS[@]}" --output ckpts/demo/loss_curves.png
if [[ -f "$RUNS/demo_cond/log.jsonl" ]]; then
    "$PYTHON" scripts/plot_training_log.py --log "$RUNS/demo_cond/log.jsonl" --label "G_c (demo_cond)" \
        --key condition_usage.gap --linear_y --smoothing 0.8 \
        --title "G_c condition usage: 1 - loss(true condition) / loss(shuffled conditions)" \
        --output ckpts/demo/condition_gap.png
fi
