"""3D consistency of a generated multiview scene: condition adherence and reprojection PSNR.

Two measures (``docs/evaluation.md``, section "3D consistency"):

(a) **Condition adherence**: each conditioned view against the aggregated condition it
    was sampled from, inside the condition masks: colour RMSE in [-1, 1] units (the
    models' colour range) over ``mask_rgb``, and over ``mask`` the RMSE of the depth
    code (``2 * project_depth(d, near, far) - 1``, the z_buffer code of the models'
    depth channel, [-1, 1] units) and the mean relative depth error ``|d - d_c| / d_c``.
(b) **Reprojection consistency**: a source view's mesh (``depth_to_mesh`` of its own
    depth, faces across depth discontinuities dropped) textured with its colour is
    rendered into a target camera by the project's rasteriser; a target pixel is
    *co-visible* when the render covers it (more than 3/4 of its sub-pixels and its
    centre) and the rendered depth agrees with the target's own depth within
    ``depth_tol`` (relative). PSNR (peak 1 on [0, 1] colours, the same value as peak 2
    on [-1, 1]) is computed over the co-visible pixels; the co-visible fraction is
    their share of the target's pixels.

Everything here is a pure function of tensors (any device; results stay there).
Images are channel-last (..., H, W, C), row 0 = top; depth is linear (camera units),
cameras are world -> camera ``modelview`` matrices and one ``fov`` in degrees
(conventions: ``docs/conventions.md``). Per-scene numbers pool their pixels: an
RMSE or PSNR over several views or pairs is computed from the summed squared errors
and pixel counts, so views or pairs with few pixels weigh little.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch

from ivid.geometry import depth_to_mesh, project_depth
from ivid.geometry.camera import yaw_pitch_of_view
from ivid.geometry.renderer import coverage_mask, mesh_arrays, pick_subpixel, projection, simple_render
from ivid.geometry.warp import WARP_CLIP_PLANES

__all__ = [
    "DEPTH_TOL", "EDGE_TOL", "MIN_COVISIBLE", "RENDER_SSAA", "TEXTURE_UPSAMPLE",
    "masked_sse", "masked_rmse", "psnr_from_mse", "masked_psnr", "pooled_rmse", "pooled_psnr",
    "depth_code", "condition_adherence", "first_view_pairs", "neighbour_pairs", "reproject",
    "covisible_mask", "reprojection_errors", "scene_tensors", "scene_consistency", "summarize",
]

#: co-visible when |rendered depth - target depth| <= DEPTH_TOL * target depth
DEPTH_TOL = 0.05
#: a source mesh face is dropped when its depth spread exceeds this AND its 1/depth spread too
#: (``depth_to_mesh`` atol / rtol; the demo preset's discontinuity tolerances)
EDGE_TOL = 0.1
#: a pair "shares" its views when at least this fraction of the target's pixels is co-visible
MIN_COVISIBLE = 0.2
#: render supersampling: the centre sub-pixel gives colour and depth, the others the coverage test
RENDER_SSAA = 3
#: the source colour is bilinearly upsampled by this factor before the renderer's nearest-texel lookup,
#: so the warped colour is (to 1 / (2 * TEXTURE_UPSAMPLE) pixel) a bilinear resampling of the source
TEXTURE_UPSAMPLE = 4
#: texels of the per-pair textures held at once (memory bound of :func:`reproject`)
TEXEL_BUDGET = 1 << 22


# --- elementary measures -------------------------------------------------------------------------

def masked_sse(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Sum of squared differences inside a mask, and the number of values summed.

    Args:
        a, b: (..., H, W, C) or (..., H, W) tensors of the same shape.
        mask: (..., H, W) bool (or {0, 1}) selecting pixels; all channels of a pixel count.

    Returns:
        ``(sse, count)`` float64 tensors of shape (...): summed squared error over the
        masked pixels' values, and the number of values (pixels * channels).
    """
    if a.shape != b.shape:
        raise ValueError(f"masked_sse: shapes differ {tuple(a.shape)} vs {tuple(b.shape)}")
    channels = 1 if a.dim() == mask.dim() else a.shape[-1]
    weight = mask.to(torch.float64)
    diff = (a.to(torch.float64) - b.to(torch.float64)) ** 2
    if a.dim() != mask.dim():
        diff = diff.sum(-1)
    return (diff * weight).sum((-2, -1)), weight.sum((-2, -1)) * channels


