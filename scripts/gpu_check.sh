#!/usr/bin/env bash
# Check and time everything that needs a CUDA GPU, and print ONE markdown report (also written to a file).
#
#   bash scripts/gpu_check.sh                         # a machine with a CUDA GPU: < 8 minutes on one H100
#   bash scripts/gpu_check.sh --device cpu --small    # the same steps with tiny sizes on the CPU (CI)
#
# Options: --device cuda|cpu (default cuda), --small (tiny models, few steps, few repeats),
#          --out DIR (default bench_results/gpu_check; report.md, every step's log and JSON go there).
# Steps (each with a time limit; a failed step is reported and the others still run):
#   pytest_gpu    pytest -m gpu: every CUDA-only test, the CUDA-vs-CPU equality tests of the renderer and UNet
#   bench_unet    scripts/bench_unet.py: UNet forward of the released 128 px configs, fp32 / bf16 / fp16
#   bench_render  scripts/bench_render.py: warp pairs (single and batched), aggregation, fusion, meshing
#   bench_sample  scripts/bench_sample.py: seconds per step and per view, large and small pairs
#   bench_scene   scripts/bench_scene.py: one full 3x9 scene with the released large configs (random weights),
#                 faithful sampler and dpmpp_2m 25/20 steps, fp32 and bf16
# Then scripts/gpu_report.py prints the report (with the H100 targets) and sets the exit status:
# 0 when every step ran and every test passed.
set -u

DEVICE=cuda
SMALL=0
OUT=bench_results/gpu_check
while [ $# -gt 0 ]; do
    case "$1" in
        --device) DEVICE="${2:?--device needs a value}"; shift 2 ;;
        --small) SMALL=1; shift ;;
        --out) OUT="${2:?--out needs a folder}"; shift 2 ;;
        -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "error: $1: unknown option (use --device cuda|cpu, --small, --out DIR)" >&2; exit 2 ;;
    esac
done
case "$DEVICE" in
    cuda|cuda:*|cpu) ;;
    *) echo "error: --device $DEVICE: use cuda, cuda:N or cpu" >&2; exit 2 ;;
esac

cd "$(dirname "$0")/.." || exit 2
PY="${PYTHON:-python}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$OUT" || exit 2
for name in pytest_gpu bench_unet bench_render bench_sample bench_scene; do  # this script's files only
    rm -f "$OUT/$name.log" "$OUT/$name.json"
done
rm -f "$OUT/steps.tsv" "$OUT/pytest_gpu.xml" "$OUT/report.md" "$OUT/environment.txt"

# step NAME LIMIT_SECONDS COMMAND...: run it with a time limit, log to $OUT/NAME.log, record status and seconds
step() {
    local name="$1" limit="$2"
    shift 2
    local start end
    start=$(date +%s%N)
    echo "[gpu_check] $name ..." >&2
    timeout --kill-after=10 "$limit" "$@" > "$OUT/$name.log" 2>&1
    local rc=$?
    end=$(date +%s%N)
    echo "$name $rc $(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')" >> "$OUT/steps.tsv"
    echo "[gpu_check] $name: exit $rc" >&2
}

{
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "host: $(hostname)"
    echo "device: $DEVICE; small: $SMALL"
    "$PY" -c "import torch, platform; print('python', platform.python_version(), '| torch', torch.__version__, '| CUDA', torch.version.cuda, '| GPUs', [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())], '| CPU threads', torch.get_num_threads())" 2>&1
    if command -v nvidia-smi > /dev/null; then
        nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit --format=csv,noheader 2>&1
    fi
} > "$OUT/environment.txt"

GPU_TEST_FILES=$(grep -rlE "mark\.gpu|pytestmark = pytest\.mark\.gpu" tests --include='*.py' | sort)
if [ "$SMALL" = 1 ]; then
    step pytest_gpu 300 "$PY" -m pytest -q -m gpu -p no:cacheprovider --junitxml="$OUT/pytest_gpu.xml" $GPU_TEST_FILES
    step bench_unet 300 "$PY" scripts/bench_unet.py --device "$DEVICE" --configs tiny_uncond --batch_sizes 1 \
        --precisions fp32 bf16 --repeats 1 --warmup 0 --out "$OUT/bench_unet.json"
    step bench_render 300 "$PY" scripts/bench_render.py --device "$DEVICE" --cases warp,depth_to_mesh --repeat 1 \
        --output "$OUT/bench_render.json"
    step bench_sample 300 "$PY" scripts/bench_sample.py --devices "$DEVICE" --pairs tiny --views 2 --repeats 1 \
        --measure_steps 1 --output "$OUT/bench_sample.json"
    step bench_scene 300 "$PY" scripts/bench_scene.py --device "$DEVICE" --pair tiny \
        --cases faithful:auto:10:2:fp32,fast:dpmpp_2m:5:2:fp32,faithful:auto:10:2:bf16,fast:dpmpp_2m:5:2:bf16 \
        --output "$OUT/bench_scene.json"
else
    step pytest_gpu 240 "$PY" -m pytest -q -m gpu -p no:cacheprovider --junitxml="$OUT/pytest_gpu.xml" $GPU_TEST_FILES
    step bench_unet 150 "$PY" scripts/bench_unet.py --device "$DEVICE" \
        --configs rgbd_imagenet_adm_128_large_cfg rgbd_imagenet_adm_128_large_cond --batch_sizes 1 20 \
        --precisions fp32 bf16 fp16 fp16_autocast --repeats 5 --out "$OUT/bench_unet.json"
    step bench_render 120 "$PY" scripts/bench_render.py --device "$DEVICE" --repeat 5 --output "$OUT/bench_render.json"
    step bench_sample 150 "$PY" scripts/bench_sample.py --devices "$DEVICE" --pairs large,small --views 3 \
        --repeats 2 --output "$OUT/bench_sample.json"
    step bench_scene 360 "$PY" scripts/bench_scene.py --device "$DEVICE" --pair large --output "$OUT/bench_scene.json"
fi

"$PY" scripts/gpu_report.py --dir "$OUT" --device "$DEVICE" $([ "$SMALL" = 1 ] && echo --small)
