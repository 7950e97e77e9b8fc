"""Warped training conditions for G_c (docs/design.md#training-data), one by one or batched on a device.

Both paths draw every random quantity of a sample from ONE CPU generator seeded
with that sample's seed (:func:`draw_warp`) and then apply the same operations,
so with the same seeds they give the same pairs (up to renderer float noise):

- :func:`build_warp_pair` - one sample, in a DataLoader worker (CPU renderer);
  used by the ``*Warp`` datasets by default.
- :func:`build_warp_batch` - a whole batch on the training device, right before
  the step. Datasets built with ``warp_on_device=True`` return only ``x_0``
  (+ ``classes``) and the per-sample ``seed``; the trainer then calls
  ``dataset.build_device_batch(batch, device)`` (which fills in the dataset's
  options and calls this function).

Pipeline on the [0, 1] RGBD ``x01`` (4 x H x W):

1. ``prewarp_noise``: ``rgbd = x01 + N(0, 0.005 U)``;
2. random camera (theta, phi ~ N(0, std), r = 1 + N(0, 0.1), center ~ N(0, 0.05)^3);
3. ``forward_backward_warp`` (ssaa 3, padding = image_size, depth-edge tolerances
   atol, rtol) -> colour, depth code, mask (already masked);
4. ``postwarp_noise``: ``y += N(0, 0.03 U)``;
5. ``blur``: with p = 0.8, ``y_rgb = blur3x3(x01_rgb, sigma = U + 1e-3)`` (clean x01);
6. ``erode_rgb``: ``mask_rgb = erode(mask, k x k)``, k in {1, 3, ..., erode_max}; ``y_rgb *= mask_rgb``;
   only then does a sample carry ``mask_rgb`` (as the reference: without the augment there is
   none, and G_c then has 9 input channels);
7. ``y *= mask``; then to [-1, 1] as the dataset normalises (masked pixels -> -1).

``std``, ``atol``/``rtol`` and ``erode_max`` are :class:`WarpSettings`; the defaults are
the released values (0.15, 0.02, 9), chosen for 128-pixel images. At 32 pixels one
pixel spans about four times the depth change, so 0.02 cuts most of a scene into
"discontinuities" and leaves the model almost nothing to condition on
(docs/evaluation.md, "Condition usage"); the demo config uses 0.1 and 3.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import torch

from .augment import (
    CAMERA_ANGLE_STD,
    ERODE_SIZES,
    POSTWARP_NOISE_MAX_STD,
    PREWARP_NOISE_MAX_STD,
    camera_modelview,
    check_augments,
    draw_blur,
    draw_camera,
    draw_erode_size,
    draw_noise,
    erode_masks,
    gaussian_blur3,
)
from .preprocess import normalize_rgbd, unnormalize_rgbd

#: renderer settings of the training warp (docs/conventions.md)
WARP_SSAA = 3
WARP_ATOL = 0.02
WARP_RTOL = 0.02
WARP_FOV = 45.0


@dataclasses.dataclass(frozen=True)
class WarpSettings:
    """The tunable constants of a warped training condition (defaults: the released values).

    Attributes:
        std: standard deviation of the random camera's yaw and pitch (radians).
        atol, rtol: depth-edge tolerances of the backward mesh and the mask (depth code units).
        erode_max: largest side of the ``erode_rgb`` square (odd, pixels).
    """

    std: float = CAMERA_ANGLE_STD
    atol: float = WARP_ATOL
    rtol: float = WARP_RTOL
    erode_max: int = ERODE_SIZES[-1]

    def __post_init__(self) -> None:
        if not (self.std >= 0 and self.atol > 0 and self.rtol > 0):
            raise ValueError(f"warp settings: need std >= 0 and atol, rtol > 0, got {self}")
        if not isinstance(self.erode_max, int) or self.erode_max < 1 or self.erode_max % 2 == 0:
            raise ValueError(f"erode_rgb_max: must be an odd integer >= 1, got {self.erode_max!r}")


@dataclasses.dataclass
class WarpDraw:
    """Every random quantity of one warped sample (see module docstring).

    Attributes:
        prewarp_noise: (4, H, W) float32 CPU tensor, or None without ``prewarp_noise``.
        theta, phi: camera yaw / pitch in radians; ``radius``, ``center``: orbit radius, look-at point.
        postwarp_noise: (4, H, W) float32 CPU tensor, or None without ``postwarp_noise``.
        use_blur, blur_sigma: ``blur`` augment (``use_blur`` False without it).
        erode_size: side of the ``mask_rgb`` erosion square (1 without ``erode_rgb``).
    """

    prewarp_noise: Optional[torch.Tensor]
    theta: float
    phi: float
    radius: float
    center: Tuple[float, float, float]
    postwarp_noise: Optional[torch.Tensor]
    use_blur: bool
    blur_sigma: float
    erode_size: int

    @property
    def modelview(self) -> np.ndarray:
        """(4, 4) float32 world -> camera matrix of the random camera."""
        return camera_modelview(self.theta, self.phi, self.radius, self.center)


def sample_generator(seed: int) -> torch.Generator:
    """The CPU generator every random draw of one sample comes from."""
    return torch.Generator().manual_seed(int(seed))


def draw_warp(generator: torch.Generator, image_size: int, augments: Sequence[str],
              settings: WarpSettings = WarpSettings()) -> WarpDraw:
    """Draw one sample's random quantities, in a fixed order (enabled augments only)."""
    augments = check_augments(augments)
    shape = (4, image_size, image_size)
    prewarp = draw_noise(shape, PREWARP_NOISE_MAX_STD, generator) if "prewarp_noise" in augments else None
    theta, phi, radius, center = draw_camera(generator, settings.std)
    postwarp = draw_noise(shape, POSTWARP_NOISE_MAX_STD, generator) if "postwarp_noise" in augments else None
    use_blur, blur_sigma = draw_blur(generator) if "blur" in augments else (False, 0.0)
    erode_size = draw_erode_size(generator, settings.erode_max) if "erode_rgb" in augments else 1
    return WarpDraw(prewarp, theta, phi, radius, center, postwarp, use_blur, blur_sigma, erode_size)


