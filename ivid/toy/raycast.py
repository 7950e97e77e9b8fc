"""Analytic NumPy ray caster for the toy RGBD dataset: textured shapes, Lambert + Phong, shadows.

Camera: an IVID orbit camera on the unit sphere at pitch ``Scene.camera_pitch``
(yaw 0) looking at the origin, y up, square image, ``fov`` 45 degrees; with pitch
0 it is the canonical view (eye (0, 0, 1) looking down -z). In camera space the
ray through pixel (row r, col c) has direction ``((u - 0.5)/f, (0.5 - v)/f, -1)``,
``uv = ((c + 0.5)/S, (r + 0.5)/S)``, ``f = 0.5 / tan(fov/2)``; because its camera z
is -1 the hit parameter ``t`` IS the linear depth of the hit (docs/conventions.md).
Arrays of points / directions are (3, N) (structure of arrays, for speed).

Shapes (world units, y up): :class:`Ellipsoid`, :class:`Box`, :class:`Cylinder`
(each with a centre and a yaw about +y) and :class:`Plane` (ground, backdrop).
Each has ``hit(o, d) -> t`` (inf where missed) and ``surface(p) -> (normal, uv)``.
Materials mix two colours with a procedural pattern of the surface coordinates.
"""

from __future__ import annotations

import dataclasses
import math
from typing import List, Optional, Sequence, Tuple

import numpy as np

EPS = 1e-4
PATTERNS = ("solid", "checker", "stripes", "diagonal", "dots", "noise", "gradient", "bricks", "rings")
_NOISE_SIZE = 64


@dataclasses.dataclass
class Material:
    """Two colours (RGB in [0, 1]) mixed by ``pattern`` at ``scale`` cycles per uv unit (u, v)."""

    color1: Sequence[float]
    color2: Sequence[float] = (1.0, 1.0, 1.0)
    pattern: str = "solid"
    scale: Tuple[float, float] = (8.0, 8.0)
    gloss: float = 0.0
    noise: Optional[np.ndarray] = None  # (64, 64) lattice for 'noise' (and texture jitter)

    def albedo(self, uv: np.ndarray) -> np.ndarray:
        """(2, N) surface coordinates -> (3, N) float32 colour."""
        mix = _pattern(self.pattern, uv[0] * self.scale[0], uv[1] * self.scale[1], self.noise)
        c1 = np.asarray(self.color1, np.float32)[:, None]
        c2 = np.asarray(self.color2, np.float32)[:, None]
        return c1 + (c2 - c1) * mix.astype(np.float32)


