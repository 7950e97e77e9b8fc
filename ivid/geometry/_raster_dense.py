"""Dense candidate path of the rasteriser for small triangles (bbox <= 16 x 16 samples).

Every face of a size class gets an R x R grid of candidate samples from its bbox
corner; the three fixed-point edge functions are evaluated by broadcasting (int32
is exact at this size) and samples outside the triangle get the empty key, so no
compaction is needed before the z-test scatter. This is the common case: about
one pixel per triangle at 1x and 9-25 samples at 3x / 5x supersampling.
"""

from __future__ import annotations

from typing import Iterator, Tuple

import torch

from ._raster_setup import DEPTH_MAX, SUBPIXEL_ONE, FixedTriangles

#: dense class sizes (candidate grid side, in samples)
CLASS_SIZES = (2, 4, 8, 16)
#: added to an edge value to reject candidates outside the clamped bbox (int32-safe)
_REJECT = -(1 << 29)


def size_class(side: torch.Tensor) -> torch.Tensor:
    """(G,) int64 index into CLASS_SIZES for unclamped bbox sides (len(CLASS_SIZES) = too large).

    The class must follow the UNCLAMPED bbox: it bounds the edge coefficients, which
    keeps the int32 evaluation exact.
    """
    return torch.bucketize(side, torch.tensor(CLASS_SIZES, device=side.device))


def dense_keys(tri: FixedTriangles, face: torch.Tensor, frame: torch.Tensor, depth24: torch.Tensor, size: int,
               height: int, width: int, face_bits: int, empty_key: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """z-test keys of the size x size candidate samples of G small triangles.

    Args:
        tri: snapped triangles (G faces; bbox sides <= size).
        face: (G,) int64 global face index; frame: (G,) int64 framebuffer index.
        depth24: (3, G) float64 (kc, kr, k0) window-depth plane (see FaceSetup).
        size: candidate grid side R.

    Returns:
        ``(pixel, key)``: (G * R * R,) int64 flat framebuffer index and key
        ``depth24 << face_bits | face`` (>= empty_key for non-covered candidates).
    """
    c0, c1, r0, r1 = tri.bbox
    step = torch.arange(size, device=face.device)
    col_out = (step.unsqueeze(0) > (c1 - c0).unsqueeze(1)).to(torch.int32) * _REJECT  # (G, R)
    row_out = (step.unsqueeze(0) > (r1 - r0).unsqueeze(1)).to(torch.int32) * _REJECT
    inside = None
    for k in range(3):
        a, b = tri.edge_a[k] * SUBPIXEL_ONE, tri.edge_b[k] * SUBPIXEL_ONE
        at_corner = a * c0 + b * r0 + tri.edge_c[k] - tri.exclusive[k].to(torch.int64)
        row_part = (at_corner.unsqueeze(1) + b.unsqueeze(1) * step).to(torch.int32)  # (G, R) over rows
        col_part = (a.unsqueeze(1) * step).to(torch.int32)  # (G, R) over columns
        if k == 0:
            row_part, col_part = row_part + row_out, col_part + col_out
        covered = (row_part.unsqueeze(2) + col_part.unsqueeze(1)) >= 0  # (G, R, R)
        inside = covered if inside is None else inside & covered
    kc, kr, k0 = depth24
    at_corner = kc * c0 + kr * r0 + k0
    depth = (at_corner.unsqueeze(1) + kr.unsqueeze(1) * step).unsqueeze(2) + (kc.unsqueeze(1) * step).unsqueeze(1)
    depth = torch.round(depth).clamp_(0, DEPTH_MAX).to(torch.int64)
    key = (depth << face_bits) | face.view(-1, 1, 1)
    key |= (~inside).to(torch.int64) * empty_key
    base = (frame * height + r0) * width + c0
    pixel = base.view(-1, 1, 1) + (step * width).view(1, -1, 1) + step.view(1, 1, -1)
    return pixel.reshape(-1), key.reshape(-1)


def class_chunks(count: int, size: int, budget: int) -> Iterator[Tuple[int, int]]:
    """Slices of at most ``budget / size**2`` faces."""
    step = max(1, budget // (size * size))
    for start in range(0, count, step):
        yield start, min(start + step, count)
