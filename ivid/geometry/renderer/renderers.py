"""The two renderers of the reference, each running the whole pipeline on chunks of frames.

:func:`simple_render` (SimpleRenderer: one mesh per frame) and
:func:`aggregation_render` (AggregationRenderer: B target cameras, each with its own
ordered list of M meshes, every mesh in its own depth buffer, folded in order).
Meshes come as :class:`MeshArrays` (tensors on one device); a frame pairs a mesh
with a camera (projection @ modelview).

Per chunk of frames: clip (:func:`~.clip.to_clip`) -> rasterise
(:func:`~.rasterizer.rasterize_keys`), then per block of framebuffer rows: row resolve
(:func:`~.fragments.resolve_rows`) -> interpolate the named vertex attributes
(:func:`~.attributes.interpolate_attributes`) -> shade (:mod:`.shade`) -> fold
(:mod:`.fold`, aggregation only). Chunk and block sizes come from
:class:`~.settings.RenderSettings`. The aggregation folds block-major: every mesh of
a chunk folds into one block of accumulator rows, in mesh order, before the next block.
SSAA reduction (:mod:`.ssaa`) is left to the callers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import torch

from ..mesh import FLAG_EDGE, FLAG_ERODED, FLAG_PADDING, Mesh
from .attributes import VertexAttributes, interpolate_attributes, pack_attributes
from .clip import ClipPlanes, to_clip
from .discard import BackDiscard
from .fold import AggregationAccumulator, window_to_linear
from .fragments import resolve_rows
from .rasterizer import rasterize_keys
from .settings import RenderSettings, settings_for
from .shade import PADDING_THRESHOLD, aggregation_shade, simple_shade, texel_table

__all__ = ["MeshArrays", "mesh_arrays", "simple_render", "aggregation_render"]

#: vertex attributes each renderer's shader reads
SIMPLE_ATTRIBUTES = ("uv", "is_edge")
AGGREGATION_ATTRIBUTES = ("position", "normal", "uv", "is_edge", "is_padding", "is_eroded")


@dataclass
class MeshArrays:
    """A view mesh as tensors on the render device (see :class:`ivid.geometry.Mesh`).

    Attributes:
        position: (V, 3) world; faces: (F, 3) int64;
        attributes: the named vertex attributes (``position`` (the same tensor),
            ``uv`` (V, 2), the flags ``is_edge`` / ``is_padding`` / ``is_eroded``
            (V, 1) float32 0/1, ``normal`` (V, 3) world or None);
        center: (3,) float64 source camera centre (world).
    """

    position: torch.Tensor
    faces: torch.Tensor
    attributes: VertexAttributes
    center: torch.Tensor


def mesh_arrays(mesh: Mesh, device: torch.device) -> MeshArrays:
    """Tensors of ``mesh`` (NumPy or torch) on ``device``; decodes the flag bits."""
    def tensor(x, dtype=None):
        return torch.as_tensor(x).to(device=device, dtype=dtype)
    flag = tensor(mesh.vertices.flag, torch.int64).reshape(-1, 1)
    bits = torch.tensor([FLAG_EDGE, FLAG_PADDING, FLAG_ERODED], device=device)
    flags = ((flag & bits) != 0).to(torch.float32)
    normal = mesh.vertices.normal
    modelview = tensor(mesh.modelview, torch.float64)
    position = tensor(mesh.vertices.position)
    attributes = VertexAttributes(position=position, normal=None if normal is None else tensor(normal),
                                  uv=tensor(mesh.vertices.uv), is_edge=flags[:, 0:1], is_padding=flags[:, 1:2],
                                  is_eroded=flags[:, 2:3])
    return MeshArrays(position=position, faces=tensor(mesh.faces, torch.int64), attributes=attributes,
                      center=torch.linalg.inv(modelview)[:3, 3])


@dataclass
class _Packed:
    """Frames of a chunk as one vertex / face list."""

    clip: torch.Tensor  # (V, 4) float64
    faces: torch.Tensor  # (F, 3) int64
    face_frame: torch.Tensor  # (F,) int64


def _pack(meshes: Sequence[MeshArrays], matrices: torch.Tensor) -> _Packed:
    """Concatenate frame k = (meshes[k], matrices[k]) into one vertex / face list (the clip stage)."""
    clips, faces, frames = [], [], []
    offset = 0
    for k, mesh in enumerate(meshes):
        clips.append(to_clip(mesh.position, matrices[k]))
        faces.append(mesh.faces + offset)
        frames.append(torch.full((mesh.faces.shape[0],), k, dtype=torch.int64, device=mesh.faces.device))
        offset += mesh.position.shape[0]
    return _Packed(torch.cat(clips), torch.cat(faces), torch.cat(frames))


def _attributes(meshes: Sequence[MeshArrays], names: Sequence[str]) -> VertexAttributes:
    return VertexAttributes.cat([m.attributes for m in meshes], names)


def _row_blocks(end: int, width: int, settings: RenderSettings) -> Iterator[Tuple[int, int]]:
    """Blocks ``[start, stop)`` of framebuffer rows ``0:end``, of about ``shade_block_pixels`` pixels each."""
    block = settings.shade_block_pixels
    step = end if block is None else max(1, block // width)
    for start in range(0, end, max(step, 1)):
        yield start, min(start + step, end)


def simple_render(meshes: Sequence[MeshArrays], textures: torch.Tensor, matrices: torch.Tensor, size: int,
                  clip_planes: ClipPlanes, settings: Optional[RenderSettings] = None) -> Dict[str, torch.Tensor]:
    """SimpleRenderer: frame k draws ``meshes[k]`` textured with ``textures[k]`` through ``matrices[k]``.

    Args:
        meshes: F meshes; textures: (F, Ht, Wt, 3) colours in [0, 1];
        matrices: (F, 4, 4) projection @ modelview; size: render size S;
        clip_planes: the projection's planes (for reading depth back);
        settings: budgets (frames are rasterised in chunks of ``simple_pixel_budget``
            frame pixels); default :func:`~.settings.settings_for` the device.

    Returns:
        ``color`` (F, S, S, 3) float32, ``alpha`` (F, S, S) float32 {0, 1},
        ``depth`` (F, S, S) float32 linear eye depth (the far plane where empty).
    """
    device = textures.device
    settings = settings_for(device) if settings is None else settings
    count = len(meshes)
    color = torch.empty(3, count * size, size, dtype=torch.float32, device=device)
    alpha = torch.empty(count * size, size, dtype=torch.float32, device=device)
    zbuf = torch.empty(count * size, size, dtype=torch.float32, device=device)
    texels, texture_size = texel_table(textures), tuple(textures.shape[1:3])
    step = max(1, settings.simple_pixel_budget // (size * size))
    for first in range(0, count, step):
        chunk = list(meshes[first:first + step])
        packed = _pack(chunk, matrices[first:first + step])
        raster = rasterize_keys(packed.clip, packed.faces, packed.face_frame, len(chunk), size, settings=settings)
        faces = raster.faces(packed.faces).to(torch.int32)  # int32 gathers are faster (V < 2**31)
        table = pack_attributes(_attributes(chunk, SIMPLE_ATTRIBUTES))
        for start, end in _row_blocks(len(chunk) * size, size, settings):
            fragments = resolve_rows(raster, start, end, settings)
            attributes = interpolate_attributes(table, fragments, faces, settings.stack_channels)
            frame = torch.arange(start, end, device=device) // size + first
            base = (frame * (texture_size[0] * texture_size[1])).view(-1, 1)
            rows = slice(first * size + start, first * size + end)
            color[:, rows], alpha[rows] = simple_shade(fragments, attributes, texels, texture_size, base)
            zbuf[rows] = fragments.zbuf
    return {"color": color.view(3, count, size, size).permute(1, 2, 3, 0), "alpha": alpha.view(count, size, size),
            "depth": window_to_linear(zbuf, clip_planes).view(count, size, size)}


def aggregation_render(meshes: Sequence[Sequence[MeshArrays]], textures: Sequence[torch.Tensor],
                       matrices: torch.Tensor, size: int, clip_planes: ClipPlanes,
                       settings: Optional[RenderSettings] = None) -> Dict[str, torch.Tensor]:
    """AggregationRenderer for B targets, each drawing its own list of M meshes in order.

    Args:
        meshes: B lists of M meshes (with normals); textures: B tensors (M, Ht, Wt, 3)
            in [0, 1]; matrices: (B, 4, 4) projection @ modelview of the targets;
        size: render size S; clip_planes: the projection's planes;
        settings: budgets (meshes are rasterised in chunks of ``aggregation_pixel_budget``
            frame pixels); default :func:`~.settings.settings_for` the device.

    Returns:
        ``color`` (B, S, S, 3), ``depth`` (B, S, S) linear, ``mask_color``,
        ``mask_depth`` (B, S, S) bool (see :meth:`AggregationAccumulator.read_back`).
    """
    batch, count = len(meshes), len(meshes[0])
    if any(len(m) != count for m in meshes):
        raise ValueError("aggregation_render: every target must have the same number of meshes")
    if any(m.attributes.normal is None for ms in meshes for m in ms):
        raise ValueError("aggregation render: meshes need normals (depth_to_mesh(..., cal_normal=True))")
    device = matrices.device
    settings = settings_for(device) if settings is None else settings
    accumulator = AggregationAccumulator.zeros(batch, size, size, device, settings.host_checks)
    texture_table = torch.stack(list(textures)).reshape((batch * count,) + tuple(textures[0].shape[1:]))
    texels, texture_size = texel_table(texture_table), tuple(texture_table.shape[1:3])
    step = max(1, min(count, settings.aggregation_pixel_budget // (batch * size * size)))
    for first in range(0, count, step):
        chunk = range(first, min(first + step, count))
        # frame order: mesh-major, so frame j * B + b is mesh (first + j) of target b
        frame_meshes: List[MeshArrays] = [meshes[b][m] for m in chunk for b in range(batch)]
        frame_texture = torch.tensor([b * count + m for m in chunk for b in range(batch)], device=device)
        packed = _pack(frame_meshes, matrices.repeat(len(chunk), 1, 1))
        vertex = _attributes(frame_meshes, AGGREGATION_ATTRIBUTES)
        raster = rasterize_keys(packed.clip, packed.faces, packed.face_frame, len(frame_meshes), size,
                                back_discard=BackDiscard(vertex.is_padding[:, 0], PADDING_THRESHOLD),
                                settings=settings)
        faces = raster.faces(packed.faces).to(torch.int32)  # int32 gathers are faster (V < 2**31)
        table = pack_attributes(vertex)
        centers = torch.stack([m.center for m in frame_meshes]).to(torch.float32)
        group_rows = batch * size  # the frames of one mesh cover the accumulator's rows once
        # block-major: a block of accumulator rows stays in cache while the chunk's meshes fold into it, in order
        for start, end in _row_blocks(group_rows, size, settings):
            for j in range(len(chunk)):
                first_row, last_row = j * group_rows + start, j * group_rows + end
                fragments = resolve_rows(raster, first_row, last_row, settings)
                attributes = interpolate_attributes(table, fragments, faces, settings.stack_channels)
                frame = torch.arange(first_row, last_row, device=device) // size
                base = (frame_texture.index_select(0, frame) * (texture_size[0] * texture_size[1])).view(-1, 1)
                center = centers.index_select(0, frame).T.unsqueeze(-1)
                color, weight, depth_weight = aggregation_shade(fragments, attributes, texels, texture_size, base,
                                                                center)
                accumulator.fold(color, weight, fragments.zbuf, slice(start, end), depth_weight)
    return accumulator.read_back(clip_planes)
