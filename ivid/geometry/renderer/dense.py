"""Dense path of the rasteriser: small snapped triangles (bbox <= 16 x 16 samples) on candidate grids.

Every face of a size class (R rows x C columns) gets an R x C grid of candidate
samples from its bbox corner (faces whose bbox leaves the image take the span
path); the three fixed-point edge functions are evaluated by broadcasting (int32
is exact at this size) and samples outside the triangle get the empty key, so no
compaction is needed before the z-test scatter. This is the
common case: about one pixel per triangle at 1x and 9-25 samples at 3x / 5x
supersampling.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, List, Tuple

import torch

from .keys import EMPTY_KEY, FACE_BITS
from .setup import DEPTH_MAX, SUBPIXEL_ONE, snapped_sample_bbox

#: candidate grid sides (rows and columns are bucketed separately)
BUCKETS = (1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 16)
MAX_SIDE = BUCKETS[-1]
#: classes with fewer faces than this are merged into the square class of their longer side
MIN_CLASS_FACES = 1024


def size_classes(dense: torch.Tensor, rows: torch.Tensor,
                 cols: torch.Tensor) -> Tuple[torch.Tensor, List[Tuple[Tuple[int, int], int, int]]]:
    """Group the dense faces by candidate grid size.

    The class must follow the UNCLAMPED bbox: it bounds the edge coefficients,
    which keeps the int32 evaluation exact.

    Args:
        dense: (G,) bool faces to group (their sides must be in [1, 16]).
        rows, cols: (G,) integer sample rows / columns of each face's unclamped bbox.

    Returns:
        ``(order, classes)``: ``order`` (D,) int64 indices of the dense faces sorted
        by class (stable); ``classes`` = ``[((R, C), start, end), ...]`` slices of ``order``.
    """
    count = len(BUCKETS)
    lookup = torch.tensor([0] + [next(i for i, b in enumerate(BUCKETS) if b >= n) for n in range(1, MAX_SIDE + 1)],
                          device=rows.device)
    row_bucket = lookup.index_select(0, rows.clamp(0, MAX_SIDE).to(torch.int64))
    col_bucket = lookup.index_select(0, cols.clamp(0, MAX_SIDE).to(torch.int64))
    label = torch.where(dense, row_bucket * count + col_bucket, count * count)  # excluded faces sort last
    sizes = torch.bincount(label, minlength=count * count + 1)[:-1]
    rare = (sizes > 0) & (sizes < MIN_CLASS_FACES)
    if bool(rare.any()):
        square = torch.maximum(row_bucket, col_bucket) * (count + 1)
        label = torch.where(torch.cat([rare, rare.new_zeros(1)]).index_select(0, label), square, label)
        sizes = torch.bincount(label, minlength=count * count + 1)[:-1]
    order = torch.argsort(label, stable=True)
    classes, start = [], 0
    for value, size in enumerate(sizes.tolist()):
        if size:
            classes.append(((BUCKETS[value // count], BUCKETS[value % count]), start, start + size))
            start += size
    return order[:start], classes


@dataclass
class DenseTable:
    """Per-face data of the dense path (G faces, columns in class order).

    Attributes:
        edges: (9, G) int32 rows (c, a, b) per edge k: the fixed-point edge function
            at candidate (i, j) of the grid anchored at the bbox corner is
            ``c + a j + b i`` (exclusive edges lowered by one: covered iff >= 0).
        depth: (3, G) float64 (d0, kc, kr): window depth * DEPTH_MAX + 1/2 at
            candidate (i, j) is ``d0 + kc j + kr i``.
        face: (G,) int64 global face index; base: (G,) int64 flat framebuffer index of
            the grid corner.
    """

    edges: torch.Tensor
    depth: torch.Tensor
    face: torch.Tensor
    base: torch.Tensor


@dataclass
class FaceSplit:
    """Small faces for the dense path and the rest (see :func:`split_faces`).

    Attributes:
        order: (D,) int64 positions of the dense faces, sorted by size class;
        classes: size classes ``((R, C), start, end)`` as slices of ``order``;
        corner: (2, D) int64 bbox corner (column, row) of the dense faces (in ``order``);
        edges: (9, D) int32 their edge table (see :class:`DenseTable`);
        span: (S,) int64 positions of the faces whose bbox holds image samples but that
            are not dense (large, leaving the image, or flagged): the span path.
    """

    order: torch.Tensor
    classes: List[Tuple[Tuple[int, int], int, int]]
    corner: torch.Tensor
    edges: torch.Tensor
    span: torch.Tensor


def split_faces(fixed: torch.Tensor, corners: torch.Tensor, flagged: torch.Tensor, height: int,
                width: int) -> FaceSplit:
    """Sort snapped triangles into the dense path (with their int32 edge table) and the span path.

    A face is dense when its unclamped sample bbox has at most 16 x 16 samples, lies
    inside the image, it has a non-zero area and is not ``flagged``. Everything is
    computed in int32 relative to the bbox corner (exact for dense faces; other
    faces' values are clamped and unused).

    Args:
        fixed: (2, V) int32 snapped vertex positions (pixel index * 256).
        corners: (3, G) int64 vertex indices of the faces.
        flagged: (G,) bool faces that must take the span path.
    """
    xs = [fixed[0].index_select(0, corners[k]) for k in range(3)]
    ys = [fixed[1].index_select(0, corners[k]) for k in range(3)]
    one = SUBPIXEL_ONE
    first_c, last_c, first_r, last_r = snapped_sample_bbox(xs, ys)
    cols, rows = last_c - first_c + 1, last_r - first_r + 1
    visible = (last_c >= 0) & (first_c < width) & (last_r >= 0) & (first_r < height) & (cols > 0) & (rows > 0)
    inside = (first_c >= 0) & (last_c < width) & (first_r >= 0) & (last_r < height)
    small = (cols <= MAX_SIDE) & (rows <= MAX_SIDE) & inside & ~flagged
    limit = 2 * MAX_SIDE * one  # keeps the products below 2**31 for the faces that are not small
    dx = [(x - first_c * one).clamp_(-limit, limit) for x in xs]
    dy = [(y - first_r * one).clamp_(-limit, limit) for y in ys]
    area = (dx[1] - dx[0]) * (dy[2] - dy[0]) - (dy[1] - dy[0]) * (dx[2] - dx[0])
    dense = small & (area != 0) & visible
    span = torch.nonzero(visible & ~small).squeeze(1)
    order, classes = size_classes(dense, rows, cols)
    # edge functions of the triangle oriented so that E > 0 inside (negate all three where the area is negative)
    sign = 1 - 2 * (area.index_select(0, order) < 0).to(torch.int32)
    px = [d.index_select(0, order) for d in dx]
    py = [d.index_select(0, order) for d in dy]
    edges = []
    for k in range(3):
        nxt = (k + 1) % 3
        a, b = (py[k] - py[nxt]) * sign, (px[nxt] - px[k]) * sign
        exclusive = ~((a > 0) | ((a == 0) & (b < 0)))  # llvmpipe fill rule: left / image-bottom edges inclusive
        edges += [-(a * px[k] + b * py[k]) - exclusive.to(torch.int32), a * one, b * one]
    corner = torch.stack([first_c.index_select(0, order), first_r.index_select(0, order)]).to(torch.int64)
    return FaceSplit(order, classes, corner, torch.stack(edges), span)


def dense_table(split: FaceSplit, face: torch.Tensor, depth24: torch.Tensor, frame: torch.Tensor, height: int,
                width: int) -> DenseTable:
    """:class:`DenseTable` of the dense faces of ``split``.

    Args:
        face: (D,) global face index, depth24: (3, D) (kc, kr, k0), frame: (D,)
            framebuffer index of the dense faces (in ``split.order`` order).
    """
    c0, r0 = split.corner
    kc, kr, k0 = depth24
    depth = torch.stack([kc * c0 + kr * r0 + k0 + 0.5, kc, kr])
    return DenseTable(split.edges, depth, face, (frame * height + r0) * width + c0)


def dense_keys(table: DenseTable, start: int, end: int, shape: Tuple[int, int],
               width: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """z-test keys of the R x C candidate samples of faces ``start:end`` of a size class.

    Candidates are laid out (R, C, G) with the faces innermost, so that every
    operation broadcasts over long contiguous rows. Edge functions are exact in
    int32 (bboxes of at most 16 x 16 samples); a candidate is outside iff some edge
    value is negative iff the OR of the three values is negative.

    Returns:
        ``(pixel, key)``: (R * C * G,) int64 flat framebuffer index and key
        ``depth24 << FACE_BITS | face`` (>= ``EMPTY_KEY`` for non-covered candidates,
        whose index may point up to R * W + C past the last frame: the caller's
        buffer has that much slack). Depth is rounded half up and clamped to
        [0, DEPTH_MAX].
    """
    num_rows, num_cols = shape
    device = table.face.device
    edges, depth = table.edges[:, start:end], table.depth[:, start:end]
    row_step = torch.arange(num_rows, device=device).view(-1, 1, 1)
    col_step = torch.arange(num_cols, device=device).view(1, -1, 1)
    row_i32 = torch.arange(num_rows, device=device, dtype=torch.int32).view(-1, 1, 1)
    col_i32 = torch.arange(num_cols, device=device, dtype=torch.int32).view(1, -1, 1)
    signs = None
    for k in range(3):
        value = (edges[3 * k] + edges[3 * k + 2] * row_i32) + edges[3 * k + 1] * col_i32  # (R, C, G)
        signs = value if signs is None else signs.bitwise_or_(value)
    row_depth = depth[0] + depth[2] * torch.arange(num_rows, device=device, dtype=torch.float64).view(-1, 1, 1)
    window = (row_depth + depth[1] * torch.arange(num_cols, device=device, dtype=torch.float64).view(1, -1, 1))
    window.clamp_(0, DEPTH_MAX)
    # float64 -> int32 -> int64 (exact below 2**24) is several times faster on CPU than a direct conversion
    key = window.to(torch.int32).to(torch.int64).bitwise_left_shift_(FACE_BITS).bitwise_or_(table.face[start:end])
    key.masked_fill_(signs < 0, EMPTY_KEY)  # outside: never beats the cleared buffer
    pixel = table.base[start:end] + (row_step * width + col_step)
    return pixel.reshape(-1), key.reshape(-1)


def class_chunks(count: int, shape: Tuple[int, int], budget: int) -> Iterator[Tuple[int, int]]:
    """Slices of at most ``budget / (R * C)`` faces."""
    step = max(1, budget // (shape[0] * shape[1]))
    for start in range(0, count, step):
        yield start, min(start + step, count)
