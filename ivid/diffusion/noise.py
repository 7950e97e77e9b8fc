"""Random draws with explicit ``torch.Generator`` s on any device.

``generator`` may be:

* ``None``: torch's global RNG, drawn on the target device;
* one ``torch.Generator``: drawn on the generator's device, then moved to the
  target device (so a CPU generator gives the same numbers whatever device the
  model runs on);
* a sequence of generators, one per row (dim 0) of the result: row ``i`` is
  drawn from ``generator[i]`` alone, so a sample's randomness depends on its own
  generator only, whatever else shares its batch.
"""

from __future__ import annotations

from typing import Callable, Sequence, Union

import torch

__all__ = ["GeneratorLike", "randn", "rand", "randint"]

DeviceLike = Union[str, torch.device, None]
GeneratorLike = Union[torch.Generator, Sequence[torch.Generator], None]


def _draw(sample: Callable[..., torch.Tensor], shape: Sequence[int], generator: GeneratorLike,
          device: DeviceLike, **kwargs) -> torch.Tensor:
    device = torch.device(device or "cpu")
    shape = tuple(int(s) for s in shape)
    if generator is None:
        return sample(shape, device=device, **kwargs)
    if isinstance(generator, torch.Generator):
        return sample(shape, generator=generator, device=generator.device, **kwargs).to(device)
    generators = list(generator)
    if not shape or len(generators) != shape[0]:
        raise ValueError(f"got {len(generators)} generators for a draw of shape {shape}: "
                         "a list needs one generator per row (dim 0)")
    rows = [sample((1,) + shape[1:], generator=g, device=g.device, **kwargs).to(device) for g in generators]
    return torch.cat(rows, dim=0)


def randn(shape: Sequence[int], generator: GeneratorLike = None, device: DeviceLike = None,
          dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Standard normal samples of ``shape`` and ``dtype`` on ``device`` (default CPU)."""
    return _draw(torch.randn, shape, generator, device, dtype=dtype)


def rand(shape: Sequence[int], generator: GeneratorLike = None, device: DeviceLike = None,
         dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Uniform [0, 1) samples of ``shape`` and ``dtype`` on ``device`` (default CPU)."""
    return _draw(torch.rand, shape, generator, device, dtype=dtype)


def randint(low: int, high: int, shape: Sequence[int], generator: GeneratorLike = None,
            device: DeviceLike = None) -> torch.Tensor:
    """Uniform integers in ``[low, high)`` of ``shape``, int64, on ``device`` (default CPU)."""
    def sample(size, **kwargs):
        return torch.randint(low, high, size, **kwargs)
    return _draw(sample, shape, generator, device)
