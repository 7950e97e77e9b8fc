"""Benchmark sampler accuracy against steps: RMSE to the 1000-step DDIM solution, G_u and G_c.

For one model pair (default: the demo models of ``--preset demo``; any other with
``--config_uncond/--ckpt_uncond/--config_cond/--ckpt_cond``), from the same
initial noise per seed (drawn as ``inference/sample.py`` draws it: one
generator per seed, G_u's noise first, then G_c's):

* **G_u**: classifier-free guidance ``--guidance`` (3.0) on the labels
  ``seed % num_classes``;
* **G_c**: a fixed condition per seed: the G_u reference sample as the first
  view (camera yaw 0), warped into a camera at ``--yaw`` (0.15 rad) with the
  sampling pipeline's condition builder (``ivid.sampling.multiview``), sampled
  with the guidance options ``replace_rgb`` / ``replace_depth`` /
  ``constrain_depth`` (default: the demo preset's weights 0.5 / 0.5 / 0.5 and its
  geometry tolerances).

Each sampler (``ddim``; ``dpmpp_2m`` on its default logSNR grid;
``dpmpp_2m:time_uniform``) runs at each of ``--steps`` (5, 10, 15, 20, 25, 50)
and is compared with DDIM at ``--ref_steps`` (1000, eta 0): RMSE over all
samples and pixels, colour (3 channels) and depth (1 channel) separately, in
[-1, 1] units after clamping both to [-1, 1] (what is saved). The x_0
predictions are not clipped (``--clip_denoised`` to clip them, in every sampler).
InpaintCFG fills the masked condition pixels with fresh noise at every model
call (docs/design.md#diffusion-frameworks); that noise comes from one generator per seed
(``seed + 10**6``), re-seeded for every run.

Prints a markdown table (and whether the issue's targets hold), writes JSON
(``--output``) and a picture grid (``--image``): per model, one row per sampler
and one column per step count (top: colour of the first ``--image_seeds`` seeds,
bottom: their depth), then the reference and, for G_c, the condition. Example::

    python scripts/bench_solvers.py                       # demo models, ~10 min on 1 busy CPU core
    python scripts/bench_solvers.py --seeds 0-3 --steps 10,20 --ref_steps 200   # quick look
"""

from __future__ import annotations

import argparse
import inspect
import os
import platform
import time
from typing import Dict, List, Sequence

import numpy as np
import ivid.threads  # noqa: F401 - first: OpenMP's CPU-thread defaults, read when torch loads
import torch

from ivid.cli import add_debug_option, run_cli
from ivid.diffusion import DdimSampler, Dpmpp2mSampler
from ivid.diffusion.noise import randn
from ivid.diffusion.schedules import extract
from ivid.errors import OptionError
from ivid.sampling.multiview import MultiviewOptions, batch_conditions, condition_kwargs, view_mesh
from ivid.sampling.presets import PRESETS, resolve_request
from ivid.sampling.run import SampleRequest, find_file
from ivid.utils.device import resolve_device
from ivid.utils.io import atomic_write
from ivid.utils.run_record import write_json
from ivid.utils.seeds import parse_seeds, sample_generators

