"""Shading of rasterised fragments: the reference's two shaders and the aggregation fold.

Works on blocks of decoded framebuffer rows (:class:`~ivid.geometry.raster.RowFragments`;
the renderers shade cache-sized blocks on CPU). Vertex attributes (uv, world
position, world normal and the 0/1 decoded flag bits) are interpolated
perspective-correctly with the fragment barycentrics (one fused ``embedding_bag``
gather-and-weight per block); fragment tests threshold the INTERPOLATED flags, as
the reference's GLSL does. Textures are sampled with NEAREST filtering and
clamp-to-edge: texel = floor(u * N) clamped.

- :func:`simple_shade` (SimpleRenderer, warping): back-facing -> colour 0, alpha 0
  (depth is still written); front-facing -> texel colour, alpha 0 if interpolated
  is_edge > 0.999 else 1.
- :func:`aggregation_shade` (AggregationRenderer): the view-angle weight of SPEC
  section 6 on front faces, weight 0 on back faces (which still occupy the depth
  buffer); :class:`AggregationAccumulator` folds the frames of the meshes of a
  target camera in mesh order and reads the result back.

Back-facing fragments with interpolated is_padding > 0.001 must be discarded by
the rasteriser (``back_discard``), since a discard also skips the depth write.
Arithmetic is float32, like the GPU shaders and RGBA32F framebuffers; values are
channel-first (C, R, W) for fast elementwise work.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Optional, Set, Tuple

import torch
import torch.nn.functional as nnf

from ._raster_setup import take_columns
from .raster import RowFragments

EDGE_ALPHA_THRESHOLD = 0.999
#: aggregation weights (SPEC section 6)
ANGLE_SHARPNESS = 20.0
MIN_LOG_WEIGHT = -50.0
MIN_ANGLE_WEIGHT = 1e-4
ERODED_THRESHOLD = 0.999
ERODED_FACTOR = 1e-8
PADDING_THRESHOLD = 0.001
EDGE_THRESHOLD = 0.999
FALLBACK_WEIGHT = 1e-16
#: fold: weights above these count as depth evidence / colour evidence
DEPTH_EVIDENCE = 1e-14
COLOR_EVIDENCE = 1e-6
WEAK_DEPTH_WEIGHT = 1e-8


def interpolate(face: torch.Tensor, bary: torch.Tensor, faces: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Perspective-correct interpolation of per-vertex values at P pixels.

    One fused gather-and-weight (``embedding_bag``) over the 3 corners of each
    pixel's face: ``sum_k bary[:, k] * values[faces[face, k]]``.

    Args:
        face: (P,) int64 winning face per pixel (any valid index where empty).
        bary: (P, 3) float32 barycentrics (0 where empty).
        faces: (nF, 3) int64 or int32 vertex indices of the faces.
        values: (V, C) float32 per-vertex values.

    Returns:
        (C, P) float32 (channel-first); 0 where the barycentrics are 0.
    """
    corner = faces.index_select(0, face)
    out = nnf.embedding_bag(corner, values, per_sample_weights=bary, mode="sum")
    return channels_first(out)


def channels_first(rows: torch.Tensor) -> torch.Tensor:
    """(P, C) -> contiguous (C, P), exactly (a copy).

    On CPU stacking the C strided columns is about three times as fast as a
    transposing copy (or an ``eye(C) @ rows.T`` GEMM) for the few channels here.
    """
    if rows.device.type != "cpu":
        return rows.T.contiguous()
    return torch.stack(rows.unbind(1))


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


