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

Implementation: small triangles (the common case) are evaluated on dense R x R
candidate grids per size class (:mod:`._raster_dense`); larger or special ones
per (face, row) span solved exactly from the half-planes (:mod:`._raster_spans`),
so work follows the covered area. The depth test is one
``scatter_reduce('amin')`` of an int64 key ``depth24 << FACE_BITS | face`` per
(frame, pixel). Work is chunked to bound memory; everything stays on the input's
device (float64 arithmetic, so not on Apple MPS).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple, Union

import torch

from ._raster_dense import MAX_SIDE, class_chunks, dense_keys, pack_triangles, size_classes
from ._raster_setup import (DEPTH_MAX, SUBPIXEL_ONE, FaceSetup, clipped_bbox, fixed_triangles, setup_faces,
                            take_columns, vertex_window)
from ._raster_spans import UNBOUNDED, expand_rows, expand_spans, fold_flat_half_planes, row_spans, slot_table

#: z-test key = depth24 << FACE_BITS | face index (earlier face wins ties)
FACE_BITS = 39
FACE_MASK = (1 << FACE_BITS) - 1
EMPTY_KEY = DEPTH_MAX << FACE_BITS
#: rough upper bound of candidate samples handled at once (memory control)
FRAGMENT_BUDGET = 1 << 21

__all__ = ["Fragments", "rasterize", "to_clip", "DEPTH_MAX"]


@dataclass
class Fragments:
    """Per-pixel rasterisation result of F frames of H x W pixels.

    Attributes:
        pix_to_face: (F, H, W) int64 index of the visible face into the ``faces``
            given to :func:`rasterize`; -1 where nothing was drawn.
        bary: (F, H, W, 3) float32 perspective-correct barycentric weights of the
            face's 3 vertices at the pixel centre (0 where empty).
        zbuf: (F, H, W) float32 window depth in [0, 1], exactly ``k / (2**24-1)``;
            1.0 where empty (the cleared buffer).
        front_facing: (F, H, W) bool, True where the visible face is counter-
            clockwise in NDC (False where empty).
    """

    pix_to_face: torch.Tensor
    bary: torch.Tensor
    zbuf: torch.Tensor
    front_facing: torch.Tensor

    @property
    def covered(self) -> torch.Tensor:
        """(F, H, W) bool: a face was drawn at the pixel."""
        return self.pix_to_face >= 0


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
                samples: Optional[torch.Tensor] = None) -> Optional[_Group]:
    """Assemble a span group from (G, K) half-planes and a (4, G) bbox; drop faces without candidates.

    ``samples`` estimates the covered samples per face (given for snapped triangles;
    default: the bbox area).
    """
    num, a, b, rows = fold_flat_half_planes(*planes, bbox[2:4].T)
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


