"""A 3D scene of known geometry, ray-cast exactly at any camera (test helper for the consistency metric).

The scene: a textured backdrop plane z = ``BACKDROP_Z`` and, in front of it, a
textured square plate in the plane z = ``PLATE_Z`` (|x|, |y| <= ``PLATE_HALF``),
both facing +z, so that every camera of the ``3x9`` viewset (orbit radius 1 around the
origin) sees occlusion edges and disocclusions but no grazing surface. The colour of
channel c at world point X is ``0.5 + AMPLITUDE * sin(K * dot(DIRECTIONS[c], X) + PHASES[c])``
(plate and backdrop alike): a smooth, view-independent texture, so every view is an exact
sample of the same 3D scene. Pixels are point-sampled at their centres (camera rays as
``docs/conventions.md``: ``((u - 0.5)/f, (0.5 - v)/f, -1)``, ``f = 0.5 / tan(fov/2)``), so
the linear depth of a hit is the ray parameter.
"""

from __future__ import annotations

import math
from typing import Dict, List, Sequence

import numpy as np

BACKDROP_Z = -0.8
PLATE_Z = 0.1
PLATE_HALF = 0.25
AMPLITUDE = 0.25
WAVELENGTH = 1.2
K = 2 * math.pi / WAVELENGTH
DIRECTIONS = np.array([[1.0, 0.0, 0.0], [0.6, 0.8, 0.0], [-0.6, 0.8, 0.0]])
PHASES = np.array([0.0, 1.0, 2.0])


def colour_field(points: np.ndarray) -> np.ndarray:
    """(..., 3) world points -> (..., 3) colour in [0.25, 0.75]."""
    return 0.5 + AMPLITUDE * np.sin(K * points @ DIRECTIONS.T + PHASES)


def cast(modelview: np.ndarray, size: int, fov: float = 45.0) -> Dict[str, np.ndarray]:
    """Ray-cast one view through its pixel centres.

    Returns:
        ``points`` (H, W, 3) world hit points, ``depth`` (H, W) linear depth, ``surface``
        (H, W) int (0 backdrop, 1 plate), ``rgb`` (H, W, 3) float colour in [0, 1].
    """
    centres = (np.arange(size) + 0.5) / size
    u, v = np.meshgrid(centres, centres, indexing="xy")
    return cast_uv(modelview, u, v, fov)


def cast_uv(modelview: np.ndarray, u: np.ndarray, v: np.ndarray, fov: float = 45.0) -> Dict[str, np.ndarray]:
    """Ray-cast the rays through image points (u, v) in [0, 1] (u right, v down); outputs as :func:`cast`."""
    focal = 0.5 / math.tan(math.radians(fov) / 2)
    directions = np.stack([(u - 0.5) / focal, (0.5 - v) / focal, -np.ones_like(u)], -1)  # camera space
    camera_to_world = np.linalg.inv(modelview)
    origin = camera_to_world[:3, 3]
    world = directions @ camera_to_world[:3, :3].T  # camera z of every direction is -1: t = linear depth
    t_backdrop = (BACKDROP_Z - origin[2]) / world[..., 2]
    t_plate = (PLATE_Z - origin[2]) / world[..., 2]
    plate_hit = origin + t_plate[..., None] * world
    on_plate = (np.abs(plate_hit[..., 0]) <= PLATE_HALF) & (np.abs(plate_hit[..., 1]) <= PLATE_HALF) & (t_plate > 0)
    depth = np.where(on_plate, t_plate, t_backdrop)
    points = origin + depth[..., None] * world
    return {"points": points, "depth": depth, "surface": on_plate.astype(np.int64), "rgb": colour_field(points)}


def scene_views(modelviews: Sequence[np.ndarray], size: int = 32, fov: float = 45.0) -> List[Dict[str, object]]:
    """:mod:`ivid.scene` view dicts (rgb uint8, rounded) of the scene at every camera."""
    views = []
    for modelview in modelviews:
        hit = cast(np.asarray(modelview, np.float64), size, fov)
        views.append({"rgb": np.round(hit["rgb"] * 255).astype(np.uint8), "depth": hit["depth"].astype(np.float32),
                      "modelview": np.asarray(modelview, np.float64), "fov": float(fov)})
    return views


def max_pixel_footprint(modelviews: Sequence[np.ndarray], size: int = 32, fov: float = 45.0) -> float:
    """Largest world distance between the hit points of two adjacent pixels on the same surface, over all views."""
    largest = 0.0
    for modelview in modelviews:
        hit = cast(np.asarray(modelview, np.float64), size, fov)
        points, surface = hit["points"], hit["surface"]
        for axis in (0, 1):
            step = np.linalg.norm(np.diff(points, axis=axis), axis=-1)
            same = np.diff(surface, axis=axis) == 0
            largest = max(largest, float(step[same].max()))
    return largest


def project(modelview: np.ndarray, points: np.ndarray, fov: float = 45.0):
    """World points (..., 3) -> image coordinates ``(u, v)`` in [0, 1] units and linear depth, in one camera."""
    focal = 0.5 / math.tan(math.radians(fov) / 2)
    camera = points @ modelview[:3, :3].T + modelview[:3, 3]
    depth = -camera[..., 2]
    return 0.5 + focal * camera[..., 0] / depth, 0.5 - focal * camera[..., 1] / depth, depth


def true_covisible(source: np.ndarray, target: np.ndarray, size: int = 32, fov: float = 45.0) -> np.ndarray:
    """(H, W) bool: target pixels whose surface point is seen by the source camera, inside the square spanned
    by the source's pixel centres (the extent of a mesh built from its depth map)."""
    hit = cast(np.asarray(target, np.float64), size, fov)
    u, v, depth = project(np.asarray(source, np.float64), hit["points"], fov)
    lo, hi = 0.5 / size, 1 - 0.5 / size
    inside = (u >= lo) & (u <= hi) & (v >= lo) & (v <= hi) & (depth > 0)
    seen = cast_uv(np.asarray(source, np.float64), np.clip(u, lo, hi), np.clip(v, lo, hi), fov)["depth"]
    return inside & (np.abs(seen - depth) <= 1e-6 * depth)
