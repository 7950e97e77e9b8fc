"""Benchmark multiview sampling: seconds per view for G_u and G_c, conditioning vs model time.

Random weights (no checkpoint needed). For each model pair and device, a few
sampler steps are timed after one warm-up call (``--repeats`` runs, the minimum
per phase is kept) and extrapolated to the configured step counts:

- G_u s/view   = (s per G_u step) x steps_uncond (DDPM: 1000 steps)
- G_c s/view   = (s per G_c step) x steps_cond + conditioning + meshing per view
- conditioning = ``aggregate_conditions`` from the previous views (averaged over
  views 1..V-1 of the measured run, i.e. with 1..V-1 previous meshes); meshing =
  ``depth_to_mesh`` of each finished view.

Model pairs: ``large`` (released ImageNet-128 configs, 421M params each),
``small`` (single-category 128 configs, 105M), ``tiny`` (32x32 test configs).
Example::

    python scripts/bench_sample.py --pairs tiny,small --devices cpu
    python scripts/bench_sample.py --pairs large --devices cuda --views 4 --batchsize 10

Prints a table and writes JSON (``--output``, default bench_results/bench_sample.json).
"""

from __future__ import annotations

import argparse
import platform
import time

import ivid.threads  # noqa: F401 - first: OpenMP's CPU-thread defaults, read when torch loads
import torch

from ivid.cli import add_debug_option, run_cli
from ivid.errors import OptionError
from ivid.geometry import viewset
from ivid.sampling.multiview import MultiviewOptions, Timings, sample_multiview
from ivid.sampling.run import find_file
from ivid.utils.device import resolve_device
from ivid.utils.run_record import write_json
from ivid.utils.seeds import sample_generators

PAIRS = {
    "large": ("configs/rgbd_imagenet_adm_128_large_cfg.json", "configs/rgbd_imagenet_adm_128_large_cond.json"),
    "small": ("configs/rgbd_singlecategory_adm_128_small.json", "configs/rgbd_singlecategory_adm_128_small_cond.json"),
    "tiny": ("configs/tiny_uncond.json", "configs/tiny_cond.json"),
}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pairs", default="large,small,tiny", help=f"comma list of {', '.join(PAIRS)}")
    p.add_argument("--devices", default=None, help="comma list; default: cpu, plus cuda when present")
    p.add_argument("--steps_uncond", type=int, default=1000, help="configured G_u steps to extrapolate to")
    p.add_argument("--steps_cond", type=int, default=50, help="configured G_c steps to extrapolate to")
    p.add_argument("--measure_steps", type=int, default=2, help="sampler steps actually timed per view")
    p.add_argument("--views", type=int, default=3, help="views per sample in the timed run (first 3x9 views)")
    p.add_argument("--batchsize", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3, help="timed runs; the minimum per phase is reported")
    p.add_argument("--guidance", type=float, default=3.0)
    p.add_argument("--output", default="bench_results/bench_sample.json")
    add_debug_option(p)
    return p.parse_args(argv)


def _run(g_u, g_c, cams, args, device, steps) -> Timings:
    options = MultiviewOptions(steps_uncond=steps, steps_cond=steps, guidance=args.guidance)
    timings = Timings(device=device)
    classes = torch.zeros(args.batchsize, dtype=torch.long, device=device) if g_u.backbone.num_classes else None
    sample_multiview(g_u, g_c, cams, sample_generators(range(args.batchsize), device), classes, options,
                     timings=timings)
    return timings


def bench_pair(name: str, device: torch.device, args) -> dict:
    from ivid.model_loading import load_framework

    config_u, config_c = PAIRS[name]
    g_u, g_c = (load_framework(find_file(c), None, device) for c in (config_u, config_c))
    cams = viewset("3x9")[:max(2, args.views)]
    _run(g_u, g_c, cams[:2], args, device, 1)  # warm-up (allocations, kernels, caches)
    runs = [_run(g_u, g_c, cams, args, device, args.measure_steps).seconds for _ in range(args.repeats)]
    t = {phase: min(r[phase] for r in runs) for phase in runs[0]}  # the least disturbed run per phase
    conditioned = len(cams) - 1
    step_u = t["model_uncond"] / args.measure_steps
    step_c = t["model_cond"] / (args.measure_steps * conditioned)
    cond, mesh = t["condition"] / conditioned, t["mesh"] / conditioned
    u_steps = 1000 if args.steps_uncond >= 1000 else args.steps_uncond
    params = lambda g: sum(p.numel() for p in g.backbone.parameters())  # noqa: E731
    row = {"pair": name, "device": str(device), "image_size": g_u.backbone.image_size,
           "params_uncond": params(g_u), "params_cond": params(g_c), "batchsize": args.batchsize,
           "dtype_cond": str(g_c.backbone.dtype), "s_per_step_uncond": step_u, "s_per_step_cond": step_c,
           "s_condition_per_view": cond, "s_mesh_per_view": mesh, "steps_uncond": u_steps,
           "steps_cond": args.steps_cond, "s_per_view_uncond": step_u * u_steps,
           "s_per_view_cond": step_c * args.steps_cond + cond + mesh,
           "condition_share_of_cond_view": (cond + mesh) / (step_c * args.steps_cond + cond + mesh)}
    del g_u, g_c
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return row


def print_table(rows) -> None:
    head = (f"{'pair':6} {'device':7} {'S':>4} {'batch':>5} {'Gu s/step':>10} {'Gc s/step':>10} {'cond s':>8} "
            f"{'mesh s':>8} {'Gu s/view':>10} {'Gc s/view':>10} {'cond %':>7}")
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['pair']:6} {r['device']:7} {r['image_size']:>4} {r['batchsize']:>5} "
              f"{r['s_per_step_uncond']:>10.4f} {r['s_per_step_cond']:>10.4f} {r['s_condition_per_view']:>8.3f} "
              f"{r['s_mesh_per_view']:>8.3f} {r['s_per_view_uncond']:>10.2f} {r['s_per_view_cond']:>10.2f} "
              f"{100 * r['condition_share_of_cond_view']:>6.1f}%")
    print("s/view: whole batch; G_u at steps_uncond (DDPM = 1000), G_c at steps_cond plus conditioning and meshing.")


def main(args: argparse.Namespace) -> list:
    names = [n.strip() for n in args.pairs.split(",") if n.strip()]
    unknown = [n for n in names if n not in PAIRS]
    if unknown:
        raise OptionError(f"--pairs: unknown {unknown}; valid: {', '.join(PAIRS)}")
    if args.devices:
        devices = [resolve_device(d.strip()) for d in args.devices.split(",")]
    else:
        devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    rows = []
    for device in devices:
        for name in names:
            start = time.perf_counter()
            rows.append(bench_pair(name, device, args))
            print(f"[{name} on {device}: {time.perf_counter() - start:.1f} s]", flush=True)
    print_table(rows)
    info = {"torch": torch.__version__, "cuda": torch.version.cuda, "python": platform.python_version(),
            "cpu_threads": torch.get_num_threads(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "args": vars(args), "results": rows}
    write_json(args.output, info)
    print(f"wrote {args.output}")
    return rows


if __name__ == "__main__":
    run_cli(main, parse_args)
