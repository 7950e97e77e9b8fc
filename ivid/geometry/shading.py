"""Shading of rasterised fragments: the reference's two shaders and the aggregation fold.

Works on :class:`~ivid.geometry.raster.Fragments` of F frames (H x W each). Vertex
attributes (uv, world position, world normal and the 0/1 decoded flag bits) are
interpolated perspective-correctly with the fragment barycentrics; fragment tests
threshold the INTERPOLATED flags, as the reference's GLSL does. Textures are
sampled with NEAREST filtering and clamp-to-edge: texel = floor(u * N) clamped.

- :func:`simple_shade` (SimpleRenderer, warping): back-facing -> colour 0, alpha 0;
  front-facing -> texel colour, alpha 0 if interpolated is_edge > 0.999 else 1.
- :func:`aggregation_shade` (AggregationRenderer): the view-angle weight of SPEC
  section 6; :class:`AggregationAccumulator` folds the frames of one target
  camera mesh by mesh (sum of weighted colour, weighted window depth with the
  "keep the farther fallback" rule, coverage counters) and reads them back.

Back-facing fragments with interpolated is_padding > 0.001 are discarded by the
rasteriser (``back_discard``), since a discard also skips the depth write.
Arithmetic is float32, like the GPU shaders and RGBA32F framebuffers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict

import torch

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
        fragments: rasterisation of F frames.
        faces: (nF, 3) int64 the faces given to the rasteriser.
        values: (V, C) per-vertex values (cast to float32).

    Returns:
        (F, H, W, C) float32; 0 where no face was drawn.
    """
    face = fragments.pix_to_face.clamp_min(0)
    corner = values.to(torch.float32)[faces[face]]  # (F, H, W, 3, C)
    out = (fragments.bary.unsqueeze(-1) * corner).sum(-2)
    return out * fragments.covered.unsqueeze(-1)


