"""The two renderers of the reference, on top of raster + shading (internal).

:func:`simple_render` (SimpleRenderer: one mesh per frame) and
:func:`aggregation_render` (AggregationRenderer: B target cameras, each with its own
ordered list of M meshes, every mesh in its own depth buffer, folded in order).
Meshes come as :class:`MeshArrays` (tensors on one device); a frame pairs a mesh
with a camera (projection @ modelview).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import torch

from .camera import perspective
from .mesh import FLAG_EDGE, FLAG_ERODED, FLAG_PADDING, Mesh
from .raster import rasterize, to_clip
from .shading import (PADDING_THRESHOLD, AggregationAccumulator, aggregation_shade, simple_shade,
                      window_to_linear)

#: frame-pixels rasterised and shaded at once by the aggregation renderer (memory control)
PIXEL_BUDGET = 1 << 18


@dataclass
class MeshArrays:
    """A view mesh as tensors on the render device (see :class:`ivid.geometry.Mesh`).

    Attributes:
        position: (V, 3) world; faces: (F, 3) int64; uv: (V, 2); flags: (V, 3) float32
        0/1 (is_edge, is_padding, is_eroded); normal: (V, 3) world or None;
        center: (3,) float64 source camera centre (world).
    """

    position: torch.Tensor
    faces: torch.Tensor
    uv: torch.Tensor
    flags: torch.Tensor
    normal: Optional[torch.Tensor]
    center: torch.Tensor


def mesh_arrays(mesh: Mesh, device: torch.device) -> MeshArrays:
    """Tensors of ``mesh`` (NumPy or torch) on ``device``; decodes the flag bits."""
    def tensor(x, dtype=None):
        return torch.as_tensor(x).to(device=device, dtype=dtype)
    flag = tensor(mesh.vertices.flag, torch.int64).reshape(-1, 1)
    bits = torch.tensor([FLAG_EDGE, FLAG_PADDING, FLAG_ERODED], device=device)
    normal = mesh.vertices.normal
    modelview = tensor(mesh.modelview, torch.float64)
    return MeshArrays(position=tensor(mesh.vertices.position), faces=tensor(mesh.faces, torch.int64),
                      uv=tensor(mesh.vertices.uv), flags=((flag & bits) != 0).to(torch.float32),
                      normal=None if normal is None else tensor(normal),
                      center=torch.linalg.inv(modelview)[:3, 3])


def projection(fov: float, near: float, far: float, device: torch.device) -> torch.Tensor:
    """(4, 4) float64 ``perspective(fov, 1, near, far)`` on ``device``."""
    return torch.as_tensor(perspective(float(fov), 1.0, float(near), float(far))).to(device, torch.float64)


@dataclass
class _Packed:
    clip: torch.Tensor
    faces: torch.Tensor
    face_frame: torch.Tensor
    meshes: List[MeshArrays]


def _pack(meshes: Sequence[MeshArrays], matrices: torch.Tensor) -> _Packed:
    """Concatenate frame k = (meshes[k], matrices[k]) into one vertex / face list."""
    clips, faces, frames = [], [], []
    offset = 0
    for k, mesh in enumerate(meshes):
        clips.append(to_clip(mesh.position, matrices[k]))
        faces.append(mesh.faces + offset)
        frames.append(torch.full((mesh.faces.shape[0],), k, dtype=torch.int64, device=mesh.faces.device))
        offset += mesh.position.shape[0]
    return _Packed(torch.cat(clips), torch.cat(faces), torch.cat(frames), list(meshes))


def _cat(meshes: Sequence[MeshArrays], name: str) -> torch.Tensor:
    return torch.cat([getattr(m, name) for m in meshes])


def simple_render(meshes: Sequence[MeshArrays], textures: torch.Tensor, matrices: torch.Tensor, size: int,
                  near: float, far: float, pixel_budget: int = PIXEL_BUDGET * 8) -> Dict[str, torch.Tensor]:
    """SimpleRenderer: frame k draws ``meshes[k]`` textured with ``textures[k]`` through ``matrices[k]``.

    Args:
        meshes: F meshes; textures: (F, Ht, Wt, 3) colours in [0, 1];
        matrices: (F, 4, 4) projection @ modelview; size: render size S;
        near, far: the projection's planes (for reading depth back);
        pixel_budget: frame-pixels rendered at once (frames are processed in chunks).

    Returns:
        ``color`` (F, S, S, 3) float32, ``alpha`` (F, S, S) float32 {0, 1},
        ``depth`` (F, S, S) float32 linear eye depth (``far`` where empty).
    """
    step = max(1, pixel_budget // (size * size))
    parts = []
    for first in range(0, len(meshes), step):
        chunk = list(meshes[first:first + step])
        packed = _pack(chunk, matrices[first:first + step])
        fragments = rasterize(packed.clip, packed.faces, packed.face_frame, len(chunk), size)
        frame_texture = torch.arange(first, first + len(chunk), device=textures.device)
        shaded = simple_shade(fragments, packed.faces, _cat(chunk, "uv"), _cat(chunk, "flags")[:, 0], textures,
                              frame_texture)
        shaded["depth"] = window_to_linear(fragments.zbuf, near, far)
        parts.append(shaded)
    return parts[0] if len(parts) == 1 else {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


def aggregation_render(meshes: Sequence[Sequence[MeshArrays]], textures: Sequence[torch.Tensor],
                       matrices: torch.Tensor, size: int, near: float, far: float,
                       pixel_budget: int = PIXEL_BUDGET) -> Dict[str, torch.Tensor]:
    """AggregationRenderer for B targets, each drawing its own list of M meshes in order.

    Args:
        meshes: B lists of M meshes (with normals); textures: B tensors (M, Ht, Wt, 3)
            in [0, 1]; matrices: (B, 4, 4) projection @ modelview of the targets;
        size: render size S; near, far: the projection's planes.

    Returns:
        ``color`` (B, S, S, 3), ``depth`` (B, S, S) linear, ``mask_color``,
        ``mask_depth`` (B, S, S) bool (see :meth:`AggregationAccumulator.read_back`).
    """
    batch, count = len(meshes), len(meshes[0])
    if any(len(m) != count for m in meshes):
        raise ValueError("aggregation_render: every target must have the same number of meshes")
    device = matrices.device
    accumulator = AggregationAccumulator.zeros(batch, size, size, device)
    texture_table = torch.stack(list(textures)).reshape((batch * count,) + tuple(textures[0].shape[1:]))
    step = max(1, min(count, pixel_budget // (batch * size * size)))
    for first in range(0, count, step):
        chunk = range(first, min(first + step, count))
        # frame order: mesh-major, so frame j * B + b is mesh (first + j) of target b
        frame_meshes = [meshes[b][m] for m in chunk for b in range(batch)]
        frame_matrices = matrices.repeat(len(chunk), 1, 1)
        frame_texture = torch.tensor([b * count + m for m in chunk for b in range(batch)], device=device)
        shaded, zbuf = _aggregation_frames(frame_meshes, frame_matrices, texture_table, frame_texture, size)
        for j in range(len(chunk)):
            part = slice(j * batch, (j + 1) * batch)
            accumulator.fold(shaded["color"][:, part], shaded["weight"][part], zbuf[part])
    return accumulator.read_back(near, far)


def _aggregation_frames(frame_meshes: List[MeshArrays], matrices: torch.Tensor, texture_table: torch.Tensor,
                        frame_texture: torch.Tensor, size: int):
    """Rasterise + shade frames (one mesh each) with the aggregation shader."""
    if any(m.normal is None for m in frame_meshes):
        raise ValueError("aggregation render: meshes need normals (depth_to_mesh(..., cal_normal=True))")
    packed = _pack(frame_meshes, matrices)
    flags = _cat(frame_meshes, "flags")
    fragments = rasterize(packed.clip, packed.faces, packed.face_frame, len(frame_meshes), size,
                          back_discard=(flags[:, 1], PADDING_THRESHOLD))
    centers = torch.stack([m.center for m in frame_meshes])
    shaded = aggregation_shade(fragments, packed.faces, _cat(frame_meshes, "position"),
                               _cat(frame_meshes, "normal"), _cat(frame_meshes, "uv"), flags, texture_table,
                               frame_texture, centers)
    return shaded, fragments.zbuf

