"""Benchmark the CLIs' CPU-thread defaults on a shared machine: one run alone vs several at once.

Each trial starts ``k`` copies of a workload at the same moment (``--concurrency 1,2``: alone, then
two competing for the cores) and takes the wall time of each. Settings are compared with their
trials interleaved, so all see the same background load:

- ``openmp``: OpenMP's own defaults (what the CLIs did before ``ivid.threads``): the workload is
  started from a launcher that imports torch first, so ``ivid.threads`` leaves the environment
  alone, and ``OMP_WAIT_POLICY`` is removed from the child's environment unless you set it;
- ``ivid``: the CLI as shipped (``ivid.threads``: ``OMP_WAIT_POLICY=PASSIVE``);
- ``NAME:VAR=VALUE+...``: OpenMP's defaults plus these variables (``spin10k:GOMP_SPINCOUNT=10000``,
  ``one:OMP_NUM_THREADS=1``, ...).

The thread count is torch's default in both unless ``OMP_NUM_THREADS`` is set. Workloads:
``demo`` (``inference/sample.py --preset demo --seeds 0-1 --viewset 3x9`` by default: wall time of
the process, model loading included) and ``warp`` (``scripts/bench_render.py --cases warp``: median
seconds per warp pair).
The load average before each trial is recorded: other jobs on the machine count too.

    python scripts/bench_threads.py --workload demo --concurrency 1,2 --repeats 2
    python scripts/bench_threads.py --workload warp --output bench_results/bench_threads_warp.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Dict, List

import ivid.threads  # noqa: F401 - first: OpenMP's CPU-thread defaults, read when torch loads
from ivid.cli import add_debug_option, run_cli
from ivid.errors import OptionError
from ivid.utils.run_record import write_json

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SETTINGS = "openmp,ivid"
#: a launcher that loads torch (and so OpenMP) before the tool: ivid.threads then changes nothing
_TORCH_FIRST = "import runpy, sys, torch; sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workload", default="demo", choices=("demo", "warp"))
    p.add_argument("--concurrency", default="1,2", help="comma list: copies started at once per trial")
    p.add_argument("--repeats", type=int, default=2, help="trials per (setting, concurrency), interleaved")
    p.add_argument("--settings", default=SETTINGS,
                   help="comma list: openmp, ivid, or NAME:VAR=VALUE+VAR=VALUE (OpenMP's defaults plus these "
                        "variables, e.g. spin10k:GOMP_SPINCOUNT=10000 or one:OMP_NUM_THREADS=1)")
    p.add_argument("--background", type=int, default=0,
                   help="busy-looping processes kept running during the trials (a stand-in for other jobs)")
    p.add_argument("--seeds", default="0-1", help="demo workload: --seeds of inference/sample.py")
    p.add_argument("--viewset", default="3x9", help="demo workload: --viewset of inference/sample.py")
    p.add_argument("--warp_repeat", type=int, default=5, help="warp workload: timed warps per run (median)")
    p.add_argument("--output", default="bench_results/bench_threads.json")
    add_debug_option(p)
    return p.parse_args(argv)


def _command(args: argparse.Namespace, work_dir: str) -> List[str]:
    if args.workload == "demo":
        return [os.path.join(REPO, "inference", "sample.py"), "--preset", "demo", "--seeds", args.seeds,
                "--viewset", args.viewset, "--no_progress", "--device", "cpu", "--output_dir", work_dir]
    return [os.path.join(REPO, "scripts", "bench_render.py"), "--device", "cpu", "--cases", "warp",
            "--repeat", str(args.warp_repeat), "--output", os.path.join(work_dir, "warp.json")]


def parse_settings(text: str) -> Dict[str, Dict[str, str]]:
    """``--settings`` -> name -> extra variables (``ivid`` maps to None: the CLI as shipped)."""
    settings: Dict[str, Dict[str, str]] = {}
    for item in (i.strip() for i in text.split(",") if i.strip()):
        name, _, assignments = item.partition(":")
        pairs = [a.split("=", 1) for a in assignments.split("+") if a]
        if (name != "ivid" and name != "openmp" and not pairs) or any(len(p) != 2 or not p[0] for p in pairs):
            raise OptionError(f"--settings {item!r}: expected openmp, ivid or NAME:VAR=VALUE+VAR=VALUE")
        settings[name] = dict(pairs)
    if not settings:
        raise OptionError("--settings: nothing to compare")
    return settings


def _env(setting: str, extra: Dict[str, str]) -> Dict[str, str]:
    env = dict(os.environ)
    if setting != "ivid":
        for name in ivid.threads.APPLIED:  # only what ivid.threads set; a user's own choice stays
            env.pop(name, None)
    env.update(extra)
    return env


def _trial(args: argparse.Namespace, setting: str, extra: Dict[str, str], copies: int) -> List[float]:
    """Start ``copies`` workloads at once; returns each one's seconds (wall, or per warp pair)."""
    with tempfile.TemporaryDirectory(prefix="ivid_bench_threads_") as tmp:
        procs = []
        for k in range(copies):
            work_dir = os.path.join(tmp, str(k))
            os.makedirs(work_dir)
            command = _command(args, work_dir)
            argv = [sys.executable, *command] if setting == "ivid" else [sys.executable, "-c", _TORCH_FIRST, *command]
            procs.append((work_dir, time.perf_counter(),
                          subprocess.Popen(argv, cwd=REPO, env=_env(setting, extra), stdout=subprocess.DEVNULL,
                                           stderr=subprocess.PIPE, text=True)))
        seconds = []
        for work_dir, start, proc in procs:
            _, err = proc.communicate()
            wall = time.perf_counter() - start
            if proc.returncode != 0:
                last_line = err.strip().splitlines()[-1] if err.strip() else ""
                raise RuntimeError(f"{args.workload} workload failed: {last_line}")
            if args.workload == "warp":
                with open(os.path.join(work_dir, "warp.json")) as f:
                    wall = json.load(f)["results"][0]["seconds_per_item"]
            seconds.append(wall)
    return seconds


