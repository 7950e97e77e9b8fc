"""Pure-PyTorch triangle rasteriser following the reference's OpenGL (llvmpipe) rules.

No shading happens here: :func:`rasterize` turns triangles given in homogeneous
clip coordinates into per-pixel :class:`Fragments` (winning face, perspective-
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
  that cross the near plane, or that reach far outside the image, are rasterised
  in 2D homogeneous coordinates (float64) with the near plane as a fourth
  half-plane, which is the same set of samples as clipping the polygon;
- window depth ``z_ndc / 2 + 1/2``, interpolated linearly in screen space,
  quantised to 24 bits (``k / (2**24 - 1)``, DEPTH_COMPONENT24); depth test
  "less" against a buffer cleared to 1.0, triangles drawn in face order, so on
  equal depth the earlier face wins;
- optional discard of back-facing fragments whose interpolated vertex value
  exceeds a threshold (the aggregation shader's ``is_padding > 0.001`` rule):
  discarded fragments do not write depth.

Implementation: per face a bounding box of candidate pixel rows; per (face, row)
the covered column span solved exactly from the edge functions; spans are
expanded into fragments (work ~ covered area, so tiny and huge triangles are both
cheap); the depth test is one ``scatter_reduce('amin')`` of an int64 key
``depth24 << FACE_BITS | face`` per (frame, pixel). Work is chunked so memory
stays bounded. Everything stays on the input's device.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple, Union

import torch

from ._raster_spans import expand_rows, expand_spans, fold_flat_half_planes, row_spans

#: llvmpipe snaps window coordinates to 1/2**SUBPIXEL_BITS pixel
SUBPIXEL_BITS = 8
SUBPIXEL_ONE = 1 << SUBPIXEL_BITS
#: DEPTH_COMPONENT24: window depth w is stored as round(w * DEPTH_MAX)
DEPTH_MAX = (1 << 24) - 1
#: z-test key = depth24 << FACE_BITS | face index (earlier face wins ties)
FACE_BITS = 39
FACE_MASK = (1 << FACE_BITS) - 1
EMPTY_KEY = DEPTH_MAX << FACE_BITS
#: faces whose vertices stay within this many pixels of the image use exact fixed point
GUARD_BAND_PIXELS = 1 << 14
#: rough upper bound of candidate fragments handled at once (memory control)
FRAGMENT_BUDGET = 1 << 22


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
        positions: (V, 3) world positions (any floating dtype).
        matrix: (4, 4) projection @ modelview (row-major maths layout).

    Returns:
        (V, 4) float64 clip coordinates (x, y, z, w), on ``positions.device``.
    """
    matrix = torch.as_tensor(matrix, dtype=torch.float64, device=positions.device)
    positions = positions.to(torch.float64)
    return positions @ matrix[:, :3].T.contiguous() + matrix[:, 3]


def _pixel_ndc(index: torch.Tensor, size: int, flip: bool) -> torch.Tensor:
    """NDC coordinate of pixel centres: x = (2c+1)/W - 1, or y = 1 - (2r+1)/H when ``flip``."""
    value = (2 * index.to(torch.float64) + 1) / size - 1
    return -value if flip else value


@dataclass
class _FaceSetup:
    """Per-face quantities (F faces) computed once per call."""

    cofactor: torch.Tensor  # (F, 3, 3) row i: e_i(p) = cofactor[i] . (X, Y, 1), barycentric ~ e_i
    depth_plane: torch.Tensor  # (F, 3) z_ndc = depth_plane . (X, Y, 1)
    front: torch.Tensor  # (F,) bool
    keep: torch.Tensor  # (F,) bool: possibly visible, non-degenerate


def _setup_faces(clip: torch.Tensor, faces: torch.Tensor) -> _FaceSetup:
    """2D-homogeneous setup: cofactors of M = [x; y; w] (columns = vertices), det, depth plane."""
    corner = clip[faces]  # (F, 3, 4)
    xyw = corner[..., [0, 1, 3]]
    v0, v1, v2 = xyw.unbind(1)
    cofactor = torch.stack([torch.linalg.cross(v1, v2), torch.linalg.cross(v2, v0),
                            torch.linalg.cross(v0, v1)], dim=1)
    det = (v0 * cofactor[:, 0]).sum(-1)
    z, w = corner[..., 2], corner[..., 3]
    safe_det = torch.where(det == 0, torch.ones_like(det), det)
    depth_plane = (z.unsqueeze(-1) * cofactor).sum(1) / safe_det.unsqueeze(-1)
    finite = torch.isfinite(corner).all(-1).all(-1) & torch.isfinite(depth_plane).all(-1)
    beyond_near = (z + w < 0).all(-1)
    beyond_far = (z - w > 0).all(-1)
    keep = (det != 0) & finite & ~beyond_near & ~beyond_far
    return _FaceSetup(cofactor=cofactor, depth_plane=depth_plane, front=det > 0, keep=keep)


