"""Keys stage: the depth test as one integer minimum per pixel, and its result :class:`RasterKeys`.

Every covered sample becomes a key ``depth24 << FACE_BITS | face``: comparing keys
compares the 24-bit window depth first (test "less" against a buffer cleared to
1.0) and, on equal depth, prefers the earlier face, as OpenGL drawing faces in
order does. The framebuffers keep the smallest key per pixel
(``scatter_reduce('amin')``); :func:`~ivid.geometry.renderer.resolve_rows` decodes them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch

from .setup import DEPTH_MAX, FaceSetup

__all__ = ["FACE_BITS", "FACE_MASK", "EMPTY_KEY", "RasterKeys", "key_buffer", "z_test"]

#: z-test key = depth24 << FACE_BITS | face index (earlier face wins ties)
FACE_BITS = 39
FACE_MASK = (1 << FACE_BITS) - 1
#: the cleared buffer (window depth 1.0, no face); any covered sample's key is smaller
EMPTY_KEY = DEPTH_MAX << FACE_BITS


@dataclass
class RasterKeys:
    """Depth-tested framebuffers before decoding.

    Attributes:
        keys: (frames * H, W) int64 ``depth24 << FACE_BITS | face`` of the winner per
            pixel (frame-major rows); ``EMPTY_KEY`` where nothing was drawn.
        setup: the faces' :class:`~ivid.geometry.renderer.setup.FaceSetup` (indexed by
            the face ids in the keys).
        frames, height, width: framebuffer count and size.
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


def key_buffer(frames: int, height: int, width: int, slack: int, device: torch.device) -> torch.Tensor:
    """Cleared keys of ``frames`` framebuffers, flat: (frames * H * W + slack,) int64 ``EMPTY_KEY``.

    The ``slack`` entries after the last frame take rejected candidates whose index
    points past it (always with the empty key, so they never count).
    """
    return torch.full((frames * height * width + slack,), EMPTY_KEY, dtype=torch.int64, device=device)


def z_test(keys: torch.Tensor, pixel: torch.Tensor, key: torch.Tensor) -> None:
    """Depth test 'less' with face-order ties: keep the smallest key per pixel (in place)."""
    keys.scatter_reduce_(0, pixel, key, reduce="amin")
