"""Shading of rasterised fragments: the reference's two shaders and the aggregation fold.

Works on :class:`~ivid.geometry.raster.Fragments` of F frames (H x W each). Vertex
attributes (uv, world position, world normal and the 0/1 decoded flag bits) are
interpolated perspective-correctly with the fragment barycentrics; fragment tests
threshold the INTERPOLATED flags, as the reference's GLSL does. Textures are
sampled with NEAREST filtering and clamp-to-edge: texel = floor(u * N) clamped.

- :func:`simple_shade` (SimpleRenderer, warping): back-facing -> colour 0, alpha 0
  (depth is still written); front-facing -> texel colour, alpha 0 if interpolated
  is_edge > 0.999 else 1.
- :func:`aggregation_shade` (AggregationRenderer): the view-angle weight of SPEC
  section 6 on front faces, weight 0 on back faces (which still occupy the depth
  buffer); :class:`AggregationAccumulator` folds the frames of the meshes of a
  target camera in mesh order and reads the result back.

Back-facing fragments with interpolated is_padding > 0.001 must be discarded by
the rasteriser (``back_discard``), since a discard also skips the depth write.
Arithmetic is float32, like the GPU shaders and RGBA32F framebuffers. Internally
values are channel-first (C, F, H, W): much faster gathers on CPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict

import torch

from ._raster_setup import take_columns
from .raster import Fragments

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


def interpolate(fragments: Fragments, faces: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Perspective-correct interpolation of per-vertex values at every pixel.

    Args:
        fragments: rasterisation of F frames (H x W).
        faces: (nF, 3) int64 the faces given to the rasteriser.
        values: (C, V) per-vertex values, channel-first (cast to float32).

    Returns:
        (C, F, H, W) float32; 0 where no face was drawn.
    """
    face = fragments.pix_to_face.reshape(-1).clamp_min(0)
    bary = fragments.bary.permute(3, 0, 1, 2).reshape(3, -1)  # a view when bary came from the rasteriser
    table = values.to(torch.float32)
    corners = take_columns(faces.T.contiguous(), face)
    out = take_columns(table, corners[0]).mul_(bary[0])
    for k in (1, 2):
        out.addcmul_(take_columns(table, corners[k]), bary[k])
    return out.reshape((-1,) + tuple(fragments.pix_to_face.shape))


