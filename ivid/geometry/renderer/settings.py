"""Memory and speed budgets of the renderer, with one set of defaults per kind of device.

Nothing here changes a rendered value: every budget only decides how much work is
done at once (chunk sizes, block sizes) or whether a shortcut that needs a
device -> host synchronisation is taken. The table with what each one trades is in
``docs/renderer.md#settings-and-budgets``; :func:`settings_for` is the one place
that picks the defaults by device.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Union

import torch

__all__ = ["RenderSettings", "CPU_SETTINGS", "ACCELERATOR_SETTINGS", "settings_for"]


@dataclasses.dataclass(frozen=True)
class RenderSettings:
    """How much the renderer does at once (none of it changes the result).

    Attributes:
        fragment_budget: candidate work items (rows + samples) of the span and
            homogeneous paths rasterised at once.
        dense_budget: candidate samples of the dense path evaluated at once (the
            smaller of this and ``fragment_budget`` is used).
        simple_pixel_budget: frame pixels (frames x S x S) rasterised at once by
            :func:`~ivid.geometry.renderer.simple_render` (warps, reprojection).
        aggregation_pixel_budget: frame pixels (targets x meshes x S x S) rasterised
            at once by :func:`~ivid.geometry.renderer.aggregation_render`.
        fusion_pixel_budget: frame pixels (target cameras x S x S) that
            ``render_fusion`` hands to one aggregation render.
        shade_block_pixels: pixels decoded and shaded per block of framebuffer rows;
            None: a whole chunk at once.
        resolve_block_pixels: pixels per CPU thread whose barycentrics are computed
            at once inside a shading block; None: the whole block at once.
        host_checks: take shortcuts that read a device value on the host (skip the
            face-culling gather when nothing is culled; stop checking the fold's
            weak-evidence rule once a block is settled). Cheap on CPU only.
        stack_channels: make channel-first copies by stacking columns (fast on CPU)
            instead of a transposing copy.
    """

    fragment_budget: int
    dense_budget: int
    simple_pixel_budget: int
    aggregation_pixel_budget: int
    fusion_pixel_budget: int
    shade_block_pixels: Optional[int]
    resolve_block_pixels: Optional[int]
    host_checks: bool
    stack_channels: bool

    def replace(self, **changes) -> "RenderSettings":
        """A copy with some fields changed (e.g. smaller budgets in tests)."""
        return dataclasses.replace(self, **changes)


#: CPU: small chunks and blocks stay in cache and reuse their allocations (several times faster)
CPU_SETTINGS = RenderSettings(
    fragment_budget=1 << 19,
    dense_budget=1 << 17,
    simple_pixel_budget=1 << 22,
    aggregation_pixel_budget=1 << 22,
    fusion_pixel_budget=1 << 22,
    shade_block_pixels=1 << 16,
    resolve_block_pixels=1 << 14,
    host_checks=True,
    stack_channels=True,
)

#: CUDA and other accelerators: large launches, no host synchronisation
ACCELERATOR_SETTINGS = RenderSettings(
    fragment_budget=1 << 21,
    dense_budget=1 << 18,
    simple_pixel_budget=1 << 23,
    aggregation_pixel_budget=1 << 22,
    fusion_pixel_budget=1 << 22,
    shade_block_pixels=None,
    resolve_block_pixels=None,
    host_checks=False,
    stack_channels=False,
)


def settings_for(device: Union[torch.device, str]) -> RenderSettings:
    """The default :class:`RenderSettings` of ``device``: :data:`CPU_SETTINGS` on CPU, else
    :data:`ACCELERATOR_SETTINGS`."""
    return CPU_SETTINGS if torch.device(device).type == "cpu" else ACCELERATOR_SETTINGS