def _span_keys(group: _Group, start: int, end: int, setup: FaceSetup, frame: torch.Tensor,
               height: int, width: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """(pixel, key) of the covered samples of faces ``start:end`` of a span group."""
    local, row = expand_rows(group.rows[start:end])
    lo, hi = row_spans(take_columns(group.table[:, start:end], local), group.lower, group.upper, row)
    item, col = expand_spans(lo, hi)
    # per-row quantities, then per-sample gathers
    row_face = group.face[start:end].index_select(0, local)
    kc, kr, k0 = take_columns(setup.depth24, row_face)
    row_depth = torch.addcmul(k0, kr, row.to(torch.float64))
    row_base = (frame.index_select(0, row_face) * height + row) * width
    face = row_face.index_select(0, item)
    depth = torch.addcmul(row_depth.index_select(0, item), kc.index_select(0, item), col.to(torch.float64))
    invalid = (depth < 0) | (depth > DEPTH_MAX)
    key = (torch.round_(depth.clamp_(0, DEPTH_MAX)).to(torch.int64) << FACE_BITS) | face
    key |= invalid.to(torch.int64) * EMPTY_KEY
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

    def with_keep(self, face: torch.Tensor, planes: Tuple[torch.Tensor, ...]) -> Tuple[torch.Tensor, ...]:
        """Append the back-discard half-plane to (G, K) half-planes when discarding is on."""
        if self.back_discard is None:
            return planes
        extra = _keep_plane(self.setup, self.faces_t, self.back_discard, face, self.special.index_select(0, face),
                            self.height, self.width)
        return tuple(torch.cat([p, q], dim=1) for p, q in zip(planes, extra))

    def draw_fixed(self, ids: torch.Tensor, fixed: torch.Tensor) -> Optional[_Group]:
        """Faces on the fixed-point path: small ones on dense grids now; returns the span group of the rest."""
        tri = fixed_triangles(fixed, take_columns(self.faces_t, ids), self.height, self.width)
        # zero-area / off-screen faces draw nothing; 'special' ones need the discard half-plane (span path)
        is_special = self.special.index_select(0, ids)
        is_big = (tri.rows > MAX_SIDE) | (tri.cols > MAX_SIDE)
        drawn = tri.nonzero & (tri.bbox[0] <= tri.bbox[1]) & (tri.bbox[2] <= tri.bbox[3])
        not_dense = (~drawn | is_special).to(torch.int64) * (MAX_SIDE + 1)
        order, classes = size_classes(tri.rows + not_dense, tri.cols)
        if order.numel():  # one gather, then contiguous slices per size class
            face = ids.index_select(0, order)
            table, depth24 = pack_triangles(tri, order), take_columns(self.setup.depth24, face)
            face_frame = self.frame.index_select(0, face)
            for shape, first, last in classes:
                for start, end in class_chunks(last - first, shape, self.budget):
                    part = slice(first + start, first + end)
                    self.z_test(*dense_keys(table[:, part], face[part], face_frame[part], depth24[:, part], shape,
                                            self.height, self.width, FACE_BITS, EMPTY_KEY))
        sel = torch.nonzero(drawn & (is_special | is_big)).squeeze(1)
        if not sel.numel():
            return None
        big, face = tri.subset(sel), ids.index_select(0, sel)
        return _span_group(face, big.bbox, self.with_keep(face, _integer_half_planes(big)), big.samples)

    def draw_spans(self, group: Optional[_Group]) -> None:
        """Faces of a span group, in chunks of about ``budget`` rows + samples."""
        if group is None:
            return
        for start, end in _chunks(group.cost, self.budget):
            self.z_test(*_span_keys(group, start, end, self.setup, self.frame, self.height, self.width))


def rasterize(clip: torch.Tensor, faces: torch.Tensor, face_frame: torch.Tensor, num_frames: int,
              image_size: Union[int, Tuple[int, int]],
              back_discard: Optional[Tuple[torch.Tensor, float]] = None,
              fragment_budget: int = FRAGMENT_BUDGET) -> Fragments:
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
        fragment_budget: about how many candidate samples are processed at once.

    Returns:
        :class:`Fragments` with (num_frames, H, W) maps.
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
    setup = setup_faces(clip_t, faces_t, height, width)
    fixed, ok = vertex_window(clip_t, height, width)
    keep, regular, special = _classify(setup, ok, faces_t, back_discard)
    # slack after the last frame: rejected dense candidates may point there (with empty keys)
    size = num_frames * height * width
    keys = torch.full((size + MAX_SIDE * (width + 1),), EMPTY_KEY, dtype=torch.int64, device=device)
    state = _Pass(setup, faces_t, frame, special, back_discard, keys, height, width, fragment_budget)
    ids = torch.nonzero(regular).squeeze(1)
    if ids.numel():
        state.draw_spans(state.draw_fixed(ids, fixed))
    ids = torch.nonzero(keep & ~regular).squeeze(1)
    if ids.numel():  # near-plane crossing or beyond the guard band: 2D homogeneous, float64
        bbox = clipped_bbox(clip_t, take_columns(faces_t, ids), height, width)
        state.draw_spans(_span_group(ids, bbox, state.with_keep(ids, _float_half_planes(setup, ids, height, width))))
    return _resolve(keys[:size].view(num_frames, height, width), setup, height, width)


def _resolve(keys: torch.Tensor, setup: FaceSetup, height: int, width: int) -> Fragments:
    """Decode the winning keys into :class:`Fragments` (dense over all pixels)."""
    frames = keys.shape[0]
    covered = keys < EMPTY_KEY
    face = keys & FACE_MASK  # 0 where empty (EMPTY_KEY has no face bits)
    zbuf = ((keys >> FACE_BITS).to(torch.float64) / DEPTH_MAX).to(torch.float32)
    device = keys.device
    x = ((2 * torch.arange(width, device=device, dtype=torch.float64) + 1) / width - 1).view(1, 1, -1)
    y = (1 - (2 * torch.arange(height, device=device, dtype=torch.float64) + 1) / height).view(1, -1, 1)
    c = take_columns(setup.cofactor, face.reshape(-1)).view(9, frames, height, width)
    # perspective-correct barycentrics: e_i = cofactor_i . (X, Y, 1), normalised
    e = [c[3 * i] * x + c[3 * i + 1] * y + c[3 * i + 2] for i in range(3)]
    scale = covered / (e[0] + e[1] + e[2])
    bary = torch.stack([(e[i] * scale).to(torch.float32) for i in range(3)]).nan_to_num_(0.0, 0.0, 0.0)
    front = setup.front.index_select(0, face.reshape(-1)).view(keys.shape) & covered
    return Fragments(pix_to_face=face - (~covered).to(torch.int64), bary=bary.permute(1, 2, 3, 0), zbuf=zbuf,
                     front_facing=front)
