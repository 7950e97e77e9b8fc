"""Benchmark the AdmUnet2d forward pass of the released 128 configs (random weights).

For every (config, batch size, precision) it reports the median / min wall time
of one forward, the FLOPs of one forward (``torch.utils.flop_counter``; counted
once on the 'meta' device, so no extra compute) and the achieved GFLOP/s; prints
a table and writes JSON.

Precisions: ``fp32`` (float32 model), ``bf16`` (float32 model under
``torch.autocast(bfloat16)``), ``fp16`` (the ``use_fp16=True`` model: torso
convolutions in half, as released).

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

import torch
from torch.utils.flop_counter import FlopCounterMode

from ivid.cli import add_debug_option, run_cli
from ivid.config import load_config
from ivid.models import AdmUnet2d
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
    p.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16", "fp16"])
    p.add_argument("--repeats", type=int, default=3, help="timed forwards per setting")
    p.add_argument("--warmup", type=int, default=1, help="untimed forwards per setting")
    p.add_argument("--channels_last", action="store_true", help="run the model and input in channels_last")
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


def time_forward(model, x, t, classes, precision: str, device: torch.device, warmup: int, repeats: int):
    """Wall times (s) of ``repeats`` forwards after ``warmup`` untimed ones."""
    autocast = (torch.autocast(device_type=device.type, dtype=torch.bfloat16) if precision == "bf16"
                else contextlib.nullcontext())
    times = []
    with torch.no_grad(), autocast:
        for i in range(warmup + repeats):
            _sync(device)
            start = time.perf_counter()
            model(x, t, classes)
            _sync(device)
            if i >= warmup:
                times.append(time.perf_counter() - start)
    return times


def bench_config(name: str, opts, device: torch.device, generator: torch.Generator):
    """Benchmark one config over the batch sizes and precisions; returns result rows."""
    args = load_config(_config_path(name))["backbone"]["args"]
    rows = []
    for precision in opts.precisions:
        with torch.device(device):
            model = AdmUnet2d(**dict(args, use_fp16=precision == "fp16")).eval()
        if opts.channels_last:
            model = model.to(memory_format=torch.channels_last)
        for batch in opts.batch_sizes:
            size = args["image_size"]
            x = torch.randn(batch, args["in_channels"], size, size, generator=generator).to(device)
            if opts.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            t = torch.randint(0, 1000, (batch,), generator=generator).to(device)
            classes = (torch.randint(0, args["num_classes"], (batch,), generator=generator).to(device)
                       if args.get("num_classes") else None)
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            times = time_forward(model, x, t, classes, precision, device, opts.warmup, opts.repeats)
            flops = count_flops(args, batch)
            median = statistics.median(times)
            rows.append({
                "config": os.path.basename(name).removesuffix(".json"), "batch_size": batch, "precision": precision,
                "channels_last": opts.channels_last, "median_s": median, "min_s": min(times), "times_s": times,
                "gflop_per_forward": flops / 1e9, "achieved_gflops": flops / 1e9 / median,
                "peak_mem_gib": (torch.cuda.max_memory_allocated(device) / 2 ** 30 if device.type == "cuda" else None),
            })
            print(_format_row(rows[-1]), flush=True)
        del model
    return rows


def _format_row(row: dict) -> str:
    mem = f"{row['peak_mem_gib']:.2f}" if row["peak_mem_gib"] is not None else "-"
    return (f"{row['config']:<40} {row['batch_size']:>5} {row['precision']:>5} {row['median_s'] * 1e3:>11.1f} "
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
    print(f"{'config':<40} {'batch':>5} {'prec':>5} {'median ms':>11} {'min ms':>11} {'GFLOP':>10} "
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
