"""The two renderers of the reference, on top of raster + shading (internal).

:func:`simple_render` (SimpleRenderer: one mesh per frame) and
:func:`aggregation_render` (AggregationRenderer: B target cameras, each with its own
ordered list of M meshes, every mesh in its own depth buffer, folded in order).
Meshes come as :class:`MeshArrays` (tensors on one device); a frame pairs a mesh
with a camera (projection @ modelview).

Chunks of frames are rasterised together (:func:`~ivid.geometry.raster.rasterize_keys`),
then decoded and shaded by blocks of rows: on CPU blocks of about ``BLOCK_PIXELS``
so that temporaries stay in cache (one block per chunk elsewhere). The aggregation
folds block-major: every mesh of a chunk folds into one block of accumulator rows,
in mesh order, before the next block.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import torch

from .camera import perspective
from .mesh import FLAG_EDGE, FLAG_ERODED, FLAG_PADDING, Mesh
from .raster import rasterize_keys, resolve_rows, to_clip
from .shading import (PADDING_THRESHOLD, AggregationAccumulator, aggregation_shade, aggregation_table, simple_shade,
                      texel_table, window_to_linear)

#: frame-pixels rasterised at once by the aggregation renderer (memory control)
PIXEL_BUDGET = 1 << 22
#: frame-pixels rasterised at once by the simple renderer (batches of warps): CPU, other devices
SIMPLE_PIXEL_BUDGET = {"cpu": 1 << 22, "other": 1 << 23}
#: pixels shaded at once on CPU (intermediates stay in cache)
BLOCK_PIXELS = 1 << 16


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


def block_rows(width: int, device: torch.device) -> int:
    """Framebuffer rows shaded at once: about ``BLOCK_PIXELS`` pixels on CPU (cache-sized), all on other devices."""
    return max(1, BLOCK_PIXELS // width) if device.type == "cpu" else 1 << 30


def _row_blocks(first: int, end: int, step: int):
    for start in range(first, end, step):
        yield start, min(start + step, end)


def simple_render(meshes: Sequence[MeshArrays], textures: torch.Tensor, matrices: torch.Tensor, size: int,
                  near: float, far: float, pixel_budget: Optional[int] = None) -> Dict[str, torch.Tensor]:
    """SimpleRenderer: frame k draws ``meshes[k]`` textured with ``textures[k]`` through ``matrices[k]``.

    Args:
        meshes: F meshes; textures: (F, Ht, Wt, 3) colours in [0, 1];
        matrices: (F, 4, 4) projection @ modelview; size: render size S;
        near, far: the projection's planes (for reading depth back);
        pixel_budget: frame-pixels rasterised at once (frames are processed in chunks;
            default from ``SIMPLE_PIXEL_BUDGET``).

    Returns:
        ``color`` (F, S, S, 3) float32, ``alpha`` (F, S, S) float32 {0, 1},
        ``depth`` (F, S, S) float32 linear eye depth (``far`` where empty).
    """
    device = textures.device
    count = len(meshes)
    color = torch.empty(3, count * size, size, dtype=torch.float32, device=device)
    alpha = torch.empty(count * size, size, dtype=torch.float32, device=device)
    zbuf = torch.empty(count * size, size, dtype=torch.float32, device=device)
    texels, texture_size = texel_table(textures), tuple(textures.shape[1:3])
    if pixel_budget is None:
        pixel_budget = SIMPLE_PIXEL_BUDGET["cpu" if device.type == "cpu" else "other"]
    step = max(1, pixel_budget // (size * size))
    rows_per_block = block_rows(size, device)
    for first in range(0, count, step):
        chunk = list(meshes[first:first + step])
        packed = _pack(chunk, matrices[first:first + step])
        raster = rasterize_keys(packed.clip, packed.faces, packed.face_frame, len(chunk), size)
        faces = raster.faces(packed.faces).to(torch.int32)  # int32 gathers are faster (V < 2**31)
        table = torch.cat([_cat(chunk, "uv").to(torch.float32), _cat(chunk, "flags")[:, :1]], 1)
        for start, end in _row_blocks(0, len(chunk) * size, rows_per_block):
            fragments = resolve_rows(raster, start, end)
            frame = torch.arange(start, end, device=device) // size + first
            base = (frame * (texture_size[0] * texture_size[1])).view(-1, 1)
            rows = slice(first * size + start, first * size + end)
            color[:, rows], alpha[rows] = simple_shade(fragments, faces, table, texels, texture_size, base)
            zbuf[rows] = fragments.zbuf
    return {"color": color.view(3, count, size, size).permute(1, 2, 3, 0), "alpha": alpha.view(count, size, size),
            "depth": window_to_linear(zbuf, near, far).view(count, size, size)}


def aggregation_render(meshes: Sequence[Sequence[MeshArrays]], textures: Sequence[torch.Tensor],
                       matrices: torch.Tensor, size: int, near: float, far: float,
                       pixel_budget: Optional[int] = None) -> Dict[str, torch.Tensor]:
    """AggregationRenderer for B targets, each drawing its own list of M meshes in order.

    Args:
        meshes: B lists of M meshes (with normals); textures: B tensors (M, Ht, Wt, 3)
            in [0, 1]; matrices: (B, 4, 4) projection @ modelview of the targets;
        size: render size S; near, far: the projection's planes;
        pixel_budget: frame-pixels rasterised at once (default ``PIXEL_BUDGET``).

    Returns:
        ``color`` (B, S, S, 3), ``depth`` (B, S, S) linear, ``mask_color``,
        ``mask_depth`` (B, S, S) bool (see :meth:`AggregationAccumulator.read_back`).
    """
    batch, count = len(meshes), len(meshes[0])
    if any(len(m) != count for m in meshes):
        raise ValueError("aggregation_render: every target must have the same number of meshes")
    if any(m.normal is None for ms in meshes for m in ms):
        raise ValueError("aggregation render: meshes need normals (depth_to_mesh(..., cal_normal=True))")
    device = matrices.device
    accumulator = AggregationAccumulator.zeros(batch, size, size, device)
    texture_table = torch.stack(list(textures)).reshape((batch * count,) + tuple(textures[0].shape[1:]))
    texels, texture_size = texel_table(texture_table), tuple(texture_table.shape[1:3])
    budget = PIXEL_BUDGET if pixel_budget is None else pixel_budget
    step = max(1, min(count, budget // (batch * size * size)))
    rows_per_block = block_rows(size, device)
    for first in range(0, count, step):
        chunk = range(first, min(first + step, count))
        # frame order: mesh-major, so frame j * B + b is mesh (first + j) of target b
        frame_meshes = [meshes[b][m] for m in chunk for b in range(batch)]
        frame_texture = torch.tensor([b * count + m for m in chunk for b in range(batch)], device=device)
        packed = _pack(frame_meshes, matrices.repeat(len(chunk), 1, 1))
        flags = _cat(frame_meshes, "flags")
        raster = rasterize_keys(packed.clip, packed.faces, packed.face_frame, len(frame_meshes), size,
                                back_discard=(flags[:, 1], PADDING_THRESHOLD))
        faces = raster.faces(packed.faces).to(torch.int32)  # int32 gathers are faster (V < 2**31)
        table = aggregation_table(_cat(frame_meshes, "position"), _cat(frame_meshes, "normal"),
                                  _cat(frame_meshes, "uv"), flags)
        centers = torch.stack([m.center for m in frame_meshes]).to(torch.float32)
        group_rows = batch * size  # the frames of one mesh cover the accumulator's rows once
        # block-major: a block of accumulator rows stays in cache while the chunk's meshes fold into it, in order
        for start, end in _row_blocks(0, group_rows, rows_per_block):
            for j in range(len(chunk)):
                first_row, last_row = j * group_rows + start, j * group_rows + end
                fragments = resolve_rows(raster, first_row, last_row)
                frame = torch.arange(first_row, last_row, device=device) // size
                base = (frame_texture.index_select(0, frame) * (texture_size[0] * texture_size[1])).view(-1, 1)
                center = centers.index_select(0, frame).T.unsqueeze(-1)
                color, weight, depth_weight = aggregation_shade(fragments, faces, table, texels, texture_size, base,
                                                                center)
                accumulator.fold(color, weight, fragments.zbuf, slice(start, end), depth_weight)
    return accumulator.read_back(near, far)