def value_noise(u: np.ndarray, v: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Smooth periodic value noise in [0, 1] from a square lattice ``table``."""
    n = table.shape[0]
    iu, iv = np.floor(u), np.floor(v)
    fu, fv = u - iu, v - iv
    fu, fv = fu * fu * (3 - 2 * fu), fv * fv * (3 - 2 * fv)
    iu, iv = iu.astype(np.int64) % n, iv.astype(np.int64) % n
    ju, jv = (iu + 1) % n, (iv + 1) % n
    top = table[iv, iu] + (table[iv, ju] - table[iv, iu]) * fu
    bottom = table[jv, iu] + (table[jv, ju] - table[jv, iu]) * fu
    return top + (bottom - top) * fv


def _pattern(name: str, u: np.ndarray, v: np.ndarray, table: Optional[np.ndarray]) -> np.ndarray:
    """Mixing weight in [0, 1] of ``color2`` for pattern ``name`` at scaled coordinates (u, v)."""
    if name == "solid":
        return np.zeros_like(u)
    if name == "checker":
        return ((np.floor(u) + np.floor(v)) % 2).astype(np.float32)
    if name == "stripes":
        return (np.floor(u) % 2).astype(np.float32)
    if name == "diagonal":
        return (np.floor(u + v) % 2).astype(np.float32)
    if name == "dots":
        du, dv = u - np.floor(u) - 0.5, v - np.floor(v) - 0.5
        return (du * du + dv * dv < 0.09).astype(np.float32)
    if name == "rings":
        return (np.floor(2 * np.sqrt(u * u + v * v)) % 2).astype(np.float32)
    if name == "gradient":
        return np.clip(v, 0.0, 1.0)
    if table is None:
        table = np.full((_NOISE_SIZE, _NOISE_SIZE), 0.5, np.float32)
    if name == "noise":
        return np.clip(0.65 * value_noise(u, v, table) + 0.35 * value_noise(2.3 * u + 7, 2.3 * v + 3, table), 0, 1)
    if name == "bricks":
        row = np.floor(v)
        shifted = u + 0.5 * (row % 2)
        mortar = (v - row < 0.12) | (shifted - np.floor(shifted) < 0.06)
        return mortar.astype(np.float32)
    raise ValueError(f"unknown pattern {name!r}; valid: {PATTERNS}")


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Dot product over the first axis of (3, ...) arrays."""
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def _normalized(v: np.ndarray) -> np.ndarray:
    return v / np.sqrt(_dot(v, v))


def _rotate(matrix: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``matrix @ v`` for (3,) or (3, N) ``v``, written out (much faster than BLAS for 3 x N)."""
    return np.stack([matrix[i, 0] * v[0] + matrix[i, 1] * v[1] + matrix[i, 2] * v[2] for i in range(3)])


def _yaw_matrix(yaw: float) -> np.ndarray:
    """Local -> world rotation about +y (columns = local axes in world)."""
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]], np.float32)


@dataclasses.dataclass
class _Solid:
    """A shape with a local frame: ``p_world = R(yaw) p_local + center``. Arrays are (3, N)."""

    center: Sequence[float]
    material: Material
    yaw: float = 0.0

    def _local(self, p: np.ndarray) -> np.ndarray:
        """World points (3,) or (3, N) -> local coordinates (same shape)."""
        c = np.asarray(self.center, np.float32).reshape((3,) + (1,) * (p.ndim - 1))
        return self._local_dir(p - c)

    def _local_dir(self, d: np.ndarray) -> np.ndarray:
        return _rotate(_yaw_matrix(self.yaw).T, d) if self.yaw else d

    def _world_dir(self, n: np.ndarray) -> np.ndarray:
        return _rotate(_yaw_matrix(self.yaw), n) if self.yaw else n


@dataclasses.dataclass
class Ellipsoid(_Solid):
    """Ellipsoid with semi-axes ``radii`` (local x, y, z); uv = (longitude/2pi, latitude/pi)."""

    radii: Sequence[float] = (0.1, 0.1, 0.1)

    def hit(self, o: np.ndarray, d: np.ndarray) -> np.ndarray:
        r = np.asarray(self.radii, np.float32)
        lo = self._local(o) / r.reshape((3,) + (1,) * (o.ndim - 1))
        ld = self._local_dir(d) / r[:, None]
        a, b, c = _dot(ld, ld), _dot(lo, ld), _dot(lo, lo) - 1.0
        disc = b * b - a * c
        root = np.sqrt(np.maximum(disc, 0.0))
        t = (-b - root) / a
        t = np.where(t > EPS, t, (-b + root) / a)
        return np.where((disc >= 0) & (t > EPS), t, np.inf)

    def surface(self, p: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        r = np.asarray(self.radii, np.float32)[:, None]
        q = self._local(p) / r
        n = _normalized(self._world_dir(q / r))
        u = np.arctan2(q[0], q[2]) / (2 * math.pi) + 0.5
        v = np.arccos(np.clip(q[1], -1, 1)) / math.pi
        return n, np.stack([u, v])


@dataclasses.dataclass
class Box(_Solid):
    """Box with half extents ``half`` (local x, y, z); uv = the face's in-plane local coordinates."""

    half: Sequence[float] = (0.1, 0.1, 0.1)

    def hit(self, o: np.ndarray, d: np.ndarray) -> np.ndarray:
        e = np.asarray(self.half, np.float32).reshape((3,) + (1,) * (d.ndim - 1))
        lo, ld = self._local(o), self._local_dir(d)
        if lo.ndim == 1:
            lo = lo[:, None]
        inv = 1.0 / np.where(np.abs(ld) < 1e-9, 1e-9, ld)
        t1, t2 = (-e - lo) * inv, (e - lo) * inv
        lo_t, hi_t = np.minimum(t1, t2), np.maximum(t1, t2)
        t_near = np.maximum(np.maximum(lo_t[0], lo_t[1]), lo_t[2])
        t_far = np.minimum(np.minimum(hi_t[0], hi_t[1]), hi_t[2])
        t = np.where(t_near > EPS, t_near, t_far)
        return np.where((t_far >= t_near) & (t > EPS), t, np.inf)

    def surface(self, p: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        e = np.asarray(self.half, np.float32)[:, None]
        q = self._local(p)
        axis = np.argmax(np.abs(q / e), 0)
        n = np.zeros_like(q)
        cols = np.arange(q.shape[1])
        n[axis, cols] = np.sign(q[axis, cols])
        other = np.array([[2, 1], [0, 2], [0, 1]])[axis]
        uv = np.stack([q[other[:, 0], cols], -q[other[:, 1], cols]])
        return self._world_dir(n), uv


@dataclasses.dataclass
class Cylinder(_Solid):
    """Capped cylinder along local y: ``radius``, ``half_height``; uv = (angle/2pi, y) / cap (x, z)."""

    radius: float = 0.1
    half_height: float = 0.1

    def hit(self, o: np.ndarray, d: np.ndarray) -> np.ndarray:
        lo, ld = self._local(o), self._local_dir(d)
        a = np.maximum(ld[0] ** 2 + ld[2] ** 2, 1e-12)
        b = lo[0] * ld[0] + lo[2] * ld[2]
        c = lo[0] ** 2 + lo[2] ** 2 - self.radius ** 2
        disc = b * b - a * c
        root = np.sqrt(np.maximum(disc, 0.0))
        best = np.full(ld.shape[1:], np.inf, np.float32)
        for t in ((-b - root) / a, (-b + root) / a):
            ok = (disc >= 0) & (t > EPS) & (np.abs(lo[1] + t * ld[1]) <= self.half_height)
            best = np.where(ok & (t < best), t, best)
        dy = np.where(np.abs(ld[1]) < 1e-9, 1e-9, ld[1])
        for cap in (-self.half_height, self.half_height):
            t = (cap - lo[1]) / dy
            x, z = lo[0] + t * ld[0], lo[2] + t * ld[2]
            ok = (t > EPS) & (x * x + z * z <= self.radius ** 2)
            best = np.where(ok & (t < best), t, best)
        return best

    def surface(self, p: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        q = self._local(p)
        radial = np.sqrt(q[0] ** 2 + q[2] ** 2)
        is_cap = np.abs(q[1]) / self.half_height - 1 > radial / self.radius - 1
        zero = np.zeros_like(radial)
        side = np.stack([q[0], zero, q[2]]) / np.maximum(radial, 1e-9)
        n = np.where(is_cap, np.stack([zero, np.sign(q[1]), zero]), side)
        angle = np.arctan2(q[0], q[2]) / (2 * math.pi) + 0.5
        uv = np.where(is_cap, np.stack([q[0], q[2]]), np.stack([angle, -q[1]]))
        return self._world_dir(n), uv


@dataclasses.dataclass
class Plane:
    """Infinite plane through ``point`` with unit ``normal``; uv = coordinates along ``u_axis``, ``v_axis``."""

    point: Sequence[float]
    normal: Sequence[float]
    u_axis: Sequence[float]
    v_axis: Sequence[float]
    material: Material

    def hit(self, o: np.ndarray, d: np.ndarray) -> np.ndarray:
        n = np.asarray(self.normal, np.float32)[:, None]
        denom = _dot(d, n)
        point = np.asarray(self.point, np.float32).reshape((3,) + (1,) * (o.ndim - 1))
        t = _dot(point - o, n if o.ndim > 1 else n[:, 0]) / np.where(np.abs(denom) < 1e-9, -1e-9, denom)
        return np.where((denom < 0) & (t > EPS), t, np.inf)

    def surface(self, p: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        rel = p - np.asarray(self.point, np.float32)[:, None]
        uv = np.stack([_dot(rel, np.asarray(self.u_axis, np.float32)), _dot(rel, np.asarray(self.v_axis, np.float32))])
        return np.broadcast_to(np.asarray(self.normal, np.float32)[:, None], p.shape), uv


@dataclasses.dataclass
class Scene:
    """Shapes, a directional light and the camera pitch. ``objects`` cast shadows; ``planes`` only receive them.

    The camera sits on the unit orbit at ``camera_pitch`` (radians, > 0 = above, looking
    down at the origin); seen from the canonical camera this is the same scene tilted.
    """

    objects: List[_Solid]
    planes: List[Plane]
    light: Sequence[float] = (-0.4, 1.0, 0.7)
    ambient: float = 0.32
    camera_pitch: float = 0.0

    @property
    def shapes(self) -> list:
        return list(self.objects) + list(self.planes)


def camera_rays(image_size: int, ssaa: int = 1, fov: float = 45.0) -> np.ndarray:
    """(3, n*n) float32 camera-space directions (z = -1) of an n x n grid, n = image_size * ssaa, row 0 = top."""
    n = image_size * ssaa
    focal = 0.5 / math.tan(math.radians(fov) / 2)
    coords = ((np.arange(n, dtype=np.float32) + 0.5) / n - 0.5) / focal
    x = np.broadcast_to(coords[None, :], (n, n)).reshape(-1)
    y = np.broadcast_to(-coords[:, None], (n, n)).reshape(-1)
    return np.stack([x, y, -np.ones(n * n, np.float32)])


def camera_frame(pitch: float) -> Tuple[np.ndarray, np.ndarray]:
    """(eye (3,), camera -> world rotation (3, 3)) of the orbit camera at ``pitch`` looking at the origin."""
    c, s = math.cos(pitch), math.sin(pitch)
    eye = np.array([0.0, s, c], np.float32)
    rotation = np.array([[1.0, 0.0, 0.0], [0.0, c, s], [0.0, -s, c]], np.float32)  # columns x, up, back
    return eye, rotation


def _shade(scene: Scene, shape, p: np.ndarray, d: np.ndarray) -> np.ndarray:
    """(3, N) colour of the rays ``d`` hitting ``shape`` at points ``p``: Lambert + hemisphere
    ambient + Phong highlight, with hard shadows from ``scene.objects``."""
    light = _normalized(np.asarray(scene.light, np.float32))
    normal, uv = shape.surface(p)
    view = -_normalized(d)
    normal = np.where(_dot(normal, view) < 0, -normal, normal)
    lambert = np.maximum(_dot(normal, light), 0.0)
    lit = np.nonzero(lambert > 0)[0]
    shadow = np.zeros(p.shape[1], np.float32)
    if len(lit):
        origin = p[:, lit] + normal[:, lit] * 2e-3
        direction = np.broadcast_to(light[:, None], origin.shape)
        blocked = np.zeros(len(lit), bool)
        for other in scene.objects:
            blocked |= np.isfinite(other.hit(origin, direction))
        shadow[lit] = blocked
    half = _normalized(light[:, None] + view)
    spec = np.maximum(_dot(normal, half), 0.0) ** 40 * (1 - shadow)
    ambient = scene.ambient + 0.12 * normal[1]
    direct = (1 - scene.ambient) * lambert * (1 - 0.8 * shadow)
    return shape.material.albedo(uv) * (ambient + direct) + shape.material.gloss * spec


def render_scene(scene: Scene, image_size: int, ssaa: int = 3, fov: float = 45.0) -> Tuple[np.ndarray, np.ndarray]:
    """Ray-cast ``scene``.

    Args:
        scene: shapes, light and camera pitch.
        image_size: output side S (pixels).
        ssaa: odd number of colour samples per pixel side (box-filtered); the
            depth is the exact hit depth at the pixel centre (the middle sample).
        fov: field of view in degrees.

    Returns:
        ``(rgb, depth)``: (S, S, 3) uint8 and (S, S) float32 linear depth along the
        camera's -z axis (scene units; inf where a ray hits nothing).
    """
    if ssaa < 1 or ssaa % 2 == 0:
        raise ValueError(f"ssaa must be a positive odd integer, got {ssaa}")
    eye, rotation = camera_frame(scene.camera_pitch)
    d = _rotate(rotation, camera_rays(image_size, ssaa, fov))  # |d_camera_z| = 1, so t = depth
    shapes = scene.shapes
    t_best = np.full(d.shape[1], np.inf, np.float32)
    owner = np.full(d.shape[1], -1, np.int64)
    for k, shape in enumerate(shapes):
        t = shape.hit(eye, d)
        closer = t < t_best
        t_best[closer], owner[closer] = t[closer], k
    color = np.zeros_like(d)
    for k, shape in enumerate(shapes):
        rays = np.nonzero(owner == k)[0]
        if len(rays):
            color[:, rays] = _shade(scene, shape, eye[:, None] + t_best[rays] * d[:, rays], d[:, rays])
    n = image_size * ssaa
    color = color.reshape(3, image_size, ssaa, image_size, ssaa).mean(axis=(2, 4)).transpose(1, 2, 0)
    depth = t_best.reshape(n, n)[ssaa // 2::ssaa, ssaa // 2::ssaa]
    rgb = np.round(np.clip(color, 0.0, 1.0) * 255).astype(np.uint8)
    return rgb, np.ascontiguousarray(depth, dtype=np.float32)
