"""Assemble the one markdown report of ``scripts/gpu_check.sh`` from what its steps left in a folder.

Reads ``steps.tsv`` (step, exit status, seconds), ``pytest_gpu.xml`` (JUnit XML of ``pytest -m gpu``),
``bench_unet.json``, ``bench_render.json``, ``bench_sample.json``, ``bench_scene.json`` and
``environment.txt``; a missing or failed step gets its section with the reason and the tail of its
log. Prints the report, writes it to ``<dir>/report.md`` and exits 1 when a step failed or a test
failed (missed speed targets are reported, not failed: they are for an H100).

    python scripts/gpu_report.py --dir bench_results/gpu_check --device cuda
"""

from __future__ import annotations

import argparse
import json
import os
import xml.etree.ElementTree as ET
from typing import Dict, List, Optional, Tuple

import ivid.threads  # noqa: F401 - first: OpenMP's CPU-thread defaults, read when torch loads
from ivid.cli import add_debug_option, run_cli
from ivid.utils.io import atomic_write

#: the report's sections, in order (tests check that every one is present)
SECTIONS = ("Environment", "Steps", "GPU tests", "CUDA vs CPU equality", "UNet forward", "Renderer",
            "Multiview sampling per view", "Full 3x9 scene", "Targets")
#: speed targets on one H100: (what, unit, bound, higher is better)
TARGETS = {"faithful": ("3x9 scene, faithful sampler (1000 DDPM + 26 x 50 DDIM)", "s", 40.0, False),
           "fast": ("3x9 scene, dpmpp_2m 25/20 steps", "s", 10.0, False),
           "warp": ("warp pairs per second, batched (16 per call)", "pairs/s", 1000.0, True)}
STEP_FILES = {"pytest_gpu": "pytest_gpu.xml", "bench_unet": "bench_unet.json", "bench_render": "bench_render.json",
              "bench_sample": "bench_sample.json", "bench_scene": "bench_scene.json"}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dir", required=True, help="the folder gpu_check.sh wrote")
    p.add_argument("--device", default="cuda", help="the device the checks ran on")
    p.add_argument("--small", action="store_true", help="the checks ran with tiny sizes (CI)")
    add_debug_option(p)
    return p.parse_args(argv)


def _read_steps(folder: str) -> Dict[str, Tuple[int, float]]:
    steps = {}
    path = os.path.join(folder, "steps.tsv")
    if os.path.isfile(path):
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 3:
                    steps[parts[0]] = (int(parts[1]), float(parts[2]))
    return steps


def _json(folder: str, name: str) -> Optional[dict]:
    path = os.path.join(folder, name)
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _log_tail(folder: str, step: str, lines: int = 8) -> List[str]:
    try:
        with open(os.path.join(folder, f"{step}.log"), errors="replace") as f:
            tail = f.read().splitlines()[-lines:]
    except OSError:
        return ["(no log)"]
    return ["```", *tail, "```"]


def _status(steps: Dict[str, Tuple[int, float]], step: str) -> str:
    if step not in steps:
        return "not run"
    rc, seconds = steps[step]
    state = "ok" if rc == 0 else ("timed out" if rc in (124, 137) else f"failed (exit {rc})")
    return f"{state}, {seconds:.0f} s"


def _missing(folder: str, steps, step: str) -> List[str]:
    return [f"No results: step `{step}` {_status(steps, step)}.", "", *_log_tail(folder, step)]


def _table(head: List[str], rows: List[List[object]]) -> List[str]:
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return out


def _tests(folder: str) -> Optional[List[dict]]:
    path = os.path.join(folder, STEP_FILES["pytest_gpu"])
    if not os.path.isfile(path):
        return None
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError:
        return None
    cases = []
    for case in root.iter("testcase"):
        outcome, reason = "passed", ""
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                outcome = {"failure": "failed", "error": "error", "skipped": "skipped"}[child.tag]
                reason = (child.get("message") or "").splitlines()[0][:120] if child.get("message") else ""
        cases.append({"name": f"{case.get('classname', '')}::{case.get('name', '')}", "outcome": outcome,
                      "reason": reason})
    return cases


