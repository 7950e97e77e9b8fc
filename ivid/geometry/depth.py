"""Depth encodings, depth-discontinuity masks and binary erosion.

Linear ``depth`` d > 0 is the distance along the camera's -z axis (camera units).
The encoded value ``z`` in [0, 1] is what the diffusion model's depth channel holds
(after ``* 0.5 + 0.5``). Two encodings, with planes ``near`` < ``far``:

- ``'z_buffer'`` (perspective): ``z = (1/near - 1/d) / (1/near - 1/far)`` after
  clipping d to [near, far]; inverse ``d = near*far / (far - (far-near)*z)`` after
  clipping z to [1e-6, 1 - 1e-6].
- ``'linear'``: ``z = (d - near) / (far - near)``; inverse ``d = near + (far-near)*z``
  (no clipping).

Training data uses (near, far) = (0.5, 100); sampling and scene meshes (0.6, 5).

All functions accept NumPy arrays or torch tensors and return the same kind (same
device). Floating inputs keep their dtype (float32 in -> float32 out, computed in
float32 as the reference does); integer inputs are computed in float64.
"""

from __future__ import annotations

from typing import Any, Tuple

import torch
import torch.nn.functional as nnf

from ._arrays import numpy_io, to_tensor

DEPTH_MODES = ("z_buffer", "linear")
#: z is clipped to [Z_EPS, 1 - Z_EPS] before z_buffer linearisation
Z_EPS = 1e-6
#: depth values are floored at this before taking 1/d in depth_edge
DEPTH_FLOOR = 1e-6
#: a pixel is kept by depth_edge when fewer than this many neighbour pairs jump
MAX_JUMPS = 3


def _floating(x: Any) -> torch.Tensor:
    x = to_tensor(x)
    return x if torch.is_floating_point(x) else x.to(torch.float64)


def _check_mode(mode: str) -> None:
    if mode not in DEPTH_MODES:
        raise ValueError(f"unknown depth mode {mode!r}; valid: {', '.join(DEPTH_MODES)}")


@numpy_io
def linearize_depth(z: Any, near: float, far: float, mode: str = "z_buffer") -> Any:
    """Encoded depth ``z`` -> linear depth.

    Args:
        z: any shape, encoded depth (nominally in [0, 1]).
        near, far: the encoding's planes (camera units). mode: 'z_buffer' or 'linear'.

    Returns:
        linear depth, same shape and dtype as ``z`` (floating), camera units.
    """
    _check_mode(mode)
    z = _floating(z)
    if mode == "linear":
        return near + (far - near) * z
    z = z.clamp(Z_EPS, 1 - Z_EPS)
    # a true division (``scalar / tensor`` in torch multiplies by a reciprocal: 1 ulp off NumPy)
    return torch.as_tensor(near * far, dtype=z.dtype, device=z.device) / (far - (far - near) * z)


@numpy_io
def project_depth(depth: Any, near: float, far: float, mode: str = "z_buffer") -> Any:
    """Linear depth -> encoded depth ``z`` (inverse of :func:`linearize_depth`).

    Args:
        depth: any shape, linear depth (camera units).
        near, far: the encoding's planes. mode: 'z_buffer' (depth clipped to
            [near, far] first, z in [0, 1]) or 'linear' (no clipping).

    Returns:
        ``z``, same shape and dtype as ``depth`` (floating).
    """
    _check_mode(mode)
    depth = _floating(depth)
    if mode == "linear":
        return (depth - near) / (far - near)
    depth = depth.clamp(near, far)
    return (1 / near - 1 / depth) / (1 / near - 1 / far)


