"""Cameras: THE coordinate convention of ivid, view matrices, viewsets, trajectories.

Convention (the reference's, i.e. OpenGL/glm; also in ``docs/conventions.md``):

- Camera space: x right, y up, the camera looks down -z. Linear ``depth`` is the
  distance along -z (``depth = -z_cam > 0``).
- ``modelview``: world -> camera 4x4 matrix, row-major maths layout, applied as
  ``p_cam = M @ [x, y, z, 1]``; built like ``glm.lookAt(eye, center, up)``
  (right-handed). The camera centre in world space is ``inverse(M)[:3, 3]``.
- Orbit cameras: a view at yaw ``a``, pitch ``b`` (radians) sits at
  ``eye = (sin a cos b, sin b, cos a cos b)`` (times the radius) and looks at the
  origin with ``up = +y``. Positive yaw moves the camera to +x (viewer's right),
  positive pitch moves it up (looking down). The canonical first view is
  ``look_at((0, 0, 1), (0, 0, 0), (0, 1, 0))`` = yaw 0, pitch 0.
- Intrinsics: square images, ``fov`` in DEGREES, vertical = horizontal; focal
  length in normalised image units (width 1) ``f = 0.5 / tan(fov / 2)``.
- Pixels: pixel (row r, col c) of an H x W image has its centre at
  ``uv = ((c + 0.5) / W, (r + 0.5) / H)``; row 0 is the TOP of the image; ``v``
  grows downward. Camera-space point of pixel (r, c) at linear depth d:
  ``d * ((u - 0.5) / f, (0.5 - v) / f, -1)``.
- Projection: ``perspective(fov, aspect, near, far)`` = ``glm.perspective`` (OpenGL
  clip space, NDC z in [-1, 1], window depth in [0, 1]).

All functions take NumPy arrays / Python numbers (-> NumPy float64 results) or
torch tensors (-> float64 tensors on the same device; float32 on Apple MPS).
Conversions between conventions live only in this module.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from ._arrays import first_tensor, numpy_io, to_tensor, work_dtype

#: yaw step of the '3x9' viewset (radians)
YAW_STEP_3X9 = 0.15
#: yaw values of the '3x9' viewset in generation order (outer loop): 0, +s, -s, +2s, ...,
#: computed as k * 0.15 like the reference (so 0.45 is 0.44999999999999996)
YAWS_3X9 = (0.0,) + tuple(sign * k * YAW_STEP_3X9 for k in range(1, 5) for sign in (1, -1))
#: pitch values of the '3x9' viewset in generation order (inner loop)
PITCHES_3X9 = (0.0, 0.15, -0.15)
#: default number of views of the '360' viewset (yaw step 2*pi/20 = 0.314 rad = 18 deg)
NUM_VIEWS_360 = 20
#: pitch values of every yaw stop of the '360x3' viewset (inner loop, as in '3x9')
PITCHES_360X3 = (0.0, 0.15, -0.15)
#: standard deviations of the random novel view (yaw, pitch) in radians
RANDOM_VIEW_STD = (0.3, 0.15)
#: clip limits of the 'random' trajectory (yaw, pitch) in radians
RANDOM_TRAJ_LIMIT = (0.6, 0.15)
#: amplitudes of the 'swing' trajectory (yaw, pitch) in radians
SWING_AMPLITUDE = (0.6, 0.15)

VIEWSETS = ("uncond", "random", "3x9", "360", "360x3")
TRAJECTORIES = ("swing", "random", "360")
#: tolerance on the singular values of a viewset file's 3x3 camera rotation (1 +- this)
RIGID_ATOL = 1e-3

Generator = Union[np.random.Generator, torch.Generator, None]


def _float(x: Any, device: torch.device) -> torch.Tensor:
    return to_tensor(x, device=device, dtype=work_dtype(device))


def _device_of(*objs: Any) -> torch.device:
    anchor = first_tensor(*objs)
    return anchor.device if anchor is not None else torch.device("cpu")


@numpy_io
def look_at(eye: Any, center: Any, up: Any) -> Any:
    """World -> camera matrix of a camera at ``eye`` looking at ``center`` (``glm.lookAt``).

    Args:
        eye, center, up: (..., 3) world-space vectors (broadcast together).

    Returns:
        (..., 4, 4) float64 modelview, row-major: ``p_cam = M @ [x, y, z, 1]``.
        Row 0 is the camera x axis, row 1 the up axis, row 2 minus the viewing
        direction; the last column holds the translation.
    """
    device = _device_of(eye, center, up)
    eye, center, up = (_float(v, device) for v in (eye, center, up))
    eye, center, up = torch.broadcast_tensors(eye, center, up)
    forward = torch.nn.functional.normalize(center - eye, dim=-1, eps=0.0)
    side = torch.nn.functional.normalize(torch.linalg.cross(forward, up, dim=-1), dim=-1, eps=0.0)
    true_up = torch.linalg.cross(side, forward, dim=-1)
    rotation = torch.stack([side, true_up, -forward], dim=-2)
    translation = -(rotation @ eye.unsqueeze(-1))
    top = torch.cat([rotation, translation], dim=-1)
    bottom = torch.zeros_like(top[..., :1, :])
    bottom[..., 0, 3] = 1.0
    return torch.cat([top, bottom], dim=-2)


@numpy_io
def perspective(fov: Any, aspect: Any, near: Any, far: Any) -> Any:
    """OpenGL projection matrix (``glm.perspective``, right-handed, NDC z in [-1, 1]).

    Args:
        fov: vertical field of view in DEGREES. aspect: width / height.
        near, far: positive clip-plane distances.

    Returns:
        (..., 4, 4) float64 matrix P: ``clip = P @ [x_cam, y_cam, z_cam, 1]``.
    """
    device = _device_of(fov, aspect, near, far)
    fov, aspect, near, far = torch.broadcast_tensors(*(_float(v, device) for v in (fov, aspect, near, far)))
    focal = 1.0 / torch.tan(torch.deg2rad(fov) / 2)
    out = torch.zeros(fov.shape + (4, 4), dtype=fov.dtype, device=device)
    out[..., 0, 0] = focal / aspect
    out[..., 1, 1] = focal
    out[..., 2, 2] = (far + near) / (near - far)
    out[..., 2, 3] = 2 * far * near / (near - far)
    out[..., 3, 2] = -1.0
    return out


@numpy_io
def orbit_eye(yaw: Any, pitch: Any, radius: Any = 1.0) -> Any:
    """Camera position on a sphere: ``radius * (sin a cos b, sin b, cos a cos b)``.

    Args:
        yaw, pitch: angles in radians (broadcast). radius: sphere radius.

    Returns:
        (..., 3) float64 eye positions.
    """
    device = _device_of(yaw, pitch, radius)
    yaw, pitch, radius = torch.broadcast_tensors(*(_float(v, device) for v in (yaw, pitch, radius)))
    direction = torch.stack(
        [torch.sin(yaw) * torch.cos(pitch), torch.sin(pitch), torch.cos(yaw) * torch.cos(pitch)], dim=-1
    )
    return radius.unsqueeze(-1) * direction


@numpy_io
def orbit_modelview(yaw: Any, pitch: Any, radius: Any = 1.0, center: Any = (0.0, 0.0, 0.0)) -> Any:
    """Modelview of an orbit camera at ``center + orbit_eye(yaw, pitch, radius)`` looking at ``center``.

    Args:
        yaw, pitch: radians (broadcast). radius: distance to ``center``.
        center: (3,) or (..., 3) look-at target; ``up`` is +y.

    Returns:
        (..., 4, 4) float64 world -> camera matrices.
    """
    device = _device_of(yaw, pitch, radius, center)
    center = _float(center, device)
    eye = orbit_eye(yaw, pitch, radius)
    eye = _float(eye, device) + center
    up = torch.tensor([0.0, 1.0, 0.0], dtype=eye.dtype, device=device)
    return look_at(eye, center, up)


@numpy_io
def yaw_pitch_of_view(modelview: Any) -> Tuple[Any, Any]:
    """Yaw and pitch (radians) of the camera centre of ``modelview`` seen from the origin.

    Inverse of :func:`orbit_modelview` for cameras looking at the origin.

    Args:
        modelview: (..., 4, 4) world -> camera matrices.

    Returns:
        ``(yaw, pitch)``, each of shape (...) float64.
    """
    device = _device_of(modelview)
    modelview = _float(modelview, device)
    rotation, translation = modelview[..., :3, :3], modelview[..., :3, 3:]
    eye = -(rotation.transpose(-1, -2) @ translation)[..., 0]
    yaw = torch.atan2(eye[..., 0], eye[..., 2])
    pitch = torch.atan2(eye[..., 1], torch.hypot(eye[..., 0], eye[..., 2]))
    return yaw, pitch


def _standard_normal(shape: Tuple[int, ...], generator: Generator) -> np.ndarray:
    """float64 N(0, 1) draws from a NumPy or torch generator (None: fresh entropy)."""
    if isinstance(generator, torch.Generator):
        draws = torch.randn(shape, generator=generator, dtype=torch.float64, device=generator.device)
        return draws.cpu().numpy()
    if generator is None:
        generator = np.random.default_rng()
    if not hasattr(generator, "standard_normal"):
        raise TypeError(f"generator must be a numpy Generator or a torch.Generator, got {type(generator).__name__}")
    return np.asarray(generator.standard_normal(shape), dtype=np.float64)


def _alternating_yaws(num: int) -> List[float]:
    """``num`` equally spaced yaws over a full turn, ordered 0, +s, -s, +2s, -2s, ... (s = 2 pi / num)."""
    step = 2 * math.pi / num
    yaws = [0.0]
    k = 1
    while len(yaws) < num:
        yaws.append(k * step)
        if len(yaws) < num:
            yaws.append(-k * step)
        k += 1
    return yaws


def _check_num(name: str, num: Optional[int], default: int, maximum: Optional[int] = None) -> int:
    if num is None:
        return default
    if isinstance(num, bool) or not isinstance(num, (int, np.integer)) or num < 1:
        raise ValueError(f"viewset {name!r}: num must be a positive integer, got {num!r}")
    if maximum is not None and num > maximum:
        raise ValueError(f"viewset {name!r}: num must be at most {maximum}, got {num}")
    return int(num)


def viewset_angles(name: str, num: Optional[int] = None, generator: Generator = None) -> List[Tuple[float, float]]:
    """The (yaw, pitch) list of a named viewset, in generation order (radians).

    Viewsets (view 0 is always the frontal view, sampled unconditionally):

    - ``'uncond'``: the first view only (``num`` must be None or 1).
    - ``'random'``: the first view, then ``num - 1`` (default 1) random views with
      yaw = 0.3 N(0,1), pitch = 0.15 N(0,1). Per view, yaw is drawn before pitch.
      ``generator``: a ``numpy.random.Generator`` (``standard_normal``) or a
      ``torch.Generator`` (``torch.randn(..., dtype=float64)``); None = fresh entropy.
    - ``'3x9'``: yaw (outer loop) over [0, .15, -.15, .3, -.3, .45, -.45, .6, -.6]
      times pitch (inner loop) over [0, .15, -.15]: 27 views; ``num`` <= 27 keeps the
      first ``num``.
    - ``'360'``: ``num`` (default 20) yaws equally spaced over a full turn at pitch 0,
      generated outward from the front alternately to the right and to the left:
      0, +s, -s, +2s, -2s, ... with s = 2 pi / num, so that the last one (pi for an
      even ``num``) closes the ring between the two sides. Each new view is one step
      s (0.31 rad = 18 deg at the default; fov is 45 deg) away from an existing view,
      so most of it overlaps earlier views — the same outward order as '3x9'.
    - ``'360x3'``: the '360' yaw stops (``num`` of them, default 20), each with pitches
      [0, .15, -.15] as inner loop (3 * num views), for free-view rendering above and
      below the equator.

    Returns:
        list of ``(yaw, pitch)`` float pairs (radians), view 0 first.
    """
    if name == "uncond":
        _check_num(name, num, 1, maximum=1)
        return [(0.0, 0.0)]
    if name == "random":
        count = _check_num(name, num, 2)
        draws = _standard_normal((count - 1, 2), generator)
        return [(0.0, 0.0)] + [
            (RANDOM_VIEW_STD[0] * float(a), RANDOM_VIEW_STD[1] * float(b)) for a, b in draws
        ]
    if name == "3x9":
        count = _check_num(name, num, 27, maximum=27)
        return [(yaw, pitch) for yaw in YAWS_3X9 for pitch in PITCHES_3X9][:count]
    if name == "360":
        return [(yaw, 0.0) for yaw in _alternating_yaws(_check_num(name, num, NUM_VIEWS_360))]
    if name == "360x3":
        yaws = _alternating_yaws(_check_num(name, num, NUM_VIEWS_360))
        return [(yaw, pitch) for yaw in yaws for pitch in PITCHES_360X3]
    raise ValueError(f"unknown viewset {name!r}; valid: {', '.join(VIEWSETS)} (or a JSON file, see viewset_from_file)")


def viewset(name: str, num: Optional[int] = None, generator: Generator = None) -> List[np.ndarray]:
    """Modelviews of a named viewset (see :func:`viewset_angles` for names and order).

    Returns:
        list of (4, 4) float64 NumPy world -> camera matrices (unit-radius orbit
        cameras looking at the origin), in generation order.
    """
    return [orbit_modelview(yaw, pitch) for yaw, pitch in viewset_angles(name, num, generator)]


def _parse_view_entry(path: str, index: int, entry: Any) -> np.ndarray:
    where = f"{path}: entry {index}"
    try:
        values = np.asarray(entry, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: expected [yaw, pitch], [yaw, pitch, radius] or a 4x4 matrix, got {entry!r}") from None
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{where}: non-finite value in {entry!r}")
    if values.shape in ((2,), (3,)):
        return orbit_modelview(*values)
    if values.shape == (4, 4):
        if not np.allclose(values[3], [0.0, 0.0, 0.0, 1.0]):
            raise ValueError(f"{where}: not a world->camera matrix (the last row must be 0 0 0 1)")
        rotation = values[:3, :3]
        # a camera is rigid: its 3x3 block must be a rotation (orthonormal, det +1); a scale, shear or
        # mirror would stretch or flip every depth mesh built from the view
        scales = np.linalg.svd(rotation, compute_uv=False)
        if not np.allclose(scales, 1.0, atol=RIGID_ATOL) or np.linalg.det(rotation) <= 0:
            raise ValueError(f"{where}: not a rigid world->camera matrix: its 3x3 block has scales "
                             f"{np.round(scales, 4).tolist()} and determinant {np.linalg.det(rotation):.4g} "
                             "(needs a rotation: scales 1, determinant +1; no scaling, shear or mirroring)")
        return values
    raise ValueError(
        f"{where}: expected [yaw, pitch], [yaw, pitch, radius] or a 4x4 matrix, got shape {values.shape}"
    )


def viewset_from_file(path: Union[str, os.PathLike]) -> List[np.ndarray]:
    """Read a custom viewset from a JSON file.

    The file holds a non-empty list; each entry is either ``[yaw, pitch]`` /
    ``[yaw, pitch, radius]`` (radians; orbit camera looking at the origin) or a
    4x4 row-major world -> camera matrix (list of 4 rows). Entry 0 is the first
    (unconditional) view.

    Returns:
        list of (4, 4) float64 NumPy modelviews.

    Raises:
        ValueError: naming the file and the bad entry.
    """
    path = os.fspath(path)
    try:
        with open(path, "r", encoding="utf-8") as f:
            entries = json.load(f)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"{path}: expected a non-empty JSON list of [yaw, pitch] pairs or 4x4 matrices")
    return [_parse_view_entry(path, i, entry) for i, entry in enumerate(entries)]


def trajectory_angles(name: str, frames: int, generator: Generator = None) -> List[Tuple[float, float]]:
    """(yaw, pitch) per frame of a named camera trajectory (radians).

    - ``'swing'``: t in linspace(0, 2 pi, frames); yaw = 0.6 cos t, pitch = 0.15 sin t.
    - ``'random'``: per frame yaw = clip(0.3 N, -0.6, 0.6), pitch = clip(0.15 N,
      -0.15, 0.15), yaw drawn before pitch (``generator`` as in :func:`viewset_angles`).
    - ``'360'``: a full turn at pitch 0, yaw = 2 pi k / frames, k = 0 .. frames-1.

    Returns:
        list of ``frames`` ``(yaw, pitch)`` float pairs (radians).
    """
    if isinstance(frames, bool) or not isinstance(frames, (int, np.integer)) or frames < 1:
        raise ValueError(f"trajectory {name!r}: frames must be a positive integer, got {frames!r}")
    if name == "swing":
        t = np.linspace(0, 2 * np.pi, frames)
        return [(SWING_AMPLITUDE[0] * math.cos(v), SWING_AMPLITUDE[1] * math.sin(v)) for v in t]
    if name == "random":
        draws = _standard_normal((int(frames), 2), generator)
        yaws = np.clip(RANDOM_VIEW_STD[0] * draws[:, 0], -RANDOM_TRAJ_LIMIT[0], RANDOM_TRAJ_LIMIT[0])
        pitches = np.clip(RANDOM_VIEW_STD[1] * draws[:, 1], -RANDOM_TRAJ_LIMIT[1], RANDOM_TRAJ_LIMIT[1])
        return [(float(a), float(b)) for a, b in zip(yaws, pitches)]
    if name == "360":
        return [(2 * math.pi * k / frames, 0.0) for k in range(int(frames))]
    raise ValueError(f"unknown trajectory {name!r}; valid: {', '.join(TRAJECTORIES)}")


def trajectory(name: str, frames: int, generator: Generator = None) -> List[np.ndarray]:
    """Modelviews of a named trajectory (see :func:`trajectory_angles`).

    Returns:
        list of ``frames`` (4, 4) float64 NumPy world -> camera matrices.
    """
    return [orbit_modelview(yaw, pitch) for yaw, pitch in trajectory_angles(name, frames, generator)]


def grid_yaw_pitch_3x9() -> Tuple[np.ndarray, np.ndarray]:
    """Yaw and pitch shown in each cell of the 3 x 9 result grid.

    Returns:
        ``(yaw, pitch)``, each (3, 9) float64: rows are pitch -0.15, 0, +0.15;
        columns yaw +0.6 down to -0.6.
    """
    yaws = np.array(sorted(YAWS_3X9, reverse=True))
    pitches = np.array(sorted(PITCHES_3X9))
    return np.tile(yaws, (3, 1)), np.tile(pitches[:, None], (1, 9))


def grid_order_3x9(num_images: int) -> List[int]:
    """Which image goes into each cell of the 3 x 9 grid (row-major cells).

    Args:
        num_images: 27 (all views, in '3x9' generation order) or 26 (the condition
            images of views 1..26, which lack view 0).

    Returns:
        list of 27 indices into the image list; -1 marks a blank cell (view 0
        when ``num_images`` is 26).
    """
    if num_images not in (26, 27):
        raise ValueError(f"grid_order_3x9: num_images must be 27 or 26, got {num_images!r}")
    grid_yaw, grid_pitch = grid_yaw_pitch_3x9()
    order = []
    for yaw, pitch in zip(grid_yaw.ravel(), grid_pitch.ravel()):
        view = 3 * YAWS_3X9.index(float(yaw)) + PITCHES_3X9.index(float(pitch))
        order.append(view - (27 - num_images))
    return order
