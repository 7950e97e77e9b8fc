"""Homogeneous path of the rasteriser: faces crossing the near plane or reaching past the guard band.

Such faces have no usable snapped window positions, so they are rasterised in 2D
homogeneous coordinates (float64): the three edge functions ``e_i = cofactor_i .
(X, Y, 1)`` (NDC, sign-corrected so that the inside is positive) and the near plane
``z_ndc + 1 >= 0`` become four half-planes in pixel-index form, which the span path
(:mod:`.spans`) turns into exact row spans. The same NDC -> pixel conversion serves
the back-face discard half-plane (:mod:`.discard`).
"""

from __future__ import annotations

from typing import Tuple

import torch

from .setup import FaceSetup, take_columns

__all__ = ["ndc_lines_to_pixel", "homogeneous_half_planes", "clipped_bbox"]


def ndc_lines_to_pixel(lines: torch.Tensor, height: int, width: int) -> Tuple[torch.Tensor, ...]:
    """Half-planes ``l . (X, Y, 1) >= 0`` in NDC, (K, 3, G) -> pixel-index form ``a c >= num - b r``, (G, K) each."""
    lx, ly, lw = lines[:, 0], lines[:, 1], lines[:, 2]
    # X = (2c+1)/W - 1, Y = 1 - (2r+1)/H
    a = lx * (2.0 / width)
    b = -ly * (2.0 / height)
    d = lx * (1.0 / width - 1.0) + ly * (1.0 - 1.0 / height) + lw
    return -d.T, a.T, b.T


def homogeneous_half_planes(setup: FaceSetup, face: torch.Tensor, height: int,
                            width: int) -> Tuple[torch.Tensor, ...]:
    """(G, 4) float64 ``(num, a, b)``: the 3 edges and the near plane of faces ``face``."""
    sign = setup.front.index_select(0, face).to(torch.float64) * 2 - 1
    cof = take_columns(setup.cofactor, face).reshape(3, 3, -1) * sign  # (edge, component, G)
    near_plane = take_columns(setup.ndc_depth, face)
    near_plane[2] += 1.0  # z_ndc + 1 >= 0
    return ndc_lines_to_pixel(torch.cat([cof, near_plane.unsqueeze(0)], dim=0), height, width)


def clipped_bbox(clip_t: torch.Tensor, faces_t: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(4, G) int64 sample bbox (c0, c1, r0, r1) of faces clipped to the near plane, clamped to the image."""
    corner = torch.stack([take_columns(clip_t, faces_t[k]) for k in range(3)], dim=1)  # (4, 3, G)
    dist = corner[2] + corner[3]  # (3, G) >= 0 on the visible side of the near plane
    nxt = corner.roll(-1, dims=1)
    dist_next = dist.roll(-1, dims=0)
    crossing = (dist >= 0) != (dist_next >= 0)
    denom = torch.where(crossing, dist - dist_next, torch.ones_like(dist))
    t = (dist / denom).clamp(0, 1)
    points = torch.cat([corner, corner + t * (nxt - corner)], dim=1)  # (4, 6, G)
    valid = torch.cat([dist >= 0, crossing], dim=0) & (points[3] > 0)
    w = torch.where(valid, points[3], torch.ones_like(points[3]))
    px = ((points[0] / w + 1) * (width / 2) - 0.5).clamp(-1.0, width)
    py = ((1 - points[1] / w) * (height / 2) - 0.5).clamp(-1.0, height)
    inf = float("inf")
    c0 = torch.where(valid, px, inf).amin(0).ceil().clamp(0, width - 1)
    c1 = torch.where(valid, px, -inf).amax(0).floor().clamp(-1, width - 1)
    r0 = torch.where(valid, py, inf).amin(0).ceil().clamp(0, height - 1)
    r1 = torch.where(valid, py, -inf).amax(0).floor().clamp(-1, height - 1)
    empty = ~valid.any(0)
    c1 = torch.where(empty, torch.full_like(c1, -1.0), c1)
    return torch.stack([c0, c1, r0, r1]).to(torch.int64)
