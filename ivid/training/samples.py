"""Sample grids written during training.

A grid has one column per sample and these rows (each an ``H x W x 3`` uint8 tile):

* ``sample rgb``, ``sample depth`` (colourised z, near = warm);
* for the conditional model: ``cond rgb`` (``y`` RGB where ``mask_rgb``),
  ``cond depth`` (``y`` depth where ``mask``), ``mask``;
* for super-resolution: ``low-res rgb``, ``low-res depth`` (nearest-upsampled);
* ``data rgb``, ``data depth``: the dataset's ``x_0`` (the ground truth for the
  conditional and super-resolution models, an example for the others).

:class:`GridSampler` samples them with DDIM from the weights it is given (the trainer's
EMA or model weights), always from the same batch and noise.
"""

from __future__ import annotations

import copy
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ivid.utils.images import colorize_depth, make_grid, pm1_to_uint8

__all__ = ["rgb_tiles", "depth_tiles", "mask_tiles", "sample_rows", "grid_from_rows", "GridSampler"]


def rgb_tiles(x_pm1: torch.Tensor, mask: Optional[torch.Tensor] = None) -> List[np.ndarray]:
    """``N x >=3 x H x W`` in [-1, 1] -> N tiles of the first three channels (black where ``mask`` is 0)."""
    rgb = x_pm1[:, :3].detach().float().cpu()
    if mask is not None:
        rgb = torch.where(mask.detach().cpu() > 0.5, rgb, torch.full_like(rgb, -1.0))
    return [pm1_to_uint8(im.permute(1, 2, 0)) for im in rgb]


def depth_tiles(x_pm1: torch.Tensor, mask: Optional[torch.Tensor] = None, channel: int = 3) -> List[np.ndarray]:
    """Colourised depth tiles from channel ``channel`` of ``N x C x H x W`` in [-1, 1]."""
    z01 = ((x_pm1[:, channel].detach().float().cpu() + 1.0) / 2.0).numpy()
    masks = [None] * len(z01) if mask is None else [m[0] > 0.5 for m in mask.detach().cpu().numpy()]
    return [colorize_depth(z, m) for z, m in zip(z01, masks)]


def mask_tiles(mask: torch.Tensor) -> List[np.ndarray]:
    """``N x 1 x H x W`` {0, 1} -> grey tiles."""
    m = (mask.detach().float().cpu()[:, 0].clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    return [np.repeat(x[..., None], 3, axis=2) for x in m]


def _resize_nearest(x: torch.Tensor, size: int) -> torch.Tensor:
    return x if x.shape[-1] == size else F.interpolate(x.float(), size=(size, size), mode="nearest")


def sample_rows(samples: torch.Tensor, batch: Dict[str, torch.Tensor], kind: str) -> List[Tuple[str, List[np.ndarray]]]:
    """Build the named rows of a grid.

    Args:
        samples: ``N x 4 x H x W`` generated RGBD in [-1, 1].
        batch: the data batch the samples were conditioned on (``x_0`` and, for
            ``kind == "inpaint"``, ``y``, ``mask``, ``mask_rgb``; for ``"superres"``, ``y``).
        kind: ``"basic"``, ``"inpaint"`` or ``"superres"``.
    """
    size = samples.shape[-1]
    rows = [("sample rgb", rgb_tiles(samples)), ("sample depth", depth_tiles(samples))]
    if kind == "inpaint":
        mask, mask_rgb = batch["mask"], batch.get("mask_rgb", batch["mask"])
        rows += [("cond rgb", rgb_tiles(batch["y"], mask_rgb)), ("cond depth", depth_tiles(batch["y"], mask)),
                 ("mask", mask_tiles(mask))]
    elif kind == "superres":
        low = _resize_nearest(batch["y"], size)
        rows += [("low-res rgb", rgb_tiles(low)), ("low-res depth", depth_tiles(low))]
    x_0 = _resize_nearest(batch["x_0"], size)
    rows += [("data rgb", rgb_tiles(x_0)), ("data depth", depth_tiles(x_0))]
    return rows


def grid_from_rows(rows: Sequence[Tuple[str, List[np.ndarray]]]) -> np.ndarray:
    """Tile rows of equally many, equally sized tiles into one ``H x W x 3`` uint8 image."""
    ncol = len(rows[0][1])
    tiles = [tile for _, row in rows for tile in row]
    return make_grid(tiles, nrow=ncol)


class GridSampler:
    """DDIM sample grids of one fixed batch, from the weights given to :meth:`grid`.

    Args:
        framework: the training framework; sampling uses a shallow copy whose backbone is a
            private eval-mode copy of ``model`` (made on the first grid).
        model: the trained backbone (unwrapped from DDP / torch.compile).
        batch: the fixed data batch on ``device`` (``x_0`` and the conditions of ``kind``).
        sample_kwargs: further arguments of ``DdimSampler.sample`` (``classes``, ``strength``,
            conditions) for ``batch``.
        kind: ``"basic"``, ``"inpaint"`` or ``"superres"`` (:func:`sample_rows`).
        steps: DDIM steps.
        seed: seed of the sampling noise (the same for every grid).
        device: where to sample.
    """

    def __init__(self, framework: Any, model: nn.Module, batch: Dict[str, Any], sample_kwargs: Dict[str, Any],
                 kind: str, steps: int, seed: int, device: torch.device):
        self.framework, self.model, self.batch, self.sample_kwargs = framework, model, batch, sample_kwargs
        self.kind, self.steps, self.seed, self.device = kind, int(steps), int(seed), device
        self._sampling_model: Optional[nn.Module] = None

    @torch.no_grad()
    def grid(self, state_dict: Mapping[str, torch.Tensor]) -> np.ndarray:
        """Sample the batch with the weights ``state_dict``; returns an ``H x W x 3`` uint8 grid."""
        from ivid.diffusion import DdimSampler

        if self._sampling_model is None:
            self._sampling_model = copy.deepcopy(self.model).eval().requires_grad_(False)
        self._sampling_model.load_state_dict(state_dict, strict=True)
        framework = copy.copy(self.framework)
        framework.backbone = self._sampling_model
        generator = torch.Generator(device=self.device).manual_seed(self.seed)
        result = DdimSampler(framework).sample(len(self.batch["x_0"]), steps=self.steps, generator=generator,
                                               **self.sample_kwargs)
        return grid_from_rows(sample_rows(result.samples, self.batch, self.kind))
