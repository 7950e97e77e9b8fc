"""Row-resolve stage: decode blocks of depth-tested framebuffer rows into fragments.

The rasteriser leaves, per (frame, pixel), the smallest key ``depth24 << FACE_BITS |
face`` (:class:`~ivid.geometry.renderer.RasterKeys`). :func:`resolve_rows` turns a
block of rows of it into the winning face, its window depth, facing and perspective-
correct barycentrics (:class:`RowFragments`). The renderers decode and shade block by
block (cache-sized blocks on CPU), so a whole-frame decode never exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from .keys import EMPTY_KEY, FACE_BITS, FACE_MASK, RasterKeys
from .settings import RenderSettings, settings_for
from .setup import DEPTH_MAX

__all__ = ["RowFragments", "resolve_rows"]


@dataclass
class RowFragments:
    """Decoded fragments of a block of R framebuffer rows (all (R, W) unless stated).

    Attributes:
        face: int64 winning face, indexing the rasteriser's kept faces
            (:meth:`RasterKeys.faces`); 0 where empty: mask with ``covered``; covered: bool;
        zbuf: float32 window depth (1.0 where empty); front: bool front-facing and covered;
        bary: (R * W, 3) float32 perspective-correct barycentrics (0 where empty).
    """

    face: torch.Tensor
    covered: torch.Tensor
    zbuf: torch.Tensor
    front: torch.Tensor
    bary: torch.Tensor


def _pixel_ndc(count: int, device: torch.device) -> torch.Tensor:
    """(count,) float64 NDC of pixel centres along an axis: ``(2 i + 1) / count - 1``."""
    return (2 * torch.arange(count, device=device, dtype=torch.float64) + 1) / count - 1


def resolve_rows(raster: RasterKeys, start: int, end: int,
                 settings: Optional[RenderSettings] = None) -> RowFragments:
    """Decode rows ``start:end`` of ``raster.keys`` (global rows: frame * H + row).

    Perspective-correct barycentrics ``e_i / sum(e)`` from the 2D-homogeneous edge
    functions ``e_i = cofactor_i . (X, Y, 1)`` at the pixel centre, in float64,
    mostly in place and in sub-blocks of ``settings.resolve_block_pixels`` per thread
    (this runs on every pixel; on CPU its float64 temporaries should stay in cache).
    The result does not depend on ``settings`` (default: :func:`settings_for` the device).
    """
    keys = raster.keys[start:end]
    covered = keys < EMPTY_KEY
    face = keys & FACE_MASK  # 0 where empty (EMPTY_KEY has no face bits)
    # == float32(k / DEPTH_MAX) for all 24-bit k (converted via int32: faster on CPU, exact)
    zbuf = (keys >> FACE_BITS).to(torch.int32).to(torch.float32).div_(DEPTH_MAX)
    device, width = keys.device, raster.width
    x = _pixel_ndc(width, device).view(1, -1)
    rows = torch.arange(start, end, device=device) % raster.height
    y = (1 - (2 * rows.to(torch.float64) + 1) / raster.height).view(-1, 1)
    bary = torch.empty(face.numel(), 3, dtype=torch.float32, device=device)
    block = (settings_for(device) if settings is None else settings).resolve_block_pixels
    step = max(1, face.shape[0]) if block is None else max(1, block * torch.get_num_threads() // width)
    cofactor = raster.cofactor_rows
    x = x.view(1, -1, 1)
    for first in range(0, face.shape[0], step):
        part = slice(first, first + step)
        _barycentrics(cofactor, face[part], covered[part], x, y[part].view(-1, 1, 1),
                      bary[first * width:(first + step) * width])
    bary.nan_to_num_(0.0, 0.0, 0.0)
    front = raster.setup.front.index_select(0, face.view(-1)).view(face.shape) & covered
    return RowFragments(face=face, covered=covered, zbuf=zbuf, front=front, bary=bary)


def _barycentrics(cofactor: torch.Tensor, face: torch.Tensor, covered: torch.Tensor, x: torch.Tensor,
                  y: torch.Tensor, out: torch.Tensor) -> None:
    """(R * W, 3) float32 ``out`` = normalised ``cofactor_i . (X, Y, 1)`` of the (R, W) ``face`` (0 / NaN if empty).

    ``cofactor`` is (F, 3, 3) face-major (one row gather per pixel instead of nine),
    ``x`` (1, W, 1) and ``y`` (R, 1, 1) float64 NDC; every edge value is
    ``(c_x X + c_y Y) + c_w`` rounded op by op (no fused multiply-add).
    """
    shape = face.shape
    rows = cofactor.index_select(0, face.reshape(-1)).view(shape + (3, 3))  # (R, W, edge, component)
    e = rows[..., 0] * x
    e.add_(rows[..., 1] * y).add_(rows[..., 2])  # (R, W, 3)
    total = e[..., 0] + e[..., 1]
    scale = torch.div(covered, total.add_(e[..., 2]), out=total)
    out.view(shape + (3,)).copy_(e.mul_(scale.unsqueeze(-1)))
