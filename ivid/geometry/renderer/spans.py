"""Span path of the rasteriser: faces as half-planes, covered samples enumerated row span by row span.

A face is covered at pixel (r, c) when ``a_k * c >= num_k - b_k * r`` for each of its
K half-planes k. Half-planes with ``a_k == 0`` only depend on the row; they are folded
into the face's row range (:func:`fold_flat_half_planes`). For the others the row's
column bound is ``(num_k - b_k r) / a_k``: a lower bound (ceil) when ``a_k > 0``, an
upper bound (floor) when ``a_k < 0``; :func:`slot_table` sorts them into lower and
upper slots once per face so that :func:`row_spans` needs no per-row branching. With
integer-valued float64 inputs below 2**52 (the fixed-point path) the numerator is
exact and the division correctly rounded, so ceil / floor are exact and samples lying
exactly on an edge are decided right.

Faces come in :class:`SpanGroup` s (snapped triangles that are large, leave the
image or need the discard half-plane; and the homogeneous path's faces); work is
chunked by an estimate of rows + covered samples (:func:`span_chunks`) and every
chunk's samples become depth-test keys (:func:`span_keys`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple

import torch

from .keys import EMPTY_KEY, FACE_BITS
from .setup import DEPTH_MAX, SUBPIXEL_ONE, FixedTriangles, take_columns

#: "no bound" (far outside any image, exactly representable)
UNBOUNDED = float(1 << 40)


def fold_flat_half_planes(num: torch.Tensor, a: torch.Tensor, b: torch.Tensor,
                          rows: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Move row-only half-planes (``a == 0``) into the row range and neutralise them.

    Args:
        num, a, b: (G, K) float64 half-planes ``a c >= num - b r``.
        rows: (G, 2) int64 inclusive row range per face.

    Returns:
        ``(num, a, b, rows)`` with flat half-planes replaced by ``c >= -UNBOUNDED``.
    """
    flat = a == 0
    if not bool(flat.any()):
        return num, a, b, rows
    # 0 >= num - b r  <=>  b r >= num: r >= ceil(num / b) if b > 0, r <= floor(num / b) if b < 0
    safe_b = torch.where(b == 0, torch.ones_like(b), b)
    ratio = (num / safe_b).clamp(-UNBOUNDED, UNBOUNDED)
    first = torch.where(flat & (b > 0), ratio.ceil(), torch.full_like(ratio, -UNBOUNDED)).amax(1)
    last = torch.where(flat & (b < 0), ratio.floor(), torch.full_like(ratio, UNBOUNDED)).amin(1)
    never = (flat & (b == 0) & (num > 0)).any(1)
    last = torch.where(never, torch.full_like(last, -UNBOUNDED), last)
    rows = torch.stack([torch.maximum(rows[:, 0], first.to(torch.int64)),
                        torch.minimum(rows[:, 1], last.to(torch.int64))], dim=1)
    num = torch.where(flat, torch.full_like(num, -UNBOUNDED), num)
    a = torch.where(flat, torch.ones_like(a), a)
    b = torch.where(flat, torch.zeros_like(b), b)
    return num, a, b, rows


def slot_table(num: torch.Tensor, a: torch.Tensor, b: torch.Tensor, columns: torch.Tensor,
               triangle_edges: bool) -> Tuple[torch.Tensor, int, int]:
    """Arrange half-planes into lower-bound and upper-bound slots (no per-row branching).

    Args:
        num, a, b: (G, K) float64 half-planes ``a c >= num - b r`` with ``a != 0``
            (flat ones folded); the first 3 are the triangle's edges.
        columns: (G, 2) float64 first / last candidate column.
        triangle_edges: the 3 edges' ``a`` sum to zero (snapped triangles), so at most
            two are lower bounds and two upper bounds: 4 slots instead of 6.

    Returns:
        ``(table, lower, upper)``: (3 (lower + upper) + 2, G) float64 rows = for each
        lower slot then each upper slot (num, a, b), then the column range; unused
        slots hold neutral planes.
    """
    is_lower = a > 0
    neutral_lower = (torch.full_like(num, -UNBOUNDED), torch.ones_like(a), torch.zeros_like(b))
    neutral_upper = (torch.full_like(num, -UNBOUNDED), -torch.ones_like(a), torch.zeros_like(b))

    def pick(mask, neutral):
        return [torch.where(mask, value, fill) for value, fill in zip((num, a, b), neutral)]
    lower, upper = pick(is_lower, neutral_lower), pick(~is_lower, neutral_upper)
    if triangle_edges:  # sort the edges by a: the largest is a lower bound, the smallest an upper bound
        order = torch.argsort(a[:, :3], dim=1, descending=True)
        order = torch.cat([order, torch.arange(3, num.shape[1], device=num.device).expand(num.shape[0], -1)], 1)
        lower = [v.gather(1, order) for v in lower]
        upper = [v.gather(1, order) for v in upper]
        keep_lower = [0, 1] + list(range(3, num.shape[1]))
        keep_upper = [1, 2] + list(range(3, num.shape[1]))
        lower, upper = [v[:, keep_lower] for v in lower], [v[:, keep_upper] for v in upper]
    rows = []
    for slots in (lower, upper):
        for k in range(slots[0].shape[1]):
            rows += [slots[0][:, k], slots[1][:, k], slots[2][:, k]]
    table = torch.stack(rows + [columns[:, 0], columns[:, 1]])
    return table, lower[0].shape[1], upper[0].shape[1]


