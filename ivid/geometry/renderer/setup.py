"""Set-up stage of the rasteriser: snapped vertex positions and per-face edge / depth equations.

Conventions: pixel-index space has x = column, y = row (row 0 = top) and pixel
(r, c) has its sample at (c, r). Fixed point = pixel-index coordinates times 256
(llvmpipe's 8 sub-pixel bits). Arrays are "structure of arrays": (K, F) tensors
whose rows are contiguous per-face quantities (much faster on CPU than (F, K)).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Tuple

import torch

SUBPIXEL_BITS = 8
SUBPIXEL_ONE = 1 << SUBPIXEL_BITS
#: DEPTH_COMPONENT24: window depth w is stored as round(w * DEPTH_MAX)
DEPTH_MAX = (1 << 24) - 1
#: vertices within this many pixels of the image use the exact fixed-point path
GUARD_BAND_PIXELS = float(1 << 14)


def take_columns(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``table[:, index]`` for a (K, N) tensor -> (K, M), gathering row by row.

    (One 1-D ``index_select`` per row is several times faster on CPU than
    ``index_select(1, ...)`` on the 2-D tensor.)
    """
    out = torch.empty((table.shape[0], index.numel()), dtype=table.dtype, device=table.device)
    for k in range(table.shape[0]):
        torch.index_select(table[k], 0, index, out=out[k])
    return out


@dataclass
class FaceSetup:
    """Per-face quantities of F faces.

    Attributes:
        cofactor: (9, F) float64, rows (e0x, e0y, e0w, e1x, ...): with p = (X, Y, 1)
            in NDC, ``e_i = e_ix X + e_iy Y + e_iw`` are the 2D-homogeneous edge
            functions; perspective-correct barycentrics are ``e_i / sum(e)``.
        depth24: (3, F) float64 (kc, kr, k0): window depth * DEPTH_MAX at pixel
            (r, c) is ``kc c + kr r + k0`` (linear in screen space).
        ndc_depth: (3, F) float64 (gx, gy, gw): ``z_ndc = gx X + gy Y + gw``.
        front: (F,) bool counter-clockwise in NDC.
        keep: (F,) bool non-degenerate and not entirely beyond the near or far plane.
    """

    cofactor: torch.Tensor
    depth24: torch.Tensor
    ndc_depth: torch.Tensor
    front: torch.Tensor
    keep: torch.Tensor


def setup_faces(clip_t: torch.Tensor, faces_t: torch.Tensor, height: int, width: int) -> FaceSetup:
    """2D-homogeneous set-up of M = [x; y; w] (one column per vertex).

    Args:
        clip_t: (4, V) float64 clip coordinates (rows x, y, z, w).
        faces_t: (3, F) int64 vertex indices (rows = corners).
    """
    x0, y0, z0, w0 = take_columns(clip_t, faces_t[0])
    x1, y1, z1, w1 = take_columns(clip_t, faces_t[1])
    x2, y2, z2, w2 = take_columns(clip_t, faces_t[2])
    # rows of adj(M): e0 = v1 x v2, e1 = v2 x v0, e2 = v0 x v1 with v = (x, y, w) (explicit products:
    # torch.linalg.cross may fuse them and round differently)
    cofactor = torch.stack([
        y1 * w2 - w1 * y2, w1 * x2 - x1 * w2, x1 * y2 - y1 * x2,
        y2 * w0 - w2 * y0, w2 * x0 - x2 * w0, x2 * y0 - y2 * x0,
        y0 * w1 - w0 * y1, w0 * x1 - x0 * w1, x0 * y1 - y0 * x1,
    ])
    det = x0 * cofactor[0] + y0 * cofactor[1] + w0 * cofactor[2]
    safe_det = det + (det == 0).to(det.dtype)
    ndc_depth = (z0 * cofactor[0:3] + z1 * cofactor[3:6] + z2 * cofactor[6:9]) / safe_det
    gx, gy, gw = ndc_depth
    half = 0.5 * DEPTH_MAX
    depth24 = torch.stack([gx * (DEPTH_MAX / width), gy * (-DEPTH_MAX / height),
                           half * (gx * (1.0 / width - 1.0) + gy * (1.0 - 1.0 / height) + gw + 1.0)])
    finite = torch.isfinite(gx + gy + gw + x0 + x1 + x2 + y0 + y1 + y2 + w0 + w1 + w2)
    beyond_near = (z0 + w0 < 0) & (z1 + w1 < 0) & (z2 + w2 < 0)
    beyond_far = (z0 > w0) & (z1 > w1) & (z2 > w2)
    keep = (det != 0) & finite & ~beyond_near & ~beyond_far
    return FaceSetup(cofactor=cofactor, depth24=depth24, ndc_depth=ndc_depth, front=det > 0, keep=keep)


