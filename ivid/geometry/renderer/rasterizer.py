"""The rasteriser: triangles in clip coordinates -> depth-tested framebuffers (:class:`RasterKeys`).

No shading happens here (like pytorch3d's rasteriser): :func:`rasterize_keys` runs
the stages set-up (:mod:`.setup`), dense / span / homogeneous paths (:mod:`.dense`,
:mod:`.spans`, :mod:`.homogeneous`) and the depth test (:mod:`.keys`) for many
independent framebuffers ("frames", e.g. one per mesh, each with its OWN depth
buffer) in one call; :func:`~ivid.geometry.renderer.resolve_rows` decodes the result.

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
  exceeds a threshold (:class:`~ivid.geometry.renderer.discard.BackDiscard`, the
  aggregation shader's ``is_padding > 0.001`` rule): discarded fragments write no depth.

Paths: small snapped triangles (the common case) are evaluated on dense R x C
candidate grids per size class; larger, border-crossing or partly discarded ones
per (face, row) span solved exactly from their half-planes; near-plane and
guard-band faces the same way in homogeneous float64. Work follows the covered
area and is chunked by :class:`~ivid.geometry.renderer.RenderSettings`; everything
stays on the input's device (float64 arithmetic, so not on Apple MPS).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple, Union

import torch

from .dense import MAX_SIDE, class_chunks, dense_keys, dense_table, split_faces
from .discard import BackDiscard, classify_faces, keep_half_plane, kept_rows
from .homogeneous import clipped_bbox, homogeneous_half_planes
from .keys import RasterKeys, key_buffer, z_test
from .settings import RenderSettings, settings_for
from .setup import SUBPIXEL_ONE, FaceSetup, fixed_triangles, setup_faces, snapped_sample_bbox, take_columns, \
    vertex_window
from .spans import SpanGroup, append_half_planes, integer_half_planes, span_chunks, span_group, span_keys

__all__ = ["rasterize_keys"]


@dataclass
class _Pass:
    """State of one :func:`rasterize_keys` call: face set-up, depth-test keys, options."""

    setup: FaceSetup
    faces_t: torch.Tensor  # (3, F) int64
    frame: torch.Tensor  # (F,) int64
    special: torch.Tensor  # (F,) bool: back faces needing the discard half-plane
    back_discard: Optional[BackDiscard]
    keys: torch.Tensor  # (frames * H * W + slack,) int64
    height: int
    width: int
    settings: RenderSettings

    def keep_plane(self, face: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """(num, a, b), each (G, 1): the back-discard half-plane of ``face`` (discarding must be on)."""
        return keep_half_plane(self.setup, self.faces_t, self.back_discard, face, self.special.index_select(0, face),
                               self.height, self.width)

    def with_keep(self, face: torch.Tensor, planes: Tuple[torch.Tensor, ...]) -> Tuple[torch.Tensor, ...]:
        """Append the back-discard half-plane to (G, K) half-planes when discarding is on."""
        if self.back_discard is None:
            return planes
        return append_half_planes(planes, self.keep_plane(face))

    def draw_fixed(self, ids: torch.Tensor, fixed: torch.Tensor, fixed32: torch.Tensor) -> List[Optional[SpanGroup]]:
        """Faces on the fixed-point path: small ones on dense grids now; returns the span groups of the rest."""
        corners = take_columns(self.faces_t, ids)
        split = split_faces(fixed32, corners, self.special.index_select(0, ids), self.height, self.width)
        if split.order.numel():
            budget = min(self.settings.fragment_budget, self.settings.dense_budget)
            face = ids.index_select(0, split.order)
            table = dense_table(split, face, take_columns(self.setup.depth24, face), self.frame.index_select(0, face),
                                self.height, self.width)
            for shape, first, last in split.classes:
                for start, end in class_chunks(last - first, shape, budget):
                    z_test(self.keys, *dense_keys(table, first + start, first + end, shape, self.width))
        # the rest: large faces, faces leaving the image, and 'special' ones (need the discard half-plane)
        tri = fixed_triangles(fixed, take_columns(corners, split.span), self.height, self.width)
        sel = torch.nonzero(tri.nonzero).squeeze(1)  # zero-area faces draw nothing
        if not sel.numel():
            return []
        big, face = tri.subset(sel), ids.index_select(0, split.span.index_select(0, sel))
        special = self.special.index_select(0, face)
        plain = torch.nonzero(~special).squeeze(1)
        groups = [span_group(face.index_select(0, plain), take_columns(big.bbox, plain),
                             integer_half_planes(big.subset(plain)), big.samples.index_select(0, plain))]
        flagged = torch.nonzero(special).squeeze(1)
        if flagged.numel():  # back faces partly discarded: add the keep half-plane, and narrow their rows to it
            big, face = big.subset(flagged), face.index_select(0, flagged)
            keep = self.keep_plane(face)
            face_corners = take_columns(self.faces_t, face)
            corner_xy = torch.stack([take_columns(fixed, face_corners[k]) for k in range(3)], 1)
            rows = kept_rows(corner_xy.to(torch.float64) / SUBPIXEL_ONE, keep)
            planes = append_half_planes(integer_half_planes(big), keep)
            groups.append(span_group(face, big.bbox, planes, big.samples, rows))
        return groups

    def draw_spans(self, groups: List[Optional[SpanGroup]]) -> None:
        """Faces of span groups, in chunks of about ``fragment_budget`` rows + samples."""
        for group in groups:
            if group is None:
                continue
            table = torch.cat([group.table, take_columns(self.setup.depth24, group.face)])
            for start, end in span_chunks(group.cost, self.settings.fragment_budget):
                z_test(self.keys, *span_keys(group, start, end, table, self.frame, self.height, self.width))


def _visible_faces(fixed32: torch.Tensor, ok: torch.Tensor, faces_t: torch.Tensor, height: int, width: int,
                   host_checks: bool) -> Optional[torch.Tensor]:
    """(F',) int64 faces that may cover a sample (None: all of them, known only with ``host_checks``).

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
    if host_checks and bool(kept.all()):
        return None
    return torch.nonzero(kept).squeeze(1)


def rasterize_keys(clip: torch.Tensor, faces: torch.Tensor, face_frame: torch.Tensor, num_frames: int,
                   image_size: Union[int, Tuple[int, int]], back_discard: Optional[BackDiscard] = None,
                   settings: Optional[RenderSettings] = None) -> RasterKeys:
    """Rasterise triangles into ``num_frames`` independent depth-tested framebuffers.

    Args:
        clip: (V, 4) homogeneous clip coordinates of all vertices (see
            :func:`~ivid.geometry.renderer.to_clip`); computed in float64.
        faces: (F, 3) int64 vertex indices into ``clip``; draw order = row order.
        face_frame: (F,) int64 framebuffer index of each face, in [0, num_frames).
        num_frames: number of framebuffers (each has its own depth buffer).
        image_size: H or (H, W) in pixels.
        back_discard: optional :class:`~ivid.geometry.renderer.discard.BackDiscard`
            ``(values (V,), threshold)``: a back-facing fragment whose perspective-
            interpolated value exceeds ``threshold`` is discarded (writes no depth).
        settings: chunk budgets (default :func:`~ivid.geometry.renderer.settings_for`
            the device); the result does not depend on them.

    Returns:
        :class:`~ivid.geometry.renderer.RasterKeys`; decode row blocks with
        :func:`~ivid.geometry.renderer.resolve_rows`. Faces that cannot cover any
        sample are culled first: the keys' face ids index ``faces[kept]`` (see
        :meth:`RasterKeys.faces`).
    """
    height, width = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    device = clip.device
    settings = settings_for(device) if settings is None else settings
    clip_t = clip.to(torch.float64).T.contiguous()
    faces_t = faces.to(device=device, dtype=torch.int64).T.contiguous()
    frame = face_frame.to(device=device, dtype=torch.int64)
    if back_discard is not None:
        back_discard = BackDiscard(back_discard[0].to(device=device, dtype=torch.float64).reshape(-1),
                                   float(back_discard[1]))
    if faces_t.shape[1] == 0:
        faces_t = torch.zeros(3, 1, dtype=torch.int64, device=device)  # one degenerate face: draws nothing
        clip_t = torch.zeros(4, max(clip_t.shape[1], 1), dtype=torch.float64, device=device)
        frame = torch.zeros(1, dtype=torch.int64, device=device)
    fixed, ok = vertex_window(clip_t, height, width)
    fixed32 = fixed.to(torch.int32)
    kept = _visible_faces(fixed32, ok, faces_t, height, width, settings.host_checks)
    if kept is not None:  # later stages (and the keys' face ids) see only the faces that can draw something
        faces_t, frame = take_columns(faces_t, kept), frame.index_select(0, kept)
    setup = setup_faces(clip_t, faces_t, height, width)
    keep, regular, special = classify_faces(setup, ok, faces_t, back_discard)
    # slack after the last frame: rejected dense candidates may point there (with empty keys)
    keys = key_buffer(num_frames, height, width, MAX_SIDE * (width + 1), device)
    state = _Pass(setup, faces_t, frame, special, back_discard, keys, height, width, settings)
    ids = torch.nonzero(regular).squeeze(1)
    if ids.numel():
        state.draw_spans(state.draw_fixed(ids, fixed, fixed32))
    ids = torch.nonzero(keep & ~regular).squeeze(1)
    if ids.numel():  # near-plane crossing or beyond the guard band: 2D homogeneous, float64
        bbox = clipped_bbox(clip_t, take_columns(faces_t, ids), height, width)
        planes = state.with_keep(ids, homogeneous_half_planes(setup, ids, height, width))
        state.draw_spans([span_group(ids, bbox, planes)])
    size = num_frames * height * width
    return RasterKeys(keys[:size].view(num_frames * height, width), setup, num_frames, height, width, kept)