def _warp(rgbd01: torch.Tensor, modelview: torch.Tensor, near: float, far: float, mode: str,
          settings: WarpSettings):
    """forward_backward_warp on (..., H, W, 4) -> (color, z, mask) as (..., C, H, W) float32."""
    from ivid.geometry import forward_backward_warp  # the renderer

    size = rgbd01.shape[-2]
    out = forward_backward_warp(rgbd01, modelview, padding=size, fov=WARP_FOV, near=near, far=far,
                                mode=mode, atol=settings.atol, rtol=settings.rtol, ssaa=WARP_SSAA)
    return tuple(torch.as_tensor(out[k]).to(device=rgbd01.device, dtype=torch.float32).movedim(-1, -3)
                 for k in ("color", "depth", "mask"))


def _finish(x01: torch.Tensor, color: torch.Tensor, z01: torch.Tensor, mask: torch.Tensor,
            draws: Sequence[WarpDraw], erode_rgb: bool
            ) -> Tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
    """Steps 4-7 on a batch: (B,4,H,W) x01, warp outputs -> (y01, mask, mask_rgb or None without erode_rgb)."""
    device = x01.device
    y01 = torch.cat([color, z01], dim=1)
    for i, draw in enumerate(draws):
        if draw.postwarp_noise is not None:
            y01[i] += draw.postwarp_noise.to(device)
    blurred = [i for i, d in enumerate(draws) if d.use_blur]
    if blurred:
        sigmas = [draws[i].blur_sigma for i in blurred]
        y01[blurred, :3] = gaussian_blur3(x01[blurred, :3], sigmas)
    mask = (mask > 0.5).to(torch.float32)
    mask_rgb = erode_masks(mask, [d.erode_size for d in draws]) if erode_rgb else None
    if mask_rgb is not None:
        y01[:, :3] *= mask_rgb
    y01 *= mask
    return y01, mask, mask_rgb


def _pose(draws: Sequence[WarpDraw], device) -> torch.Tensor:
    return torch.tensor([[d.theta, d.phi] for d in draws], dtype=torch.float32, device=device)


