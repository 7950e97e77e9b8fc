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

from ._raster_setup import DEPTH_MAX, SUBPIXEL_ONE, FixedTriangles, take_columns

#: candidate grid sides (rows and columns are bucketed separately)
BUCKETS = (1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 16)
MAX_SIDE = BUCKETS[-1]
#: classes with fewer faces than this are merged into the square class of their longer side
MIN_CLASS_FACES = 1024
#: added to an edge value to reject candidates outside the clamped bbox (int32-safe)
_REJECT = -(1 << 29)


def size_classes(rows: torch.Tensor, cols: torch.Tensor) -> Tuple[torch.Tensor, List[Tuple[Tuple[int, int], int, int]]]:
    """Group faces by candidate grid size.

    The class must follow the UNCLAMPED bbox: it bounds the edge coefficients,
    which keeps the int32 evaluation exact.

    Args:
        rows, cols: (G,) int64 sample rows / columns of each face's unclamped bbox.

    Returns:
        ``(order, classes)``: ``order`` (D,) int64 indices of the faces with both
        sides <= 16, sorted by class (larger ones are left out: span path);
        ``classes`` = ``[((R, C), start, end), ...]`` slices of ``order``.
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
    classes, start, first = [], 0, 0
    for value, size in zip(present[0].tolist(), present[1].tolist()):
        if value >= 0:
            classes.append(((BUCKETS[value // count], BUCKETS[value % count]), start - first, start - first + size))
        else:
            first = size  # the excluded faces (label -1) sort first
        start += size
    return order[first:], classes


def pack_triangles(tri: FixedTriangles, index: torch.Tensor) -> torch.Tensor:
    """(16, D) int64 table of the triangles at ``index``: edge a, b, c, exclusive (3 rows each), bbox (4)."""
    table = torch.cat([tri.edge_a, tri.edge_b, tri.edge_c, tri.exclusive.to(torch.int64), tri.bbox])
    return take_columns(table, index)


def dense_keys(tri: torch.Tensor, face: torch.Tensor, frame: torch.Tensor, depth24: torch.Tensor,
               shape: Tuple[int, int], height: int, width: int, face_bits: int,
               empty_key: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """z-test keys of the R x C candidate samples of G small triangles.

    Args:
        tri: (16, G) :func:`pack_triangles` table (unclamped bboxes within R x C samples).
        face: (G,) int64 global face index; frame: (G,) int64 framebuffer index.
        depth24: (3, G) float64 (kc, kr, k0) window-depth plane (see FaceSetup).
        shape: candidate grid (R, C).

    Returns:
        ``(pixel, key)``: (G * R * C,) int64 flat framebuffer index and key
        ``depth24 << face_bits | face`` (>= empty_key for non-covered candidates,
        whose index may point up to R * W + C past the last frame: the caller's
        buffer has that much slack).
    """
    num_rows, num_cols = shape
    c0, c1, r0, r1 = tri[12:16]
    row_step = torch.arange(num_rows, device=face.device)
    col_step = torch.arange(num_cols, device=face.device)
    col_out = (col_step.unsqueeze(0) > (c1 - c0).unsqueeze(1)).to(torch.int32) * _REJECT  # (G, C)
    row_out = (row_step.unsqueeze(0) > (r1 - r0).unsqueeze(1)).to(torch.int32) * _REJECT  # (G, R)
    # a candidate is outside iff some edge value is negative iff the OR of the int32 values is negative
    signs = None
    for k in range(3):
        a, b = tri[k] * SUBPIXEL_ONE, tri[3 + k] * SUBPIXEL_ONE
        at_corner = a * c0 + b * r0 + tri[6 + k] - tri[9 + k]
        row_part = (at_corner.unsqueeze(1) + b.unsqueeze(1) * row_step).to(torch.int32)  # (G, R)
        col_part = (a.unsqueeze(1) * col_step).to(torch.int32)  # (G, C)
        if k == 0:
            row_part, col_part = row_part + row_out, col_part + col_out
        value = row_part.unsqueeze(2) + col_part.unsqueeze(1)  # (G, R, C)
        signs = value if signs is None else signs.bitwise_or_(value)
    outside = signs < 0
    kc, kr, k0 = depth24
    at_corner = kc * c0 + kr * r0 + k0
    depth = (at_corner.unsqueeze(1) + kr.unsqueeze(1) * row_step).unsqueeze(2) \
        + (kc.unsqueeze(1) * col_step).unsqueeze(1)
    key = (torch.round_(depth).clamp_(0, DEPTH_MAX).to(torch.int64) << face_bits) | face.view(-1, 1, 1)
    key |= outside.to(torch.int64) * empty_key
    base = (frame * height + r0) * width + c0
    pattern = (row_step * width).unsqueeze(1) + col_step  # (R, C)
    pixel = base.view(-1, 1) + pattern.view(1, -1)
    return pixel.reshape(-1), key.reshape(-1)


def class_chunks(count: int, shape: Tuple[int, int], budget: int) -> Iterator[Tuple[int, int]]:
    """Slices of at most ``budget / (R * C)`` faces."""
    step = max(1, budget // (shape[0] * shape[1]))
    for start in range(0, count, step):
        yield start, min(start + step, count)
