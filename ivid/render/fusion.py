"""Fusion-based free-view rendering of saved scenes (docs/design.md#inference, ``inference/render.py``).

Each view of a scene becomes a mesh with numeric padding 32 (a skirt of 32
pixel widths), discontinuity/erosion flags and normals; all meshes are blended
into any camera by :func:`ivid.geometry.render_fusion` (aggregation renderer,
ssaa 5, its default clip planes ``FUSION_CLIP_PLANES``; docs/renderer.md#fusion-renders),
every output at image size. Colour frames are the renderer's downsampled colour;
depth frames colourise ``project_depth`` of the centre sub-pixel's depth with the
DEFAULT code planes 0.5 / 100 (:data:`VIDEO_CODE_NEAR` / :data:`VIDEO_CODE_FAR`), as
the reference's depth video does.
"""

from __future__ import annotations

from typing import Dict, Iterator, List, Sequence, Tuple

import numpy as np
import torch

from ivid.utils.images import colorize_depth, pm1_to_uint8

__all__ = ["FUSION_PADDING", "FUSION_SSAA", "VIDEO_CODE_NEAR", "VIDEO_CODE_FAR", "scene_meshes", "render_frames"]

FUSION_PADDING = 32
FUSION_SSAA = 5
#: planes of the depth code the depth video colourises (not clip planes)
VIDEO_CODE_NEAR = 0.5
VIDEO_CODE_FAR = 100.0


def scene_meshes(views: Sequence[Dict[str, object]], atol: float, rtol: float, erode_rgb: int,
                 device: torch.device) -> Tuple[list, List[torch.Tensor], float]:
    """Meshes and colours of a scene's views for fusion rendering.

    Args:
        views: :mod:`ivid.scene` views (``rgb`` uint8 H x W x 3, ``depth`` linear H x W,
            ``modelview`` 4 x 4, ``fov``).
        atol, rtol, erode_rgb: discontinuity tolerances and colour erosion radius.
        device: where the meshes live.

    Returns:
        ``(meshes, colors, fov)``: one mesh per view (padding 32, flags, normals,
        world space), ``H x W x 3`` float32 colours in [0, 1] on ``device``, and
        the scene's field of view (degrees).
    """
    from ivid.geometry import depth_to_mesh

    fovs = {float(v["fov"]) for v in views}
    if len(fovs) != 1:
        raise ValueError(f"scene views have different fields of view {sorted(fovs)}; fusion needs one")
    meshes, colors = [], []
    for view in views:
        depth = torch.as_tensor(np.asarray(view["depth"], np.float32), device=device)
        meshes.append(depth_to_mesh(depth, padding=FUSION_PADDING, fov=float(view["fov"]),
                                    modelview=np.asarray(view["modelview"], np.float64), atol=atol, rtol=rtol,
                                    erode_rgb=erode_rgb, cal_normal=True))
        rgb = torch.as_tensor(np.asarray(view["rgb"], np.uint8), device=device)
        colors.append(rgb.to(torch.float32) / 255.0)
    return meshes, colors, fovs.pop()


def _depth_frame(depth_linear) -> np.ndarray:
    """Colourised depth code of an (H, W, 1) linear depth frame, as uint8 (H, W, 3)."""
    from ivid.geometry import project_depth

    depth = torch.as_tensor(depth_linear).detach().float().cpu()[..., 0]
    return colorize_depth(np.asarray(project_depth(depth, VIDEO_CODE_NEAR, VIDEO_CODE_FAR)))


def render_frames(meshes: list, colors: List[torch.Tensor], modelviews: Sequence[np.ndarray], fov: float,
                  ssaa: int = FUSION_SSAA, chunk: int = 8) -> Iterator[Tuple[np.ndarray, np.ndarray]]:
    """Fusion-render a scene into each camera (``chunk`` cameras per renderer call).

    Yields:
        ``(color, depth)`` per camera: ``H x W x 3`` uint8 colour (the renderer's
        [0, 1] colour, already on the 1/255 grid, rounded) and ``H x W x 3`` uint8 colourised depth
        (the centre sub-pixel's depth), both at the scene's image size.
    """
    from ivid.geometry import render_fusion

    for start in range(0, len(modelviews), chunk):
        cameras = [np.asarray(m, np.float64) for m in modelviews[start:start + chunk]]
        for out in render_fusion(meshes, colors, cameras, fov=fov, ssaa=ssaa, resolution="image"):
            color = torch.as_tensor(out["color"]).detach().float().cpu().numpy()
            yield pm1_to_uint8(color * 2.0 - 1.0), _depth_frame(out["depth"])