def sample_nearest(textures: torch.Tensor, frame_texture: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
    """NEAREST texture lookup with clamp-to-edge (texel = floor(u * N) clamped to [0, N-1]).

    Args:
        textures: (T, Ht, Wt, C) texture images, row 0 = v 0.
        frame_texture: (F,) int64 texture used by each frame.
        uv: (F, H, W, 2) float32 texture coordinates (u along columns, v along rows).

    Returns:
        (F, H, W, C) texel values in the textures' dtype.
    """
    height, width = textures.shape[1:3]
    col = torch.floor(uv[..., 0] * width).to(torch.int64).clamp(0, width - 1)
    row = torch.floor(uv[..., 1] * height).to(torch.int64).clamp(0, height - 1)
    index = frame_texture.view(-1, 1, 1).to(torch.int64)
    return textures[index, row, col]


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
    attrs = interpolate(fragments, faces, torch.cat([uv.to(torch.float32), is_edge.reshape(-1, 1).float()], -1))
    front = fragments.front_facing
    color = sample_nearest(textures.to(torch.float32), frame_texture, attrs[..., :2]) * front.unsqueeze(-1)
    alpha = (front & (attrs[..., 2] <= EDGE_ALPHA_THRESHOLD)).to(torch.float32)
    return {"color": color, "alpha": alpha}


def aggregation_weight(position: torch.Tensor, normal: torch.Tensor, flags: torch.Tensor,
                       source_center: torch.Tensor) -> torch.Tensor:
    """Front-face fragment weight of the aggregation shader (SPEC section 6).

    Args:
        position, normal: (..., 3) interpolated world position / normal.
        flags: (..., 3) interpolated (is_edge, is_padding, is_eroded).
        source_center: (..., 3) the source camera centre of the fragment's mesh.

    Returns:
        (...,) float32 weight in [1e-16, 1].
    """
    view = torch.nn.functional.normalize(source_center - position, dim=-1, eps=0.0)
    unit_normal = torch.nn.functional.normalize(normal, dim=-1, eps=0.0)
    cosine = (view * unit_normal).sum(-1).clamp(0, 1)
    weight = torch.exp(torch.clamp_min(-ANGLE_SHARPNESS * torch.acos(cosine), MIN_LOG_WEIGHT))
    weight = weight.clamp_min(MIN_ANGLE_WEIGHT)
    weight = torch.where(flags[..., 2] >= ERODED_THRESHOLD, weight * ERODED_FACTOR, weight)
    fallback = (flags[..., 1] > PADDING_THRESHOLD) | (flags[..., 0] > EDGE_THRESHOLD)
    weight = torch.where(fallback, torch.full_like(weight, FALLBACK_WEIGHT), weight)
    return weight.clamp_min(FALLBACK_WEIGHT)


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
        ``color`` (F, H, W, 3) float32 texel colour (0 on back faces / empty) and
        ``weight`` (F, H, W) float32 (0 on back faces / empty pixels).
    """
    attrs = interpolate(fragments, faces, torch.cat([position.float(), normal.float(), uv.float(), flags.float()], -1))
    center = frame_center.to(torch.float32).view(-1, 1, 1, 3)
    weight = aggregation_weight(attrs[..., 0:3], attrs[..., 3:6], attrs[..., 8:11], center)
    front = fragments.front_facing
    weight = weight * front
    color = sample_nearest(textures.to(torch.float32), frame_texture, attrs[..., 6:8]) * front.unsqueeze(-1)
    return {"color": color, "weight": weight}


@dataclass
class AggregationAccumulator:
    """Running per-pixel sums over the meshes of one target camera (float32, (B, H, W) each).

    ``color_sum`` (B, H, W, 3) = sum w*rgb, ``color_weight`` = sum w, ``depth_sum`` =
    sum wd*window_depth, ``depth_weight`` = sum wd, ``count_depth`` / ``count_color``
    = number of meshes with w > 1e-14 / w > 1e-6.
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
        def plane() -> torch.Tensor:
            return torch.zeros(batch, height, width, dtype=torch.float32, device=device)
        return cls(torch.zeros(batch, height, width, 3, dtype=torch.float32, device=device), plane(), plane(),
                   plane(), torch.zeros(batch, height, width, dtype=torch.int32, device=device),
                   torch.zeros(batch, height, width, dtype=torch.int32, device=device))

    def fold(self, color: torch.Tensor, weight: torch.Tensor, zbuf: torch.Tensor) -> None:
        """Add one mesh's framebuffer (per target image), in mesh order.

        Args:
            color: (B, H, W, 3) float32 shaded colour; weight: (B, H, W) float32 alpha
                (0 = nothing); zbuf: (B, H, W) float32 window depth of that mesh.
        """
        weak = torch.tensor(WEAK_DEPTH_WEIGHT, dtype=torch.float32, device=weight.device)
        depth_w = torch.where(weight > DEPTH_EVIDENCE, torch.ones_like(weight),
                              torch.where(weight > 0, weak, torch.zeros_like(weight)))
        self.count_color += (weight > COLOR_EVIDENCE).to(torch.int32)
        self.count_depth += (weight > DEPTH_EVIDENCE).to(torch.int32)
        only_weak = ((self.depth_weight - weak).abs() < weak) & (depth_w == weak)
        replace = only_weak & (zbuf * weak > self.depth_sum)
        add = ~only_weak
        self.color_sum = torch.where(replace.unsqueeze(-1), weight.unsqueeze(-1) * color,
                                     torch.where(add.unsqueeze(-1), self.color_sum + weight.unsqueeze(-1) * color,
                                                 self.color_sum))
        self.color_weight = torch.where(replace, weight, torch.where(add, self.color_weight + weight,
                                                                     self.color_weight))
        self.depth_sum = torch.where(replace, zbuf * weak, torch.where(add, self.depth_sum + depth_w * zbuf,
                                                                       self.depth_sum))
        self.depth_weight = torch.where(replace, weak, torch.where(add, self.depth_weight + depth_w,
                                                                   self.depth_weight))

    def read_back(self, near: float, far: float) -> Dict[str, torch.Tensor]:
        """Final images of the aggregation render.

        Returns:
            ``color`` (B, H, W, 3) float32 = sum w rgb / sum w (0 where sum w = 0);
            ``depth`` (B, H, W) float32 linear depth of the averaged window depth
            (window depth 0, i.e. ``near``, where no depth weight); ``mask_color`` /
            ``mask_depth`` (B, H, W) bool (any mesh with colour / depth evidence).
        """
        has_color = self.color_weight > 0
        safe = torch.where(has_color, self.color_weight, torch.ones_like(self.color_weight))
        color = torch.where(has_color.unsqueeze(-1), self.color_sum / safe.unsqueeze(-1),
                            torch.zeros_like(self.color_sum))
        has_depth = self.depth_weight > 0
        window = torch.where(has_depth, self.depth_sum / torch.where(has_depth, self.depth_weight,
                                                                     torch.ones_like(self.depth_weight)),
                             torch.zeros_like(self.depth_sum))
        return {"color": color, "depth": window_to_linear(window, near, far),
                "mask_color": self.count_color > 0, "mask_depth": self.count_depth > 0}


def window_to_linear(window: torch.Tensor, near: float, far: float) -> torch.Tensor:
    """Linear eye depth of a window depth (renderer planes): ``n f / (f - w (f - n))`` (float32).

    A cleared buffer (w = 1) reads back as ``far``, w = 0 as ``near``.
    """
    window = window.to(torch.float32)
    return torch.full_like(window, near * far) / (far - window * (far - near))
