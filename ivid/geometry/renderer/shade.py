"""Shade stage: the reference's two fragment shaders on blocks of decoded rows.

Shaders get the block's :class:`~ivid.geometry.renderer.RowFragments` and its vertex
attributes interpolated by name (:class:`~ivid.geometry.renderer.FragmentAttributes`);
textures are sampled with NEAREST filtering and clamp-to-edge (texel = floor(u * N)
clamped). Fragment tests threshold the INTERPOLATED flags, as the reference's GLSL does.

- :func:`simple_shade` (SimpleRenderer, warping): back-facing -> colour 0, alpha 0
  (depth is still written); front-facing -> texel colour, alpha 0 if interpolated
  is_edge > 0.999 else 1.
- :func:`aggregation_shade` (AggregationRenderer): the view-angle weight of
  docs/design.md#rendering on front faces, weight 0 on back faces (which still occupy
  the depth buffer); the fold stage (:mod:`.fold`) blends the meshes.

Back-facing fragments with interpolated is_padding > 0.001 must be discarded by
the rasteriser (:class:`~ivid.geometry.renderer.discard.BackDiscard` with
:data:`PADDING_THRESHOLD`), since a discard also skips the depth write.
Arithmetic is float32, like the GPU shaders and RGBA32F framebuffers; values are
channel-first (C, R, W) for fast elementwise work.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch

from .attributes import FragmentAttributes
from .fragments import RowFragments
from .setup import take_columns

__all__ = ["texel_table", "sample_nearest", "simple_shade", "aggregation_weight", "aggregation_shade",
           "EDGE_ALPHA_THRESHOLD", "PADDING_THRESHOLD", "WEAK_DEPTH_WEIGHT"]

#: warp shader: alpha 0 where the interpolated is_edge exceeds this
EDGE_ALPHA_THRESHOLD = 0.999
#: aggregation weights (docs/design.md#rendering)
ANGLE_SHARPNESS = 20.0
MIN_LOG_WEIGHT = -50.0
MIN_ANGLE_WEIGHT = 1e-4
ERODED_THRESHOLD = 0.999
ERODED_FACTOR = 1e-8
PADDING_THRESHOLD = 0.001
EDGE_THRESHOLD = 0.999
FALLBACK_WEIGHT = 1e-16
#: depth weight of a fallback (edge / padding) fragment; real evidence has depth weight 1
WEAK_DEPTH_WEIGHT = 1e-8


def sample_nearest(texels: torch.Tensor, texture_size: Tuple[int, int], base: torch.Tensor,
                   uv: torch.Tensor) -> torch.Tensor:
    """NEAREST texture lookup with clamp-to-edge (texel = floor(u * N) clamped to [0, N-1]).

    Args:
        texels: (C, T * Ht * Wt) float32 texel table of T textures (row 0 = v 0),
            see :func:`texel_table`.
        texture_size: (Ht, Wt).
        base: (R, 1) or (P,) int64 first texel of the texture used by each pixel (row).
        uv: (2, R, W) or (2, P) float32 texture coordinates (u along columns, v along rows).

    Returns:
        (C,) + uv.shape[1:] texel values (float32).
    """
    height, width = texture_size
    # clamping first makes truncation equal to floor (the values are >= 0 then); via int32: faster on CPU
    col = (uv[0] * width).clamp_(0, width - 1).to(torch.int32).to(torch.int64)
    row = (uv[1] * height).clamp_(0, height - 1).to(torch.int32).to(torch.int64)
    index = (base + row * width + col).reshape(-1)
    return take_columns(texels, index).reshape((texels.shape[0],) + tuple(uv.shape[1:]))


def texel_table(textures: torch.Tensor) -> torch.Tensor:
    """(T, Ht, Wt, C) textures -> (C, T * Ht * Wt) float32 channel-first texel table."""
    return textures.to(torch.float32).reshape(-1, textures.shape[-1]).T.contiguous()


def simple_shade(fragments: RowFragments, attributes: FragmentAttributes, texels: torch.Tensor,
                 texture_size: Tuple[int, int], texel_base: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """The warp shader on a block of R rows of W pixels.

    Args:
        fragments: the block's decoded fragments.
        attributes: interpolated ``uv`` (2, R, W) and ``is_edge`` (R, W).
        texels, texture_size: see :func:`sample_nearest`; texel_base: (R, 1) int64
            first texel of each row's texture.

    Returns:
        ``(color (3, R, W), alpha (R, W))`` float32: texel colour on front faces (else
        0); alpha 1 on front faces whose interpolated is_edge <= 0.999, else 0.
    """
    front = fragments.front
    color = sample_nearest(texels, texture_size, texel_base, attributes.uv) * front
    alpha = (front & (attributes.is_edge <= EDGE_ALPHA_THRESHOLD)).to(torch.float32)
    return color, alpha


def aggregation_weight(attributes: FragmentAttributes, source_center: torch.Tensor,
                       fallback_out: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Front-face fragment weight of the aggregation shader (docs/design.md#rendering).

    Args:
        attributes: interpolated ``position``, ``normal`` (3, ...) world (channel-first;
            ``position`` is overwritten, used as scratch space) and the flags
            ``is_edge``, ``is_padding``, ``is_eroded`` (...).
        source_center: (3, ...) broadcastable source camera centre of the fragment's mesh.
        fallback_out: optional (...) float32 tensor that receives 1 where the weight is
            the edge / padding fallback 1e-16, else 0.

    Returns:
        (...) float32 weight in [1e-16, 1].
    """
    position, normal = attributes.position, attributes.normal
    view = torch.sub(source_center, position, out=position)
    dot = view[0] * normal[0]
    dot.add_(view[1] * normal[1]).add_(view[2] * normal[2])
    norm = _squared_norm(view).sqrt_().mul_(_squared_norm(normal).sqrt_())
    cosine = dot.div_(norm).nan_to_num_(0.0).clamp_(0, 1)
    weight = torch.acos(cosine).mul_(-ANGLE_SHARPNESS).clamp_min_(MIN_LOG_WEIGHT).exp_().clamp_min_(MIN_ANGLE_WEIGHT)
    # eroded -> w * float32(1e-8); padding / edge -> float32(1e-16) (w is finite and > 0 here)
    weight = torch.where(attributes.is_eroded >= ERODED_THRESHOLD, weight * ERODED_FACTOR, weight)
    fallback = (attributes.is_padding > PADDING_THRESHOLD) | (attributes.is_edge > EDGE_THRESHOLD)
    weight.masked_fill_(fallback, FALLBACK_WEIGHT)
    if fallback_out is not None:
        fallback_out.copy_(fallback)
    return weight.clamp_min_(FALLBACK_WEIGHT)


