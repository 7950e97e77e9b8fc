"""Pure-PyTorch triangle rasteriser following the reference's OpenGL (llvmpipe) rules.

No shading happens here: :func:`rasterize` turns triangles given in homogeneous
clip coordinates into per-pixel :class:`Fragments` (visible face, perspective-
correct barycentrics, window depth, facing), like pytorch3d's rasteriser. Many
independent framebuffers ("frames", e.g. one per mesh, each with its OWN depth
buffer) are rasterised in one call.

Rules (the reference renders with OpenGL through Mesa's llvmpipe):

- one sample per pixel, at its centre; image row 0 is the TOP (pixel (r, c) has
  its centre at NDC ``x = (2c+1)/W - 1``, ``y = 1 - (2r+1)/H``);
- vertex positions are snapped to 1/256 pixel and coverage is decided with exact
  integer edge functions; samples exactly on an edge follow llvmpipe's fill rule,
  which in image coordinates reads: left edges and image-bottom edges are
  inclusive, right and image-top edges exclusive;
- zero-area triangles produce nothing; no culling; front-facing = counter-
  clockwise in NDC (y up);
- clipping against the near and far planes (``-w <= z_clip <= w``): triangles
  that cross the near plane, or reach far outside the image (guard band), are
  rasterised in 2D homogeneous coordinates (float64) with the near plane as a
  fourth half-plane, which gives the samples of the clipped polygon;
- window depth ``z_ndc / 2 + 1/2``, linear in screen space, quantised to 24 bits
  (``k / (2**24 - 1)``, DEPTH_COMPONENT24); depth test "less" against a buffer
  cleared to 1.0 with triangles drawn in face order, so on equal depth the
  earlier face wins;
- optional discard of back-facing fragments whose interpolated vertex value
  exceeds a threshold (the aggregation shader's ``is_padding > 0.001`` rule):
  discarded fragments write no depth.

Implementation: small triangles (the common case) are evaluated on dense R x C
candidate grids per size class (:mod:`._raster_dense`); larger or special ones
per (face, row) span solved exactly from the half-planes (:mod:`._raster_spans`),
so work follows the covered area. The depth test is one
``scatter_reduce('amin')`` of an int64 key ``depth24 << FACE_BITS | face`` per
(frame, pixel); :mod:`._raster_resolve` decodes the winners (the shaders do it block
by block). Work is chunked to bound memory and, on CPU, to stay in cache;
everything stays on the input's device (float64 arithmetic, so not on Apple MPS).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple, Union

import torch

from ._raster_dense import MAX_SIDE, class_chunks, dense_keys, dense_table, split_faces
from ._raster_resolve import (EMPTY_KEY, FACE_BITS, FACE_MASK, Fragments, RasterKeys, RowFragments, resolve,
                              resolve_rows)
from ._raster_setup import (DEPTH_MAX, SUBPIXEL_ONE, FaceSetup, clipped_bbox, fixed_triangles, setup_faces,
                            snapped_sample_bbox, take_columns, vertex_window)
from ._raster_spans import UNBOUNDED, expand_rows, expand_spans, fold_flat_half_planes, row_spans, slot_table

#: rough upper bound of candidate samples handled at once (memory control)
FRAGMENT_BUDGET = 1 << 21
#: the same on CPU: smaller chunks stay in cache and reuse their allocations (much faster)
CPU_FRAGMENT_BUDGET = 1 << 19
#: candidate samples of the dense path evaluated at once (CPU: smaller, cache-sized)
DENSE_BUDGET = 1 << 18
CPU_DENSE_BUDGET = 1 << 17

__all__ = ["Fragments", "RasterKeys", "RowFragments", "rasterize", "rasterize_keys", "resolve", "resolve_rows",
           "to_clip", "DEPTH_MAX", "EMPTY_KEY", "FACE_BITS", "FACE_MASK"]


def to_clip(positions: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """Homogeneous clip coordinates ``matrix @ [p, 1]`` in float64.

    Args:
        positions: (..., V, 3) world positions (any floating dtype).
        matrix: (..., 4, 4) projection @ modelview (row-major maths layout).

    Returns:
        (..., V, 4) float64 clip coordinates (x, y, z, w), on ``positions.device``.
    """
    matrix = torch.as_tensor(matrix, dtype=torch.float64, device=positions.device)
    positions = positions.to(torch.float64)
    return positions @ matrix[..., :, :3].transpose(-1, -2) + matrix[..., :, 3].unsqueeze(-2)


@dataclass
class _Group:
    """Faces of the span path, ready for :func:`row_spans`."""

    face: torch.Tensor  # (G,) int64 global face index
    rows: torch.Tensor  # (G, 2) int64 first / last candidate row
    table: torch.Tensor  # (T, G) float64 slot_table: half-plane slots and column range
    cost: torch.Tensor  # (G,) int64 estimated rows + covered samples
    lower: int
    upper: int


def _span_group(face: torch.Tensor, bbox: torch.Tensor, planes: Tuple[torch.Tensor, ...],
                samples: Optional[torch.Tensor] = None, row_limit: Optional[torch.Tensor] = None) -> Optional[_Group]:
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
    return _Group(face.index_select(0, index), rows.index_select(0, index), take_columns(table, index),
                  cost.index_select(0, index), lower, upper)


def _ndc_lines_to_pixel(lines: torch.Tensor, height: int, width: int) -> Tuple[torch.Tensor, ...]:
    """Half-planes ``l . (X, Y, 1) >= 0`` in NDC, (K, 3, G) -> pixel-index form ``a c >= num - b r``, (G, K) each."""
    lx, ly, lw = lines[:, 0], lines[:, 1], lines[:, 2]
    # X = (2c+1)/W - 1, Y = 1 - (2r+1)/H
    a = lx * (2.0 / width)
    b = -ly * (2.0 / height)
    d = lx * (1.0 / width - 1.0) + ly * (1.0 - 1.0 / height) + lw
    return -d.T, a.T, b.T


def _float_half_planes(setup: FaceSetup, face: torch.Tensor, height: int, width: int) -> Tuple[torch.Tensor, ...]:
    """(G, 4) float64 ``(num, a, b)``: 3 edges + near plane of 2D-homogeneous faces."""
    sign = setup.front.index_select(0, face).to(torch.float64) * 2 - 1
    cof = take_columns(setup.cofactor, face).reshape(3, 3, -1) * sign  # (edge, component, G)
    near = take_columns(setup.ndc_depth, face)
    near[2] += 1.0  # z_ndc + 1 >= 0
    return _ndc_lines_to_pixel(torch.cat([cof, near.unsqueeze(0)], dim=0), height, width)


def _keep_plane(setup: FaceSetup, faces_t: torch.Tensor, back_discard, face: torch.Tensor, special: torch.Tensor,
                height: int, width: int) -> Tuple[torch.Tensor, ...]:
    """(G, 1) half-plane of the samples NOT discarded by ``back_discard`` (trivial for non-special faces).

    The interpolated value exceeds t iff ``sum_i (v_i - t) e_i(p)`` has the sign of
    det(M): linear in screen space, so the kept part of a face is a half-plane.
    """
    values, threshold = back_discard
    cof = take_columns(setup.cofactor, face).reshape(3, 3, -1)  # (corner, component, G)
    corner = torch.stack([values.index_select(0, faces_t[k].index_select(0, face)) for k in range(3)])
    sign = setup.front.index_select(0, face).to(torch.float64) * 2 - 1
    line = -sign * ((corner - threshold).unsqueeze(1) * cof).sum(0)  # (3, G): >= 0 where kept
    num, a, b = _ndc_lines_to_pixel(line.unsqueeze(0), height, width)
    trivial = ~special.unsqueeze(1)
    return (torch.where(trivial, torch.full_like(num, -UNBOUNDED), num), torch.where(trivial, 1.0, a),
            torch.where(trivial, 0.0, b))


def _append_planes(planes: Tuple[torch.Tensor, ...], extra: Tuple[torch.Tensor, ...]) -> Tuple[torch.Tensor, ...]:
    """(num, a, b) half-planes (G, K) and (G, K') side by side: (G, K + K')."""
    return tuple(torch.cat([p, q], dim=1) for p, q in zip(planes, extra))


def _kept_rows(corners: torch.Tensor, plane: Tuple[torch.Tensor, ...]) -> torch.Tensor:
    """(G, 2) int64 rows that can hold samples of triangles clipped by one half-plane.

    Args:
        corners: (2, 3, G) float64 vertex positions in pixel-index units (column, row).
        plane: (num, a, b), each (G, 1): the half-plane ``a c + b r >= num``.

    The rows span the clipped polygon (kept vertices and edge crossings), widened by
    a small margin: a superset of the exact answer, which :func:`row_spans` gives per row.
    """
    num, a, b = (p[:, 0] for p in plane)
    x, y = corners
    side = a * x + b * y - num  # (3, G)
    inside = side >= 0
    side_next, y_next = side.roll(-1, 0), y.roll(-1, 0)
    crossing = inside != inside.roll(-1, 0)
    t = side / torch.where(crossing, side - side_next, torch.ones_like(side))
    y_cross = y + t.clamp(0, 1) * (y_next - y)
    inf = float("inf")
    low = torch.minimum(torch.where(inside, y, inf).amin(0), torch.where(crossing, y_cross, inf).amin(0))
    high = torch.maximum(torch.where(inside, y, -inf).amax(0), torch.where(crossing, y_cross, -inf).amax(0))
    margin = 1e-3
    ok = torch.isfinite(side).all(0)
    first = torch.where(ok, (low - margin).ceil().clamp(-1, UNBOUNDED), -UNBOUNDED)
    last = torch.where(ok, (high + margin).floor().clamp(-UNBOUNDED, UNBOUNDED), UNBOUNDED)
    return torch.stack([first, last], 1).to(torch.int64)


def _integer_half_planes(tri) -> Tuple[torch.Tensor, ...]:
    """(G, 3) float64 ``(num, a, b)`` of snapped triangles (exact integers)."""
    num = tri.exclusive.to(torch.int64) - tri.edge_c
    return (num.T.to(torch.float64), (tri.edge_a * SUBPIXEL_ONE).T.to(torch.float64),
            (tri.edge_b * SUBPIXEL_ONE).T.to(torch.float64))


def _chunks(cost: torch.Tensor, budget: int):
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


def _span_keys(group: _Group, start: int, end: int, table: torch.Tensor, frame: torch.Tensor,
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


def _classify(setup: FaceSetup, ok: torch.Tensor, faces_t: torch.Tensor, back_discard):
    """Split faces: ``regular`` (fixed-point), ``special`` (needs the per-fragment discard test)."""
    keep = setup.keep.clone()
    special = torch.zeros_like(keep)
    if back_discard is not None:
        values, threshold = back_discard
        corner = torch.stack([values.index_select(0, faces_t[k]) for k in range(3)])
        low = torch.minimum(torch.minimum(corner[0], corner[1]), corner[2])
        high = torch.maximum(torch.maximum(corner[0], corner[1]), corner[2])
        back = ~setup.front
        keep &= ~(back & (low > threshold))  # every fragment discarded
        special = keep & back & (high > threshold)
    regular = keep & ok.index_select(0, faces_t[0]) & ok.index_select(0, faces_t[1]) & ok.index_select(0, faces_t[2])
    return keep, regular, special


@dataclass
class _Pass:
    """State of one :func:`rasterize` call: face set-up, depth-test keys, options."""

    setup: FaceSetup
    faces_t: torch.Tensor  # (3, F) int64
    frame: torch.Tensor  # (F,) int64
    special: torch.Tensor  # (F,) bool: back faces needing the discard half-plane
    back_discard: Optional[Tuple[torch.Tensor, float]]
    keys: torch.Tensor  # (frames * H * W + slack,) int64
    height: int
    width: int
    budget: int

    def z_test(self, pixel: torch.Tensor, key: torch.Tensor) -> None:
        """Depth test 'less' with face-order ties: keep the smallest key per pixel."""
        self.keys.scatter_reduce_(0, pixel, key, reduce="amin")

    def keep_plane(self, face: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """(num, a, b), each (G, 1): the back-discard half-plane of ``face`` (discarding must be on)."""
        return _keep_plane(self.setup, self.faces_t, self.back_discard, face, self.special.index_select(0, face),
                           self.height, self.width)

    def with_keep(self, face: torch.Tensor, planes: Tuple[torch.Tensor, ...]) -> Tuple[torch.Tensor, ...]:
        """Append the back-discard half-plane to (G, K) half-planes when discarding is on."""
        if self.back_discard is None:
            return planes
        return _append_planes(planes, self.keep_plane(face))

    def draw_fixed(self, ids: torch.Tensor, fixed: torch.Tensor, fixed32: torch.Tensor) -> List[Optional[_Group]]:
        """Faces on the fixed-point path: small ones on dense grids now; returns the span groups of the rest."""
        corners = take_columns(self.faces_t, ids)
        split = split_faces(fixed32, corners, self.special.index_select(0, ids), self.height, self.width)
        if split.order.numel():
            dense_budget = CPU_DENSE_BUDGET if ids.device.type == "cpu" else DENSE_BUDGET
            face = ids.index_select(0, split.order)
            table = dense_table(split, face, take_columns(self.setup.depth24, face), self.frame.index_select(0, face),
                                self.height, self.width)
            for shape, first, last in split.classes:
                for start, end in class_chunks(last - first, shape, min(self.budget, dense_budget)):
                    self.z_test(*dense_keys(table, first + start, first + end, shape, self.width, FACE_BITS,
                                            EMPTY_KEY))
        # the rest: large faces, faces leaving the image, and 'special' ones (need the discard half-plane)
        tri = fixed_triangles(fixed, take_columns(corners, split.span), self.height, self.width)
        sel = torch.nonzero(tri.nonzero).squeeze(1)  # zero-area faces draw nothing
        if not sel.numel():
            return []
        big, face = tri.subset(sel), ids.index_select(0, split.span.index_select(0, sel))
        special = self.special.index_select(0, face)
        plain = torch.nonzero(~special).squeeze(1)
        groups = [_span_group(face.index_select(0, plain), take_columns(big.bbox, plain),
                              _integer_half_planes(big.subset(plain)), big.samples.index_select(0, plain))]
        flagged = torch.nonzero(special).squeeze(1)
        if flagged.numel():  # back faces partly discarded: add the keep half-plane, and narrow their rows to it
            big, face = big.subset(flagged), face.index_select(0, flagged)
            keep = self.keep_plane(face)
            face_corners = take_columns(self.faces_t, face)
            corner_xy = torch.stack([take_columns(fixed, face_corners[k]) for k in range(3)], 1)
            rows = _kept_rows(corner_xy.to(torch.float64) / SUBPIXEL_ONE, keep)
            planes = _append_planes(_integer_half_planes(big), keep)
            groups.append(_span_group(face, big.bbox, planes, big.samples, rows))
        return groups

    def draw_spans(self, groups: List[Optional[_Group]]) -> None:
        """Faces of span groups, in chunks of about ``budget`` rows + samples."""
        for group in groups:
            if group is None:
                continue
            table = torch.cat([group.table, take_columns(self.setup.depth24, group.face)])
            for start, end in _chunks(group.cost, self.budget):
                self.z_test(*_span_keys(group, start, end, table, self.frame, self.height, self.width))


def _visible_faces(fixed32: torch.Tensor, ok: torch.Tensor, faces_t: torch.Tensor, height: int,
                   width: int) -> Optional[torch.Tensor]:
    """(F',) int64 faces that may cover a sample (None: all of them).

    Drops exactly the fixed-point faces whose snapped sample bbox holds no image
    sample (off-screen, or between sample centres); faces with a vertex that is not
    ``ok`` (near plane, guard band) are kept for the homogeneous path.
    """
    xs = [fixed32[0].index_select(0, faces_t[k]) for k in range(3)]
    ys = [fixed32[1].index_select(0, faces_t[k]) for k in range(3)]
    first_c, last_c, first_r, last_r = snapped_sample_bbox(xs, ys)
    visible = ((first_c <= last_c) & (first_r <= last_r) & (last_c >= 0) & (first_c < width) & (last_r >= 0)
               & (first_r < height))
    all_ok = ok.index_select(0, faces_t[0]) & ok.index_select(0, faces_t[1]) & ok.index_select(0, faces_t[2])
    kept = visible | ~all_ok
    kept[0] = True  # never empty: the decoders index the face tables even where nothing was drawn
    if faces_t.device.type == "cpu" and bool(kept.all()):
        return None
    return torch.nonzero(kept).squeeze(1)


def rasterize_keys(clip: torch.Tensor, faces: torch.Tensor, face_frame: torch.Tensor, num_frames: int,
                   image_size: Union[int, Tuple[int, int]],
                   back_discard: Optional[Tuple[torch.Tensor, float]] = None,
                   fragment_budget: Optional[int] = None) -> RasterKeys:
    """Rasterise and depth-test; the winners stay encoded (see :func:`rasterize` for the arguments).

    Returns:
        :class:`RasterKeys`; decode all of it with :func:`resolve` or row blocks with
        :func:`resolve_rows` (what the shaders do, block by block). Faces that cannot
        cover any sample are culled first: the keys' face ids index ``faces[kept]``
        (see :attr:`RasterKeys.kept`).
    """
    height, width = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    device = clip.device
    clip_t = clip.to(torch.float64).T.contiguous()
    faces_t = faces.to(device=device, dtype=torch.int64).T.contiguous()
    frame = face_frame.to(device=device, dtype=torch.int64)
    if back_discard is not None:
        back_discard = (back_discard[0].to(device=device, dtype=torch.float64).reshape(-1), float(back_discard[1]))
    if faces_t.shape[1] == 0:
        faces_t = torch.zeros(3, 1, dtype=torch.int64, device=device)  # one degenerate face: draws nothing
        clip_t = torch.zeros(4, max(clip_t.shape[1], 1), dtype=torch.float64, device=device)
        frame = torch.zeros(1, dtype=torch.int64, device=device)
    fixed, ok = vertex_window(clip_t, height, width)
    fixed32 = fixed.to(torch.int32)
    kept = _visible_faces(fixed32, ok, faces_t, height, width)
    if kept is not None:  # later stages (and the keys' face ids) see only the faces that can draw something
        faces_t, frame = take_columns(faces_t, kept), frame.index_select(0, kept)
    setup = setup_faces(clip_t, faces_t, height, width)
    keep, regular, special = _classify(setup, ok, faces_t, back_discard)
    # slack after the last frame: rejected dense candidates may point there (with empty keys)
    size = num_frames * height * width
    keys = torch.full((size + MAX_SIDE * (width + 1),), EMPTY_KEY, dtype=torch.int64, device=device)
    if fragment_budget is None:
        fragment_budget = CPU_FRAGMENT_BUDGET if device.type == "cpu" else FRAGMENT_BUDGET
    state = _Pass(setup, faces_t, frame, special, back_discard, keys, height, width, fragment_budget)
    ids = torch.nonzero(regular).squeeze(1)
    if ids.numel():
        state.draw_spans(state.draw_fixed(ids, fixed, fixed32))
    ids = torch.nonzero(keep & ~regular).squeeze(1)
    if ids.numel():  # near-plane crossing or beyond the guard band: 2D homogeneous, float64
        bbox = clipped_bbox(clip_t, take_columns(faces_t, ids), height, width)
        state.draw_spans([_span_group(ids, bbox, state.with_keep(ids, _float_half_planes(setup, ids, height, width)))])
    return RasterKeys(keys[:size].view(num_frames * height, width), setup, num_frames, height, width, kept)


def rasterize(clip: torch.Tensor, faces: torch.Tensor, face_frame: torch.Tensor, num_frames: int,
              image_size: Union[int, Tuple[int, int]],
              back_discard: Optional[Tuple[torch.Tensor, float]] = None,
              fragment_budget: Optional[int] = None) -> Fragments:
    """Rasterise triangles into ``num_frames`` independent framebuffers.

    Args:
        clip: (V, 4) homogeneous clip coordinates of all vertices (see :func:`to_clip`);
            computed in float64.
        faces: (F, 3) int64 vertex indices into ``clip``; draw order = row order.
        face_frame: (F,) int64 framebuffer index of each face, in [0, num_frames).
        num_frames: number of framebuffers (each has its own depth buffer).
        image_size: H or (H, W) in pixels.
        back_discard: optional ``(values (V,), threshold)``: a back-facing fragment
            whose perspective-interpolated value exceeds ``threshold`` is discarded
            (writes no depth).
        fragment_budget: about how many candidate samples are processed at once (default
            ``CPU_FRAGMENT_BUDGET`` on CPU, else ``FRAGMENT_BUDGET``; the result does not
            depend on it).

    Returns:
        :class:`Fragments` with (num_frames, H, W) maps.
    """
    return resolve(rasterize_keys(clip, faces, face_frame, num_frames, image_size, back_discard, fragment_budget))