def row_spans(table: torch.Tensor, lower: int, upper: int, row: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Inclusive column bounds of the covered samples of (face, row) items.

    Args:
        table: (3 (lower + upper) + 2, G) float64 :func:`slot_table` rows of G faces
            (more rows may follow).
        lower, upper: slot counts.
        row: (..., G) int64 rows (broadcast against the faces).

    Returns:
        ``(lo, hi)`` (..., G) int64 (empty span when lo > hi).
    """
    r = row.to(table.dtype)
    lo, hi = table[3 * (lower + upper)], table[3 * (lower + upper) + 1]
    for slot in range(lower + upper):
        num, a, b = table[3 * slot], table[3 * slot + 1], table[3 * slot + 2]
        bound = torch.addcmul(num, b, r, value=-1.0).div_(a)
        if slot < lower:
            lo = torch.maximum(lo, bound.ceil_())
        else:
            hi = torch.minimum(hi, bound.floor_())
    # nearly flat float half-planes give huge (or infinite) bounds: keep them int64-safe
    shape = torch.broadcast_shapes(lo.shape, hi.shape, row.shape)
    return (lo.expand(shape).clamp(max=UNBOUNDED).to(torch.int64),
            hi.expand(shape).clamp(min=-UNBOUNDED).to(torch.int64))


def expand_rows(rows: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Enumerate the rows of inclusive row ranges.

    Args:
        rows: (G, 2) int64 first / last row per face (empty when first > last).

    Returns:
        ``(face, row)``: (N,) int64 local face index and row of every item.
    """
    face, offset = _expand(rows[:, 1] - rows[:, 0] + 1)
    return face, rows[:, 0].index_select(0, face) + offset


def expand_spans(lo: torch.Tensor, hi: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Enumerate the columns of inclusive spans.

    Args:
        lo, hi: (N,) int64 span bounds (a span is empty when lo > hi).

    Returns:
        ``(item, col)``: (P,) int64 item index and column of every covered sample.
    """
    item, offset = _expand(hi - lo + 1)
    return item, lo.index_select(0, item) + offset


def _expand(count: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """(owner, offset) for ``count[i]`` consecutive entries per owner i (negative counts = 0)."""
    count = count.clamp_min(0)
    start = torch.cumsum(count, 0) - count
    total = int(start[-1] + count[-1]) if count.numel() else 0
    # owners start at ``start``; empty owners share the next owner's start and are skipped
    owner = torch.cumsum(torch.bincount(start, minlength=total + 1)[:total], 0) - 1
    offset = torch.arange(total, device=count.device) - start.index_select(0, owner)
    return owner, offset


@dataclass
class SpanGroup:
    """Faces of the span path, ready for :func:`row_spans` (built by :func:`span_group`)."""

    face: torch.Tensor  # (G,) int64 global face index
    rows: torch.Tensor  # (G, 2) int64 first / last candidate row
    table: torch.Tensor  # (T, G) float64 slot_table: half-plane slots and column range
    cost: torch.Tensor  # (G,) int64 estimated rows + covered samples
    lower: int
    upper: int


def span_group(face: torch.Tensor, bbox: torch.Tensor, planes: Tuple[torch.Tensor, ...],
               samples: Optional[torch.Tensor] = None,
               row_limit: Optional[torch.Tensor] = None) -> Optional[SpanGroup]:
    """Assemble a span group from (G, K) half-planes and a (4, G) bbox; drop faces without candidates.

    ``samples`` estimates the covered samples per face (given for snapped triangles;
    default: the bbox area); ``row_limit`` (G, 2) int64 optionally narrows the rows.
    """
    rows = bbox[2:4].T
    if row_limit is not None:
        rows = torch.stack([torch.maximum(rows[:, 0], row_limit[:, 0]), torch.minimum(rows[:, 1], row_limit[:, 1])], 1)
    num, a, b, rows = fold_flat_half_planes(*planes, rows)
    ok = (bbox[0] <= bbox[1]) & (rows[:, 0] <= rows[:, 1])
    if not bool(ok.any()):
        return None
    count = rows[:, 1] - rows[:, 0] + 1
    area = count * (bbox[1] - bbox[0] + 1)
    cost = count + (area if samples is None else torch.minimum(samples, area))
    index = torch.nonzero(ok).squeeze(1)
    table, lower, upper = slot_table(num, a, b, bbox[0:2].T.to(torch.float64), triangle_edges=samples is not None)
    return SpanGroup(face.index_select(0, index), rows.index_select(0, index), take_columns(table, index),
                     cost.index_select(0, index), lower, upper)


def append_half_planes(planes: Tuple[torch.Tensor, ...],
                       extra: Tuple[torch.Tensor, ...]) -> Tuple[torch.Tensor, ...]:
    """(num, a, b) half-planes (G, K) and (G, K') side by side: (G, K + K')."""
    return tuple(torch.cat([p, q], dim=1) for p, q in zip(planes, extra))


def integer_half_planes(tri: FixedTriangles) -> Tuple[torch.Tensor, ...]:
    """(G, 3) float64 ``(num, a, b)`` of snapped triangles (exact integers)."""
    num = tri.exclusive.to(torch.int64) - tri.edge_c
    return (num.T.to(torch.float64), (tri.edge_a * SUBPIXEL_ONE).T.to(torch.float64),
            (tri.edge_b * SUBPIXEL_ONE).T.to(torch.float64))


def span_chunks(cost: torch.Tensor, budget: int) -> List[Tuple[int, int]]:
    """Split span-path faces into consecutive slices of about ``budget`` estimated rows + samples."""
    total = torch.cumsum(cost.clamp_min(0), 0)
    count = cost.shape[0]
    if int(total[-1]) <= budget:
        return [(0, count)]
    marks = torch.arange(budget, int(total[-1]), budget, device=cost.device)
    ends = torch.searchsorted(total, marks, right=True).tolist() + [count]
    bounds, start = [], 0
    for end in ends:
        end = min(max(end, start + 1), count)
        if start < count and end > start:
            bounds.append((start, end))
            start = end
    return bounds


def span_keys(group: SpanGroup, start: int, end: int, table: torch.Tensor, frame: torch.Tensor,
              height: int, width: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """(pixel, key) of the covered samples of faces ``start:end`` of a span group.

    ``table`` (T + 3, G) float64: ``group.table`` followed by the faces' depth24 rows
    (kc, kr, k0), gathered together per (face, row) item.
    """
    local, row = expand_rows(group.rows[start:end])
    rows = take_columns(table[:, start:end], local)
    lo, hi = row_spans(rows, group.lower, group.upper, row)
    item, col = expand_spans(lo, hi)
    # per-row quantities, then per-sample gathers
    row_face = group.face[start:end].index_select(0, local)
    depth_at = 3 * (group.lower + group.upper) + 2
    kc, kr, k0 = rows[depth_at:depth_at + 3]
    row_depth = torch.addcmul(k0, kr, row.to(torch.float64))
    row_base = (frame.index_select(0, row_face) * height + row) * width
    face = row_face.index_select(0, item)
    depth = torch.addcmul(row_depth.index_select(0, item), kc.index_select(0, item), col.to(torch.float64))
    invalid = (depth < 0) | (depth > DEPTH_MAX)
    key = (torch.round_(depth.clamp_(0, DEPTH_MAX)).to(torch.int32).to(torch.int64) << FACE_BITS) | face
    key.masked_fill_(invalid, EMPTY_KEY)  # never beats the cleared buffer
    return row_base.index_select(0, item) + col, key