def _to_batch_hw(x: torch.Tensor, name: str) -> Tuple[torch.Tensor, Tuple[int, ...]]:
    """View an image-like map as (B, H, W); also return the leading batch shape.

    Accepted: (H, W), (H, W, 1), (N, H, W, 1) and (N, H, W) (3-D with a last axis
    other than 1 is read as a batch).
    """
    if x.dim() == 2:
        return x.unsqueeze(0), ()
    if x.dim() == 3 and x.shape[-1] == 1:
        return x[..., 0].unsqueeze(0), ()
    if x.dim() == 3:
        return x, (x.shape[0],)
    if x.dim() == 4 and x.shape[-1] == 1:
        return x[..., 0], (x.shape[0],)
    raise ValueError(f"{name}: expected shape (H, W), (H, W, 1), (N, H, W) or (N, H, W, 1), got {tuple(x.shape)}")


@numpy_io
def depth_edge(z: Any, atol: float, rtol: float) -> Any:
    """Mask of pixels NOT lying on a depth discontinuity (True = keep).

    For each of the 4 neighbour directions (right, down, down-right, down-left) a
    pair (a, b) "jumps" when ``|a - b| > atol`` and ``|1/a - 1/b| > rtol`` (values
    floored at 1e-6); a jump counts for both pixels; a pixel is kept when its count
    is below 3. The reference applies it to z-buffer-encoded depth in [0, 1].

    Args:
        z: (H, W), (H, W, 1), (N, H, W) or (N, H, W, 1) depth values (computed in
            their own floating dtype).
        atol, rtol: thresholds on the difference and on the inverse difference.

    Returns:
        (H, W, 1) bool, or (N, H, W, 1) bool for batched input.
    """
    values, batch = _to_batch_hw(_floating(z), "depth_edge")
    values = values.clamp_min(DEPTH_FLOOR)
    inverse = 1 / values
    count = torch.zeros(values.shape, dtype=torch.int32, device=values.device)
    # (slice of pixel a, slice of pixel b) for right, down, down-right, down-left pairs
    pairs = [
        ((slice(None), slice(None, -1)), (slice(None), slice(1, None))),
        ((slice(None, -1), slice(None)), (slice(1, None), slice(None))),
        ((slice(None, -1), slice(None, -1)), (slice(1, None), slice(1, None))),
        ((slice(None, -1), slice(1, None)), (slice(1, None), slice(None, -1))),
    ]
    for index_a, index_b in pairs:
        index_a, index_b = (slice(None),) + index_a, (slice(None),) + index_b
        jump = (values[index_a] - values[index_b]).abs() > atol
        jump &= (inverse[index_a] - inverse[index_b]).abs() > rtol
        jump = jump.to(torch.int32)
        count[index_a] += jump
        count[index_b] += jump
    keep = (count < MAX_JUMPS).unsqueeze(-1)
    return keep.reshape(batch + keep.shape[1:]) if batch else keep[0]


@numpy_io
def erode_mask(mask: Any, size: int) -> Any:
    """Binary (min-filter) erosion of ``mask`` with a ``size`` x ``size`` square.

    Pixels outside the image never erode (OpenCV's default border for erode).
    For an even ``size`` the window covers offsets -size//2 .. size//2 - 1 (OpenCV's
    default anchor).

    Args:
        mask: (H, W), (H, W, 1), (N, H, W) or (N, H, W, 1); bool, integer or float.
        size: side of the square (>= 1); 1 returns a copy.

    Returns:
        the eroded mask, same shape and dtype as ``mask``.
    """
    if isinstance(size, bool) or int(size) != size or size < 1:
        raise ValueError(f"erode_mask: size must be a positive integer, got {size!r}")
    size = int(size)
    mask = to_tensor(mask)
    values, _ = _to_batch_hw(mask, "erode_mask")
    work = torch.float64 if values.dtype == torch.float64 else torch.float32
    before, after = size // 2, size - 1 - size // 2
    padded = nnf.pad(-values.to(work).unsqueeze(1), (before, after, before, after), value=-float("inf"))
    # a square min filter is separable: rows, then columns
    eroded = -nnf.max_pool2d(nnf.max_pool2d(padded, (1, size), stride=1), (size, 1), stride=1)
    return eroded[:, 0].reshape(mask.shape).to(mask.dtype)
