"""Benchmark the AdmUnet2d forward pass of the released 128 configs (random weights).

For every (config, batch size, precision, memory format) it reports the median / min
wall time of one forward (the settings of one config and batch size are timed round-robin, so
they share the machine's load), the FLOPs of one forward (``torch.utils.flop_counter``; counted
once on the 'meta' device, so no extra compute) and the achieved GFLOP/s; prints
a table and writes JSON.

Precisions: ``fp32`` (float32 model), ``bf16`` (float32 model under
``torch.autocast(bfloat16)``, as ``inference/sample.py --precision bf16``), ``fp16`` (the
``use_fp16=True`` model: torso convolutions in half, as released; what ``--precision fp32``
samples with on CUDA), ``fp16_autocast`` (float32 model under ``torch.autocast(float16)``, as
``--precision fp16``; CUDA). ``--memory_formats contiguous channels_last`` times both layouts
in one run; ``--compile`` adds a compiled twin of every setting (``torch.compile`` through
``ivid.sampling.precision.compile_forward``; it compiles in the warm-up, reported as
``first_call_s``).

Example:
    python scripts/bench_unet.py --device cuda
    python scripts/bench_unet.py --configs rgbd_singlecategory_adm_128_small --batch_sizes 1 --repeats 1
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import time

import ivid.threads  # noqa: F401 - first: OpenMP's CPU-thread defaults, read when torch loads
import torch
from torch.utils.flop_counter import FlopCounterMode

from ivid.cli import add_debug_option, run_cli
from ivid.config import load_config
from ivid.models import AdmUnet2d
from ivid.sampling.precision import compile_forward
from ivid.utils import resolve_device
from ivid.utils.io import atomic_write

DEFAULT_CONFIGS = ["rgbd_imagenet_adm_128_large_cfg", "rgbd_imagenet_adm_128_large_cond",
                   "rgbd_singlecategory_adm_128_small"]
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--configs", nargs="+", default=DEFAULT_CONFIGS,
                   help="config names (in configs/) or JSON paths")
    p.add_argument("--batch_sizes", nargs="+", type=int, default=[1, 4])
    p.add_argument("--precisions", nargs="+", default=["fp32", "bf16"],
                   choices=["fp32", "bf16", "fp16", "fp16_autocast"])
    p.add_argument("--repeats", type=int, default=3, help="timed forwards per setting")
    p.add_argument("--warmup", type=int, default=1, help="untimed forwards per setting")
    p.add_argument("--channels_last", action="store_true", help="run the model and input in channels_last "
                   "(same as --memory_formats channels_last)")
    p.add_argument("--memory_formats", nargs="+", default=None, choices=["contiguous", "channels_last"],
                   help="memory layouts to time (default: contiguous, or channels_last with --channels_last)")
    p.add_argument("--compile", action="store_true",
                   help="also time every setting compiled with torch.compile (compiled in the warm-up)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: best available)")
    p.add_argument("--out", default="bench_results/bench_unet.json", help="JSON output file")
    p.add_argument("--seed", type=int, default=0)
    add_debug_option(p)
    return p.parse_args(argv)


def _config_path(name: str) -> str:
    if name.endswith(".json") or os.sep in name:
        return name
    return os.path.join(REPO_ROOT, "configs", f"{name}.json")


def count_flops(args: dict, batch_size: int) -> int:
    """FLOPs (2 per multiply-add) of one forward, counted on the 'meta' device."""
    with torch.device("meta"):
        model = AdmUnet2d(**dict(args, use_fp16=False))
        size = args["image_size"]
        x = torch.empty(batch_size, args["in_channels"], size, size)
        t = torch.zeros(batch_size, dtype=torch.long)
        classes = torch.zeros(batch_size, dtype=torch.long) if args.get("num_classes") else None
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x, t, classes)
    return int(counter.get_total_flops())


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def forward_fn(model, precision: str, device: torch.device, compile: bool = False):
    """``run(x, t, classes)``: one no-grad forward of ``model`` in ``precision`` (compiled with ``compile``)."""
    forward = compile_forward(model.forward) if compile else model

    def run(x, t, classes):
        dtype = {"bf16": torch.bfloat16, "fp16_autocast": torch.float16}.get(precision)
        autocast = torch.autocast(device_type=device.type, dtype=dtype) if dtype else contextlib.nullcontext()
        with torch.no_grad(), autocast:
            return forward(x, t, classes)

    return run


def _timed(fn, inputs, device: torch.device) -> float:
    _sync(device)
    start = time.perf_counter()
    fn(*inputs)
    _sync(device)
    return time.perf_counter() - start


def time_settings(settings: dict, device: torch.device, warmup: int, repeats: int):
    """Time every setting ``key -> (run, inputs)`` round-robin, so that all see the same machine load.

    Returns ``key -> (times, first call s, peak GiB or None)``: ``warmup`` untimed calls per setting
    first (where ``--compile`` compiles), then ``repeats`` rounds of one timed call per setting.
    """
    first, peak = {}, {}
    for key, (fn, inputs) in settings.items():
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        for _ in range(warmup):
            seconds = _timed(fn, inputs, device)
            first.setdefault(key, seconds)
        peak[key] = torch.cuda.max_memory_allocated(device) / 2 ** 30 if device.type == "cuda" and warmup else None
    times = {key: [] for key in settings}
    for _ in range(repeats):
        for key, (fn, inputs) in settings.items():
            times[key].append(_timed(fn, inputs, device))
    return {key: (times[key], first.get(key, times[key][0]), peak[key]) for key in settings}


def bench_config(name: str, opts, device: torch.device, generator: torch.Generator):
    """Benchmark one config over the batch sizes, precisions and memory formats; returns result rows."""
    args = load_config(_config_path(name))["backbone"]["args"]
    formats = opts.memory_formats or ["channels_last" if opts.channels_last else "contiguous"]
    models = {}
    for precision, layout in ((p, f) for p in opts.precisions for f in formats):
        with torch.device(device):
            model = AdmUnet2d(**dict(args, use_fp16=precision == "fp16")).eval()
        if layout == "channels_last":
            model = model.to(memory_format=torch.channels_last)
        for compiled in (False, True) if opts.compile else (False,):
            models[precision, layout, compiled] = forward_fn(model, precision, device, compiled)
    rows = []
    for batch in opts.batch_sizes:
        size = args["image_size"]
        x = torch.randn(batch, args["in_channels"], size, size, generator=generator).to(device)
        t = torch.randint(0, 1000, (batch,), generator=generator).to(device)
        classes = (torch.randint(0, args["num_classes"], (batch,), generator=generator).to(device)
                   if args.get("num_classes") else None)
        inputs = {"contiguous": (x, t, classes),
                  "channels_last": (x.contiguous(memory_format=torch.channels_last), t, classes)}
        results = time_settings({key: (fn, inputs[key[1]]) for key, fn in models.items()}, device, opts.warmup,
                                opts.repeats)
        flops = count_flops(args, batch)
        for (precision, layout, compiled), (times, first, peak) in results.items():
            median = statistics.median(times)
            rows.append({
                "config": os.path.basename(name).removesuffix(".json"), "batch_size": batch, "precision": precision,
                "channels_last": layout == "channels_last", "compile": compiled, "first_call_s": first,
                "median_s": median, "min_s": min(times), "times_s": times,
                "gflop_per_forward": flops / 1e9, "achieved_gflops": flops / 1e9 / median, "peak_mem_gib": peak,
            })
            print(_format_row(rows[-1]), flush=True)
    del models
    return rows


def _format_row(row: dict) -> str:
    mem = f"{row['peak_mem_gib']:.2f}" if row["peak_mem_gib"] is not None else "-"
    precision = row["precision"] + ("+cl" if row["channels_last"] else "") + ("+c" if row["compile"] else "")
    return (f"{row['config']:<40} {row['batch_size']:>5} {precision:>16} {row['median_s'] * 1e3:>11.1f} "
            f"{row['min_s'] * 1e3:>11.1f} {row['gflop_per_forward']:>10.1f} {row['achieved_gflops']:>9.1f} {mem:>8}")


def environment(device: torch.device) -> dict:
    env = {"device": str(device), "torch": torch.__version__, "python": sys.version.split()[0],
           "platform": platform.platform(), "cpu_threads": torch.get_num_threads()}
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
        env["cuda"] = torch.version.cuda
    return env


def main(args):
    device = resolve_device(args.device)
    generator = torch.Generator().manual_seed(args.seed)
    env = environment(device)
    print(f"# {env}")
    print(f"{'config':<40} {'batch':>5} {'prec':>16} {'median ms':>11} {'min ms':>11} {'GFLOP':>10} "
          f"{'GFLOP/s':>9} {'mem GiB':>8}")
    rows = []
    for name in args.configs:
        rows.extend(bench_config(name, args, device, generator))
    with atomic_write(args.out, "w") as f:
        json.dump({"environment": env, "options": vars(args), "results": rows}, f, indent=1)
    print(f"# wrote {args.out}")
    return rows


if __name__ == "__main__":
    run_cli(main, parse_args)