_DEMO = PRESETS["demo"]
_DEFAULTS = resolve_request(SampleRequest(preset="demo")).options()
SAMPLER_SPECS = ("ddim", "dpmpp_2m", "dpmpp_2m:logSNR", "dpmpp_2m:time_uniform")
#: seeds of the in-loop generators are offset from the sample seeds so they do not repeat the initial noise
LOOP_SEED_OFFSET = 10 ** 6


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config_uncond", default=_DEMO.config_uncond)
    p.add_argument("--ckpt_uncond", default=_DEMO.ckpt_uncond)
    p.add_argument("--config_cond", default=_DEMO.config_cond)
    p.add_argument("--ckpt_cond", default=_DEMO.ckpt_cond)
    p.add_argument("--label", default=None, help="name of the model pair in the outputs (default: demo or custom)")
    p.add_argument("--seeds", default="0-7", help="one sample per seed, e.g. 0-7")
    p.add_argument("--steps", default="5,10,15,20,25,50", help="comma list of step counts")
    p.add_argument("--samplers", default="ddim,dpmpp_2m,dpmpp_2m:time_uniform",
                   help=f"comma list of {', '.join(SAMPLER_SPECS)}")
    p.add_argument("--ref_steps", type=int, default=1000, help="DDIM steps of the reference solution")
    p.add_argument("--guidance", type=float, default=3.0)
    p.add_argument("--yaw", type=float, default=0.15, help="camera of the G_c condition (radians)")
    p.add_argument("--replace_rgb", type=float, default=_DEFAULTS.replace_rgb)
    p.add_argument("--replace_depth", type=float, default=_DEFAULTS.replace_depth)
    p.add_argument("--constrain_depth", type=float, default=_DEFAULTS.constrain_depth)
    p.add_argument("--atol", type=float, default=_DEFAULTS.atol)
    p.add_argument("--rtol", type=float, default=_DEFAULTS.rtol)
    p.add_argument("--erode_rgb", type=int, default=_DEFAULTS.erode_rgb)
    p.add_argument("--clip_denoised", action="store_true", help="clip every x_0 prediction to [-1, 1]")
    p.add_argument("--models", default="uncond,cond", help="comma list of uncond, cond")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, ...")
    p.add_argument("--output", default="bench_results/bench_solvers.json")
    p.add_argument("--image", default="bench_results/bench_solvers.png", help="picture grid (PNG); '' = none")
    p.add_argument("--image_seeds", type=int, default=2, help="seeds shown per cell of the picture")
    add_debug_option(p)
    args = p.parse_args(argv)
    args.seed_list = parse_seeds(args.seeds)
    try:
        args.step_list = [int(s) for s in args.steps.split(",") if s.strip()]
    except ValueError:
        raise OptionError(f"--steps {args.steps!r}: expected a comma list of integers") from None
    args.sampler_list = [s.strip() for s in args.samplers.split(",") if s.strip()]
    unknown = [s for s in args.sampler_list if s not in SAMPLER_SPECS]
    if unknown:
        raise OptionError(f"--samplers: unknown {unknown}; valid: {', '.join(SAMPLER_SPECS)}")
    args.model_list = [m.strip() for m in args.models.split(",") if m.strip()]
    if not args.model_list or any(m not in ("uncond", "cond") for m in args.model_list):
        raise OptionError(f"--models {args.models!r}: expected a comma list of uncond, cond")
    if args.label is None:
        demo = all(getattr(args, k) == v for k, v in _DEMO.files.items())
        args.label = "demo" if demo else "custom"
    return args


# --- samplers ------------------------------------------------------------------------------------

class _DdimNoClip(DdimSampler):
    """DDIM without clipping x_0, for a DdimSampler that always clips (no ``clip_denoised`` option yet)."""

    def _predict_x0(self, x_t, t_index, eps, tables):
        nd = x_t.ndim
        return extract(tables["sqrt_recip_alphas_cumprod"], t_index, nd) * x_t \
            - extract(tables["sqrt_recipm1_alphas_cumprod"], t_index, nd) * eps


def make_sampler(spec: str, framework, clip_denoised: bool):
    """``(sampler, extra sample() keywords)`` for a sampler spec, with x_0 clipping as asked."""
    name, _, grid = spec.partition(":")
    if name == "dpmpp_2m":
        return Dpmpp2mSampler(framework, grid=grid or "logSNR"), {"clip_denoised": clip_denoised}
    if "clip_denoised" in inspect.signature(DdimSampler.sample).parameters:
        return DdimSampler(framework), {"clip_denoised": clip_denoised}
    if "clip_denoised" in inspect.signature(DdimSampler.__init__).parameters:
        return DdimSampler(framework, clip_denoised=clip_denoised), {}
    return (DdimSampler(framework) if clip_denoised else _DdimNoClip(framework)), {}


def run_sampler(spec: str, framework, steps: int, noise: torch.Tensor, seeds: Sequence[int], cond: dict,
                clip_denoised: bool, device: torch.device) -> Dict[str, object]:
    """One sampler run from ``noise``; returns ``{"samples", "seconds"}``."""
    sampler, extra = make_sampler(spec, framework, clip_denoised)
    in_loop = sample_generators([s + LOOP_SEED_OFFSET for s in seeds], device)
    start = time.perf_counter()
    with torch.no_grad():
        out = sampler.sample(len(seeds), noise=noise, steps=steps, generator=in_loop, **extra, **cond).samples
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return {"samples": out.float(), "seconds": time.perf_counter() - start}


