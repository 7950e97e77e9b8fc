"""Clip stage: world positions -> homogeneous clip coordinates, and the clip planes that go with them.

The renderer's projection is the reference's square OpenGL perspective
(``perspective(fov, 1, near, far)``, :mod:`ivid.geometry.camera`). Its two planes are
:class:`ClipPlanes`; they decide the window depth of a fragment and how a depth
buffer reads back as linear depth. They are not the planes of a depth *code*
(``project_depth``), which every caller names apart (``code_near`` / ``code_far``).
"""

from __future__ import annotations

from typing import NamedTuple, Union

import torch

from ..camera import perspective

__all__ = ["ClipPlanes", "projection", "to_clip"]


class ClipPlanes(NamedTuple):
    """Near and far clip-plane distances of the renderer's projection (camera units, 0 < near < far)."""

    near: float
    far: float


def projection(fov: float, clip_planes: ClipPlanes, device: Union[torch.device, str]) -> torch.Tensor:
    """(4, 4) float64 ``perspective(fov, 1, near, far)`` on ``device`` (fov in degrees, square images)."""
    near, far = clip_planes
    return torch.as_tensor(perspective(float(fov), 1.0, float(near), float(far))).to(device, torch.float64)


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
