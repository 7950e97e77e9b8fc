"""Sampling-time guidance on the predicted x_0 of an RGBD sample (docs/design.md#samplers).

Each function is pure (returns a new tensor) and acts on
``x_0`` ``(N, 4, H, W)`` in [-1, 1] (channels 0-2 RGB, 3 = encoded depth z mapped
to [-1, 1]); masks are ``(N, 1, H, W)`` in {0, 1} (soft values blend linearly).
The samplers apply them to the predicted x_0 (clamped to [-1, 1] only with ``clip_denoised``)
and before recomputing eps from it.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import torch

__all__ = ["replace_rgb", "replace_depth", "constrain_depth", "apply_guidance", "check_guidance", "GUIDANCE_KEYS"]

#: keyword names of the guidance options a sampler accepts
GUIDANCE_KEYS = ("replace_rgb", "replace_depth", "constrain_depth")


def _blend(x: torch.Tensor, target: torch.Tensor, weight: float, mask: torch.Tensor) -> torch.Tensor:
    """Where mask = 1: ``weight * target + (1 - weight) * x``; elsewhere x."""
    blended = weight * target + (1 - weight) * x
    return mask * blended + (1 - mask) * x


def replace_rgb(x_0: torch.Tensor, weight: float, rgb_cond: torch.Tensor, mask_rgb: torch.Tensor) -> torch.Tensor:
    """Pull the RGB of x_0 towards the condition inside ``mask_rgb``.

    Args:
        x_0: ``(N, 4, H, W)`` predicted clean sample.
        weight: blend weight of the condition (CLI default 0.1).
        rgb_cond: ``(N, 3, H, W)`` condition colours in [-1, 1].
        mask_rgb: ``(N, 1, H, W)`` where the condition colour is valid.
    Returns:
        ``(N, 4, H, W)``: RGB ``<- weight * rgb_cond + (1 - weight) * rgb`` inside the mask; depth unchanged.
    """
    rgb = _blend(x_0[:, :3], rgb_cond.to(x_0), weight, mask_rgb.to(x_0))
    return torch.cat([rgb, x_0[:, 3:]], dim=1)


def replace_depth(x_0: torch.Tensor, weight: float, depth_cond: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Pull the depth channel of x_0 towards ``depth_cond`` (``(N, 1, H, W)`` in [-1, 1]) inside ``mask``.

    Returns ``(N, 4, H, W)``: depth ``<- weight * depth_cond + (1 - weight) * depth`` where mask = 1.
    """
    depth = _blend(x_0[:, 3:4], depth_cond.to(x_0), weight, mask.to(x_0))
    return torch.cat([x_0[:, :3], depth, x_0[:, 4:]], dim=1)


def constrain_depth(x_0: torch.Tensor, weight: float, depth_convex: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Keep new content behind the rubber-sheet surface of earlier views, outside ``mask``.

    Args:
        x_0: ``(N, 4, H, W)``; depth channel = z-buffer code in [-1, 1] (larger = farther).
        weight: blend weight (CLI default 0.5).
        depth_convex: ``(N, 1, H, W)`` unmasked aggregated depth code in [-1, 1].
        mask: ``(N, 1, H, W)`` the ``replace_depth`` mask (1 = known depth).
    Returns:
        ``(N, 4, H, W)``: outside the mask, depth ``<- weight * max(depth, depth_convex) + (1 - weight) * depth``.
    """
    depth = x_0[:, 3:4]
    target = torch.maximum(depth, depth_convex.to(x_0))
    depth = _blend(depth, target, weight, 1 - mask.to(x_0))
    return torch.cat([x_0[:, :3], depth, x_0[:, 4:]], dim=1)


# aliases: apply_guidance's keyword arguments shadow the function names
_replace_rgb_fn, _replace_depth_fn, _constrain_depth_fn = replace_rgb, replace_depth, constrain_depth


def apply_guidance(x_0: torch.Tensor, is_last_step: bool,
                   replace_rgb: Optional[Tuple[float, torch.Tensor, torch.Tensor]] = None,
                   replace_depth: Optional[Tuple[float, torch.Tensor, torch.Tensor]] = None,
                   constrain_depth: Optional[Tuple[float, torch.Tensor]] = None) -> torch.Tensor:
    """Apply the guidance options a sampler was given to one step's x_0 prediction.

    ``replace_rgb=(weight, rgb_cond, mask_rgb)`` is skipped on the last step
    (``t_prev == 0``); ``replace_depth=(weight, depth_cond, mask)`` applies on every
    step; ``constrain_depth=(weight, depth_convex)`` uses the replace_depth mask and
    therefore needs ``replace_depth``.
    """
    if replace_rgb is not None and not is_last_step:
        x_0 = _replace_rgb_fn(x_0, *replace_rgb)
    if replace_depth is not None:
        x_0 = _replace_depth_fn(x_0, *replace_depth)
        if constrain_depth is not None:
            weight, depth_convex = constrain_depth
            x_0 = _constrain_depth_fn(x_0, weight, depth_convex, replace_depth[2])
    return x_0


def check_guidance(options: dict) -> None:
    """Validate guidance options (tuple lengths; constrain_depth only with replace_depth)."""
    lengths = {"replace_rgb": 3, "replace_depth": 3, "constrain_depth": 2}
    for key, value in options.items():
        if not isinstance(value, Sequence) or len(value) != lengths[key]:
            raise ValueError(f"{key} must be a tuple of {lengths[key]} items "
                             f"(weight, tensor{', mask' if lengths[key] == 3 else ''}), got {type(value).__name__}")
    if "constrain_depth" in options and "replace_depth" not in options:
        raise ValueError("constrain_depth needs replace_depth: it acts outside the replace_depth mask")