def build_warp_pair(x01: torch.Tensor, draw: WarpDraw, near: float = 0.5, far: float = 100.0,
                    mode: str = "z_buffer", settings: WarpSettings = WarpSettings(),
                    erode_rgb: bool = True) -> Dict[str, torch.Tensor]:
    """One warped condition (CPU or any device; unbatched renderer call).

    Args:
        x01: (4, H, W) float32 RGBD in [0, 1] (depth channel = depth code of ``mode``).
        draw: the sample's random quantities (:func:`draw_warp`).
        near, far, mode: depth encoding of the depth channel.
        settings: depth-edge tolerances (the draw already holds the camera and erosion).
        erode_rgb: the ``erode_rgb`` augment is on: erode ``mask_rgb`` and return it.

    Returns:
        dict with ``y01`` (4, H, W) in [0, 1] (+ noise; 0 where masked), ``mask``
        (1, H, W) float32 0/1, ``pose`` (2,) float32 (theta, phi), and with ``erode_rgb``
        ``mask_rgb`` (1, H, W) float32 0/1.
    """
    rgbd = x01 if draw.prewarp_noise is None else x01 + draw.prewarp_noise.to(x01.device)
    modelview = torch.from_numpy(draw.modelview).to(x01.device)
    color, z01, mask = _warp(rgbd.permute(1, 2, 0).contiguous(), modelview, near, far, mode, settings)
    y01, mask, mask_rgb = _finish(x01[None], color[None], z01[None], mask[None], [draw], erode_rgb)
    out = {"y01": y01[0], "mask": mask[0], "pose": _pose([draw], x01.device)[0]}
    if mask_rgb is not None:
        out["mask_rgb"] = mask_rgb[0]
    return out


def build_warp_batch(x_0: torch.Tensor, seeds: Sequence[int], augments: Sequence[str] = (),
                     near: float = 0.5, far: float = 100.0, mode: str = "z_buffer",
                     normalize: bool = True, normalize_depth: bool = True,
                     device: Optional[torch.device] = None,
                     settings: WarpSettings = WarpSettings()) -> Dict[str, torch.Tensor]:
    """Warped conditions for a whole batch on ``device`` (one batched renderer call).

    Gives the same pairs as the ``*Warp`` datasets' worker path for the same
    per-sample seeds (the seeds a ``warp_on_device=True`` dataset returns).

    Args:
        x_0: (B, 4, H, W) RGBD as the dataset returns it ([-1, 1] when normalised).
        seeds: B per-sample seeds (list or int64 tensor).
        augments, near, far, mode, normalize, normalize_depth: the dataset's options.
        device: where to build (default: ``x_0``'s device).
        settings: camera spread, depth-edge tolerances and erosion (:class:`WarpSettings`).

    Returns:
        dict with ``x_0`` (B, 4, H, W) on ``device``, ``y`` (B, 4, H, W) normalised like
        ``x_0`` (masked pixels -1 when normalised), ``mask`` (B, 1, H, W) float32 0/1,
        ``pose`` (B, 2) float32, and with the ``erode_rgb`` augment ``mask_rgb`` (B, 1, H, W).
    """
    device = torch.device(device) if device is not None else x_0.device
    x_0 = x_0.to(device=device, dtype=torch.float32)
    seeds = [int(s) for s in (seeds.tolist() if isinstance(seeds, torch.Tensor) else seeds)]
    if len(seeds) != x_0.shape[0]:
        raise ValueError(f"build_warp_batch: {len(seeds)} seeds for a batch of {x_0.shape[0]}")
    draws = [draw_warp(sample_generator(s), x_0.shape[-1], augments, settings) for s in seeds]
    x01 = unnormalize_rgbd(x_0, normalize, normalize_depth)
    rgbd = x01.clone()
    for i, draw in enumerate(draws):
        if draw.prewarp_noise is not None:
            rgbd[i] += draw.prewarp_noise.to(device)
    modelviews = torch.from_numpy(np.stack([d.modelview for d in draws])).to(device)
    color, z01, mask = _warp(rgbd.permute(0, 2, 3, 1).contiguous(), modelviews, near, far, mode, settings)
    y01, mask, mask_rgb = _finish(x01, color, z01, mask, draws, "erode_rgb" in augments)
    y = normalize_rgbd(y01, normalize, normalize_depth)
    out = {"x_0": x_0, "y": y, "mask": mask, "pose": _pose(draws, device)}
    if mask_rgb is not None:
        out["mask_rgb"] = mask_rgb
    return out