def _window_xy(clip: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(V, 2) float64 pixel-index coordinates (x = column, y = row, row 0 = top) of clip points."""
    x = (clip[:, 0] / clip[:, 3] + 1) * (width / 2) - 0.5
    y = (1 - clip[:, 1] / clip[:, 3]) * (height / 2) - 0.5
    return torch.stack([x, y], dim=-1)


def _integer_half_planes(fixed: torch.Tensor) -> Tuple[torch.Tensor, ...]:
    """Edge functions of snapped triangles in fixed point.

    Args:
        fixed: (G, 3, 2) int64 vertex pixel coordinates times 256.

    Returns:
        ``(num, a, b, nonzero)``: (G, 3) float64 (integer-valued) half-planes, a sample
        (r, c) being inside iff ``a c >= num - b r`` for the 3 edges (fill rule
        included), and (G,) bool for a non-zero fixed-point area.
    """
    x, y = fixed[..., 0], fixed[..., 1]
    area = (x[:, 1] - x[:, 0]) * (y[:, 2] - y[:, 0]) - (y[:, 1] - y[:, 0]) * (x[:, 2] - x[:, 0])
    flip = (area < 0).unsqueeze(-1)  # orient every triangle so that the interior is E > 0
    x = torch.where(flip, x[:, [0, 2, 1]], x)
    y = torch.where(flip, y[:, [0, 2, 1]], y)
    x_next, y_next = x[:, [1, 2, 0]], y[:, [1, 2, 0]]
    edge_a = y - y_next  # inward normal (A, B) of the edge from vertex k to vertex k+1
    edge_b = x_next - x
    edge_c = -(edge_a * x + edge_b * y)
    # fill rule (image coordinates): left (A > 0) and image-bottom (A == 0, B < 0) edges are inclusive
    exclusive = ~((edge_a > 0) | ((edge_a == 0) & (edge_b < 0)))
    num = exclusive.to(torch.int64) - edge_c
    return (num.to(torch.float64), (edge_a * SUBPIXEL_ONE).to(torch.float64),
            (edge_b * SUBPIXEL_ONE).to(torch.float64), area != 0)


def _float_half_planes(setup: _FaceSetup, select: torch.Tensor, height: int, width: int) -> Tuple[torch.Tensor, ...]:
    """Half-planes (3 edges + near plane) of 2D-homogeneous faces in pixel-index space.

    Returns ``(num, a, b)`` (G, 4) float64: inside iff ``a c >= num - b r`` for all 4.
    """
    det_sign = torch.where(setup.front[select], 1.0, -1.0).to(torch.float64)
    lines = setup.cofactor[select] * det_sign[:, None, None]  # l . (X, Y, 1) >= 0
    near = setup.depth_plane[select].clone()
    near[:, 2] += 1.0  # z_ndc + 1 >= 0
    lines = torch.cat([lines, near.unsqueeze(1)], dim=1)
    lx, ly, lw = lines.unbind(-1)
    # X = (2c+1)/W - 1, Y = 1 - (2r+1)/H
    a = lx * (2.0 / width)
    b = -ly * (2.0 / height)
    d = lx * (1.0 / width - 1.0) + ly * (1.0 - 1.0 / height) + lw
    return -d, a, b


def _clipped_bbox(clip: torch.Tensor, faces: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(G, 4) int64 pixel bbox (c0, c1, r0, r1) of faces clipped to the near plane, clamped to the image."""
    corner = clip[faces]  # (G, 3, 4)
    dist = corner[..., 2] + corner[..., 3]  # >= 0 on the visible side of the near plane
    nxt = corner.roll(-1, dims=1)
    dist_next = dist.roll(-1, dims=1)
    crossing = (dist >= 0) != (dist_next >= 0)
    denom = torch.where(crossing, dist - dist_next, torch.ones_like(dist))
    t = (dist / denom).clamp(0, 1).unsqueeze(-1)
    points = torch.cat([corner, corner + t * (nxt - corner)], dim=1)  # (G, 6, 4)
    valid = torch.cat([dist >= 0, crossing], dim=1) & (points[..., 3] > 0)
    w = torch.where(valid, points[..., 3], torch.ones_like(points[..., 3]))
    px = ((points[..., 0] / w + 1) * (width / 2) - 0.5).clamp(-1.0, width)
    py = ((1 - points[..., 1] / w) * (height / 2) - 0.5).clamp(-1.0, height)
    inf = float("inf")
    c0 = torch.where(valid, px, inf).amin(1).ceil().clamp(0, width - 1)
    c1 = torch.where(valid, px, -inf).amax(1).floor().clamp(-1, width - 1)
    r0 = torch.where(valid, py, inf).amin(1).ceil().clamp(0, height - 1)
    r1 = torch.where(valid, py, -inf).amax(1).floor().clamp(-1, height - 1)
    bbox = torch.stack([c0, c1, r0, r1], dim=-1)
    bbox[~valid.any(1)] = torch.tensor([0.0, -1.0, 0.0, -1.0], dtype=torch.float64, device=clip.device)
    return bbox.to(torch.int64)


@dataclass
class _Group:
    """Faces of one rasterisation path, ready for :func:`row_spans`."""

    face: torch.Tensor  # (G,) int64 global face index
    rows: torch.Tensor  # (G, 2) int64 first / last candidate row
    table: torch.Tensor  # (G, 3K + 2) float64 half-planes and column range
    num_planes: int


def _make_group(face: torch.Tensor, bbox: torch.Tensor, planes: Tuple[torch.Tensor, ...]) -> Optional[_Group]:
    """Assemble a group, folding row-only half-planes and dropping faces with no candidate pixel."""
    num, a, b, rows = fold_flat_half_planes(*planes, bbox[:, 2:4])
    ok = (bbox[:, 0] <= bbox[:, 1]) & (rows[:, 0] <= rows[:, 1])
    if not bool(ok.any()):
        return None
    table = torch.cat([num, a, b, bbox[:, 0:2].to(torch.float64)], dim=1)
    return _Group(face[ok], rows[ok], table[ok].contiguous(), num.shape[1])


def _build_groups(clip: torch.Tensor, faces: torch.Tensor, setup: _FaceSetup, height: int, width: int):
    """Split visible faces into the exact fixed-point path and the 2D-homogeneous float path."""
    vertex_ok = (clip[:, 3] > 0) & (clip[:, 2] + clip[:, 3] >= 0)
    window = _window_xy(clip, height, width)
    vertex_ok &= (window.abs() < GUARD_BAND_PIXELS).all(-1)
    fixed = torch.round(torch.where(vertex_ok.unsqueeze(-1), window, 0.0) * SUBPIXEL_ONE).to(torch.int64)
    regular = setup.keep & vertex_ok[faces].all(-1)
    groups = []
    ids = torch.nonzero(regular).squeeze(1)
    if ids.numel():
        corner = fixed[faces[ids]]  # (G, 3, 2)
        lo, hi = corner.amin(1), corner.amax(1)
        first = -torch.div(-lo, SUBPIXEL_ONE, rounding_mode="floor")
        last = torch.div(hi, SUBPIXEL_ONE, rounding_mode="floor")
        bbox = torch.stack([first[:, 0].clamp_min(0), last[:, 0].clamp_max(width - 1),
                            first[:, 1].clamp_min(0), last[:, 1].clamp_max(height - 1)], dim=-1)
        num, a, b, nonzero = _integer_half_planes(corner)
        groups.append(_make_group(ids[nonzero], bbox[nonzero], (num[nonzero], a[nonzero], b[nonzero])))
    ids = torch.nonzero(setup.keep & ~regular).squeeze(1)
    if ids.numel():
        bbox = _clipped_bbox(clip, faces[ids], height, width)
        groups.append(_make_group(ids, bbox, _float_half_planes(setup, ids, height, width)))
    return [g for g in groups if g is not None]


def _chunks(rows: torch.Tensor, table: torch.Tensor, budget: int):
    """Split faces into consecutive slices of about ``budget`` candidate pixels (bbox area)."""
    k = (table.shape[1] - 2) // 3
    area = (rows[:, 1] - rows[:, 0] + 1) * (table[:, 3 * k + 1] - table[:, 3 * k] + 1).to(torch.int64)
    total = torch.cumsum(area, 0)
    count = rows.shape[0]
    if int(total[-1]) <= budget:
        return [(0, count)]
    marks = torch.arange(budget, int(total[-1]), budget, device=rows.device)
    ends = torch.searchsorted(total, marks, right=True).tolist() + [count]
    bounds, start = [], 0
    for end in ends:
        end = min(max(end, start + 1), count)
        if start < count and end > start:
            bounds.append((start, end))
            start = end
    return bounds


def _group_fragments(group: _Group, start: int, end: int):
    """Covered samples of faces ``start:end`` of a group -> (global face, row, col)."""
    local, row = expand_rows(group.rows[start:end])
    lo, hi = row_spans(group.table[start:end].index_select(0, local), group.num_planes, row)
    item, col = expand_spans(lo, hi)
    return group.face[start:end][local[item]], row[item], col


def _fragment_depth(setup: _FaceSetup, face: torch.Tensor, row: torch.Tensor, col: torch.Tensor,
                    height: int, width: int):
    """Window depth (quantised int64) and validity of fragments."""
    plane = setup.depth_plane[face]
    x = _pixel_ndc(col, width, flip=False)
    y = _pixel_ndc(row, height, flip=True)
    z_ndc = plane[:, 0] * x + plane[:, 1] * y + plane[:, 2]
    window = z_ndc * 0.5 + 0.5
    valid = (window >= 0) & (window <= 1)
    depth24 = torch.round(window.clamp(0, 1) * DEPTH_MAX).to(torch.int64)
    return depth24, valid


def _barycentric(cofactor: torch.Tensor, row: torch.Tensor, col: torch.Tensor, height: int, width: int):
    """(P, 3) float64 perspective-correct barycentrics from per-fragment cofactors (P, 3, 3)."""
    x = _pixel_ndc(col, width, flip=False)
    y = _pixel_ndc(row, height, flip=True)
    e = cofactor[..., 0] * x.unsqueeze(-1) + cofactor[..., 1] * y.unsqueeze(-1) + cofactor[..., 2]
    return e / e.sum(-1, keepdim=True)


def _discarded(setup: _FaceSetup, faces: torch.Tensor, discard, face: torch.Tensor, row: torch.Tensor,
               col: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Fragments removed by the back-face discard rule (see :func:`rasterize`)."""
    values, threshold = discard
    face_values = values[faces[face]]  # (P, 3)
    maybe = ~setup.front[face] & (face_values.amax(-1) > threshold)
    out = torch.zeros_like(maybe)
    idx = torch.nonzero(maybe).squeeze(1)
    if idx.numel():
        bary = _barycentric(setup.cofactor[face[idx]], row[idx], col[idx], height, width)
        out[idx] = (bary * face_values[idx].to(torch.float64)).sum(-1) > threshold
    return out


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
        fragment_budget: about how many candidate pixels are processed at once.

    Returns:
        :class:`Fragments` with (num_frames, H, W) maps.
    """
    height, width = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    device = clip.device
    clip = clip.to(torch.float64)
    faces = faces.to(device=device, dtype=torch.int64)
    face_frame = face_frame.to(device=device, dtype=torch.int64)
    setup = _setup_faces(clip, faces)
    keys = torch.full((num_frames * height * width,), EMPTY_KEY, dtype=torch.int64, device=device)
    for group in _build_groups(clip, faces, setup, height, width):
        for start, end in _chunks(group.rows, group.table, fragment_budget):
            face, row, col = _group_fragments(group, start, end)
            depth24, valid = _fragment_depth(setup, face, row, col, height, width)
            if back_discard is not None:
                valid &= ~_discarded(setup, faces, back_discard, face, row, col, height, width)
            pixel = (face_frame[face] * height + row) * width + col
            key = (depth24 << FACE_BITS) | face
            keys.scatter_reduce_(0, pixel[valid], key[valid], reduce="amin")
    return _resolve(keys.view(num_frames, height, width), setup, height, width)


def _resolve(keys: torch.Tensor, setup: _FaceSetup, height: int, width: int) -> Fragments:
    """Decode the winning keys into :class:`Fragments`."""
    covered = keys < EMPTY_KEY
    face = torch.where(covered, keys & FACE_MASK, torch.full_like(keys, -1))
    depth24 = torch.where(covered, keys >> FACE_BITS, torch.full_like(keys, DEPTH_MAX))
    zbuf = (depth24.to(torch.float64) / DEPTH_MAX).to(torch.float32)
    bary = torch.zeros(keys.shape + (3,), dtype=torch.float32, device=keys.device)
    front = torch.zeros(keys.shape, dtype=torch.bool, device=keys.device)
    idx = torch.nonzero(covered.reshape(-1)).squeeze(1)
    if idx.numel():
        hit = face.reshape(-1)[idx]
        pixel = idx % (height * width)
        row, col = pixel // width, pixel % width
        bary.view(-1, 3)[idx] = _barycentric(setup.cofactor[hit], row, col, height, width).to(torch.float32)
        front.view(-1)[idx] = setup.front[hit]
    return Fragments(pix_to_face=face, bary=bary, zbuf=zbuf, front_facing=front)
