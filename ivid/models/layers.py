"""Tiny shared primitives of the ADM UNet: float32 GroupNorm, zero init, sinusoidal time encoding."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["GroupNorm32", "Conv1d", "Conv2d", "zero_module", "timestep_frequencies", "PosEncoding"]


class GroupNorm32(nn.GroupNorm):
    """GroupNorm that computes in at least float32 and returns the input dtype.

    Half / bfloat16 inputs are normalised in float32 and cast back (the ADM
    ``GroupNorm32``); float32 and float64 inputs are normalised in their own
    dtype (so a ``model.double()`` runs in float64 throughout).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        compute_dtype = torch.promote_types(x.dtype, torch.float32)
        weight, bias = self.weight, self.bias
        if weight is not None and weight.dtype != compute_dtype:
            weight, bias = weight.to(compute_dtype), bias.to(compute_dtype)
        out = F.group_norm(x.to(compute_dtype), self.num_groups, weight, bias, self.eps)
        return out.to(x.dtype)


def _half_on_cpu(x: torch.Tensor) -> bool:
    return x.dtype == torch.float16 and x.device.type == "cpu"


class Conv1d(nn.Conv1d):
    """``nn.Conv1d`` whose float16 CPU path runs in float32 (see :class:`Conv2d`)."""

    def _conv_forward(self, x, weight, bias):
        if _half_on_cpu(x):
            return super()._conv_forward(x.float(), weight.float(), None if bias is None else bias.float()).half()
        return super()._conv_forward(x, weight, bias)


class Conv2d(nn.Conv2d):
    """``nn.Conv2d`` whose float16 CPU path runs in float32.

    PyTorch's native float16 convolution on CPU is ~30x slower than float32
    here. For float16 inputs on the CPU we therefore convolve the float16
    values (input and half-rounded weights, exactly representable in float32)
    in float32 and round the result to float16: the semantics of a half
    convolution with float32 accumulation, which is what GPU kernels do. Other
    devices and dtypes (CUDA half, bfloat16 autocast, float32/64) use the
    native kernel unchanged.
    """

    def _conv_forward(self, x, weight, bias):
        if _half_on_cpu(x):
            return super()._conv_forward(x.float(), weight.float(), None if bias is None else bias.float()).half()
        return super()._conv_forward(x, weight, bias)


def zero_module(module: nn.Module) -> nn.Module:
    """Zero every parameter of ``module`` in place and return it."""
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


def timestep_frequencies(dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """``exp(-ln(max_period) * k / (dim // 2))`` for k = 0 .. dim//2 - 1, float32, shape ``(dim // 2,)``."""
    half = dim // 2
    # computed on the CPU and then moved to the default device: arithmetic on the
    # 'meta' device would pull in torch's compiler stack (seconds of import time)
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device="cpu") / half)
    return freqs.to(torch.empty(0).device)


class PosEncoding(nn.Module):
    """Sinusoidal embedding of diffusion timesteps (ADM layout, cosines first).

    Holds ``freqs`` as a persistent buffer (it is part of the released
    state_dicts as ``time_embed.0.freqs``).

    ``forward(t)``: ``t`` of shape ``(N,)`` (int or float timestep values, used
    unscaled) -> ``(N, dim)`` in the buffer's dtype: ``[cos(t * f), sin(t * f)]``
    (a zero column is appended when ``dim`` is odd).
    """

    def __init__(self, dim: int, max_period: float = 10000.0):
        super().__init__()
        self.dim = dim
        self.register_buffer("freqs", timestep_frequencies(dim, max_period), persistent=True)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        args = t[:, None].to(self.freqs.dtype) * self.freqs[None]
        emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
        if self.dim % 2:
            emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
        return emb
