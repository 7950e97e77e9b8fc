"""Cameras: THE coordinate convention of ivid and the camera maths (view and projection matrices, orbits).

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
Conversions between conventions live only in this module. Which cameras a run uses (named
viewsets, trajectories, viewset files, the 3x9 grid order) is policy, in :mod:`ivid.geometry.viewsets`.
"""

from __future__ import annotations

from typing import Any, Tuple

import torch

from ._arrays import first_tensor, numpy_io, to_tensor, work_dtype


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