# --- conditions ----------------------------------------------------------------------------------

def options_of(args) -> MultiviewOptions:
    return MultiviewOptions(guidance=args.guidance, replace_rgb=args.replace_rgb, replace_depth=args.replace_depth,
                            constrain_depth=args.constrain_depth, atol=args.atol, rtol=args.rtol,
                            erode_rgb=args.erode_rgb)


def cond_condition(first_view: torch.Tensor, options: MultiviewOptions, yaw: float,
                   device: torch.device) -> Dict[str, torch.Tensor]:
    """The G_c condition of each sample: its first view (camera yaw 0) warped into a camera at ``yaw``.

    Returns the ``batch_conditions`` dict (``B x C x S x S``: color, depth, mask, mask_rgb, depth_convex).
    """
    from ivid.geometry import orbit_modelview

    cam0, cam1 = np.asarray(orbit_modelview(0.0, 0.0)), np.asarray(orbit_modelview(yaw, 0.0))
    meshes, colors = [], []
    for b in range(first_view.shape[0]):
        mesh, color = view_mesh(first_view[b], cam0, options)
        meshes.append([mesh])
        colors.append([color])
    return batch_conditions(meshes, colors, [cam1] * first_view.shape[0], options, device)


def cond_kwargs(cond: Dict[str, torch.Tensor], options: MultiviewOptions, classes) -> Dict[str, object]:
    """G_c sampler keywords for a condition, exactly as the multiview sampler builds them, plus the classes."""
    return {**condition_kwargs(cond, options), "classes": classes}


# --- measurements --------------------------------------------------------------------------------

def rmse(samples: torch.Tensor, reference: torch.Tensor) -> Dict[str, float]:
    """Colour and depth RMSE in [-1, 1] units of two ``N x 4 x H x W`` batches, both clamped to [-1, 1]."""
    diff = samples.clamp(-1, 1).double() - reference.clamp(-1, 1).double()
    return {"rgb": float(diff[:, :3].pow(2).mean().sqrt()), "depth": float(diff[:, 3:].pow(2).mean().sqrt())}


def bench_model(kind: str, framework, noise, seeds, cond, args, device) -> dict:
    """Reference and every sampler x steps for one model; returns the JSON block (samples kept aside)."""
    print(f"[{kind}] reference: DDIM {args.ref_steps} steps", flush=True)
    ref = run_sampler("ddim", framework, args.ref_steps, noise, seeds, cond, args.clip_denoised, device)
    rows, pictures = [], {}
    for spec in args.sampler_list:
        for steps in args.step_list:
            run = run_sampler(spec, framework, steps, noise, seeds, cond, args.clip_denoised, device)
            err = rmse(run["samples"], ref["samples"])
            rows.append({"sampler": spec, "steps": steps, "rmse_rgb": err["rgb"], "rmse_depth": err["depth"],
                         "seconds": run["seconds"]})
            pictures[(spec, steps)] = run["samples"][:args.image_seeds].cpu()
            print(f"[{kind}] {spec:22} {steps:>4} steps: rgb {err['rgb']:.4f} depth {err['depth']:.4f} "
                  f"({run['seconds']:.1f} s)", flush=True)
    return {"rows": rows, "ref_seconds": ref["seconds"], "reference_all": ref["samples"],
            "reference": ref["samples"][:args.image_seeds].cpu(), "pictures": pictures}


def target_checks(rows: List[dict], solver: str = "dpmpp_2m") -> List[dict]:
    """The issue's targets: solver@20 <= ddim@50, solver@10 < ddim@20 (colour and depth)."""
    table = {(r["sampler"], r["steps"]): r for r in rows}
    checks = []
    for (s_steps, d_steps, strict) in ((20, 50, False), (10, 20, True)):
        a, b = table.get((solver, s_steps)), table.get(("ddim", d_steps))
        if a is None or b is None:
            continue
        for channel in ("rgb", "depth"):
            x, y = a[f"rmse_{channel}"], b[f"rmse_{channel}"]
            checks.append({"claim": f"{solver}@{s_steps} {'<' if strict else '<='} ddim@{d_steps} ({channel})",
                           "solver": x, "ddim": y, "holds": bool(x < y if strict else x <= y)})
    return checks


