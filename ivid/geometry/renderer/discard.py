"""Back-face discard: the aggregation shader's ``is_padding > 0.001`` test, done by the rasteriser.

A discarded fragment also skips the depth write, so it must be decided before the
depth test. The interpolated value of a face exceeds a threshold t exactly where
``sum_i (v_i - t) e_i(p)`` has the sign of the face's determinant: linear in screen
space, so the kept part of a face is a half-plane, which the span path adds to the
face's edges. Faces whose three corner values lie on one side are decided whole.
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Tuple

import torch

from .homogeneous import ndc_lines_to_pixel
from .setup import FaceSetup, take_columns
from .spans import UNBOUNDED

__all__ = ["BackDiscard", "classify_faces", "keep_half_plane", "kept_rows"]


class BackDiscard(NamedTuple):
    """Discard back-facing fragments whose perspective-interpolated ``values`` exceed ``threshold``.

    Attributes:
        values: (V,) float64 per-vertex value.
        threshold: the value above which a back-facing fragment is dropped (no depth write).
    """

    values: torch.Tensor
    threshold: float


def classify_faces(setup: FaceSetup, ok: torch.Tensor, faces_t: torch.Tensor,
                   back_discard: Optional[BackDiscard]) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Split faces by the path that draws them.

    Args:
        setup: the faces' set-up; ok: (V,) bool vertices usable by the fixed-point path;
        faces_t: (3, F) int64 corners; back_discard: optional discard rule.

    Returns:
        ``(keep, regular, special)`` (F,) bool: drawn at all; drawn on the fixed-point
        (dense / span) path; back faces that need the per-sample discard half-plane.
    """
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


def keep_half_plane(setup: FaceSetup, faces_t: torch.Tensor, back_discard: BackDiscard, face: torch.Tensor,
                    special: torch.Tensor, height: int, width: int) -> Tuple[torch.Tensor, ...]:
    """(num, a, b), each (G, 1): the samples of ``face`` NOT discarded (trivial where not ``special``)."""
    values, threshold = back_discard
    cof = take_columns(setup.cofactor, face).reshape(3, 3, -1)  # (corner, component, G)
    corner = torch.stack([values.index_select(0, faces_t[k].index_select(0, face)) for k in range(3)])
    sign = setup.front.index_select(0, face).to(torch.float64) * 2 - 1
    line = -sign * ((corner - threshold).unsqueeze(1) * cof).sum(0)  # (3, G): >= 0 where kept
    num, a, b = ndc_lines_to_pixel(line.unsqueeze(0), height, width)
    trivial = ~special.unsqueeze(1)
    return (torch.where(trivial, torch.full_like(num, -UNBOUNDED), num), torch.where(trivial, 1.0, a),
            torch.where(trivial, 0.0, b))


def kept_rows(corners: torch.Tensor, plane: Tuple[torch.Tensor, ...]) -> torch.Tensor:
    """(G, 2) int64 rows that can hold samples of triangles clipped by one half-plane.

    Args:
        corners: (2, 3, G) float64 vertex positions in pixel-index units (column, row).
        plane: (num, a, b), each (G, 1): the half-plane ``a c + b r >= num``.

    The rows span the clipped polygon (kept vertices and edge crossings), widened by
    a small margin: a superset of the exact answer, which :func:`.spans.row_spans` gives per row.
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