def simple_shade(fragments: RowFragments, faces: torch.Tensor, table: torch.Tensor, texels: torch.Tensor,
                 texture_size: Tuple[int, int], texel_base: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """The warp shader on a block of R rows of W pixels.

    Args:
        fragments: the block's decoded fragments; faces: (nF, 3) int64 or int32 face vertices.
        table: (V, 3) float32 vertex (u, v, is_edge).
        texels, texture_size: see :func:`sample_nearest`; texel_base: (R, 1) int64
            first texel of each row's texture.

    Returns:
        ``(color (3, R, W), alpha (R, W))`` float32: texel colour on front faces (else
        0); alpha 1 on front faces whose interpolated is_edge <= 0.999, else 0.
    """
    shape = fragments.face.shape
    attrs = interpolate(fragments.face.reshape(-1), fragments.bary, faces, table).view((3,) + tuple(shape))
    front = fragments.front
    color = sample_nearest(texels, texture_size, texel_base, attrs[:2]) * front
    alpha = (front & (attrs[2] <= EDGE_ALPHA_THRESHOLD)).to(torch.float32)
    return color, alpha


def aggregation_weight(position: torch.Tensor, normal: torch.Tensor, flags: torch.Tensor,
                       source_center: torch.Tensor, fallback_out: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Front-face fragment weight of the aggregation shader (SPEC section 6).

    Args:
        position, normal: (3, ...) interpolated world position / normal (channel-first);
            ``position`` is overwritten (used as scratch space).
        flags: (3, ...) interpolated (is_edge, is_padding, is_eroded).
        source_center: (3, ...) broadcastable source camera centre of the fragment's mesh.
        fallback_out: optional (...) float32 tensor that receives 1 where the weight is
            the edge / padding fallback 1e-16, else 0.

    Returns:
        (...) float32 weight in [1e-16, 1].
    """
    view = torch.sub(source_center, position, out=position)
    dot = view[0] * normal[0]
    dot.add_(view[1] * normal[1]).add_(view[2] * normal[2])
    norm = _squared_norm(view).sqrt_().mul_(_squared_norm(normal).sqrt_())
    cosine = dot.div_(norm).nan_to_num_(0.0).clamp_(0, 1)
    weight = torch.acos(cosine).mul_(-ANGLE_SHARPNESS).clamp_min_(MIN_LOG_WEIGHT).exp_().clamp_min_(MIN_ANGLE_WEIGHT)
    # eroded -> w * float32(1e-8); padding / edge -> float32(1e-16) (w is finite and > 0 here)
    weight = torch.where(flags[2] >= ERODED_THRESHOLD, weight * ERODED_FACTOR, weight)
    fallback = (flags[1] > PADDING_THRESHOLD) | (flags[0] > EDGE_THRESHOLD)
    weight.masked_fill_(fallback, FALLBACK_WEIGHT)
    if fallback_out is not None:
        fallback_out.copy_(fallback)
    return weight.clamp_min_(FALLBACK_WEIGHT)


def _squared_norm(vector: torch.Tensor) -> torch.Tensor:
    """(3, ...) -> (...) ``x0 x0 + x1 x1 + x2 x2`` (summed in that order)."""
    out = vector[0] * vector[0]
    return out.add_(vector[1] * vector[1]).add_(vector[2] * vector[2])


def aggregation_shade(fragments: RowFragments, faces: torch.Tensor, table: torch.Tensor, texels: torch.Tensor,
                      texture_size: Tuple[int, int], texel_base: torch.Tensor,
                      source_center: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The aggregation shader (one mesh per framebuffer) on a block of R rows of W pixels.

    Args:
        fragments: the block's decoded fragments (back-facing padding fragments already
            discarded by the rasteriser); faces: (nF, 3) int64 or int32 face vertices.
        table: (V, 11) float32 vertex attributes: world position (3), world normal (3),
            uv (2), 0/1 flags (is_edge, is_padding, is_eroded) (3); see
            :func:`aggregation_table`.
        texels, texture_size, texel_base: see :func:`simple_shade`.
        source_center: (3, R, 1) float32 source camera centre of each row's mesh (world).

    Returns:
        ``(color (3, R, W), weight (R, W), depth_weight (R, W))`` float32: texel colour
        (meaningful where the weight is > 0), weight (0 on back faces and empty pixels)
        and the fold's depth weight (1 for real evidence, 1e-8 for edge / padding
        fallbacks, 0 where the weight is 0).
    """
    shape = fragments.face.shape
    attrs = interpolate(fragments.face.reshape(-1), fragments.bary, faces, table).view((-1,) + tuple(shape))
    front = fragments.front
    fallback = torch.empty(shape, dtype=torch.float32, device=attrs.device)
    weight = aggregation_weight(attrs[0:3], attrs[3:6], attrs[8:11], source_center, fallback).mul_(front)
    # 1 - fallback + fallback * 1e-8 is exactly 1 or float32(1e-8)
    depth_weight = torch.rsub(fallback, 1).add_(fallback, alpha=WEAK_DEPTH_WEIGHT).mul_(front)
    color = sample_nearest(texels, texture_size, texel_base, attrs[6:8])
    return color, weight, depth_weight


def aggregation_table(position: torch.Tensor, normal: torch.Tensor, uv: torch.Tensor,
                      flags: torch.Tensor) -> torch.Tensor:
    """(V, 11) float32 vertex table of :func:`aggregation_shade` from (V, .) arrays."""
    return torch.cat([position.float(), normal.float(), uv.float(), flags.float()], 1)


@dataclass
class AggregationAccumulator:
    """Running per-pixel sums over the meshes of B target images (float32, (B, H, W)).

    ``color_sum`` (3, B, H, W) = sum w*rgb, ``color_weight`` = sum w, ``depth_sum``
    = sum wd * window depth, ``depth_weight`` = sum wd, ``count_depth`` /
    ``count_color`` (int32) = number of meshes with w > 1e-14 / w > 1e-6.
    """

    color_sum: torch.Tensor
    color_weight: torch.Tensor
    depth_sum: torch.Tensor
    depth_weight: torch.Tensor
    count_depth: torch.Tensor
    count_color: torch.Tensor
    #: (start, stop) row blocks whose pixels all have real depth evidence (no more fallback replacement)
    settled: Set[Tuple[Optional[int], Optional[int]]] = field(default_factory=set)

    @classmethod
    def zeros(cls, batch: int, height: int, width: int, device: torch.device) -> "AggregationAccumulator":
        """Empty accumulators for ``batch`` target images of H x W pixels."""
        def plane(dtype: torch.dtype = torch.float32) -> torch.Tensor:
            return torch.zeros(batch, height, width, dtype=dtype, device=device)
        return cls(torch.zeros(3, batch, height, width, dtype=torch.float32, device=device), plane(), plane(),
                   plane(), plane(torch.int32), plane(torch.int32))

    def fold(self, color: torch.Tensor, weight: torch.Tensor, zbuf: torch.Tensor, rows: slice = slice(None),
             depth_weight: Optional[torch.Tensor] = None) -> None:
        """Add one mesh's framebuffer (per target image); call in mesh order.

        Args:
            color: (3, R, W) float32 shaded colour (finite; only used where the weight
                is > 0); weight: (R, W) float32 alpha (0 = nothing); zbuf: (R, W) float32
                window depth of that mesh.
            rows: the R rows of the (B * H, W) target images they cover (default: all).
            depth_weight: (R, W) float32 depth weight wd when the caller has it (must
                equal 1 where weight > 1e-14, 1e-8 where 0 < weight <= 1e-14, else 0).
        """
        weak = WEAK_DEPTH_WEIGHT
        width = weight.shape[-1]
        color_sum = self.color_sum.view(3, -1, width)[:, rows]
        color_weight, depth_sum, depth_sum_weight, count_depth, count_color = (
            t.view(-1, width)[rows] for t in (self.color_weight, self.depth_sum, self.depth_weight, self.count_depth,
                                              self.count_color))
        has_depth = weight > DEPTH_EVIDENCE
        if depth_weight is None:
            depth_weight = has_depth.to(torch.float32) + ((weight > 0) & ~has_depth).to(torch.float32) * weak
        count_color += weight > COLOR_EVIDENCE
        count_depth += has_depth
        on_cpu = weight.device.type == "cpu"
        key = (rows.start, rows.stop)
        # only weak (edge / padding) evidence so far and this mesh is weak too: keep the farther one. Impossible
        # once every pixel of the block has had real evidence (checked on CPU, where a sync is cheap).
        if not (on_cpu and key in self.settled):
            only_weak = ((depth_sum_weight - weak).abs_() < weak) & (depth_weight == weak)
            if not on_cpu or bool(only_weak.any()):
                replace = only_weak & (zbuf * weak > depth_sum)
                # exact 0/1 blends: add -> old + new, replace -> new, keep -> old
                keep_old = (~replace).to(torch.float32)
                take_new = (~(only_weak & ~replace)).to(torch.float32)
                color_sum.mul_(keep_old).add_((weight * take_new) * color)
                color_weight.mul_(keep_old).add_(weight * take_new)
                depth_sum.mul_(keep_old).add_((depth_weight * take_new) * zbuf)
                depth_sum_weight.mul_(keep_old).add_(depth_weight * take_new)
                return
        color_sum.add_(weight * color)
        color_weight.add_(weight)
        depth_sum.add_(depth_weight * zbuf)
        depth_sum_weight.add_(depth_weight)
        if on_cpu and key not in self.settled and bool((depth_sum_weight >= 1).all()):
            self.settled.add(key)

    def read_back(self, near: float, far: float) -> Dict[str, torch.Tensor]:
        """Final images of the aggregation render.

        Returns:
            ``color`` (B, H, W, 3) float32 = sum w rgb / sum w (0 where sum w = 0);
            ``depth`` (B, H, W) float32 linear depth of the averaged window depth
            (window depth 0, i.e. ``near``, where there is no depth weight);
            ``mask_color`` / ``mask_depth`` (B, H, W) bool (some mesh gave colour /
            depth evidence).
        """
        has_color = self.color_weight > 0
        color = self.color_sum / (self.color_weight + (~has_color).to(torch.float32))
        has_depth = self.depth_weight > 0
        window = self.depth_sum / (self.depth_weight + (~has_depth).to(torch.float32))
        return {"color": color.permute(1, 2, 3, 0), "depth": window_to_linear(window, near, far),
                "mask_color": self.count_color > 0, "mask_depth": self.count_depth > 0}


def window_to_linear(window: torch.Tensor, near: float, far: float) -> torch.Tensor:
    """Linear eye depth of a window depth (renderer planes): ``n f / (f - w (f - n))`` (float32).

    A cleared buffer (w = 1) reads back as ``far``, w = 0 as ``near``.
    """
    window = window.to(torch.float32)
    return torch.full_like(window, near * far) / (far - window * (far - near))
