"""Conditioning renders (forward-backward warp, aggregated conditions) and fusion renders.

Composition only (docs/renderer.md#conditioning-renders, docs/renderer.md#fusion-renders):
meshes from :func:`~ivid.geometry.depth_to_mesh`, rendering and SSAA reduction by
:mod:`ivid.geometry.renderer`. Every function accepts NumPy arrays or torch tensors
(any device; results stay there) and returns the same kind.

Two kinds of planes, named apart: the renderer's clip planes (:class:`ClipPlanes`,
the reference's: :data:`WARP_CLIP_PLANES` for warping, :data:`AGGREGATION_CLIP_PLANES`
for the aggregated conditions used while sampling, :data:`FUSION_CLIP_PLANES` for
fusion) and the planes of the depth code z (``code_near`` / ``code_far``;
docs/design.md#depth-to-mesh). The public keywords keep the reference's names:
``near`` / ``far`` are code planes in :func:`forward_backward_warp` and
:func:`aggregate_conditions`, clip planes in :func:`render_fusion`. Images are
H x W x C, row 0 = top, colours in [0, 1].
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch

from ivid.errors import OptionError

from ._arrays import first_tensor, tensors_to_numpy, to_tensor
from .camera import look_at
from .depth import depth_edge, erode_mask, linearize_depth, project_depth
from .mesh import Mesh, depth_to_mesh
from .renderer import (ClipPlanes, aggregation_render, coverage_mask, downsample_color, mesh_arrays, pick_subpixel,
                       projection, settings_for, simple_render)

#: the renderer's clip planes (the reference's) for each kind of render
WARP_CLIP_PLANES = ClipPlanes(0.1, 200.0)
AGGREGATION_CLIP_PLANES = ClipPlanes(0.01, 200.0)
FUSION_CLIP_PLANES = ClipPlanes(0.1, 200.0)
#: ``render_fusion(..., resolution=)``: colour at image size and the rest at render size (the
#: documented default), or every output at image size, or every output at render size
FUSION_RESOLUTIONS = ("mixed", "image", "render")

__all__ = ["forward_backward_warp", "aggregate_conditions", "aggregate_conditions_batch", "render_fusion",
           "WARP_CLIP_PLANES", "AGGREGATION_CLIP_PLANES", "FUSION_CLIP_PLANES", "FUSION_RESOLUTIONS"]


def _device(*objs: Any) -> torch.device:
    anchor = first_tensor(*objs)
    return anchor.device if anchor is not None else torch.device("cpu")


def _canonical_modelview(device: torch.device) -> torch.Tensor:
    return to_tensor(look_at(np.array([0.0, 0.0, 1.0]), np.zeros(3), np.array([0.0, 1.0, 0.0])), device=device)


def _matrices(modelview: Any, batch: int, device: torch.device, name: str) -> torch.Tensor:
    """(B, 4, 4) float64 modelviews from a (4, 4) or (B, 4, 4) input."""
    matrix = to_tensor(modelview, device=device, dtype=torch.float64)
    if matrix.shape == (4, 4):
        matrix = matrix.expand(batch, 4, 4)
    if matrix.shape != (batch, 4, 4):
        raise ValueError(f"{name}: expected a (4, 4) or ({batch}, 4, 4) matrix, got {tuple(matrix.shape)}")
    return matrix


def _render_pass(meshes: List[Mesh], textures: torch.Tensor, modelviews: torch.Tensor, fov: float, ssaa: int,
                 device: torch.device) -> Dict[str, torch.Tensor]:
    """SimpleRenderer pass at ``ssaa`` x the texture size; frame b = meshes[b] seen by modelviews[b]."""
    size = textures.shape[1] * ssaa
    matrices = projection(fov, WARP_CLIP_PLANES, device) @ modelviews
    return simple_render([mesh_arrays(m, device) for m in meshes], textures, matrices, size, WARP_CLIP_PLANES)


def forward_backward_warp(rgbd: Any, modelview1: Any, modelview0: Any = None, padding: Any = None,
                          fov: float = 45, near: float = 0.5, far: float = 100, mode: str = "z_buffer",
                          atol: float = 0.02, rtol: float = 0.02, ssaa: int = 3,
                          return_passes: bool = False) -> Dict[str, Any]:
    """Warp an RGBD image to ``modelview1`` and back (the training-pair condition, docs/design.md#training-data).

    mesh0 = depth_to_mesh(linearize(depth), padding, fov, modelview0) is rendered at
    modelview1 (colour: uint8 + LANCZOS, depth: centre sub-pixel); mesh1 =
    depth_to_mesh(that depth, no padding, modelview1, atol, rtol) textured with that
    colour is rendered back at modelview0; the mask is SSAA coverage AND depth_edge
    of the re-encoded depth; colour and depth are multiplied by it.

    Args:
        rgbd: (H, W, 4) or (B, H, W, 4) in [0, 1]; channel 3 = encoded depth z.
        modelview1: (4, 4) or (B, 4, 4) world -> camera of the perturbed view.
        modelview0: source view; None = ``look_at((0,0,1), 0, +y)``.
        padding: mesh0 padding (None, number of pixels, or 'frustum'); the reference's
            training data uses the image size.
        fov: degrees. near, far, mode: planes and mode of the depth channel's code (not
            clip planes: the renders use :data:`WARP_CLIP_PLANES`).
        atol, rtol: discontinuity tolerances (mesh1 flags and depth_edge).
        ssaa: supersampling factor of the renders.
        return_passes: also return the intermediate renders (``pass1_*``, ``pass2_*``).

    Returns:
        dict with ``color`` (..., H, W, 3) float32 (0 where masked), ``depth``
        (..., H, W, 1) float32 z in [0, 1] (0 where masked), ``mask`` (..., H, W, 1)
        float32 {0, 1}; same kind/device as ``rgbd``.
    """
    device = _device(rgbd, modelview1, modelview0)
    rgbd_t = to_tensor(rgbd, device=device, dtype=torch.float32)
    batched = rgbd_t.dim() == 4
    rgbd_t = rgbd_t if batched else rgbd_t.unsqueeze(0)
    if rgbd_t.shape[-1] != 4 or rgbd_t.shape[1] != rgbd_t.shape[2]:
        raise ValueError("forward_backward_warp: rgbd must be (H, W, 4) or (B, H, W, 4) square, "
                         f"got {tuple(rgbd_t.shape)}")
    batch = rgbd_t.shape[0]
    view1 = _matrices(modelview1, batch, device, "forward_backward_warp: modelview1")
    view0 = _matrices(_canonical_modelview(device) if modelview0 is None else modelview0, batch, device,
                      "forward_backward_warp: modelview0")
    depth0 = linearize_depth(rgbd_t[..., 3], near, far, mode)
    mesh0 = [depth_to_mesh(depth0[b], padding=padding, fov=fov, modelview=view0[b]) for b in range(batch)]
    pass1 = _render_pass(mesh0, rgbd_t[..., :3], view1, fov, ssaa, device)
    color1 = downsample_color(pass1["color"], ssaa)
    depth1 = pick_subpixel(pass1["depth"].unsqueeze(-1), ssaa)[..., 0]
    mesh1 = [depth_to_mesh(depth1[b], padding=None, fov=fov, modelview=view1[b], atol=atol, rtol=rtol)
             for b in range(batch)]
    pass2 = _render_pass(mesh1, color1.to(torch.float32) / 255, view0, fov, ssaa, device)
    color2 = downsample_color(pass2["color"], ssaa)
    depth2 = project_depth(pick_subpixel(pass2["depth"].unsqueeze(-1), ssaa), near, far, mode)
    mask = coverage_mask(pass2["alpha"] > 0.5, ssaa).unsqueeze(-1) & depth_edge(depth2, atol, rtol)
    maskf = mask.to(torch.float32)
    out = {"color": color2.to(torch.float32) / 255 * maskf, "depth": depth2 * maskf, "mask": maskf}
    if return_passes:
        out.update({"pass1_color": pass1["color"], "pass1_depth": pass1["depth"], "pass1_alpha": pass1["alpha"],
                    "pass1_color_down": color1, "pass1_depth_down": depth1, "pass2_color": pass2["color"],
                    "pass2_depth": pass2["depth"], "pass2_alpha": pass2["alpha"], "pass2_color_down": color2,
                    "pass2_depth_down": depth2})
    if not batched:
        out = {k: v[0] for k, v in out.items()}
    return out if isinstance(rgbd, torch.Tensor) else tensors_to_numpy(out)


def _condition_images(rendered: Dict[str, torch.Tensor], ssaa: int, code_near: float, code_far: float, mode: str,
                      atol: float, rtol: float, erode_rgb: Optional[int]) -> Dict[str, torch.Tensor]:
    """SSAA reduction and masking of aggregation renders (B, S, S, .) -> (B, H, W, C) conditions."""
    color = downsample_color(rendered["color"], ssaa).to(torch.float32) / 255
    depth = project_depth(pick_subpixel(rendered["depth"].unsqueeze(-1), ssaa), code_near, code_far, mode)
    mask = coverage_mask(rendered["mask_depth"], ssaa).unsqueeze(-1)
    mask_rgb = coverage_mask(rendered["mask_color"], ssaa).unsqueeze(-1)
    depth_convex = depth.clone()
    mask = mask & depth_edge(depth, atol, rtol)
    if erode_rgb is not None and erode_rgb > 0:
        mask_rgb = mask_rgb & erode_mask(mask, 2 * int(erode_rgb) - 1)
    maskf, mask_rgbf = mask.to(torch.float32), mask_rgb.to(torch.float32)
    return {"color": color * mask_rgbf, "depth": depth * maskf, "mask": maskf, "mask_rgb": mask_rgbf,
            "depth_convex": depth_convex}


def aggregate_conditions_batch(meshes_per_sample: Sequence[Sequence[Mesh]], colors_per_sample: Sequence[Any],
                               modelviews: Any, fov: float = 45, near: float = 0.6, far: float = 5,
                               mode: str = "z_buffer", atol: float = 0.03, rtol: float = 0.03,
                               erode_rgb: Optional[int] = 3, ssaa: int = 3) -> Dict[str, Any]:
    """:func:`aggregate_conditions` for B samples at once (same number of meshes each).

    Args:
        meshes_per_sample: B lists of M meshes (views so far, with normals).
        colors_per_sample: B sequences (or (M, H, W, 3) arrays) of view colours in [0, 1].
        modelviews: (B, 4, 4) target cameras.

    Returns:
        dict of (B, H, W, C) arrays as :func:`aggregate_conditions`.
    """
    device = _device(colors_per_sample, modelviews, [m.faces for ms in meshes_per_sample for m in ms])
    batch = len(meshes_per_sample)
    textures = [torch.stack([to_tensor(c, device=device, dtype=torch.float32) for c in colors])
                if not isinstance(colors, (np.ndarray, torch.Tensor)) else to_tensor(colors, device=device,
                                                                                     dtype=torch.float32)
                for colors in colors_per_sample]
    if any(t.shape[0] != len(m) for t, m in zip(textures, meshes_per_sample)):
        raise ValueError("aggregate_conditions: need one colour image per mesh")
    size = textures[0].shape[1] * ssaa
    views = _matrices(modelviews, batch, device, "aggregate_conditions: modelview")
    matrices = projection(fov, AGGREGATION_CLIP_PLANES, device) @ views
    meshes = [[mesh_arrays(m, device) for m in ms] for ms in meshes_per_sample]
    rendered = aggregation_render(meshes, textures, matrices, size, AGGREGATION_CLIP_PLANES)
    out = _condition_images(rendered, ssaa, near, far, mode, atol, rtol, erode_rgb)
    anchor = first_tensor(colors_per_sample, modelviews, [m.faces for ms in meshes_per_sample for m in ms])
    return out if anchor is not None else tensors_to_numpy(out)


def aggregate_conditions(meshes: Sequence[Mesh], colors: Sequence[Any], modelview: Any, fov: float = 45,
                         near: float = 0.6, far: float = 5, mode: str = "z_buffer", atol: float = 0.03,
                         rtol: float = 0.03, erode_rgb: Optional[int] = 3, ssaa: int = 3) -> Dict[str, Any]:
    """Condition of a new view from all previous views' meshes (docs/design.md#rendering).

    Aggregation render of ``meshes`` at ``modelview`` (ssaa x size, :data:`AGGREGATION_CLIP_PLANES`),
    then colour LANCZOS, depth = project_depth(centre sub-pixel, near, far, mode),
    mask = SSAA(mask_depth) & depth_edge(depth, atol, rtol), mask_rgb =
    SSAA(mask_color) & erode(mask, 2*erode_rgb-1), colour *= mask_rgb, depth *= mask.

    Args:
        meshes: M view meshes (``depth_to_mesh(..., padding='frustum', cal_normal=True)``).
        colors: M view colours (H, W, 3) in [0, 1], one per mesh.
        modelview: (4, 4) target camera.
        near, far, mode: planes and mode of the returned depth code z (not clip planes).

    Returns:
        dict with ``color`` (H, W, 3), ``depth`` (H, W, 1) z, ``mask``, ``mask_rgb``
        (H, W, 1) float32 {0, 1}, ``depth_convex`` (H, W, 1) z before masking.
    """
    if len(meshes) == 0 or len(meshes) != len(colors):
        raise ValueError(f"aggregate_conditions: need >= 1 mesh and one colour per mesh "
                         f"(got {len(meshes)} meshes, {len(colors)} colours)")
    modelviews = modelview.reshape(1, 4, 4) if isinstance(modelview, torch.Tensor) else \
        np.asarray(modelview, dtype=np.float64).reshape(1, 4, 4)
    out = aggregate_conditions_batch([list(meshes)], [list(colors)], modelviews, fov=fov, near=near,
                                     far=far, mode=mode, atol=atol, rtol=rtol, erode_rgb=erode_rgb, ssaa=ssaa)
    return {k: v[0] for k, v in out.items()}


def render_fusion(meshes: Sequence[Mesh], colors: Sequence[Any], modelviews: Sequence[Any], fov: float = 45,
                  ssaa: int = 5, near: float = FUSION_CLIP_PLANES.near, far: float = FUSION_CLIP_PLANES.far,
                  resolution: str = "mixed") -> List[Dict[str, Any]]:
    """Fusion-based free-view rendering: aggregation render of all views at each camera.

    Args:
        meshes: M view meshes (with normals; free-view rendering uses padding 32).
        colors: M view colours (H, W, 3) in [0, 1].
        modelviews: T target cameras (4, 4) (a list or a (T, 4, 4) array).
        fov: degrees; ssaa: supersampling; near, far: the renderer's clip planes
            (default :data:`FUSION_CLIP_PLANES`).
        resolution: ``"mixed"`` (default): colour at image size, the rest at render
            size S = ssaa * H; ``"image"``: every output at image size (depth: the
            centre sub-pixel, masks: more than 3/4 of the sub-pixels, as the
            conditions); ``"render"``: every output at render size (colour before
            the uint8 + LANCZOS reduction).

    Returns:
        T dicts: ``color`` (H, W, 3) float32 in [0, 1] after SSAA downsampling,
        ``depth`` (S, S, 1) float32 linear depth at render resolution S = ssaa * H,
        ``mask_color`` / ``mask_depth`` (S, S, 1) float32 {0, 1} at render resolution
        (with ``resolution="mixed"``; the other choices change the sizes as above).
    """
    if resolution not in FUSION_RESOLUTIONS:
        raise OptionError(f"render_fusion: resolution {resolution!r}: use one of {', '.join(FUSION_RESOLUTIONS)}")
    device = _device(colors, modelviews, [m.faces for m in meshes])
    textures = torch.stack([to_tensor(c, device=device, dtype=torch.float32) for c in colors])
    views = torch.stack([to_tensor(v, device=device, dtype=torch.float64) for v in modelviews])
    size = textures.shape[1] * ssaa
    arrays = [mesh_arrays(m, device) for m in meshes]
    clip_planes = ClipPlanes(near, far)
    matrices = projection(fov, clip_planes, device) @ views
    settings = settings_for(device)
    group = max(1, settings.fusion_pixel_budget // (size * size))
    frames = []
    for start in range(0, views.shape[0], group):
        part = matrices[start:start + group]
        rendered = aggregation_render([arrays] * part.shape[0], [textures] * part.shape[0], part, size, clip_planes,
                                      settings)
        frames.extend(_fusion_frames(rendered, ssaa, resolution))
    anchor = first_tensor(colors, modelviews, [m.faces for m in meshes])
    return frames if anchor is not None else tensors_to_numpy(frames)


def _fusion_frames(rendered: Dict[str, torch.Tensor], ssaa: int, resolution: str) -> List[Dict[str, torch.Tensor]]:
    """Per-camera dicts of an aggregation render (B, S, S, .) at the ``resolution`` of :func:`render_fusion`."""
    depth = rendered["depth"].unsqueeze(-1)
    masks = {name: rendered[name] for name in ("mask_color", "mask_depth")}
    if resolution == "render":
        color = rendered["color"]
    else:
        color = downsample_color(rendered["color"], ssaa).to(torch.float32) / 255
    if resolution == "image":
        depth = pick_subpixel(depth, ssaa)
        masks = {name: coverage_mask(mask, ssaa) for name, mask in masks.items()}
    return [{"color": color[b], "depth": depth[b],
             **{name: mask[b].unsqueeze(-1).to(torch.float32) for name, mask in masks.items()}}
            for b in range(color.shape[0])]
