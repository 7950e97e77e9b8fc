"""3D consistency of a folder of scene files: the command line of ``scripts/eval_consistency.py``.

Reads every ``*.npz`` scene of ``--scene_dir`` (a run folder of ``inference/sample.py`` or
its ``scenes/`` folder), scores it with :func:`ivid.metrics.consistency.scene_consistency`,
prints one line per scene and an overall line (means over scenes), and writes a JSON
report (default ``<run>/consistency.json``). See ``docs/evaluation.md``, "3D consistency".
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

from tqdm.auto import tqdm

from . import consistency as cm
from ivid.cli import add_debug_option

from .errors import MetricsError

__all__ = ["evaluate_scene_files", "format_table", "parse_args", "main"]

#: depth planes assumed when a scene file's metadata does not name them (the sampler's defaults)
DEFAULT_PLANES = (0.6, 5.0)

COLUMNS = (("cond_rgb_rmse", "cond rgb", "{:.3f}"), ("cond_depth_rmse", "cond z", "{:.3f}"),
           ("cond_depth_rel", "cond d rel", "{:.3f}"), ("cond_fraction", "mask", "{:.2f}"),
           ("first_psnr", "first PSNR", "{:.2f}"), ("first_share", "first>=20%", "{:.2f}"),
           ("neighbour_psnr", "nbr PSNR", "{:.2f}"), ("neighbour_share", "nbr>=20%", "{:.2f}"))


def _planes(metadata: Dict[str, Any], near: Optional[float], far: Optional[float]) -> Tuple[float, float]:
    return (float(near if near is not None else metadata.get("near", DEFAULT_PLANES[0])),
            float(far if far is not None else metadata.get("far", DEFAULT_PLANES[1])))


def evaluate_scene_files(paths: Sequence[str], device: Any = "cpu", near: Optional[float] = None,
                         far: Optional[float] = None, depth_tol: float = cm.DEPTH_TOL, edge_tol: float = cm.EDGE_TOL,
                         min_covisible: float = cm.MIN_COVISIBLE, progress: bool = True) -> List[Dict[str, Any]]:
    """Score every scene file.

    Args:
        paths: ``.npz`` scene files (:mod:`ivid.scene`).
        device: where the renders run.
        near, far: planes of the depth code; None = the scene's metadata (else 0.6 / 5).
        depth_tol, edge_tol, min_covisible: see :func:`ivid.metrics.consistency.scene_consistency`.
        progress: tqdm bar over scenes.

    Returns:
        one dict per scene: ``scene`` (file name without ``.npz``), ``path``, ``near``,
        ``far``, ``conditions`` (``"stored"`` or ``"none"``), ``seconds`` and every
        key of :func:`~ivid.metrics.consistency.scene_consistency`.

    Raises:
        ivid.scene.SceneError, FileNotFoundError: an unreadable scene (names the file).
        ValueError: a scene whose views differ in field of view or are not square.
    """
    from ivid.scene import load_scene

    results = []
    for path in tqdm(paths, desc="scenes", disable=not progress, dynamic_ncols=True):
        start = time.perf_counter()
        views, metadata = load_scene(path, return_metadata=True)
        scene_near, scene_far = _planes(metadata, near, far)
        try:
            tensors = cm.scene_tensors(views, device)
            scores = cm.scene_consistency(tensors["rgb"], tensors["depth"], tensors["modelview"], tensors["fov"],
                                          tensors["cond"], scene_near, scene_far, depth_tol, edge_tol, min_covisible)
        except ValueError as err:
            raise MetricsError(f"{path}: {err}") from None
        name = os.path.splitext(os.path.basename(path))[0]
        results.append({"scene": name, "path": os.path.abspath(path), "near": scene_near, "far": scene_far,
                        "conditions": "stored" if tensors["cond"] is not None else "none",
                        "seconds": round(time.perf_counter() - start, 3), **scores})
    return results


def _cell(value: Any, pattern: str) -> str:
    value = float(value)
    return "n/a" if math.isnan(value) else ("inf" if math.isinf(value) else pattern.format(value))


def format_table(scenes: Sequence[Dict[str, Any]], overall: Dict[str, float]) -> str:
    """One line per scene and an ``overall`` line (means over scenes), fixed-width columns."""
    width = max([len("overall")] + [len(s["scene"]) for s in scenes])
    header = f"{'scene':<{width}} {'views':>5} " + " ".join(f"{title:>10}" for _, title, _ in COLUMNS)
    lines = [header, "-" * len(header)]
    for scene in scenes:
        cells = " ".join(f"{_cell(scene[key], fmt):>10}" for key, _, fmt in COLUMNS)
        lines.append(f"{scene['scene']:<{width}} {scene['views']:>5} {cells}")
    lines.append("-" * len(header))
    cells = " ".join(f"{_cell(overall[key], fmt):>10}" for key, _, fmt in COLUMNS)
    lines.append(f"{'overall':<{width}} {'':>5} {cells}")
    return "\n".join(lines)


def _json_safe(value: Any) -> Any:
    """NaN / inf -> None / "inf" (strict JSON), recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="eval_consistency.py",
        description="3D consistency of sampled scenes: condition adherence (colour RMSE in [-1, 1], depth-code RMSE, "
                    "relative depth error inside the condition masks) and reprojection PSNR over co-visible pixels "
                    "(first view into every other view; every view into its grid neighbours). See docs/evaluation.md.")
    p.add_argument("--scene_dir", required=True,
                   help="run folder of inference/sample.py, or its scenes/ folder (*.npz scene files)")
    p.add_argument("--output", default=None, help="JSON report (default: consistency.json in the run folder)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ... or auto")
    p.add_argument("--near", type=float, default=None, help="near plane of the depth code (default: from the scene)")
    p.add_argument("--far", type=float, default=None, help="far plane of the depth code (default: from the scene)")
    p.add_argument("--depth_tol", type=float, default=cm.DEPTH_TOL,
                   help="co-visible when |rendered depth - target depth| <= depth_tol * target depth")
    p.add_argument("--edge_tol", type=float, default=cm.EDGE_TOL,
                   help="mesh faces whose depth and 1/depth spreads both exceed this are not drawn")
    p.add_argument("--min_covisible", type=float, default=cm.MIN_COVISIBLE,
                   help="a pair shares its views when at least this fraction of the target is co-visible")
    p.add_argument("--metrics", nargs="+", choices=["consistency"], default=["consistency"],
                   help=argparse.SUPPRESS)  # so that `eval.py --metrics consistency --scene_dir DIR` parses here
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_debug_option(p)
    args = p.parse_args(argv)
    for name in ("depth_tol", "edge_tol"):
        if not getattr(args, name) > 0:
            p.error(f"--{name} must be > 0, got {getattr(args, name)}")
    if not 0 <= args.min_covisible <= 1:
        p.error(f"--min_covisible must be in [0, 1], got {args.min_covisible}")
    return args


