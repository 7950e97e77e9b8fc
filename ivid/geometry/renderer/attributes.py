"""Vertex attributes: named per-vertex values, packed once, interpolated at the fragments for the shaders.

Shaders ask for attributes by name (:class:`VertexAttributes` in,
:class:`FragmentAttributes` out). For speed the attributes a renderer needs are
interpolated together: :func:`pack_attributes` lays them out as the columns of one
(V, C) float32 table in the order of :data:`ATTRIBUTE_COLUMNS` (the only place that
knows the columns), and :func:`interpolate_attributes` does one fused gather-and-
weight (``embedding_bag``) per block of fragments and hands the columns back by name.
Interpolation is perspective-correct (the fragments' barycentrics), so a
fragment test on an interpolated flag reads it as the reference's GLSL does.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as nnf

from .fragments import RowFragments
from .settings import settings_for

__all__ = ["ATTRIBUTE_COLUMNS", "VertexAttributes", "FragmentAttributes", "PackedAttributes", "pack_attributes",
           "interpolate_attributes", "interpolate", "channels_first"]

#: every attribute a shader can use, with its channel count, in packing order
ATTRIBUTE_COLUMNS: Tuple[Tuple[str, int], ...] = (
    ("position", 3),    # world position
    ("normal", 3),      # world normal (not unit length after interpolation)
    ("uv", 2),          # texture coordinates (u along columns, v down the rows)
    ("is_edge", 1),     # 1 on vertices of depth-discontinuity faces, else 0
    ("is_padding", 1),  # 1 on the padding ring (skirt) vertices, else 0
    ("is_eroded", 1),   # 1 within erode_rgb vertices of an edge vertex, else 0
)


@dataclasses.dataclass
class _AttributeFields:
    """One optional tensor per name of :data:`ATTRIBUTE_COLUMNS` (the shapes are the subclass's)."""

    position: Optional[torch.Tensor] = None
    normal: Optional[torch.Tensor] = None
    uv: Optional[torch.Tensor] = None
    is_edge: Optional[torch.Tensor] = None
    is_padding: Optional[torch.Tensor] = None
    is_eroded: Optional[torch.Tensor] = None


@dataclasses.dataclass
class VertexAttributes(_AttributeFields):
    """Named per-vertex values, each (V, C) with C from :data:`ATTRIBUTE_COLUMNS`; None = not given."""

    @classmethod
    def cat(cls, parts: Sequence["VertexAttributes"], names: Sequence[str]) -> "VertexAttributes":
        """The attributes ``names`` of several vertex sets, one after the other (V = sum of the V's)."""
        return cls(**{name: torch.cat([getattr(part, name) for part in parts]) for name in names})


@dataclasses.dataclass
class FragmentAttributes(_AttributeFields):
    """Attributes interpolated at a block of R x W fragments, channel-first float32.

    Each is (C, R, W) for C > 1 and (R, W) for one-channel attributes (the flags);
    None when the renderer did not pack it. Values are 0 where no face was drawn.
    """


@dataclasses.dataclass
class PackedAttributes:
    """Attributes as the columns of one table (see :func:`pack_attributes`).

    Attributes:
        table: (V, C) float32, C = the packed attributes' channels.
        columns: name -> (first column, channel count), in packing order.
    """

    table: torch.Tensor
    columns: Dict[str, Tuple[int, int]]


def pack_attributes(attributes: VertexAttributes) -> PackedAttributes:
    """The given attributes side by side in :data:`ATTRIBUTE_COLUMNS` order, as float32."""
    parts, columns, first = [], {}, 0
    for name, width in ATTRIBUTE_COLUMNS:
        value = getattr(attributes, name)
        if value is None:
            continue
        if value.shape[-1] != width:
            raise ValueError(f"vertex attribute {name}: expected {width} channels, got shape {tuple(value.shape)}")
        parts.append(value.to(torch.float32))
        columns[name] = (first, width)
        first += width
    return PackedAttributes(torch.cat(parts, 1), columns)


def interpolate_attributes(packed: PackedAttributes, fragments: RowFragments, faces: torch.Tensor,
                           stack_channels: Optional[bool] = None) -> FragmentAttributes:
    """Every packed attribute interpolated at a block of fragments, by name.

    Args:
        packed: the vertex table; fragments: a block of R rows of W pixels;
        faces: (nF, 3) int64 or int32 vertex indices of the faces the fragments index.
        stack_channels: see :class:`~ivid.geometry.renderer.RenderSettings` (default: the device's).

    Returns:
        :class:`FragmentAttributes` (views into one (C, R, W) tensor).
    """
    shape = tuple(fragments.face.shape)
    values = interpolate(fragments.face.reshape(-1), fragments.bary, faces, packed.table, stack_channels)
    values = values.view((-1,) + shape)
    named = {name: values[first] if width == 1 else values[first:first + width]
             for name, (first, width) in packed.columns.items()}
    return FragmentAttributes(**named)


def interpolate(face: torch.Tensor, bary: torch.Tensor, faces: torch.Tensor, values: torch.Tensor,
                stack_channels: Optional[bool] = None) -> torch.Tensor:
    """Perspective-correct interpolation of per-vertex values at P pixels.

    One fused gather-and-weight (``embedding_bag``) over the 3 corners of each
    pixel's face: ``sum_k bary[:, k] * values[faces[face, k]]``.

    Args:
        face: (P,) int64 winning face per pixel (any valid index where empty).
        bary: (P, 3) float32 barycentrics (0 where empty).
        faces: (nF, 3) int64 or int32 vertex indices of the faces.
        values: (V, C) float32 per-vertex values.
        stack_channels: see :func:`channels_first`.

    Returns:
        (C, P) float32 (channel-first); 0 where the barycentrics are 0.
    """
    corner = faces.index_select(0, face)
    out = nnf.embedding_bag(corner, values, per_sample_weights=bary, mode="sum")
    return channels_first(out, stack_channels)


def channels_first(rows: torch.Tensor, stack_channels: Optional[bool] = None) -> torch.Tensor:
    """(P, C) -> contiguous (C, P), exactly (a copy).

    With ``stack_channels`` (the CPU default) the C strided columns are stacked, about
    three times as fast on CPU as a transposing copy for the few channels here;
    otherwise a transposing copy. None: the device's default (:func:`settings_for`).
    """
    if stack_channels is None:
        stack_channels = settings_for(rows.device).stack_channels
    if not stack_channels:
        return rows.T.contiguous()
    return torch.stack(rows.unbind(1))
