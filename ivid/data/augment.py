"""Random quantities and image operations of the warp/SR training conditions (docs/design.md#training-data).

Every ``draw_*`` function takes a CPU ``torch.Generator`` and draws from it in a
fixed order, so one per-sample generator (seeded per (seed, epoch, index))
reproduces a sample exactly, on any device it is later applied on. Apply
functions (:func:`gaussian_blur3`, :func:`erode_masks`) are deterministic and
work on batches on any device.

Augment names (``dataset.args.augments``): ``prewarp_noise``, ``postwarp_noise``,
``blur``, ``erode_rgb``.
"""

from __future__ import annotations

import math
from typing import Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as nnf

from ivid.geometry import erode_mask, look_at

AUGMENTS = ("prewarp_noise", "postwarp_noise", "blur", "erode_rgb")

#: prewarp noise: rgbd += N(0, sigma), sigma = PREWARP_NOISE_MAX_STD * U(0, 1)
PREWARP_NOISE_MAX_STD = 0.005
#: postwarp noise: y += N(0, sigma), sigma = POSTWARP_NOISE_MAX_STD * U(0, 1)
POSTWARP_NOISE_MAX_STD = 0.03
#: random camera: theta, phi ~ N(0, CAMERA_ANGLE_STD) radians
CAMERA_ANGLE_STD = 0.15
#: random camera: radius = 1 + N(0, CAMERA_RADIUS_STD)
CAMERA_RADIUS_STD = 0.1
#: random camera: look-at centre ~ N(0, CAMERA_CENTER_STD)^3
CAMERA_CENTER_STD = 0.05
#: probability that the condition RGB is replaced by the blurred original
BLUR_PROBABILITY = 0.8
#: Gaussian blur sigma = U(0, 1) + BLUR_SIGMA_MIN (3 x 3 kernel)
BLUR_SIGMA_MIN = 1e-3
#: erode_rgb square sides: 2 * randint(0..4) + 1
ERODE_SIZES = (1, 3, 5, 7, 9)


def check_augments(augments: Sequence[str]) -> Tuple[str, ...]:
    """Validate augment names; return them as a tuple."""
    unknown = [a for a in augments if a not in AUGMENTS]
    if unknown:
        raise ValueError(f"augments: unknown name(s) {unknown}; valid: {list(AUGMENTS)}")
    return tuple(augments)


def _uniform(generator: torch.Generator) -> float:
    return float(torch.rand((), generator=generator, dtype=torch.float64))


def _normal(generator: torch.Generator, n: int = 1) -> np.ndarray:
    return torch.randn(n, generator=generator, dtype=torch.float64).numpy()


def draw_noise(shape: Tuple[int, ...], max_std: float, generator: torch.Generator) -> torch.Tensor:
    """``N(0, sigma)`` noise with ``sigma = max_std * U(0, 1)``.

    Returns:
        float32 CPU tensor of ``shape``.
    """
    sigma = max_std * _uniform(generator)
    return torch.randn(shape, generator=generator, dtype=torch.float32) * sigma


def draw_camera(generator: torch.Generator, angle_std: float = CAMERA_ANGLE_STD
                ) -> Tuple[float, float, float, Tuple[float, float, float]]:
    """Random nearby camera: ``(theta, phi, radius, center)``.

    ``theta, phi ~ N(0, angle_std)`` (radians, yaw and pitch; 0.15 as released),
    ``radius = 1 + N(0, 0.1)``, ``center ~ N(0, 0.05)^3`` (world units), drawn in this order.
    """
    theta, phi = (float(v) * angle_std for v in _normal(generator, 2))
    radius = 1.0 + CAMERA_RADIUS_STD * float(_normal(generator)[0])
    center = tuple(float(v) * CAMERA_CENTER_STD for v in _normal(generator, 3))
    return theta, phi, radius, center


def camera_modelview(theta: float, phi: float, radius: float,
                     center: Sequence[float]) -> np.ndarray:
    """World -> camera matrix of the random camera.

    ``eye = (r cos(phi) sin(theta), r sin(phi), r cos(phi) cos(theta))``, looking at
    ``center`` with ``up = +y`` (docs/design.md#training-data).

    Returns:
        (4, 4) float32 (the reference builds it with float32 ``glm.lookAt``).
    """
    eye = (radius * math.cos(phi) * math.sin(theta), radius * math.sin(phi),
           radius * math.cos(phi) * math.cos(theta))
    modelview = look_at(np.array(eye), np.asarray(center, dtype=np.float64), np.array([0.0, 1.0, 0.0]))
    return np.asarray(modelview, dtype=np.float32)