def _default_output(scene_dir: str, paths: Sequence[str]) -> str:
    folder = os.path.dirname(os.path.abspath(paths[0]))
    run = os.path.dirname(folder) if os.path.basename(folder) == "scenes" else folder
    return os.path.join(run, "consistency.json")


def main(args: argparse.Namespace) -> None:
    """Run the command line on parsed ``args`` (errors propagate; the CLIs run this in ``ivid.cli.run_cli``)."""
    from ivid.render.free_view import find_scenes
    from ivid.utils.device import resolve_device
    from ivid.utils.io import atomic_write

    device = resolve_device(args.device)
    paths = find_scenes(args.scene_dir)
    scenes = evaluate_scene_files(paths, device, args.near, args.far, args.depth_tol, args.edge_tol,
                                  args.min_covisible, progress=not args.quiet)
    overall = cm.summarize(scenes)
    print(format_table(scenes, overall))
    output = args.output or _default_output(args.scene_dir, paths)
    settings = {"depth_tol": args.depth_tol, "edge_tol": args.edge_tol, "min_covisible": args.min_covisible,
                "render_ssaa": cm.RENDER_SSAA, "texture_upsample": cm.TEXTURE_UPSAMPLE, "device": str(device)}
    report = {"scene_dir": os.path.abspath(args.scene_dir), "settings": settings, "overall": overall,
              "scenes": scenes}
    with atomic_write(output, "w") as f:
        json.dump(_json_safe(report), f, indent=1)
        f.write("\n")
    print(f"wrote {output}")
