"""Beta schedules and the float64 tables derived from them (pure NumPy functions).

Index convention: ``t`` is 0-based, ``t in [0, T-1]``, and index ``t`` means
``t + 1`` noising steps (``alphas_cumprod[t] = prod_{i<=t} (1 - betas[i])``).

:func:`extract` is the one bridge to torch: it looks up table entries for a
batch of indices and returns them as a **float32** tensor shaped to broadcast
over an image batch, as the reference does (even for float64 inputs).
"""

from __future__ import annotations

import math
from typing import Dict

import numpy as np
import torch

__all__ = ["BETA_SCHEDULES", "linear_betas", "cosine_betas", "get_betas", "diffusion_tables",
           "ddim_tables", "ddpm_tables", "extract"]

#: maximum beta of the cosine schedule (improved DDPM)
COSINE_MAX_BETA = 0.999
#: offset s of the cosine schedule
COSINE_OFFSET = 0.008


def linear_betas(timesteps: int) -> np.ndarray:
    """``linspace(1e-4 * s, 0.02 * s, T)`` with ``s = 1000 / T``; float64, shape ``(T,)``."""
    scale = 1000.0 / timesteps
    return np.linspace(scale * 1e-4, scale * 0.02, timesteps, dtype=np.float64)


def cosine_betas(timesteps: int) -> np.ndarray:
    """Improved-DDPM cosine schedule: ``beta_i = min(1 - abar((i+1)/T) / abar(i/T), 0.999)``; float64 ``(T,)``."""
    def alpha_bar(u: float) -> float:
        return math.cos((u + COSINE_OFFSET) / (1 + COSINE_OFFSET) * math.pi / 2) ** 2

    betas = [min(1 - alpha_bar((i + 1) / timesteps) / alpha_bar(i / timesteps), COSINE_MAX_BETA)
             for i in range(timesteps)]
    return np.array(betas, dtype=np.float64)


#: name -> function(T) -> betas
BETA_SCHEDULES = {"linear": linear_betas, "cosine": cosine_betas}


def get_betas(beta_schedule: str, timesteps: int) -> np.ndarray:
    """Betas of a named schedule (``"linear"`` or ``"cosine"``), float64 ``(T,)``."""
    if beta_schedule not in BETA_SCHEDULES:
        raise ValueError(f"unknown beta_schedule {beta_schedule!r}; valid: {', '.join(BETA_SCHEDULES)}")
    if not isinstance(timesteps, int) or timesteps < 1:
        raise ValueError(f"timesteps must be a positive integer, got {timesteps!r}")
    betas = BETA_SCHEDULES[beta_schedule](timesteps)
    if not (betas.min() > 0 and betas.max() < 1):
        raise ValueError(f"beta_schedule {beta_schedule!r} with timesteps={timesteps} gives betas outside (0, 1) "
                         f"(max {betas.max():.3g}); use more timesteps")
    return betas


def diffusion_tables(betas: np.ndarray) -> Dict[str, np.ndarray]:
    """Forward-process tables: ``betas, alphas_cumprod, sqrt_alphas_cumprod, sqrt_one_minus_alphas_cumprod``."""
    betas = np.asarray(betas, dtype=np.float64)
    alphas_cumprod = np.cumprod(1.0 - betas)
    return {
        "betas": betas,
        "alphas_cumprod": alphas_cumprod,
        "sqrt_alphas_cumprod": np.sqrt(alphas_cumprod),
        "sqrt_one_minus_alphas_cumprod": np.sqrt(1.0 - alphas_cumprod),
    }


def ddim_tables(alphas_cumprod: np.ndarray) -> Dict[str, np.ndarray]:
    """DDIM tables: ``alphas_cumprod_prev`` (``[1, abar_0, .., abar_{T-2}]``), ``sqrt_recip_alphas_cumprod``,
    ``sqrt_recipm1_alphas_cumprod``; float64 ``(T,)`` each."""
    alphas_cumprod = np.asarray(alphas_cumprod, dtype=np.float64)
    return {
        "alphas_cumprod_prev": np.append(1.0, alphas_cumprod[:-1]),
        "sqrt_recip_alphas_cumprod": np.sqrt(1.0 / alphas_cumprod),
        "sqrt_recipm1_alphas_cumprod": np.sqrt(1.0 / alphas_cumprod - 1.0),
    }


def ddpm_tables(betas: np.ndarray) -> Dict[str, np.ndarray]:
    """Ancestral-sampling tables (the DDIM ones plus the posterior q(x_{t-1} | x_t, x_0)).

    ``posterior_variance = beta_t (1 - abar_{t-1}) / (1 - abar_t)``;
    ``posterior_log_variance_clipped`` replaces the (zero) entry 0 by entry 1
    before the log; ``posterior_mean_coef1/2`` multiply x_0 and x_t.
    """
    betas = np.asarray(betas, dtype=np.float64)
    alphas = 1.0 - betas
    alphas_cumprod = np.cumprod(alphas)
    tables = ddim_tables(alphas_cumprod)
    prev = tables["alphas_cumprod_prev"]
    variance = betas * (1.0 - prev) / (1.0 - alphas_cumprod)
    tables.update({
        "posterior_variance": variance,
        "posterior_log_variance_clipped": np.log(np.append(variance[1], variance[1:])) if len(betas) > 1
        else np.log(np.maximum(variance, 1e-20)),
        "posterior_mean_coef1": betas * np.sqrt(prev) / (1.0 - alphas_cumprod),
        "posterior_mean_coef2": (1.0 - prev) * np.sqrt(alphas) / (1.0 - alphas_cumprod),
    })
    return tables


def extract(table: np.ndarray, t: torch.Tensor, ndim: int) -> torch.Tensor:
    """Look up ``table[t]`` for a batch of indices and shape it to broadcast.

    Args:
        table: float64 ``(T,)`` NumPy table.
        t: ``(N,)`` int64 indices (any device).
        ndim: number of dims of the tensor the result multiplies (e.g. 4 for images).

    Returns:
        float32 tensor ``(N, 1, ..., 1)`` (``ndim`` dims) on ``t``'s device. The
        conversion to float32 happens before any arithmetic, as in the reference.
    """
    values = torch.from_numpy(np.asarray(table)).to(device=t.device)[t.long()].float()
    return values.reshape(values.shape + (1,) * (ndim - values.ndim))
