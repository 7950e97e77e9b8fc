"""Random draws with an explicit ``torch.Generator`` on any device.

A generator lives on one device; these helpers draw on the generator's device
and move the result to the requested one, so a CPU generator gives the same
numbers whether the model runs on CPU or GPU. With ``generator=None`` they draw
from torch's global RNG on the target device.
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

import torch

__all__ = ["randn", "rand", "randint"]

DeviceLike = Union[str, torch.device, None]


def _draw_device(generator: Optional[torch.Generator], device: torch.device) -> torch.device:
    return device if generator is None else generator.device


def randn(shape: Sequence[int], generator: Optional[torch.Generator] = None, device: DeviceLike = None,
          dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Standard normal samples of ``shape`` and ``dtype`` on ``device`` (default CPU)."""
    device = torch.device(device or "cpu")
    out = torch.randn(tuple(shape), generator=generator, device=_draw_device(generator, device), dtype=dtype)
    return out.to(device)


def rand(shape: Sequence[int], generator: Optional[torch.Generator] = None, device: DeviceLike = None,
         dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Uniform [0, 1) samples of ``shape`` and ``dtype`` on ``device`` (default CPU)."""
    device = torch.device(device or "cpu")
    out = torch.rand(tuple(shape), generator=generator, device=_draw_device(generator, device), dtype=dtype)
    return out.to(device)


def randint(low: int, high: int, shape: Sequence[int], generator: Optional[torch.Generator] = None,
            device: DeviceLike = None) -> torch.Tensor:
    """Uniform integers in ``[low, high)`` of ``shape``, int64, on ``device`` (default CPU)."""
    device = torch.device(device or "cpu")
    out = torch.randint(low, high, tuple(shape), generator=generator, device=_draw_device(generator, device))
    return out.to(device)