def main(args: argparse.Namespace) -> dict:
    try:
        levels = [int(c) for c in args.concurrency.split(",") if c.strip()]
    except ValueError:
        raise OptionError(f"--concurrency {args.concurrency!r}: expected a comma list of counts like 1,2") from None
    if not levels or min(levels) < 1 or args.repeats < 1:
        raise OptionError("--concurrency counts and --repeats must be >= 1")
    settings = parse_settings(args.settings)
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(max(0, args.background))]
    try:
        trials = _trials(args, settings, levels)
    finally:
        for proc in busy:
            proc.kill()
            proc.wait()
    unit = "s per warp pair" if args.workload == "warp" else "s wall per run"
    return _report(args, settings, levels, trials, unit)


def _trials(args: argparse.Namespace, settings: Dict[str, Dict[str, str]], levels: List[int]) -> List[dict]:
    """Every (concurrency, repeat, setting) trial, settings interleaved."""
    trials = []
    for copies in levels:
        for repeat in range(args.repeats):
            for setting, extra in settings.items():
                load = os.getloadavg()[0]
                seconds = _trial(args, setting, extra, copies)
                trials.append({"setting": setting, "copies": copies, "repeat": repeat, "load_before": load,
                               "seconds": seconds})
                print(f"{setting:10s} x{copies}  load {load:5.2f}  " + "  ".join(f"{s:.3f}" for s in seconds),
                      flush=True)
    return trials


def _report(args, settings, levels, trials, unit) -> dict:
    """Print the summary table and write the JSON report."""
    print(f"\n| setting | copies at once | median {unit} | trials | load average before |\n|---|---|---|---|---|")
    summary = []
    for copies in levels:
        for setting in settings:
            mine = [t for t in trials if t["setting"] == setting and t["copies"] == copies]
            values = [s for t in mine for s in t["seconds"]]
            loads = [t["load_before"] for t in mine]
            row = {"setting": setting, "copies": copies, "median_s": statistics.median(values),
                   "trials": len(mine), "load_min": min(loads), "load_max": max(loads)}
            summary.append(row)
            print(f"| {setting} | {copies} | {row['median_s']:.3f} | {len(mine)} | "
                  f"{row['load_min']:.1f}-{row['load_max']:.1f} |")
    report = {"workload": args.workload, "options": vars(args), "cpus": os.cpu_count(),
              "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "trials": trials, "summary": summary}
    write_json(args.output, report)
    print(f"wrote {args.output}")
    return report


if __name__ == "__main__":
    run_cli(main, parse_args)