def markdown_table(results: Dict[str, dict], steps: Sequence[int]) -> str:
    lines = ["| model | sampler | " + " | ".join(f"{s} steps" for s in steps) + " |",
             "|---|---|" + "---|" * len(steps)]
    for kind, block in results.items():
        table = {(r["sampler"], r["steps"]): r for r in block["rows"]}
        for spec in dict.fromkeys(r["sampler"] for r in block["rows"]):
            cells = [f"{table[(spec, s)]['rmse_rgb']:.4f} / {table[(spec, s)]['rmse_depth']:.4f}"
                     if (spec, s) in table else "" for s in steps]
            lines.append(f"| {kind} | {spec} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# --- picture -------------------------------------------------------------------------------------

def _cell(samples: torch.Tensor, scale: int) -> np.ndarray:
    """Colour row over depth row of a few ``4 x S x S`` samples in [-1, 1], as uint8."""
    from ivid.utils.images import colorize_depth, pm1_to_uint8

    x = samples.float().clamp(-1, 1)
    rgb = np.concatenate([pm1_to_uint8(s[:3].permute(1, 2, 0)) for s in x], 1)
    depth = np.concatenate([colorize_depth((s[3] * 0.5 + 0.5).numpy()) for s in x], 1)
    cell = np.concatenate([rgb, depth], 0)
    return np.repeat(np.repeat(cell, scale, 0), scale, 1)


def _condition_cell(cond: Dict[str, torch.Tensor], n: int, scale: int) -> np.ndarray:
    """The G_c condition of the first ``n`` samples: colour where mask_rgb, depth where mask (black elsewhere)."""
    y = torch.cat([cond["color"] * cond["mask_rgb"], cond["depth"]], 1)[:n].cpu() * 2 - 1
    cell = _cell(y, 1)
    h = y.shape[-1]
    masks = cond["mask"][:n].cpu()
    for b in range(masks.shape[0]):  # black out the unknown depth
        cell[h:, b * h:(b + 1) * h][masks[b, 0].numpy() < 0.5] = 0
    return np.repeat(np.repeat(cell, scale, 0), scale, 1)


def picture(results: Dict[str, dict], conditions: Dict[str, Dict[str, torch.Tensor]], args) -> np.ndarray:
    """One block per model: rows = samplers, columns = step counts, then the reference (and condition)."""
    from PIL import Image, ImageDraw

    scale, pad, label_w, head_h = 2, 4, 150, 16
    blocks = []
    for kind, block in results.items():
        specs = list(dict.fromkeys(r["sampler"] for r in block["rows"]))
        ref = _cell(block["reference"], scale)
        ch, cw = ref.shape[:2]
        extra = ["ref DDIM %d" % args.ref_steps] + (["condition"] if kind in conditions else [])
        columns = [f"{s} steps" for s in args.step_list] + extra
        width = label_w + len(columns) * (cw + pad)
        height = head_h + len(specs) * (ch + pad)
        canvas = Image.new("RGB", (width, height), "white")
        draw = ImageDraw.Draw(canvas)
        for j, text in enumerate(columns):
            draw.text((label_w + j * (cw + pad), 2), text, fill="black")
        for i, spec in enumerate(specs):
            y = head_h + i * (ch + pad)
            draw.text((4, y + ch // 2 - 12), f"{kind}", fill="black")
            draw.text((4, y + ch // 2), spec, fill="black")
            for j, steps in enumerate(args.step_list):
                tile = block["pictures"].get((spec, steps))
                if tile is not None:
                    canvas.paste(Image.fromarray(_cell(tile, scale)), (label_w + j * (cw + pad), y))
        x_ref = label_w + len(args.step_list) * (cw + pad)
        canvas.paste(Image.fromarray(ref), (x_ref, head_h))
        if kind in conditions:
            cond = _condition_cell(conditions[kind], block["reference"].shape[0], scale)
            canvas.paste(Image.fromarray(cond), (x_ref + cw + pad, head_h))
        blocks.append(np.asarray(canvas))
    width = max(b.shape[1] for b in blocks)
    blocks = [np.pad(b, ((0, 8), (0, width - b.shape[1]), (0, 0)), constant_values=255) for b in blocks]
    return np.concatenate(blocks, 0)


def save_picture(path: str, image: np.ndarray) -> None:
    """Write an ``H x W x 3`` uint8 picture as a 256-colour PNG (a third of the RGB file size), atomically."""
    from PIL import Image

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with atomic_write(path, "wb") as f:
        Image.fromarray(image).quantize(256, method=Image.Quantize.MEDIANCUT).save(f, format="PNG", optimize=True)


# --- main ----------------------------------------------------------------------------------------

def load_models(args, device):
    from ivid.model_loading import load_framework

    files = {option: find_file(getattr(args, option)) for option in _DEMO.files}
    for option, path in files.items():
        if not os.path.isfile(path):
            raise FileNotFoundError(f"--{option} {path}: no such file")
    return {kind: load_framework(files[f"config_{kind}"], files[f"ckpt_{kind}"], device) for kind in ("uncond", "cond")}


def main(args: argparse.Namespace) -> dict:
    device = resolve_device(args.device)
    models = load_models(args, device)
    g_u, g_c = models["uncond"], models["cond"]
    seeds = args.seed_list
    num_classes = getattr(g_u.backbone, "num_classes", None)
    classes = torch.tensor([s % num_classes for s in seeds], device=device) if num_classes else None
    backbone = g_u.backbone
    shape = (len(seeds), backbone.out_channels, backbone.image_size, backbone.image_size)
    generators = sample_generators(seeds, device)
    noise_u = randn(shape, generators, device)  # as the multiview sampler: view 0's noise, then view 1's
    noise_c = randn(shape, generators, device)
    options = options_of(args)
    start = time.perf_counter()
    results, conditions = {}, {}
    # G_c's condition needs G_u's reference sample even when only G_c is measured
    uncond_cond = {"strength": args.guidance, "classes": classes}
    if "uncond" in args.model_list:
        results["G_u"] = bench_model("G_u", g_u, noise_u, seeds, uncond_cond, args, device)
    if "cond" in args.model_list:
        print(f"[G_c] condition: the G_u reference sample warped to yaw {args.yaw:.2f}", flush=True)
        if "G_u" in results:
            first = results["G_u"]["reference_all"]
        else:
            first = run_sampler("ddim", g_u, args.ref_steps, noise_u, seeds, uncond_cond, args.clip_denoised,
                                device)["samples"]
        cond = cond_condition(first, options, args.yaw, device)
        conditions["G_c"] = cond
        results["G_c"] = bench_model("G_c", g_c, noise_c, seeds, cond_kwargs(cond, options, classes), args, device)
    total = time.perf_counter() - start
    table = markdown_table(results, args.step_list)
    print()
    print(f"RMSE to DDIM {args.ref_steps} steps, colour / depth, [-1, 1] units ({len(seeds)} samples, "
          f"model pair {args.label}):")
    print(table)
    checks = {kind: target_checks(block["rows"]) for kind, block in results.items()}
    for kind, items in checks.items():
        for c in items:
            print(f"{kind}: {c['claim']}: {c['solver']:.4f} vs {c['ddim']:.4f} -> {'holds' if c['holds'] else 'FAILS'}")
    info = {"torch": torch.__version__, "python": platform.python_version(), "device": str(device),
            "cpu_threads": torch.get_num_threads(), "seconds_total": total,
            "args": {k: v for k, v in vars(args).items() if k not in ("seed_list", "step_list", "sampler_list",
                                                                         "model_list")},
            "seeds": seeds, "results": {k: {"rows": b["rows"], "ref_seconds": b["ref_seconds"]}
                                        for k, b in results.items()},
            "targets": checks, "table": table}
    write_json(args.output, info)
    print(f"wrote {args.output} ({total:.0f} s)")
    if args.image:
        save_picture(args.image, picture(results, conditions, args))
        print(f"wrote {args.image}")
    return info


if __name__ == "__main__":
    run_cli(main, parse_args)