def _fmt(value: Optional[float], digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _target_row(key: str, value: Optional[float], on_target_hw: bool) -> List[object]:
    what, unit, bound, higher = TARGETS[key]
    if value is None:
        met = "no result"
    elif not on_target_hw:
        met = "n/a (not a CUDA run)"
    else:
        met = "yes" if (value > bound if higher else value < bound) else "NO"
    measured = f"{_fmt(value, 1)} {unit}" if value is not None else "-"
    return [what, measured, f"{'>' if higher else '<'} {bound:g} {unit}",
            met]


def build_report(folder: str, device: str, small: bool) -> Tuple[str, bool]:
    """The markdown report and whether everything ran and passed."""
    steps = _read_steps(folder)
    ok = bool(steps) and all(rc == 0 for rc, _ in steps.values())
    on_cuda = device.startswith("cuda")
    lines = [f"# GPU check report ({device}{', small sizes' if small else ''})", ""]

    lines += ["## Environment", ""]
    try:
        with open(os.path.join(folder, "environment.txt")) as f:
            lines += ["```", *f.read().strip().splitlines(), "```", ""]
    except OSError:
        lines += ["(environment.txt missing)", ""]

    lines += ["## Steps", ""]
    lines += _table(["step", "status"], [[name, _status(steps, name)] for name in steps]) + [""]

    tests = _tests(folder)
    lines += ["## GPU tests", "", "`pytest -m gpu` (every test marked `gpu`; skipped where no CUDA device is "
              "visible).", ""]
    if tests is None:
        lines += _missing(folder, steps, "pytest_gpu") + [""]
    else:
        counts = {k: sum(t["outcome"] == k for t in tests) for k in ("passed", "failed", "error", "skipped")}
        lines += [", ".join(f"{v} {k}" for k, v in counts.items()), ""]
        bad = [t for t in tests if t["outcome"] in ("failed", "error")]
        ok = ok and not bad
        if bad:
            rows = [[t["name"], t["outcome"], t["reason"]] for t in bad]
            lines += _table(["test", "outcome", "message"], rows) + [""]

    lines += ["## CUDA vs CPU equality", "", "The renderer's and the UNet's CUDA results against the CPU's "
              "(`test_cuda_matches_cpu*`).", ""]
    equal = [t for t in (tests or []) if "cuda_matches_cpu" in t["name"]]
    lines += (_table(["test", "outcome"], [[t["name"], t["outcome"] + (f" ({t['reason']})" if t["reason"] else "")]
                                           for t in equal]) if equal else ["(no such test ran)"]) + [""]

    unet = _json(folder, STEP_FILES["bench_unet"])
    lines += ["## UNet forward", "", "`scripts/bench_unet.py`: one forward, random weights; fp16 = the released "
              "float16 torso (what `--precision fp32` runs on CUDA), bf16 / fp16_autocast = `--precision bf16 / fp16`.",
              ""]
    if unet is None:
        lines += _missing(folder, steps, "bench_unet") + [""]
    else:
        lines += _table(["config", "batch", "precision", "median ms", "GFLOP/s", "peak GiB"],
                        [[r["config"], r["batch_size"],
                          r["precision"] + (" channels_last" if r.get("channels_last") else ""),
                          _fmt(r["median_s"] * 1e3, 1),
                          _fmt(r["achieved_gflops"], 0), _fmt(r.get("peak_mem_gib"), 2)] for r in unet["results"]])
        lines += [""]

    render = _json(folder, STEP_FILES["bench_render"])
    warp_rate = None
    lines += ["## Renderer", "", "`scripts/bench_render.py`: seconds per item (median).", ""]
    if render is None:
        lines += _missing(folder, steps, "bench_render") + [""]
    else:
        lines += _table(["case", "s / item", "items / s"],
                        [[r["case"], _fmt(r["seconds_per_item"], 4), _fmt(1.0 / r["seconds_per_item"], 1)]
                         for r in render["results"]])
        rates = {r["case"]: 1.0 / r["seconds_per_item"] for r in render["results"]}
        warp_rate = rates.get("warp_batch16")
        lines += ["", f"Warp pairs per second, batched: {_fmt(warp_rate, 1)}"
                  + ("" if warp_rate is not None else " (warp_batch16 not run)"), ""]

    sample = _json(folder, STEP_FILES["bench_sample"])
    lines += ["## Multiview sampling per view", "", "`scripts/bench_sample.py`: seconds per sampler step and "
              "per view (G_u 1000 DDPM steps, G_c 50 DDIM steps + conditioning + meshing).", ""]
    if sample is None:
        lines += _missing(folder, steps, "bench_sample") + [""]
    else:
        lines += _table(["pair", "device", "G_u s/step", "G_c s/step", "conditioning s/view", "G_u s/view",
                         "G_c s/view"],
                        [[r["pair"], r["device"], _fmt(r["s_per_step_uncond"], 4), _fmt(r["s_per_step_cond"], 4),
                          _fmt(r["s_condition_per_view"], 3), _fmt(r["s_per_view_uncond"], 2),
                          _fmt(r["s_per_view_cond"], 2)] for r in sample["results"]]) + [""]

    scene = _json(folder, STEP_FILES["bench_scene"])
    best: Dict[str, float] = {}
    lines += ["## Full 3x9 scene", "", "`scripts/bench_scene.py`: one 3x9 scene (27 views) end to end, random "
              "weights; fp32 = the models as configured (on CUDA the released configs' float16 torso).", ""]
    if scene is None:
        lines += _missing(folder, steps, "bench_scene") + [""]
    else:
        rows = []
        for r in scene["results"]:
            target = TARGETS.get(r["case"])
            if target is not None:
                best[r["case"]] = min(best.get(r["case"], float("inf")), r["seconds"])
            rows.append([r["case"], r["sampler"], f"{r['steps_uncond']}/{r['steps_cond']}", r["precision"],
                         _fmt(r["seconds"], 2), f"< {target[2]:g} s" if target else "-"])
        lines += [f"Configs: {', '.join(scene['configs'])}; device {scene.get('device_name', '')}.", ""]
        lines += _table(["case", "sampler", "steps G_u/G_c", "precision", "seconds", "target (H100)"], rows) + [""]

    lines += ["## Targets", "", "For one H100; met only counts on a CUDA run (the best precision of each case).", ""]
    lines += _table(["target", "measured", "goal", "met"],
                    [_target_row("faithful", best.get("faithful"), on_cuda and not small),
                     _target_row("fast", best.get("fast"), on_cuda and not small),
                     _target_row("warp", warp_rate, on_cuda and not small)])
    lines += ["", f"Overall: {'all steps ran and every test passed' if ok else 'SOMETHING FAILED (see above)'}."]
    return "\n".join(lines) + "\n", ok


def main(args: argparse.Namespace) -> int:
    report, ok = build_report(args.dir, args.device, args.small)
    with atomic_write(os.path.join(args.dir, "report.md"), "w") as f:
        f.write(report)
    print(report, end="")
    return 0 if ok else 1


if __name__ == "__main__":
    run_cli(main, parse_args)