def sample_nearest(textures: torch.Tensor, frame_texture: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
    """NEAREST texture lookup with clamp-to-edge (texel = floor(u * N) clamped to [0, N-1]).

    Args:
        textures: (T, Ht, Wt, C) texture images, row 0 = v 0.
        frame_texture: (F,) int64 texture used by each frame.
        uv: (2, F, H, W) float32 texture coordinates (u along columns, v along rows).

    Returns:
        (C, F, H, W) texel values (float32).
    """
    count, height, width, channels = textures.shape
    col = torch.floor(uv[0] * width).clamp_(0, width - 1).to(torch.int64)
    row = torch.floor(uv[1] * height).clamp_(0, height - 1).to(torch.int64)
    base = frame_texture.to(device=uv.device, dtype=torch.int64).view(-1, 1, 1) * (height * width)
    index = (base + row * width + col).reshape(-1)
    flat = textures.to(torch.float32).reshape(-1, channels).T.contiguous()
    return take_columns(flat, index).reshape((channels,) + tuple(uv.shape[1:]))


def simple_shade(fragments: Fragments, faces: torch.Tensor, uv: torch.Tensor, is_edge: torch.Tensor,
                 textures: torch.Tensor, frame_texture: torch.Tensor) -> Dict[str, torch.Tensor]:
    """The warp shader.

    Args:
        fragments, faces: rasterisation (F frames) and its faces.
        uv: (V, 2) vertex texture coordinates; is_edge: (V,) 0/1 edge flag.
        textures: (T, Ht, Wt, 3) float colours in [0, 1]; frame_texture: (F,) int64.

    Returns:
        ``color`` (F, H, W, 3) float32 (texel colour on front faces, else 0) and
        ``alpha`` (F, H, W) float32 in {0, 1}.
    """
    table = torch.cat([uv.T.to(torch.float32), is_edge.reshape(1, -1).to(torch.float32)], 0)
    attrs = interpolate(fragments, faces, table)
    front = fragments.front_facing
    color = sample_nearest(textures, frame_texture, attrs[:2]) * front
    alpha = (front & (attrs[2] <= EDGE_ALPHA_THRESHOLD)).to(torch.float32)
    return {"color": color.permute(1, 2, 3, 0), "alpha": alpha}


def aggregation_weight(position: torch.Tensor, normal: torch.Tensor, flags: torch.Tensor,
                       source_center: torch.Tensor) -> torch.Tensor:
    """Front-face fragment weight of the aggregation shader (SPEC section 6).

    Args:
        position, normal: (3, ...) interpolated world position / normal (channel-first).
        flags: (3, ...) interpolated (is_edge, is_padding, is_eroded).
        source_center: (3, ...) broadcastable source camera centre of the fragment's mesh.

    Returns:
        (...) float32 weight in [1e-16, 1].
    """
    view = source_center - position
    dot = (view * normal).sum(0)
    norm = view.square().sum(0).sqrt() * normal.square().sum(0).sqrt()
    cosine = (dot / norm).nan_to_num_(0.0).clamp_(0, 1)
    weight = torch.exp((-ANGLE_SHARPNESS * torch.acos(cosine)).clamp_min_(MIN_LOG_WEIGHT)).clamp_min_(MIN_ANGLE_WEIGHT)
    eroded = (flags[2] >= ERODED_THRESHOLD).to(weight.dtype)
    weight = weight * (1 - eroded + eroded * ERODED_FACTOR)
    fallback = ((flags[1] > PADDING_THRESHOLD) | (flags[0] > EDGE_THRESHOLD)).to(weight.dtype)
    weight = weight * (1 - fallback) + fallback * FALLBACK_WEIGHT  # exact 0/1 blend (faster than where on CPU)
    return weight.clamp_min_(FALLBACK_WEIGHT)


def aggregation_shade(fragments: Fragments, faces: torch.Tensor, position: torch.Tensor, normal: torch.Tensor,
                      uv: torch.Tensor, flags: torch.Tensor, textures: torch.Tensor, frame_texture: torch.Tensor,
                      frame_center: torch.Tensor) -> Dict[str, torch.Tensor]:
    """The aggregation shader (one frame per mesh).

    Args:
        fragments, faces: rasterisation of F frames (back-facing padding fragments
            already discarded by the rasteriser) and its faces.
        position, normal: (V, 3) world vertex positions / normals; uv: (V, 2);
        flags: (V, 3) 0/1 (is_edge, is_padding, is_eroded).
        textures: (T, Ht, Wt, 3) colours in [0, 1]; frame_texture: (F,) int64.
        frame_center: (F, 3) source camera centre of each frame's mesh (world).

    Returns:
        ``color`` (3, F, H, W) float32 texel colour (0 on back faces / empty) and
        ``weight`` (F, H, W) float32 (0 on back faces / empty pixels).
    """
    table = torch.cat([position.T.float(), normal.T.float(), uv.T.float(), flags.T.float()], 0)
    attrs = interpolate(fragments, faces, table)
    center = frame_center.to(device=attrs.device, dtype=torch.float32).T.reshape(3, -1, 1, 1)
    weight = aggregation_weight(attrs[0:3], attrs[3:6], attrs[8:11], center)
    front = fragments.front_facing
    weight = weight * front
    color = sample_nearest(textures, frame_texture, attrs[6:8]) * front
    return {"color": color, "weight": weight}


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

    @classmethod
    def zeros(cls, batch: int, height: int, width: int, device: torch.device) -> "AggregationAccumulator":
        """Empty accumulators for ``batch`` target images of H x W pixels."""
        def plane(dtype: torch.dtype = torch.float32) -> torch.Tensor:
            return torch.zeros(batch, height, width, dtype=dtype, device=device)
        return cls(torch.zeros(3, batch, height, width, dtype=torch.float32, device=device), plane(), plane(),
                   plane(), plane(torch.int32), plane(torch.int32))

    def fold(self, color: torch.Tensor, weight: torch.Tensor, zbuf: torch.Tensor) -> None:
        """Add one mesh's framebuffer (per target image); call in mesh order.

        Args:
            color: (3, B, H, W) float32 shaded colour; weight: (B, H, W) float32 alpha
                (0 = nothing); zbuf: (B, H, W) float32 window depth of that mesh.
        """
        weak = WEAK_DEPTH_WEIGHT
        has_depth = weight > DEPTH_EVIDENCE
        depth_w = has_depth.to(torch.float32) + ((weight > 0) & ~has_depth).to(torch.float32) * weak
        self.count_color += (weight > COLOR_EVIDENCE).to(torch.int32)
        self.count_depth += has_depth.to(torch.int32)
        # only weak (edge / padding) evidence so far and this mesh is weak too: keep the farther one
        only_weak = ((self.depth_weight - weak).abs() < weak) & (depth_w == torch.tensor(weak, dtype=torch.float32))
        replace = only_weak & (zbuf * weak > self.depth_sum)
        # exact 0/1 blends: add -> old + new, replace -> new, keep -> old
        keep_old = (~replace).to(torch.float32)
        take_new = (~(only_weak & ~replace)).to(torch.float32)
        self.color_sum = self.color_sum * keep_old + (weight * take_new) * color
        self.color_weight = self.color_weight * keep_old + weight * take_new
        self.depth_sum = self.depth_sum * keep_old + (depth_w * take_new) * zbuf
        self.depth_weight = self.depth_weight * keep_old + depth_w * take_new

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