def _squared_norm(vector: torch.Tensor) -> torch.Tensor:
    """(3, ...) -> (...) ``x0 x0 + x1 x1 + x2 x2`` (summed in that order)."""
    out = vector[0] * vector[0]
    return out.add_(vector[1] * vector[1]).add_(vector[2] * vector[2])


def aggregation_shade(fragments: RowFragments, attributes: FragmentAttributes, texels: torch.Tensor,
                      texture_size: Tuple[int, int], texel_base: torch.Tensor,
                      source_center: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The aggregation shader (one mesh per framebuffer) on a block of R rows of W pixels.

    Args:
        fragments: the block's decoded fragments (back-facing padding fragments already
            discarded by the rasteriser).
        attributes: interpolated ``position``, ``normal``, ``uv`` and the three flags
            (``position`` is used as scratch space).
        texels, texture_size, texel_base: see :func:`simple_shade`.
        source_center: (3, R, 1) float32 source camera centre of each row's mesh (world).

    Returns:
        ``(color (3, R, W), weight (R, W), depth_weight (R, W))`` float32: texel colour
        (meaningful where the weight is > 0), weight (0 on back faces and empty pixels)
        and the fold's depth weight (1 for real evidence, 1e-8 for edge / padding
        fallbacks, 0 where the weight is 0).
    """
    front = fragments.front
    fallback = torch.empty(front.shape, dtype=torch.float32, device=front.device)
    weight = aggregation_weight(attributes, source_center, fallback).mul_(front)
    # 1 - fallback + fallback * 1e-8 is exactly 1 or float32(1e-8)
    depth_weight = torch.rsub(fallback, 1).add_(fallback, alpha=WEAK_DEPTH_WEIGHT).mul_(front)
    color = sample_nearest(texels, texture_size, texel_base, attributes.uv)
    return color, weight, depth_weight