def masked_rmse(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Root mean squared difference over the masked pixels (all their channels); NaN where the mask is empty.

    Shapes as :func:`masked_sse`; returns (...) float64 in the units of ``a``.
    """
    sse, count = masked_sse(a, b, mask)
    return torch.where(count > 0, sse / count.clamp_min(1), torch.full_like(sse, math.nan)).sqrt()


def psnr_from_mse(mse: torch.Tensor, peak: float = 1.0) -> torch.Tensor:
    """``10 log10(peak^2 / mse)`` in dB (inf for mse 0, NaN for NaN)."""
    mse = torch.as_tensor(mse, dtype=torch.float64)
    return 10 * torch.log10(peak * peak / mse)


def masked_psnr(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor, peak: float = 1.0) -> torch.Tensor:
    """PSNR (dB) over the masked pixels; NaN where the mask is empty. Shapes as :func:`masked_sse`."""
    sse, count = masked_sse(a, b, mask)
    return psnr_from_mse(torch.where(count > 0, sse / count.clamp_min(1), torch.full_like(sse, math.nan)), peak)


def pooled_rmse(sse: torch.Tensor, count: torch.Tensor) -> float:
    """RMSE of all values behind several (sse, count) entries: ``sqrt(sum sse / sum count)``; NaN if none."""
    total = float(torch.as_tensor(count).sum())
    return math.sqrt(float(torch.as_tensor(sse).sum()) / total) if total > 0 else math.nan


def pooled_psnr(sse: torch.Tensor, count: torch.Tensor, peak: float = 1.0) -> float:
    """PSNR (dB) of all values behind several (sse, count) entries; NaN if none, inf for zero error."""
    total = float(torch.as_tensor(count).sum())
    if total <= 0:
        return math.nan
    mse = float(torch.as_tensor(sse).sum()) / total
    return math.inf if mse == 0 else 10 * math.log10(peak * peak / mse)


def depth_code(depth: torch.Tensor, near: float, far: float) -> torch.Tensor:
    """Linear depth -> the models' depth channel in [-1, 1]: ``2 * project_depth(depth, near, far) - 1`` (z_buffer)."""

    return project_depth(depth, near, far) * 2 - 1


# --- (a) condition adherence ----------------------------------------------------------------------

def condition_adherence(rgb: torch.Tensor, depth: torch.Tensor, cond_rgb: torch.Tensor, cond_depth: torch.Tensor,
                        mask: torch.Tensor, mask_rgb: torch.Tensor, near: float, far: float) -> Dict[str, torch.Tensor]:
    """Per-view error of generated views against their aggregated conditions, inside the condition masks.

    Args:
        rgb: (N, H, W, 3) generated colour in [0, 1]; depth: (N, H, W) generated linear depth.
        cond_rgb: (N, H, W, 3) condition colour in [0, 1]; cond_depth: (N, H, W) condition linear depth.
        mask: (N, H, W) bool, condition depth known; mask_rgb: (N, H, W) bool, condition colour known.
        near, far: planes of the models' depth code (the run's ``--near`` / ``--far``).

    Returns:
        dict of (N,) float64 tensors: ``rgb_sse`` / ``rgb_count`` (squared colour error in
        [-1, 1] units over mask_rgb, and values summed = pixels * 3), ``depth_sse`` /
        ``depth_count`` (squared depth-code error in [-1, 1] units over mask, pixels),
        ``depth_rel_sum`` (sum of ``|d - d_c| / d_c`` over mask), ``rgb_rmse``,
        ``depth_rmse``, ``depth_rel`` (per view; NaN where its mask is empty) and
        ``mask_fraction`` (share of pixels in ``mask``).
    """
    mask, mask_rgb = mask.to(torch.bool), mask_rgb.to(torch.bool)
    rgb_sse, rgb_count = masked_sse(rgb * 2 - 1, cond_rgb * 2 - 1, mask_rgb)
    code, cond_code = (depth_code(d.to(torch.float64), near, far) for d in (depth, cond_depth))
    depth_sse, depth_count = masked_sse(code, cond_code, mask)
    safe = torch.where(mask, cond_depth.to(torch.float64), torch.ones_like(cond_depth, dtype=torch.float64))
    relative = ((depth.to(torch.float64) - cond_depth.to(torch.float64)).abs() / safe.clamp_min(1e-6)) * mask
    rel_sum = relative.sum((-2, -1))

    def ratio(total: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
        return torch.where(count > 0, total / count.clamp_min(1), torch.full_like(total, math.nan))

    return {"rgb_sse": rgb_sse, "rgb_count": rgb_count, "depth_sse": depth_sse, "depth_count": depth_count,
            "depth_rel_sum": rel_sum, "rgb_rmse": ratio(rgb_sse, rgb_count).sqrt(),
            "depth_rmse": ratio(depth_sse, depth_count).sqrt(), "depth_rel": ratio(rel_sum, depth_count),
            "mask_fraction": mask.to(torch.float64).mean((-2, -1))}


# --- (b) reprojection consistency -----------------------------------------------------------------

def first_view_pairs(count: int) -> torch.Tensor:
    """(count - 1, 2) int64 ``(0, j)`` for j = 1 .. count-1: the first view into every other view."""
    return torch.stack([torch.zeros(max(count - 1, 0), dtype=torch.int64), torch.arange(1, max(count, 1))], 1)


def _lattice(yaw: np.ndarray, pitch: np.ndarray) -> Optional[Tuple[np.ndarray, np.ndarray, int]]:
    """Column and row index of every camera when the cameras form a full yaw x pitch lattice, else None."""
    yaw_r, pitch_r = np.round(yaw, 6), np.round(pitch, 6)
    yaws, pitches = np.unique(yaw_r), np.unique(pitch_r)
    if len(yaws) * len(pitches) != len(yaw) or len({(a, b) for a, b in zip(yaw_r, pitch_r)}) != len(yaw):
        return None
    return np.searchsorted(yaws, yaw_r), np.searchsorted(pitches, pitch_r), len(yaws)


def neighbour_pairs(modelviews: Any) -> torch.Tensor:
    """Directed pairs (i, j) of neighbouring cameras.

    When the cameras form a full yaw x pitch lattice around the origin (the ``3x9``,
    ``360`` and ``360x3`` viewsets), neighbours are the 4-connected lattice cells (same
    pitch and adjacent yaw, or same yaw and adjacent pitch; the yaw ring closes when
    the yaws go all the way round). Otherwise consecutive views in generation order.

    Args:
        modelviews: (N, 4, 4) world -> camera matrices (NumPy or tensor).

    Returns:
        (P, 2) int64 CPU tensor of (source, target) view indices, both directions, sorted.
    """

    matrices = torch.as_tensor(np.asarray(modelviews.cpu() if isinstance(modelviews, torch.Tensor) else modelviews,
                                          np.float64))
    count = matrices.shape[0]
    edges = set()
    lattice = None
    if count > 2:
        yaw, pitch = (v.numpy() for v in yaw_pitch_of_view(matrices))
        lattice = _lattice(yaw, pitch)
    if lattice is None:
        edges = {(i, i + 1) for i in range(count - 1)}
    else:
        column, row, columns = lattice
        yaws = np.unique(np.round(yaw, 6))
        steps = np.diff(yaws)
        wraps = columns > 2 and (yaws[0] + 2 * math.pi - yaws[-1]) <= 1.01 * steps.max()
        cell = {(int(c), int(r)): k for k, (c, r) in enumerate(zip(column, row))}
        for (c, r), k in cell.items():
            right = (c + 1) % columns if wraps else c + 1
            for other in ((right, r), (c, r + 1)):
                if other in cell and cell[other] != k:
                    edges.add((min(k, cell[other]), max(k, cell[other])))
    directed = sorted({p for a, b in edges for p in ((a, b), (b, a))})
    return torch.tensor(directed, dtype=torch.int64).reshape(-1, 2)


def reproject(rgb: torch.Tensor, depth: torch.Tensor, modelviews: torch.Tensor, fov: float, pairs: torch.Tensor,
              edge_tol: float = EDGE_TOL, ssaa: int = RENDER_SSAA,
              texture_upsample: int = TEXTURE_UPSAMPLE) -> Dict[str, torch.Tensor]:
    """Render each pair's source view, through its own depth, into the target camera.

    The source mesh is ``depth_to_mesh(depth[s], fov, modelview[s], atol=rtol=edge_tol)``
    (no padding); the renderer (the project's warp renderer, at ``ssaa`` x the image
    size) draws it with the source colour, drops faces flagged as discontinuities and
    back faces, and reads back linear depth.

    Args:
        rgb: (N, H, W, 3) colour in [0, 1]; depth: (N, H, W) linear depth (> 0).
        modelviews: (N, 4, 4) world -> camera; fov: degrees (H == W).
        pairs: (P, 2) int64 (source, target) indices.
        edge_tol: discontinuity tolerance of the source meshes.
        ssaa: render supersampling (odd, so one sub-pixel sits on the pixel centre).
        texture_upsample: bilinear upsampling of the source colour before nearest lookup.

    Returns:
        dict on ``rgb``'s device: ``color`` (P, H, W, 3) float32 (the centre sub-pixel),
        ``depth`` (P, H, W) float32 linear depth of the centre sub-pixel, ``valid``
        (P, H, W) bool: the centre and more than 3/4 of the sub-pixels are drawn.
    """

    device = rgb.device
    count, height, width = depth.shape
    if height != width:
        raise ValueError(f"reproject: views must be square, got {height}x{width}")
    if ssaa < 1 or ssaa % 2 == 0:
        raise ValueError(f"reproject: ssaa must be odd and >= 1, got {ssaa}")
    if not bool(torch.isfinite(depth).all()) or bool((depth <= 0).any()):
        raise ValueError("depth must be finite and > 0 everywhere (linear depth, camera units)")
    pairs = torch.as_tensor(pairs, dtype=torch.int64).reshape(-1, 2).cpu()
    out = {"color": torch.zeros(len(pairs), height, width, 3, dtype=torch.float32, device=device),
           "depth": torch.zeros(len(pairs), height, width, dtype=torch.float32, device=device),
           "valid": torch.zeros(len(pairs), height, width, dtype=torch.bool, device=device)}
    if len(pairs) == 0:
        return out
    views = modelviews.to(device=device, dtype=torch.float64)
    sources = sorted(set(pairs[:, 0].tolist()))
    meshes = {s: mesh_arrays(depth_to_mesh(depth[s].to(torch.float32), padding=None, fov=float(fov),
                                           modelview=views[s], atol=edge_tol, rtol=edge_tol), device)
              for s in sources}
    textures = torch.nn.functional.interpolate(rgb.permute(0, 3, 1, 2).to(torch.float32), scale_factor=texture_upsample,
                                               mode="bilinear", align_corners=False).clamp(0, 1).permute(0, 2, 3, 1)
    matrices = projection(float(fov), WARP_CLIP_PLANES, device) @ views
    group = max(1, TEXEL_BUDGET // (textures.shape[1] * textures.shape[2]))
    size = height * ssaa
    for first in range(0, len(pairs), group):
        chunk = pairs[first:first + group]
        rendered = simple_render([meshes[int(s)] for s in chunk[:, 0]], textures[chunk[:, 0].to(device)],
                                 matrices[chunk[:, 1].to(device)], size, WARP_CLIP_PLANES)
        drawn = rendered["alpha"] > 0.5
        part = slice(first, first + len(chunk))
        out["color"][part] = pick_subpixel(rendered["color"], ssaa)
        out["depth"][part] = pick_subpixel(rendered["depth"].unsqueeze(-1), ssaa)[..., 0]
        out["valid"][part] = coverage_mask(drawn, ssaa) & pick_subpixel(drawn.unsqueeze(-1), ssaa)[..., 0]
    return out


def covisible_mask(warped: Mapping[str, torch.Tensor], target_depth: torch.Tensor,
                   depth_tol: float = DEPTH_TOL) -> torch.Tensor:
    """Co-visible pixels: drawn by :func:`reproject` and at the target's depth.

    Args:
        warped: :func:`reproject` output (``depth``, ``valid`` of shape (P, H, W)).
        target_depth: (P, H, W) linear depth of each pair's target view.
        depth_tol: relative tolerance, ``|rendered - target| <= depth_tol * target``.

    Returns:
        (P, H, W) bool.
    """
    target_depth = target_depth.to(torch.float32)
    return warped["valid"] & ((warped["depth"] - target_depth).abs() <= depth_tol * target_depth)


def reprojection_errors(rgb: torch.Tensor, depth: torch.Tensor, modelviews: torch.Tensor, fov: float,
                        pairs: torch.Tensor, depth_tol: float = DEPTH_TOL, edge_tol: float = EDGE_TOL,
                        ssaa: int = RENDER_SSAA, texture_upsample: int = TEXTURE_UPSAMPLE) -> Dict[str, torch.Tensor]:
    """Colour error of every (source, target) pair over the co-visible pixels of the target.

    Args:
        rgb, depth, modelviews, fov, pairs, edge_tol, ssaa, texture_upsample: as :func:`reproject`.
        depth_tol: co-visible when ``|rendered depth - target depth| <= depth_tol * target depth``.

    Returns:
        dict of (P,) tensors: ``sse`` (float64, summed squared colour error in [0, 1]
        units over the co-visible pixels' 3 channels), ``covisible`` (float64, number of
        co-visible pixels), ``fraction`` (co-visible share of the target's pixels) and
        ``psnr`` (dB, peak 1; NaN without co-visible pixels).
    """
    pairs = torch.as_tensor(pairs, dtype=torch.int64).reshape(-1, 2).cpu()
    warped = reproject(rgb, depth, modelviews, fov, pairs, edge_tol, ssaa, texture_upsample)
    targets = pairs[:, 1].to(rgb.device)
    covisible = covisible_mask(warped, depth[targets], depth_tol)
    sse, values = masked_sse(warped["color"], rgb[targets].to(torch.float32), covisible)
    pixels = values / 3
    mse = torch.where(pixels > 0, sse / values.clamp_min(1), torch.full_like(sse, math.nan))
    return {"sse": sse, "covisible": pixels, "fraction": pixels / (depth.shape[1] * depth.shape[2]),
            "psnr": psnr_from_mse(mse)}


# --- a whole scene ------------------------------------------------------------------------------

def scene_tensors(views: Sequence[Mapping[str, Any]], device: Any = "cpu") -> Dict[str, Any]:
    """The views of :func:`ivid.scene.load_scene` as tensors on ``device``.

    Returns:
        dict: ``rgb`` (N, H, W, 3) float32 in [0, 1], ``depth`` (N, H, W) float32,
        ``modelview`` (N, 4, 4) float64, ``fov`` (float, degrees; the views must share
        it) and ``cond`` (None, or a dict of ``rgb`` (N, H, W, 3) in [0, 1], ``depth``
        (N, H, W), ``mask`` / ``mask_rgb`` (N, H, W) bool) when every view has one.

    Raises:
        ValueError: the views have different fields of view.
    """
    fovs = {float(v["fov"]) for v in views}
    if len(fovs) != 1:
        raise ValueError(f"the views have different fields of view {sorted(fovs)}; the metric needs one")

    def stack(key, source=views, dtype=torch.float32):
        return torch.as_tensor(np.stack([np.asarray(v[key]) for v in source])).to(device=device, dtype=dtype)

    out: Dict[str, Any] = {"rgb": stack("rgb") / 255, "depth": stack("depth"),
                           "modelview": stack("modelview", dtype=torch.float64), "fov": fovs.pop(), "cond": None}
    if all(v.get("cond") is not None for v in views):
        conds = [v["cond"] for v in views]
        out["cond"] = {"rgb": stack("rgb", conds) / 255, "depth": stack("depth", conds),
                       "mask": stack("mask", conds, torch.bool), "mask_rgb": stack("mask_rgb", conds, torch.bool)}
    return out


def scene_consistency(rgb: torch.Tensor, depth: torch.Tensor, modelviews: torch.Tensor, fov: float,
                      cond: Optional[Mapping[str, torch.Tensor]] = None, near: float = 0.6, far: float = 5.0,
                      depth_tol: float = DEPTH_TOL, edge_tol: float = EDGE_TOL, min_covisible: float = MIN_COVISIBLE,
                      neighbours: Optional[torch.Tensor] = None, ssaa: int = RENDER_SSAA,
                      texture_upsample: int = TEXTURE_UPSAMPLE) -> Dict[str, Any]:
    """Both consistency measures of one scene.

    Args:
        rgb: (N, H, W, 3) in [0, 1]; depth: (N, H, W) linear; modelviews: (N, 4, 4);
        fov: degrees. cond: optional conditions as returned by :func:`scene_tensors`
            (views whose masks are empty, such as view 0, do not count).
        near, far: planes of the depth code (for the depth-code RMSE).
        depth_tol, edge_tol, ssaa, texture_upsample: see :func:`reprojection_errors`.
        min_covisible: co-visible fraction above which a pair counts as sharing its views.
        neighbours: (P, 2) pairs for the neighbour measure; default :func:`neighbour_pairs`.

    Returns:
        dict of floats (NaN where undefined):

        - ``views``, ``conditioned_views``;
        - ``cond_rgb_rmse`` ([-1, 1] units), ``cond_depth_rmse`` (depth code, [-1, 1]
          units), ``cond_depth_rel`` (mean ``|d - d_c| / d_c``), pooled over the pixels
          of all conditioned views; ``cond_fraction``: mean share of their pixels in the mask;
        - ``first_psnr`` (dB, view 0 into every other view, pooled over co-visible
          pixels), ``first_covisible`` (mean co-visible fraction), ``first_share``
          (share of those pairs with fraction >= ``min_covisible``);
        - ``neighbour_psnr``, ``neighbour_covisible``, ``neighbour_share``: the same
          over the neighbour pairs;

        plus ``per_view`` (lists of per-view adherence) and ``pairs`` (per-pair lists).
    """
    count = rgb.shape[0]
    result: Dict[str, Any] = {"views": count}
    per_view: Dict[str, List[float]] = {}
    if cond is not None:
        adherence = condition_adherence(rgb, depth, cond["rgb"], cond["depth"], cond["mask"], cond["mask_rgb"],
                                        near, far)
        conditioned = (adherence["rgb_count"] > 0) | (adherence["depth_count"] > 0)
        result.update({
            "conditioned_views": int(conditioned.sum()),
            "cond_rgb_rmse": pooled_rmse(adherence["rgb_sse"], adherence["rgb_count"]),
            "cond_depth_rmse": pooled_rmse(adherence["depth_sse"], adherence["depth_count"]),
            "cond_depth_rel": (float(adherence["depth_rel_sum"].sum() / adherence["depth_count"].sum())
                               if float(adherence["depth_count"].sum()) > 0 else math.nan),
            "cond_fraction": float(adherence["mask_fraction"][conditioned].mean()) if bool(conditioned.any())
            else math.nan,
        })
        per_view = {k: adherence[k].tolist() for k in ("rgb_rmse", "depth_rmse", "depth_rel", "mask_fraction")}
    else:
        result.update({"conditioned_views": 0, "cond_rgb_rmse": math.nan, "cond_depth_rmse": math.nan,
                       "cond_depth_rel": math.nan, "cond_fraction": math.nan})
    first = first_view_pairs(count)
    near_pairs = neighbour_pairs(modelviews) if neighbours is None else torch.as_tensor(neighbours).reshape(-1, 2)
    all_pairs = torch.cat([first, near_pairs.to(torch.int64)])
    errors = reprojection_errors(rgb, depth, modelviews, fov, all_pairs, depth_tol, edge_tol, ssaa, texture_upsample)
    pair_lists: Dict[str, Any] = {}
    for name, part in (("first", slice(0, len(first))), ("neighbour", slice(len(first), len(all_pairs)))):
        sse, pixels, fraction = errors["sse"][part], errors["covisible"][part], errors["fraction"][part]
        result[f"{name}_psnr"] = pooled_psnr(sse, pixels * 3)
        result[f"{name}_covisible"] = float(fraction.mean()) if len(fraction) else math.nan
        result[f"{name}_share"] = float((fraction >= min_covisible).to(torch.float64).mean()) if len(fraction) \
            else math.nan
        pair_lists[name] = {"pairs": all_pairs[part].tolist(), "psnr": errors["psnr"][part].tolist(),
                            "fraction": fraction.tolist()}
    result["per_view"] = per_view
    result["pairs"] = pair_lists
    return result


#: the per-scene numbers averaged by :func:`summarize`
SUMMARY_KEYS = ("cond_rgb_rmse", "cond_depth_rmse", "cond_depth_rel", "cond_fraction", "first_psnr",
                "first_covisible", "first_share", "neighbour_psnr", "neighbour_covisible", "neighbour_share")


def summarize(scenes: Sequence[Mapping[str, Any]]) -> Dict[str, float]:
    """Mean of every number of :data:`SUMMARY_KEYS` over the scenes that define it (each scene weighs the same).

    Returns:
        dict ``key -> mean`` (NaN when no scene defines it) plus ``scenes`` (the count).
    """
    out: Dict[str, float] = {"scenes": len(scenes)}
    for key in SUMMARY_KEYS:
        values = [float(s[key]) for s in scenes if key in s and not math.isnan(float(s[key]))]
        out[key] = sum(values) / len(values) if values else math.nan
    return out
