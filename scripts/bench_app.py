"""Benchmark one web-app job: what a Generate click costs, from loading the models to the 3D model.

Runs :meth:`ivid.app.JobRunner.generate` (the app's job, without the web server) on the demo
models with the app's defaults (3x9 viewset, 100 first-view / 20 per-view DDIM steps, 60 video
frames) and reports per phase, from the job's own progress reports:

- models + first view: loading G_u and G_c, sampling view 1 with G_u
- further views: views 2..V with G_c (conditioning included)
- video + 3D model: the glTF export and the 60-frame swing video

Wall seconds and process CPU seconds are both reported: on a busy machine the wall time says
little, while the CPU seconds bound the wall time on an idle one with at least one free core.
Example::

    OMP_NUM_THREADS=2 python scripts/bench_app.py --repeats 2

Prints a table and writes JSON (``--output``, default bench_results/bench_app.json).
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time

import ivid.threads  # noqa: F401 - first: OpenMP's CPU-thread defaults, read when torch loads
import torch

from ivid.cli import add_debug_option, run_cli


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="demo", help="models (a --preset of inference/sample.py)")
    p.add_argument("--viewset", default="3x9", help="3x9, 360 or random")
    p.add_argument("--repeats", type=int, default=1, help="jobs timed (seeds 0, 1, ...)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--output", default="bench_results/bench_app.json")
    add_debug_option(p)
    return p.parse_args(argv)


def _time_job(runner, scene) -> dict:
    marks = {}

    def progress(done, total, what):
        now = (time.perf_counter(), time.process_time())
        if what == "view" and done == 1:
            marks["first_view"] = now
        if what == "view" and done == total:
            marks["views"] = now

    start = (time.perf_counter(), time.process_time())
    runner.generate(scene, progress=progress)
    end = (time.perf_counter(), time.process_time())
    points = [start, marks["first_view"], marks["views"], end]
    names = ("models + first view", "further views", "video + 3D model")
    row = {}
    for k, name in enumerate(names):
        row[name] = {"wall_s": points[k + 1][0] - points[k][0], "cpu_s": points[k + 1][1] - points[k][1]}
    row["total"] = {"wall_s": end[0] - start[0], "cpu_s": end[1] - start[1]}
    return row


def main(args) -> dict:
    from ivid.app import AppSettings, JobRunner, Scene, resolve_models
    from ivid.utils.run_record import write_json

    models = resolve_models(args.preset)
    image_size, num_classes = models.model_info()
    sample = models.sample_defaults
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-app-") as work:
        runner = JobRunner(AppSettings(models=models, work_dir=work, device=args.device), num_classes=num_classes)
        for seed in range(args.repeats):
            scene = Scene(class_label=0 if num_classes else -1, seed=seed, viewset=args.viewset,
                          steps_uncond=int(sample.get("steps_uncond", 100)),
                          steps_cond=int(sample.get("steps_cond", 20)),
                          guidance=float(sample.get("guidance", 3.0)), sampler="ddim")
            rows.append(_time_job(runner, scene))
    phases = list(rows[0])
    best = {p: {k: min(r[p][k] for r in rows) for k in ("wall_s", "cpu_s")} for p in phases}
    print(f"app job: --preset {args.preset}, viewset {args.viewset}, {args.device}, "
          f"{torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f}")
    print(f"{'phase':<22}{'wall s':>9}{'CPU s':>9}")
    for phase in phases:
        print(f"{phase:<22}{best[phase]['wall_s']:>9.1f}{best[phase]['cpu_s']:>9.1f}")
    result = {"preset": args.preset, "viewset": args.viewset, "device": args.device,
              "threads": torch.get_num_threads(), "load_average_1min": os.getloadavg()[0],
              "cpu_count": os.cpu_count(), "platform": platform.platform(), "runs": rows, "best": best}
    write_json(args.output, result)
    print(f"wrote {args.output}")
    return result


if __name__ == "__main__":
    run_cli(main, parse_args)
