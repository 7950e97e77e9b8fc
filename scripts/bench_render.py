"""Benchmark the pure-PyTorch renderer: warp pairs, aggregated conditions, fusion frames, meshing.

Cases (image size 128, the room views of ``tests/fixtures/render/aggregate_room_first4.npz``
cycled to the needed number of meshes, target cameras from the '3x9' viewset):

- ``warp``: one ``forward_backward_warp`` training pair (ssaa 3, padding 128);
  ``warp_batch16``: 16 pairs in one batched call (time per pair);
- ``aggregate_8`` / ``aggregate_26``: ``aggregate_conditions`` with 8 / 26 meshes;
  ``aggregate_batch8_26``: 8 samples x 26 meshes in one batched call (time per sample);
- ``fusion_27``: one ``render_fusion`` frame of 27 meshes (padding 32) at ssaa 5;
- ``depth_to_mesh``: one 128x128 view as sampling meshes it (frustum, flags, normals).

The reference's OpenGL-on-CPU figures (llvmpipe, 2 threads) are printed next to
ours (ratio = reference / our median). Timings: median and minimum of ``--repeat``
runs after one warm-up, wall clock (synchronised on CUDA), plus the median process
CPU time. Prints a table, writes JSON (``--output``).

    python scripts/bench_render.py --device cpu --threads 2
"""

from __future__ import annotations

import argparse
import pathlib
import platform
import statistics
import time

import numpy as np
import ivid.threads  # noqa: F401 - first: OpenMP's CPU-thread defaults, read when torch loads
import torch

from ivid.cli import add_debug_option, run_cli
from ivid.geometry import aggregate_conditions, depth_to_mesh, forward_backward_warp, render_fusion, viewset
from ivid.geometry.warp import aggregate_conditions_batch
from ivid.utils.device import resolve_device
from ivid.utils.run_record import write_json

FIXTURE = pathlib.Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "render" / "aggregate_room_first4.npz"
WARP_FIXTURE = FIXTURE.with_name("warp_room128.npz")
#: the reference's OpenGL (llvmpipe) CPU timings on the project machines, 2 threads (issue #3)
REFERENCE_CPU_SECONDS = {"warp": 0.037, "aggregate_8": 0.16, "aggregate_26": 0.48, "fusion_27": 0.69,
                         "depth_to_mesh": 0.009}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default=None, help="cpu, cuda, ...; default: cuda when present, else cpu")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--repeat", type=int, default=5, help="timed runs per case (median and min reported)")
    p.add_argument("--cases", default=None, help="comma list of case names (default: all)")
    p.add_argument("--output", default="bench_results/bench_render.json")
    add_debug_option(p)
    return p.parse_args(argv)


def _timed(fn, device: torch.device, repeat: int):
    """Wall-clock and process-CPU seconds of ``fn()`` over ``repeat`` runs after one warm-up.

    Returns ``(median wall, min wall, median cpu)``. On a shared machine the minimum
    and the CPU time (all threads of this process) are the steadier figures.
    """
    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    fn()
    sync()
    wall, cpu = [], []
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        sync()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(wall), min(wall), statistics.median(cpu)


def _scene(device: torch.device, count: int, padding):
    """``count`` meshes / colours (room views 0-4 cycled) on ``device``."""
    fix = np.load(FIXTURE, allow_pickle=False)
    meshes, colors = [], []
    for k in range(count):
        view = k % len(fix["views_modelview"])
        depth = torch.from_numpy(fix["views_depth_linear"][view]).to(device)
        meshes.append(depth_to_mesh(depth, padding=padding, fov=45, modelview=fix["views_modelview"][view],
                                    atol=0.03, rtol=0.03, erode_rgb=3, cal_normal=True))
        colors.append(torch.from_numpy(fix["views_rgb_u8"][view] / np.float32(255)).to(device))
    return meshes, colors


def build_cases(device: torch.device):
    """name -> (callable, items per call)."""
    warp = np.load(WARP_FIXTURE, allow_pickle=False)
    rgbd = torch.from_numpy(np.concatenate([warp["input_rgb_u8"] / np.float32(255), warp["input_depth_zbuf"]],
                                           -1).astype(np.float32)).to(device)
    view1 = torch.from_numpy(warp["modelview1"]).to(device)
    targets = [torch.from_numpy(m).to(device) for m in viewset("3x9")]
    meshes, colors = _scene(device, 27, "frustum")
    fusion_meshes, _ = _scene(device, 27, 32)
    depth = torch.from_numpy(np.load(FIXTURE, allow_pickle=False)["views_depth_linear"][1]).to(device)
    return {
        "warp": (lambda: forward_backward_warp(rgbd, view1, padding=128), 1),
        "warp_batch16": (lambda: forward_backward_warp(rgbd.expand(16, -1, -1, -1), view1.expand(16, 4, 4),
                                                       padding=128), 16),
        "aggregate_8": (lambda: aggregate_conditions(meshes[:8], colors[:8], targets[8]), 1),
        "aggregate_26": (lambda: aggregate_conditions(meshes[:26], colors[:26], targets[26]), 1),
        "aggregate_batch8_26": (lambda: aggregate_conditions_batch([meshes[:26]] * 8, [colors[:26]] * 8,
                                                                   torch.stack(targets[19:27])), 8),
        "fusion_27": (lambda: render_fusion(fusion_meshes, colors, [targets[4]], ssaa=5), 1),
        "depth_to_mesh": (lambda: depth_to_mesh(depth, padding="frustum", fov=45, modelview=targets[1], atol=0.03,
                                                rtol=0.03, erode_rgb=3, cal_normal=True), 1),
    }


def main(args: argparse.Namespace) -> dict:
    device = resolve_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    cases = build_cases(device)
    names = args.cases.split(",") if args.cases else list(cases)
    unknown = sorted(set(names) - set(cases))
    if unknown:
        raise SystemExit(f"--cases: unknown {unknown}; valid: {', '.join(cases)}")
    results = []
    print(f"{'case':22s} {'device':8s} {'s/item':>9s} {'min s/item':>11s} {'cpu s/item':>11s} {'reference CPU':>14s} "
          f"{'ratio':>7s}")
    for name in names:
        fn, items = cases[name]
        wall, fastest, cpu = _timed(fn, device, args.repeat)
        seconds, best, cpu_seconds = wall / items, fastest / items, cpu / items
        reference = REFERENCE_CPU_SECONDS.get(name.replace("_batch16", "").replace("aggregate_batch8_", "aggregate_"))
        ratio = f"{reference / seconds:6.2f}x" if reference else ""
        print(f"{name:22s} {device.type:8s} {seconds:9.4f} {best:11.4f} {cpu_seconds:11.4f} "
              f"{reference if reference else '':>14} {ratio:>7s}")
        results.append({"case": name, "seconds_per_item": seconds, "min_seconds_per_item": best,
                        "cpu_seconds_per_item": cpu_seconds, "items_per_call": items,
                        "reference_cpu_seconds": reference})
    report = {"device": str(device), "device_name": torch.cuda.get_device_name(device) if device.type == "cuda"
              else platform.processor() or platform.machine(), "torch": torch.__version__,
              "threads": torch.get_num_threads(), "repeat": args.repeat, "results": results}
    write_json(args.output, report)
    print(f"wrote {args.output} (ratio > 1: faster than the reference's OpenGL on CPU)")
    return report


if __name__ == "__main__":
    run_cli(main, parse_args)
