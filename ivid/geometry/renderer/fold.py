"""Fold stage: blend the aggregation renders of a target's meshes, in mesh order, and read them back.

Every mesh of a target camera is rendered into its own framebuffer (its own depth
buffer); :class:`AggregationAccumulator` adds them up per pixel in mesh order, with
the reference's rule for pixels that only have weak (edge / padding) evidence, and
:meth:`AggregationAccumulator.read_back` turns the sums into colour, linear depth
and masks. :func:`window_to_linear` reads a depth buffer back through the clip planes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Optional, Set, Tuple

import torch

from .clip import ClipPlanes
from .settings import settings_for
from .shade import WEAK_DEPTH_WEIGHT

__all__ = ["AggregationAccumulator", "window_to_linear", "DEPTH_EVIDENCE", "COLOR_EVIDENCE"]

#: fold: weights above these count as depth evidence / colour evidence
DEPTH_EVIDENCE = 1e-14
COLOR_EVIDENCE = 1e-6


@dataclass
class AggregationAccumulator:
    """Running per-pixel sums over the meshes of B target images (float32, (B, H, W)).

    ``color_sum`` (3, B, H, W) = sum w*rgb, ``color_weight`` = sum w, ``depth_sum``
    = sum wd * window depth, ``depth_weight`` = sum wd, ``count_depth`` /
    ``count_color`` (int32) = number of meshes with w > 1e-14 / w > 1e-6.
    ``host_checks``: skip work on blocks known to be settled, which needs a
    device -> host read per fold (see :class:`~ivid.geometry.renderer.RenderSettings`).
    """

    color_sum: torch.Tensor
    color_weight: torch.Tensor
    depth_sum: torch.Tensor
    depth_weight: torch.Tensor
    count_depth: torch.Tensor
    count_color: torch.Tensor
    host_checks: bool = True
    #: (start, stop) row blocks whose pixels all have real depth evidence (no more fallback replacement)
    settled: Set[Tuple[Optional[int], Optional[int]]] = field(default_factory=set)

    @classmethod
    def zeros(cls, batch: int, height: int, width: int, device: torch.device,
              host_checks: Optional[bool] = None) -> "AggregationAccumulator":
        """Empty accumulators for ``batch`` target images of H x W pixels (host_checks: default the device's)."""
        def plane(dtype: torch.dtype = torch.float32) -> torch.Tensor:
            return torch.zeros(batch, height, width, dtype=dtype, device=device)
        return cls(torch.zeros(3, batch, height, width, dtype=torch.float32, device=device), plane(), plane(),
                   plane(), plane(torch.int32), plane(torch.int32),
                   settings_for(device).host_checks if host_checks is None else host_checks)

    def fold(self, color: torch.Tensor, weight: torch.Tensor, zbuf: torch.Tensor, rows: slice = slice(None),
             depth_weight: Optional[torch.Tensor] = None) -> None:
        """Add one mesh's framebuffer (per target image); call in mesh order.

        Args:
            color: (3, R, W) float32 shaded colour (finite; only used where the weight
                is > 0); weight: (R, W) float32 alpha (0 = nothing); zbuf: (R, W) float32
                window depth of that mesh.
            rows: the R rows of the (B * H, W) target images they cover (default: all).
            depth_weight: (R, W) float32 depth weight wd when the caller has it (must
                equal 1 where weight > 1e-14, 1e-8 where 0 < weight <= 1e-14, else 0).
        """
        weak = WEAK_DEPTH_WEIGHT
        width = weight.shape[-1]
        color_sum = self.color_sum.view(3, -1, width)[:, rows]
        color_weight, depth_sum, depth_sum_weight, count_depth, count_color = (
            t.view(-1, width)[rows] for t in (self.color_weight, self.depth_sum, self.depth_weight, self.count_depth,
                                              self.count_color))
        has_depth = weight > DEPTH_EVIDENCE
        if depth_weight is None:
            depth_weight = has_depth.to(torch.float32) + ((weight > 0) & ~has_depth).to(torch.float32) * weak
        count_color += weight > COLOR_EVIDENCE
        count_depth += has_depth
        checks = self.host_checks
        key = (rows.start, rows.stop)
        # only weak (edge / padding) evidence so far and this mesh is weak too: keep the farther one. Impossible
        # once every pixel of the block has had real evidence (checked with host_checks, where a sync is cheap).
        if not (checks and key in self.settled):
            only_weak = ((depth_sum_weight - weak).abs_() < weak) & (depth_weight == weak)
            if not checks or bool(only_weak.any()):
                replace = only_weak & (zbuf * weak > depth_sum)
                # exact 0/1 blends: add -> old + new, replace -> new, keep -> old
                keep_old = (~replace).to(torch.float32)
                take_new = (~(only_weak & ~replace)).to(torch.float32)
                color_sum.mul_(keep_old).add_((weight * take_new) * color)
                color_weight.mul_(keep_old).add_(weight * take_new)
                depth_sum.mul_(keep_old).add_((depth_weight * take_new) * zbuf)
                depth_sum_weight.mul_(keep_old).add_(depth_weight * take_new)
                return
        color_sum.add_(weight * color)
        color_weight.add_(weight)
        depth_sum.add_(depth_weight * zbuf)
        depth_sum_weight.add_(depth_weight)
        if checks and key not in self.settled and bool((depth_sum_weight >= 1).all()):
            self.settled.add(key)

    def read_back(self, clip_planes: ClipPlanes) -> Dict[str, torch.Tensor]:
        """Final images of the aggregation render, depth read back through ``clip_planes``.

        Returns:
            ``color`` (B, H, W, 3) float32 = sum w rgb / sum w (0 where sum w = 0);
            ``depth`` (B, H, W) float32 linear depth of the averaged window depth
            (window depth 0, i.e. the near plane, where there is no depth weight);
            ``mask_color`` / ``mask_depth`` (B, H, W) bool (some mesh gave colour /
            depth evidence).
        """
        has_color = self.color_weight > 0
        color = self.color_sum / (self.color_weight + (~has_color).to(torch.float32))
        has_depth = self.depth_weight > 0
        window = self.depth_sum / (self.depth_weight + (~has_depth).to(torch.float32))
        return {"color": color.permute(1, 2, 3, 0), "depth": window_to_linear(window, clip_planes),
                "mask_color": self.count_color > 0, "mask_depth": self.count_depth > 0}


def window_to_linear(window: torch.Tensor, clip_planes: ClipPlanes) -> torch.Tensor:
    """Linear eye depth of a window depth: ``n f / (f - w (f - n))`` with the clip planes (n, f) (float32).

    A cleared buffer (w = 1) reads back as the far plane, w = 0 as the near plane.
    """
    near, far = clip_planes
    window = window.to(torch.float32)
    return torch.full_like(window, near * far) / (far - window * (far - near))
