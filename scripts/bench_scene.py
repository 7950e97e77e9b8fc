"""Time whole multiview scenes end to end: every view of a viewset, sampled as ``inference/sample.py`` does.

Random weights (no checkpoint needed; the default initialisation, as ``scripts/bench_sample.py``),
so the numbers are speed only. Each case is one (sampler, steps, precision); one scene of
``--batchsize`` samples is sampled after a short warm-up (two views, one step: kernels, caches,
cuDNN plans) and timed from the first view's noise to the last view (synchronised on CUDA).

Cases (``--cases``, comma list of ``name:sampler:steps_uncond:steps_cond:precision``); the default
is the reference sampler and DPM-Solver++ in fp32 and bf16::

    faithful:auto:1000:50:fp32   G_u 1000 DDPM steps, G_c 50 DDIM steps per view (the paper's)
    fast:dpmpp_2m:25:20:fp32     DPM-Solver++(2M), 25 steps for G_u, 20 per G_c view

``fp32`` is the models as configured (on CUDA the released configs' float16 torso convolutions);
``bf16`` / ``fp16`` autocast (:mod:`ivid.sampling.precision`). Example::

    python scripts/bench_scene.py --device cuda                       # released 128 px configs, 3x9
    python scripts/bench_scene.py --device cpu --pair tiny --cases fast:dpmpp_2m:5:2:fp32

Prints a table and writes JSON (``--output``).
"""

from __future__ import annotations

import argparse
import platform
import time

import ivid.threads  # noqa: F401 - first: OpenMP's CPU-thread defaults, read when torch loads
import torch

from ivid.cli import add_debug_option, run_cli
from ivid.errors import OptionError
from ivid.model_loading import load_framework
from ivid.sampling.multiview import MultiviewOptions, Timings, sample_multiview
from ivid.sampling.precision import PRECISIONS, check_precision, master_weights_fp16, prepare_backbone
from ivid.sampling.run import find_file
from ivid.geometry.viewsets import parse_viewset, sample_cameras
from ivid.utils.device import resolve_device
from ivid.utils.run_record import write_json
from ivid.utils.seeds import sample_generators

PAIRS = {
    "large": ("configs/rgbd_imagenet_adm_128_large_cfg.json", "configs/rgbd_imagenet_adm_128_large_cond.json"),
    "small": ("configs/rgbd_singlecategory_adm_128_small.json", "configs/rgbd_singlecategory_adm_128_small_cond.json"),
    "tiny": ("configs/tiny_uncond.json", "configs/tiny_cond.json"),
}
DEFAULT_CASES = ("faithful:auto:1000:50:fp32,fast:dpmpp_2m:25:20:fp32,"
                 "faithful:auto:1000:50:bf16,fast:dpmpp_2m:25:20:bf16")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pair", default="large", choices=sorted(PAIRS), help="model configs (random weights)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: best available)")
    p.add_argument("--cases", default=DEFAULT_CASES,
                   help="comma list of name:sampler:steps_uncond:steps_cond:precision")
    p.add_argument("--viewset", default="3x9")
    p.add_argument("--batchsize", type=int, default=1, help="samples per scene batch")
    p.add_argument("--guidance", type=float, default=3.0)
    p.add_argument("--output", default="bench_results/bench_scene.json")
    add_debug_option(p)
    return p.parse_args(argv)


def parse_cases(text: str):
    """``[(name, sampler, steps_uncond, steps_cond, precision)]`` from ``--cases``."""
    cases = []
    for item in (c.strip() for c in text.split(",") if c.strip()):
        parts = item.split(":")
        if len(parts) != 5 or not parts[2].isdigit() or not parts[3].isdigit() or parts[4] not in PRECISIONS:
            raise OptionError(f"--cases {item!r}: expected name:sampler:steps_uncond:steps_cond:precision with "
                              f"precision one of {', '.join(PRECISIONS)}, e.g. fast:dpmpp_2m:25:20:bf16")
        cases.append((parts[0], parts[1], int(parts[2]), int(parts[3]), parts[4]))
    if not cases:
        raise OptionError("--cases: no case given")
    return cases


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _models(pair: str, device: torch.device, precision: str):
    frameworks = [load_framework(find_file(c), None, device, use_fp16=master_weights_fp16(precision))
                  for c in PAIRS[pair]]
    for framework in frameworks:
        prepare_backbone(framework.backbone, precision)
    return frameworks


def run_case(case, args, device: torch.device, models) -> dict:
    """Sample one scene of ``case`` with ``models`` (G_u, G_c); returns a result row."""
    name, sampler, steps_u, steps_c, precision = case
    g_u, g_c = models
    cams = [sample_cameras(parse_viewset(args.viewset), seed) for seed in range(args.batchsize)]
    classes = (torch.zeros(args.batchsize, dtype=torch.long, device=device)
               if getattr(g_u.backbone, "num_classes", None) else None)
    warm = MultiviewOptions(steps_uncond=1, steps_cond=1, guidance=args.guidance,
                            sampler="ddim" if sampler == "auto" else sampler)
    sample_multiview(g_u, g_c, [c[:2] for c in cams], sample_generators(range(args.batchsize), device), classes, warm)
    options = MultiviewOptions(steps_uncond=steps_u, steps_cond=steps_c, guidance=args.guidance, sampler=sampler)
    timings = Timings(device=device)
    _sync(device)
    start = time.perf_counter()
    sample_multiview(g_u, g_c, cams, sample_generators(range(args.batchsize), device), classes, options,
                     timings=timings)
    _sync(device)
    seconds = time.perf_counter() - start
    return {"case": name, "sampler": sampler, "steps_uncond": steps_u, "steps_cond": steps_c, "precision": precision,
            "views": len(cams[0]), "batchsize": args.batchsize, "seconds": seconds,
            "phases": {k: round(v, 4) for k, v in timings.seconds.items()}}


def main(args: argparse.Namespace) -> dict:
    device = resolve_device(args.device)
    cases = parse_cases(args.cases)
    for case in cases:
        check_precision(case[4], device.type)
    rows, models, loaded = [], None, None
    print(f"{'case':10s} {'sampler':9s} {'steps':>9s} {'precision':9s} {'views':>5s} {'batch':>5s} {'seconds':>9s}")
    for case in cases:
        if loaded != case[4]:  # models per precision (fp32 keeps the configured torso dtype)
            models, loaded = None, None
            if device.type == "cuda":
                torch.cuda.empty_cache()
            models, loaded = _models(args.pair, device, case[4]), case[4]
        row = run_case(case, args, device, models)
        rows.append(row)
        print(f"{row['case']:10s} {row['sampler']:9s} {row['steps_uncond']:>4d}/{row['steps_cond']:<4d} "
              f"{row['precision']:9s} {row['views']:>5d} {row['batchsize']:>5d} {row['seconds']:>9.2f}", flush=True)
    report = {"device": str(device), "device_name": (torch.cuda.get_device_name(device) if device.type == "cuda"
                                                     else platform.processor() or platform.machine()),
              "torch": torch.__version__, "pair": args.pair, "configs": list(PAIRS[args.pair]),
              "threads": torch.get_num_threads(), "results": rows}
    write_json(args.output, report)
    print(f"wrote {args.output}")
    return report


if __name__ == "__main__":
    run_cli(main, parse_args)
