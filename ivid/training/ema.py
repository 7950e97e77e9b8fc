"""Exponential moving averages of the (float32 master) parameters, one set per rate."""

from __future__ import annotations

from typing import Dict, Iterable, List, Sequence

import torch

__all__ = ["update_ema", "EmaSet"]


@torch.no_grad()
def update_ema(target_params: Sequence[torch.Tensor], source_params: Sequence[torch.Tensor], rate: float) -> None:
    """``target = rate * target + (1 - rate) * source``, in place, for each pair of tensors."""
    targets = list(target_params)
    sources = [s.detach() for s in source_params]
    if len(targets) != len(sources):
        raise ValueError(f"update_ema: {len(targets)} target tensors but {len(sources)} source tensors")
    if targets:
        torch._foreach_lerp_(targets, sources, 1.0 - rate)


class EmaSet:
    """EMA copies of a list of float32 parameters for each rate in ``rates``.

    Args:
        params: the parameters to average (float32 masters); copied at construction.
        rates: EMA decay rates, e.g. ``[0.9999]``. Rates are kept in the given order
            and identified by their ``str(rate)`` (file names ``ema_<rate>_step...``).
    """

    def __init__(self, params: Iterable[torch.Tensor], rates: Sequence[float]):
        params = list(params)
        self.rates: List[float] = [float(r) for r in rates]
        for r in self.rates:
            if not 0.0 <= r <= 1.0:
                raise ValueError(f"trainer.args.ema_rate: {r} is not in [0, 1]")
        self.params: Dict[float, List[torch.Tensor]] = {
            r: [p.detach().clone().float() for p in params] for r in self.rates}

    def update(self, source_params: Sequence[torch.Tensor]) -> None:
        for r in self.rates:
            update_ema(self.params[r], source_params, r)

    def reset(self, params: Sequence[torch.Tensor]) -> None:
        """Restart every EMA from ``params`` (e.g. the weights every rank agreed on at the start)."""
        for r in self.rates:
            self.copy_from(r, params)

    def copy_from(self, rate: float, tensors: Sequence[torch.Tensor]) -> None:
        """Overwrite the EMA of ``rate`` with ``tensors`` (e.g. loaded from a checkpoint)."""
        with torch.no_grad():
            for dst, src in zip(self.params[rate], tensors):
                dst.copy_(src)
