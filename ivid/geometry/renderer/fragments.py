"""Decoding of depth-tested framebuffers (see :mod:`ivid.geometry.raster`).

The rasteriser leaves, per (frame, pixel), the smallest z-test key
``depth24 << FACE_BITS | face``. :func:`resolve_rows` turns rows of it into the
winning face, its window depth, facing and perspective-correct barycentrics (the
shaders call it block by block); :func:`resolve` decodes everything into
:class:`Fragments`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch

from ._raster_setup import DEPTH_MAX, FaceSetup

#: z-test key = depth24 << FACE_BITS | face index (earlier face wins ties)
FACE_BITS = 39
FACE_MASK = (1 << FACE_BITS) - 1
EMPTY_KEY = DEPTH_MAX << FACE_BITS
#: pixels per CPU thread whose barycentrics are computed at once (float64 temporaries stay in L2)
RESOLVE_PIXELS = 1 << 14


@dataclass
class Fragments:
    """Per-pixel rasterisation result of F frames of H x W pixels.

    Attributes:
        pix_to_face: (F, H, W) int64 index of the visible face into the ``faces``
            given to :func:`~ivid.geometry.raster.rasterize`; -1 where nothing was drawn.
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


@dataclass
class RasterKeys:
    """Depth-tested framebuffers before decoding.

    Attributes:
        keys: (frames * H, W) int64 ``depth24 << FACE_BITS | face`` of the winner per
            pixel (frame-major rows); ``EMPTY_KEY`` where nothing was drawn.
        setup: the faces' :class:`FaceSetup` (indexed by the face ids in the keys).
        kept: (F',) int64 index into the rasteriser's ``faces`` of the face ids in the
            keys (faces that could not draw anything were culled), or None when all
            faces were kept.
    """

    keys: torch.Tensor
    setup: FaceSetup
    frames: int
    height: int
    width: int
    kept: Optional[torch.Tensor] = None
    _cofactor_rows: Optional[torch.Tensor] = field(default=None, repr=False)

    def faces(self, faces: torch.Tensor) -> torch.Tensor:
        """The rows of ``faces`` (F, ...) that the keys' face ids index: ``faces[kept]``."""
        return faces if self.kept is None else faces.index_select(0, self.kept)

    @property
    def cofactor_rows(self) -> torch.Tensor:
        """(F, 3, 3) float64 ``setup.cofactor`` face-major (edge, component): one row gather per pixel."""
        if self._cofactor_rows is None:
            self._cofactor_rows = torch.stack(self.setup.cofactor.unbind(0), dim=1).view(-1, 3, 3)
        return self._cofactor_rows


@dataclass
class RowFragments:
    """Decoded fragments of a block of R framebuffer rows (all (R, W) unless stated).

    Attributes:
        face: int64 winning face (0 where empty: mask with ``covered``); covered: bool;
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


def resolve_rows(raster: RasterKeys, start: int, end: int) -> RowFragments:
    """Decode rows ``start:end`` of ``raster.keys`` (global rows: frame * H + row).

    Perspective-correct barycentrics ``e_i / sum(e)`` from the 2D-homogeneous edge
    functions ``e_i = cofactor_i . (X, Y, 1)`` at the pixel centre, in float64,
    mostly in place and, on CPU, in sub-blocks of about ``RESOLVE_PIXELS`` per thread (this
    runs on every pixel; its float64 temporaries should stay in cache).
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
    step = max(1, RESOLVE_PIXELS * torch.get_num_threads() // width) if device.type == "cpu" else face.shape[0]
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
    ``(c_x X + c_y Y) + c_w`` rounded op by op (no fused multiply-add), as before.
    """
    shape = face.shape
    rows = cofactor.index_select(0, face.reshape(-1)).view(shape + (3, 3))  # (R, W, edge, component)
    e = rows[..., 0] * x
    e.add_(rows[..., 1] * y).add_(rows[..., 2])  # (R, W, 3)
    total = e[..., 0] + e[..., 1]
    scale = torch.div(covered, total.add_(e[..., 2]), out=total)
    out.view(shape + (3,)).copy_(e.mul_(scale.unsqueeze(-1)))


def resolve(raster: RasterKeys) -> Fragments:
    """Decode all framebuffers into :class:`Fragments`."""
    rows = resolve_rows(raster, 0, raster.keys.shape[0])
    shape = (raster.frames, raster.height, raster.width)
    face = rows.face if raster.kept is None else raster.kept.index_select(0, rows.face.view(-1)).view(rows.face.shape)
    return Fragments(pix_to_face=(face - (~rows.covered).to(torch.int64)).view(shape),
                     bary=rows.bary.view(shape + (3,)), zbuf=rows.zbuf.view(shape),
                     front_facing=rows.front.view(shape))
