"""Dense candidate path of the rasteriser for small triangles (bbox <= 16 x 16 samples).

Every face of a size class (R rows x C columns) gets an R x C grid of candidate
samples from its bbox corner; the three fixed-point edge functions are evaluated by
broadcasting (int32 is exact at this size) and samples outside the triangle get
the empty key, so no compaction is needed before the z-test scatter. This is the
common case: about one pixel per triangle at 1x and 9-25 samples at 3x / 5x
supersampling.
"""

from __future__ import annotations

from typing import Iterator, List, Tuple

import torch

from ._raster_setup import DEPTH_MAX, SUBPIXEL_ONE, FixedTriangles

#: candidate grid sides (rows and columns are bucketed separately)
BUCKETS = (1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 16)
MAX_SIDE = BUCKETS[-1]
#: classes with fewer faces than this are merged into the square class of their longer side
MIN_CLASS_FACES = 512
#: added to an edge value to reject candidates outside the clamped bbox (int32-safe)
_REJECT = -(1 << 29)


def size_classes(rows: torch.Tensor, cols: torch.Tensor) -> List[Tuple[Tuple[int, int], torch.Tensor]]:
    """Group faces by candidate grid size.

    The class must follow the UNCLAMPED bbox: it bounds the edge coefficients,
    which keeps the int32 evaluation exact.

    Args:
        rows, cols: (G,) int64 sample rows / columns of each face's unclamped bbox.

    Returns:
        ``[((R, C), face indices), ...]`` for faces with both sides <= 16; larger ones
        are left out (span path).
    """
    buckets = torch.tensor(BUCKETS, device=rows.device)
    small = (rows <= MAX_SIDE) & (cols <= MAX_SIDE)
    row_bucket = torch.bucketize(rows.clamp(1, MAX_SIDE), buckets)
    col_bucket = torch.bucketize(cols.clamp(1, MAX_SIDE), buckets)
    count = len(BUCKETS)
    label = torch.where(small, row_bucket * count + col_bucket, torch.full_like(rows, -1))
    sizes = torch.bincount(label + 1, minlength=count * count + 1)[1:]
    rare = torch.nonzero((sizes > 0) & (sizes < MIN_CLASS_FACES)).squeeze(1)
    if rare.numel():
        is_rare = torch.zeros(count * count + 1, dtype=torch.bool, device=rows.device)
        is_rare[rare + 1] = True
        square = torch.maximum(row_bucket, col_bucket)
        label = torch.where(is_rare[label + 1], square * count + square, label)
    order = torch.argsort(label, stable=True)
    sorted_label = label.index_select(0, order)
    present = torch.unique_consecutive(sorted_label, return_counts=True)
    groups, start = [], 0
    for value, size in zip(present[0].tolist(), present[1].tolist()):
        if value >= 0:
            groups.append(((BUCKETS[value // count], BUCKETS[value % count]), order[start:start + size]))
        start += size
    return groups


def dense_keys(tri: FixedTriangles, face: torch.Tensor, frame: torch.Tensor, depth24: torch.Tensor,
               shape: Tuple[int, int], height: int, width: int, face_bits: int,
               empty_key: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """z-test keys of the R x C candidate samples of G small triangles.

    Args:
        tri: snapped triangles (G faces; unclamped bbox within R x C samples).
        face: (G,) int64 global face index; frame: (G,) int64 framebuffer index.
        depth24: (3, G) float64 (kc, kr, k0) window-depth plane (see FaceSetup).
        shape: candidate grid (R, C).

    Returns:
        ``(pixel, key)``: (G * R * C,) int64 flat framebuffer index (unclamped for
        rejected candidates) and key ``depth24 << face_bits | face`` (>= empty_key
        for non-covered candidates).
    """
    num_rows, num_cols = shape
    c0, c1, r0, r1 = tri.bbox
    row_step = torch.arange(num_rows, device=face.device)
    col_step = torch.arange(num_cols, device=face.device)
    col_out = (col_step.unsqueeze(0) > (c1 - c0).unsqueeze(1)).to(torch.int32) * _REJECT  # (G, C)
    row_out = (row_step.unsqueeze(0) > (r1 - r0).unsqueeze(1)).to(torch.int32) * _REJECT  # (G, R)
    inside = None
    for k in range(3):
        a, b = tri.edge_a[k] * SUBPIXEL_ONE, tri.edge_b[k] * SUBPIXEL_ONE
        at_corner = a * c0 + b * r0 + tri.edge_c[k] - tri.exclusive[k].to(torch.int64)
        row_part = (at_corner.unsqueeze(1) + b.unsqueeze(1) * row_step).to(torch.int32)  # (G, R)
        col_part = (a.unsqueeze(1) * col_step).to(torch.int32)  # (G, C)
        if k == 0:
            row_part, col_part = row_part + row_out, col_part + col_out
        covered = (row_part.unsqueeze(2) + col_part.unsqueeze(1)) >= 0  # (G, R, C)
        inside = covered if inside is None else inside.logical_and_(covered)
    kc, kr, k0 = depth24
    at_corner = kc * c0 + kr * r0 + k0
    depth = (at_corner.unsqueeze(1) + kr.unsqueeze(1) * row_step).unsqueeze(2) \
        + (kc.unsqueeze(1) * col_step).unsqueeze(1)
    key = (torch.round_(depth).clamp_(0, DEPTH_MAX).to(torch.int64) << face_bits) | face.view(-1, 1, 1)
    key |= inside.logical_not_().to(torch.int64) * empty_key
    base = (frame * height + r0) * width + c0
    pixel = base.view(-1, 1, 1) + (row_step * width).view(1, -1, 1) + col_step.view(1, 1, -1)
    return pixel.reshape(-1), key.reshape(-1)


def class_chunks(count: int, shape: Tuple[int, int], budget: int) -> Iterator[Tuple[int, int]]:
    """Slices of at most ``budget / (R * C)`` faces."""
    step = max(1, budget // (shape[0] * shape[1]))
    for start in range(0, count, step):
        yield start, min(start + step, count)