def vertex_window(clip_t: torch.Tensor, height: int, width: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Snapped window positions of vertices.

    Returns:
        ``(fixed, ok)``: (2, V) int64 pixel-index coordinates * 256 (rounded to
        nearest; 0 where not ok) and (V,) bool: in front of the near plane (w > 0,
        z >= -w) and inside the guard band, i.e. usable by the fixed-point path.
    """
    x, y, z, w = clip_t
    ok = (w > 0) & (z + w >= 0)
    safe_w = torch.where(ok, w, torch.ones_like(w))
    px = (x / safe_w + 1) * (width / 2) - 0.5
    py = (1 - y / safe_w) * (height / 2) - 0.5
    ok &= (px.abs() < GUARD_BAND_PIXELS) & (py.abs() < GUARD_BAND_PIXELS)
    fixed = torch.round(torch.stack([px, py]) * SUBPIXEL_ONE) * ok
    return fixed.to(torch.int64), ok


@dataclass
class FixedTriangles:
    """Snapped, consistently oriented triangles of G faces (all (G,) int64 unless stated).

    Attributes:
        edge_a, edge_b, edge_c, exclusive: (3, G) edge k (from vertex k to k+1):
            ``E = edge_a * X + edge_b * Y + edge_c`` in fixed point (X = 256 c,
            Y = 256 r) is > 0 inside; a sample with E == 0 is covered unless
            ``exclusive`` (llvmpipe fill rule).
        bbox: (4, G) first/last column, first/last row of candidate samples (clamped
            to the image; empty when first > last).
        nonzero: (G,) bool fixed-point area != 0.
        samples: (G,) int64 estimate of covered samples (area + half the perimeter box).
    """

    edge_a: torch.Tensor
    edge_b: torch.Tensor
    edge_c: torch.Tensor
    exclusive: torch.Tensor
    bbox: torch.Tensor
    nonzero: torch.Tensor
    samples: torch.Tensor

    def subset(self, index: torch.Tensor) -> "FixedTriangles":
        """The triangles at ``index`` (G',)."""
        def take(t: torch.Tensor) -> torch.Tensor:
            return take_columns(t, index) if t.dim() == 2 else t.index_select(0, index)
        return FixedTriangles(*(take(t) for t in (self.edge_a, self.edge_b, self.edge_c, self.exclusive, self.bbox,
                                                  self.nonzero, self.samples)))


def snapped_sample_bbox(xs: Sequence[torch.Tensor],
                        ys: Sequence[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Unclamped sample bbox of snapped triangles.

    Args:
        xs, ys: the three vertices' snapped columns / rows (pixel index * 256), each
            (G,) int32 or int64.

    Returns:
        ``(first_c, last_c, first_r, last_r)`` (G,) in the inputs' dtype: the samples
        ``first <= index <= last`` (none when first > last; may lie outside the image).
    """
    one = SUBPIXEL_ONE
    lo_x = torch.minimum(torch.minimum(xs[0], xs[1]), xs[2])
    hi_x = torch.maximum(torch.maximum(xs[0], xs[1]), xs[2])
    lo_y = torch.minimum(torch.minimum(ys[0], ys[1]), ys[2])
    hi_y = torch.maximum(torch.maximum(ys[0], ys[1]), ys[2])
    # arithmetic shifts = floor division
    return ((lo_x + one - 1) >> SUBPIXEL_BITS, hi_x >> SUBPIXEL_BITS,
            (lo_y + one - 1) >> SUBPIXEL_BITS, hi_y >> SUBPIXEL_BITS)


def fixed_triangles(fixed: torch.Tensor, faces_t: torch.Tensor, height: int, width: int) -> FixedTriangles:
    """Edge functions and bounding boxes of snapped triangles.

    Args:
        fixed: (2, V) int64 snapped vertex positions (see :func:`vertex_window`).
        faces_t: (3, G) int64 vertex indices.
    """
    (x0, y0), (x1, y1), (x2, y2) = (take_columns(fixed, faces_t[k]) for k in range(3))
    area = (x1 - x0) * (y2 - y0) - (y1 - y0) * (x2 - x0)
    # orient every triangle so that E > 0 inside: swap vertices 1 and 2 where the area is negative
    swap = (area < 0).to(torch.int64)
    dx, dy = (x2 - x1) * swap, (y2 - y1) * swap
    x1, x2, y1, y2 = x1 + dx, x2 - dx, y1 + dy, y2 - dy
    xs, ys = torch.stack([x0, x1, x2]), torch.stack([y0, y1, y2])
    xn, yn = torch.stack([x1, x2, x0]), torch.stack([y1, y2, y0])
    edge_a, edge_b = ys - yn, xn - xs
    edge_c = -(edge_a * xs + edge_b * ys)
    # fill rule in image coordinates: left (A > 0) and image-bottom (A == 0, B < 0) edges are inclusive
    exclusive = ~((edge_a > 0) | ((edge_a == 0) & (edge_b < 0)))
    first_c, last_c, first_r, last_r = snapped_sample_bbox((x0, x1, x2), (y0, y1, y2))
    bbox = torch.stack([first_c.clamp_min(0), last_c.clamp_max(width - 1),
                        first_r.clamp_min(0), last_r.clamp_max(height - 1)])
    rows, cols = last_r - first_r + 1, last_c - first_c + 1  # of the unclamped bbox
    samples = (area.abs() >> (2 * SUBPIXEL_BITS + 1)) + rows + cols
    return FixedTriangles(edge_a, edge_b, edge_c, exclusive, bbox, area != 0, samples)