def draw_blur(generator: torch.Generator) -> Tuple[bool, float]:
    """``(use_blur, sigma)``: ``use_blur`` with probability 0.8, ``sigma = U(0, 1) + 1e-3``."""
    use_blur = _uniform(generator) < BLUR_PROBABILITY
    return use_blur, draw_blur_sigma(generator)


def draw_blur_sigma(generator: torch.Generator) -> float:
    """Gaussian blur sigma ``U(0, 1) + 1e-3``."""
    return _uniform(generator) + BLUR_SIGMA_MIN


def draw_erode_size(generator: torch.Generator, max_size: int = ERODE_SIZES[-1]) -> int:
    """Side of the erosion square for ``mask_rgb``: ``2 * randint(0..max_size // 2) + 1``.

    With the released ``max_size`` 9 the sides are {1, 3, 5, 7, 9}; a smaller odd
    ``max_size`` suits small images (9 pixels of a 32-pixel image is most of it).
    """
    if max_size < 1 or max_size % 2 == 0:
        raise ValueError(f"erode_rgb_max: must be an odd integer >= 1, got {max_size!r}")
    return 2 * int(torch.randint(0, max_size // 2 + 1, (), generator=generator)) + 1


def gaussian_blur3(x: torch.Tensor, sigma: Union[float, Sequence[float], torch.Tensor]) -> torch.Tensor:
    """3 x 3 Gaussian blur with a per-sample sigma (torchvision's ``gaussian_blur`` semantics).

    The separable kernel is ``exp(-0.5 (k / sigma)^2)`` for k in (-1, 0, 1),
    normalised; image borders use reflect padding.

    Args:
        x: (B, C, H, W) float tensor (H, W >= 2), any device.
        sigma: one value, or B values (one per sample), > 0.

    Returns:
        (B, C, H, W) tensor, same dtype and device.
    """
    batch, _, height, width = x.shape
    sigma = torch.as_tensor(sigma, dtype=torch.float64).reshape(-1).expand(batch)
    offsets = torch.tensor([-1.0, 0.0, 1.0], dtype=torch.float64)
    kernel = torch.exp(-0.5 * (offsets[None, :] / sigma[:, None]) ** 2)
    kernel = (kernel / kernel.sum(dim=1, keepdim=True)).to(device=x.device, dtype=x.dtype)
    padded = nnf.pad(x, (1, 1, 1, 1), mode="reflect")
    weights = [kernel[:, j].view(batch, 1, 1, 1) for j in range(3)]
    rows = sum(w * padded[..., :, j:j + width] for j, w in enumerate(weights))
    return sum(w * rows[..., i:i + height, :] for i, w in enumerate(weights))


def gaussian_blur3_uint8(image: np.ndarray, sigma: float) -> np.ndarray:
    """3 x 3 Gaussian blur of an 8-bit image, as OpenCV's ``GaussianBlur(img, (3, 3), sigma)`` on uint8.

    Same kernel and border as :func:`gaussian_blur3` (OpenCV's default border is
    reflect-101, which is torch's ``reflect``); the result is rounded to the nearest
    level (OpenCV's fixed-point arithmetic can differ from this by one level, rarely).

    Args:
        image: (H, W, C) or (H, W) uint8 (H, W >= 2).
        sigma: > 0.

    Returns:
        uint8 array of the same shape.
    """
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        raise TypeError(f"gaussian_blur3_uint8 expects uint8, got {arr.dtype}")
    hwc = arr[..., None] if arr.ndim == 2 else arr
    x = torch.from_numpy(np.ascontiguousarray(hwc.transpose(2, 0, 1))).to(torch.float64)[None]
    blurred = gaussian_blur3(x, float(sigma))[0].permute(1, 2, 0).numpy()
    out = np.clip(np.floor(blurred + 0.5), 0, 255).astype(np.uint8)
    return out[..., 0] if arr.ndim == 2 else out


def erode_masks(mask: torch.Tensor, sizes: Sequence[int]) -> torch.Tensor:
    """Erode each sample's mask with its own square (border = no erosion).

    Args:
        mask: (B, 1, H, W) float 0/1 tensor, any device.
        sizes: B odd square sides (1 = unchanged).

    Returns:
        (B, 1, H, W) tensor like ``mask``.
    """
    out = mask.clone()
    for size in sorted(set(int(s) for s in sizes)):
        if size == 1:
            continue
        rows = [i for i, s in enumerate(sizes) if int(s) == size]
        out[rows] = erode_mask(mask[rows, 0], size)[:, None]
    return out
