"""DPM-Solver++(2M): a few-step multistep solver over a framework's (guided) eps prediction.

Lu et al. 2022, "DPM-Solver++: Fast Solver for Guided Sampling of Diffusion
Probabilistic Models", Algorithm 2 (multistep, second order, data prediction).
With ``alpha_t = sqrt(abar_t)``, ``sigma_t = sqrt(1 - abar_t)`` and the half
log-SNR ``lambda_t = log(alpha_t / sigma_t)``, the probability-flow ODE written
in the data prediction ``D(x_t, t)`` (= the predicted x_0) is integrated
exactly in its linear part; one step from ``t_{i-1}`` to ``t_i``
(``h_i = lambda_{t_i} - lambda_{t_{i-1}}``) is::

    x_{t_i} = (sigma_{t_i} / sigma_{t_{i-1}}) x_{t_{i-1}} - alpha_{t_i} (exp(-h_i) - 1) D_i

with ``D_i = D_{i-1}`` on the first step (first order, which is exactly DDIM with
eta = 0) and afterwards the linear extrapolation in lambda of the last two data
predictions, ``r_i = h_{i-1} / h_i``::

    D_i = (1 + 1 / (2 r_i)) D(x_{t_{i-1}}) - 1 / (2 r_i) D(x_{t_{i-2}}).

**Time grid.** The model only knows the T discrete timesteps of its schedule, so
the solver evaluates it at ``steps`` integer model indices (any count in
``[1, T]``, not only divisors of T), from ``T - 1`` down, and then steps to the
clean sample (``sigma = 0``). Two grids (``grid=``):

* ``"logSNR"`` (default): ``steps + 1`` points uniform in lambda between the
  noisiest index ``T - 1`` and index 0; the first ``steps`` are the evaluation
  points (rounded to the nearest index, then made strictly decreasing) and the
  last one is replaced by the clean sample. The exponential integrator is exact
  in its linear part, so its remaining error is governed by the step size in
  lambda, and uniform ``h`` keeps ``r_i = 1`` (the best-conditioned
  extrapolation). It also makes the final jump to ``sigma = 0`` short: the last
  evaluation sits one lambda step before index 0 (sigma 0.027 at 10 steps,
  0.07 at 5 for the linear schedule), where a time-uniform grid would jump
  from sigma 0.32 (index 99 at 10 steps). On the demo models it is the closer
  of the two to the 1000-step solution from 10 steps on (G_c by 2-3x, G_u by
  1.1-2x, one near tie in G_u's depth at 10 steps); at 5 steps its lambda
  steps (h = 1.9) are too long for the extrapolation and the time-uniform
  grid is better (docs/performance.md).
* ``"time_uniform"``: the DDIM grid generalised to any step count: evaluation
  at model index ``round(T (steps - i) / steps) - 1`` for ``i = 0 .. steps-1``;
  equal to :class:`DdimSampler`'s grid when ``steps`` divides T.

**Last step.** The jump to ``sigma = 0`` (lambda = +inf) is first order: the
second-order correction's ``1 / r_i`` blows up there, while the first-order
step lands exactly on the data prediction. The sample is therefore the last
evaluation's (guided) x_0 prediction, as in DDIM (whose last step also returns
its x_0). The first step is first order too (no history yet), so ``steps = 1``
and ``steps = 2`` are DDIM steps and second order begins with the third.

**Guidance and conditions** as in :class:`DdimSampler`: classifier-free
guidance ``strength``, the framework conditions (``y``, ``mask``,
``mask_rgb``), and ``replace_rgb`` / ``replace_depth`` / ``constrain_depth``
applied to every evaluation's x_0 prediction (``replace_rgb`` skipped on the
last one) before it enters the update - the guided prediction is what the
multistep history stores. The predicted x_0 is not clipped unless
``clip_denoised=True`` (the reference's samplers never clip; docs/performance.md).

**Stochastic variant (``eta > 0``).** With ``eta = 0`` (default) the solver
integrates the probability-flow ODE and is deterministic given x_T. With
``eta`` in ``(0, 1]`` it integrates the reverse SDE whose noise is ``eta`` times
that of the reverse diffusion (SDE-DPM-Solver++(2M), Lu et al. 2022, with the
noise fraction as a parameter); solved exactly in its linear part, one step is::

    x_{t_i} = (sigma_{t_i} / sigma_{t_{i-1}}) exp(-eta h_i) x_{t_{i-1}}
              - alpha_{t_i} expm1(-(1 + eta) h_i) D_i
              + sigma_{t_i} sqrt(-expm1(-2 eta h_i)) z_i,      z_i ~ N(0, I)

with the same ``D_i`` as above (the multistep extrapolation). ``eta = 0`` is the
ODE step; with ``eta = 1`` a first-order step is the DDPM posterior step, i.e.
DDIM with eta 1. For any ``eta``, a perfect data prediction keeps every x_t
distributed exactly as the forward process's ``q(x_t | x_0)``. Injected noise
lets later, low-noise steps correct what earlier predictions got wrong, which
helps small models (the demo's; docs/performance.md) at the price of needing a
few more steps than the ODE for the same accuracy. Intermediate values of
``eta`` do not equal DDIM's same-named eta (whose noise schedule differs).
The last step (into sigma = 0) adds no noise.

**Randomness.** The initial noise is drawn exactly as by DDPM/DDIM (same shape,
same generator(s), one generator per sample allowed; ``ivid.diffusion.noise``),
so the same seed starts every sampler from the same x_T; InpaintCFG's condition
fill-in noise is drawn from ``generator`` at each evaluation, as in DDIM. With
``eta > 0`` each step but the last then draws one ``randn`` of x_t's shape from
``generator`` (with ``eta = 0`` none, so eta-0 runs draw what they always drew).
"""

from __future__ import annotations

import math
from typing import Any, List, Optional, Tuple

import numpy as np
import torch
from tqdm.auto import tqdm

from .guidance import apply_guidance
from .noise import GeneratorLike, randn
from .samplers import SampleResult, _Sampler
from .schedules import ddim_tables, extract

__all__ = ["Dpmpp2mSampler", "GRIDS", "DEFAULT_STEPS", "half_log_snr", "solver_timesteps", "dpmpp_2m_update"]

#: the time grids :func:`solver_timesteps` knows
GRIDS = ("logSNR", "time_uniform")
#: steps used when ``sample(steps=None)``
DEFAULT_STEPS = 20


def half_log_snr(alphas_cumprod: np.ndarray) -> np.ndarray:
    """``lambda = log(alpha / sigma) = 0.5 log(abar / (1 - abar))``, float64, same shape (decreasing in t)."""
    abar = np.asarray(alphas_cumprod, dtype=np.float64)
    return 0.5 * (np.log(abar) - np.log1p(-abar))


def _strictly_decreasing(indices: np.ndarray, total: int) -> List[int]:
    """Integers in ``[0, total)``, strictly decreasing, each moved as little as needed from ``indices``."""
    out = [int(v) for v in np.clip(indices, 0, total - 1)]
    for i in range(1, len(out)):  # no repeats: at most one below the previous point
        out[i] = min(out[i], out[i - 1] - 1)
    for i in range(len(out) - 1, -1, -1):  # ... and room for the points after it
        floor = out[i + 1] + 1 if i + 1 < len(out) else 0
        out[i] = max(out[i], floor)
    return out


def solver_timesteps(alphas_cumprod: np.ndarray, steps: int, grid: str = "logSNR") -> List[int]:
    """The 0-based model indices the solver evaluates, ``T - 1`` first, strictly decreasing.

    Args:
        alphas_cumprod: float64 ``(T,)`` table of the framework.
        steps: number of model evaluations, ``1 <= steps <= T``.
        grid: ``"logSNR"`` or ``"time_uniform"`` (module docstring).
    Returns:
        ``steps`` ints; after the last one the solver steps to the clean sample.
    """
    total = len(alphas_cumprod)
    if grid not in GRIDS:
        raise ValueError(f"unknown grid {grid!r}; valid: {', '.join(GRIDS)}")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or not 1 <= steps <= total:
        raise ValueError(f"DPM-Solver++: steps must be an integer in [1, {total}], got {steps!r}")
    steps = int(steps)
    if grid == "time_uniform":
        counts = np.floor(total * (steps - np.arange(steps)) / steps + 0.5)  # noising-step counts, T first
        return _strictly_decreasing(counts - 1, total)
    lam = half_log_snr(alphas_cumprod)
    targets = np.linspace(lam[-1], lam[0], steps + 1)[:steps]
    # lambda decreases with the index: interpolate the (continuous) index of each target lambda
    continuous = np.interp(targets, lam[::-1], np.arange(total - 1, -1, -1, dtype=np.float64))
    return _strictly_decreasing(np.floor(continuous + 0.5), total)


def dpmpp_2m_update(x: torch.Tensor, d: torch.Tensor, alpha_next: float, sigma: float, sigma_next: float,
                    h: float, d_prev: Optional[torch.Tensor] = None, h_prev: Optional[float] = None,
                    eta: float = 0.0, noise: Optional[torch.Tensor] = None) -> torch.Tensor:
    """One DPM-Solver++(2M) step in data-prediction form (module docstring: the ODE and SDE steps).

    Args:
        x: ``(N, C, H, W)`` state at the current time (noise level ``sigma``).
        d: its data prediction (guided x_0) ``D(x, t)``.
        alpha_next, sigma_next: the target time's ``sqrt(abar)``, ``sqrt(1 - abar)``;
            ``sigma_next = 0`` is the clean sample (then ``h`` is ignored and ``d`` returned).
        h: ``lambda_next - lambda`` (> 0).
        d_prev, h_prev: the previous step's data prediction and lambda step; None =
            first-order step (DDIM).
        eta: noise fraction in [0, 1]; 0 = the ODE step.
        noise: ``z ~ N(0, I)`` like ``x``; needed when ``eta > 0`` (unused into sigma = 0).
    Returns:
        the state at the target time, like ``x``.
    """
    if sigma_next == 0:
        return d  # first order into lambda = +inf: x_next = alpha_next * D, alpha_next = 1
    if d_prev is not None:
        r = h_prev / h
        d = (1 + 0.5 / r) * d - (0.5 / r) * d_prev
    if eta == 0:
        return (sigma_next / sigma) * x - (alpha_next * math.expm1(-h)) * d
    if noise is None:
        raise ValueError("dpmpp_2m_update: eta > 0 needs noise")
    return ((sigma_next / sigma) * math.exp(-eta * h)) * x - (alpha_next * math.expm1(-(1 + eta) * h)) * d \
        + (sigma_next * math.sqrt(-math.expm1(-2 * eta * h))) * noise


class Dpmpp2mSampler(_Sampler):
    """DPM-Solver++(2M) over ``steps`` model evaluations (module docstring: grid, last step, guidance).

    Args:
        framework: a :mod:`ivid.diffusion.frameworks` object (eps prediction).
        grid: ``"logSNR"`` (default) or ``"time_uniform"``.
        order: 2 (default); 1 makes every step first order (DDIM with eta = 0 on the same grid).
    """

    name = "Dpmpp2mSampler"

    def __init__(self, framework, grid: str = "logSNR", order: int = 2):
        super().__init__(framework)
        if grid not in GRIDS:
            raise ValueError(f"Dpmpp2mSampler: unknown grid {grid!r}; valid: {', '.join(GRIDS)}")
        if order not in (1, 2):
            raise ValueError(f"Dpmpp2mSampler: order must be 1 or 2, got {order!r}")
        self.grid, self.order = grid, order
        abar = np.asarray(framework.alphas_cumprod, dtype=np.float64)
        self._tables = ddim_tables(abar)  # the x_0 prediction exactly as DDIM computes it
        self.alphas = np.sqrt(abar)
        self.sigmas = np.sqrt(1.0 - abar)
        self.lambdas = half_log_snr(abar)

    def timesteps(self, steps: Optional[int] = None) -> List[int]:
        """The 0-based model indices evaluated for ``steps`` steps (None = :data:`DEFAULT_STEPS`)."""
        return solver_timesteps(self.framework.alphas_cumprod, DEFAULT_STEPS if steps is None else steps, self.grid)

    @torch.no_grad()
    def sample(self, num: int, noise: Optional[torch.Tensor] = None, classes=None, steps: Optional[int] = None,
               eta: float = 0.0, verbose: bool = False, generator: GeneratorLike = None,
               clip_denoised: bool = False, **cond: Any) -> SampleResult:
        """Draw ``num`` samples with ``steps`` model evaluations (None = :data:`DEFAULT_STEPS`).

        Args as :meth:`DdimSampler.sample`; ``eta`` in [0, 1] is the noise fraction
        (0: the deterministic ODE solver; module docstring); ``clip_denoised`` clamps
        each x_0 prediction to [-1, 1] before the guidance options.
        """
        if isinstance(eta, bool) or not isinstance(eta, (int, float)) or not 0.0 <= eta <= 1.0:
            raise ValueError(f"dpmpp_2m: eta must be a number in [0, 1] (0 = deterministic), got {eta!r}")
        indices = self.timesteps(steps)
        x_T, classes, strength, guides, cond = self._prepare(num, noise, classes, generator, cond)
        x, history = x_T, None
        for i, t in enumerate(tqdm(indices, desc="DPM-Solver++", disable=not verbose, leave=False)):
            t_next = indices[i + 1] if i + 1 < len(indices) else None
            x, history = self.step(x, t, t_next, history, classes, strength, generator, guides, cond, clip_denoised,
                                   float(eta))
        return SampleResult(samples=x, noise=x_T)

    def predict_x0(self, x_t: torch.Tensor, t: int, classes, strength, generator, guides, cond,
                   clip_denoised: bool = False, is_last_step: bool = False) -> torch.Tensor:
        """The guided data prediction at model index ``t``: eps -> x_0 (-> clamp) -> guidance options."""
        t_index = torch.full((x_t.shape[0],), t, device=x_t.device, dtype=torch.long)
        eps = self.framework.model_inference(x_t, t_index, classes, strength, generator=generator, **cond)
        nd = x_t.ndim
        x_0 = extract(self._tables["sqrt_recip_alphas_cumprod"], t_index, nd) * x_t \
            - extract(self._tables["sqrt_recipm1_alphas_cumprod"], t_index, nd) * eps
        if clip_denoised:
            x_0 = x_0.clamp(-1.0, 1.0)
        return apply_guidance(x_0, is_last_step, **guides)

    def step(self, x_t: torch.Tensor, t: int, t_next: Optional[int], history: Optional[Tuple[torch.Tensor, float]],
             classes, strength, generator, guides, cond, clip_denoised: bool = False, eta: float = 0.0):
        """One solver step from model index ``t`` to ``t_next`` (None = the clean sample).

        ``history`` is the previous step's ``(guided x_0, h)`` or None (first step); with
        ``eta > 0`` a step that does not end at the clean sample draws its noise from ``generator``.
        Returns ``(x_next, history for the next step)``.
        """
        last = t_next is None
        d = self.predict_x0(x_t, t, classes, strength, generator, guides, cond, clip_denoised, last)
        if last:
            return dpmpp_2m_update(x_t, d, 1.0, float(self.sigmas[t]), 0.0, math.inf), None
        h = float(self.lambdas[t_next] - self.lambdas[t])
        d_prev, h_prev = history if (history is not None and self.order == 2) else (None, None)
        z = randn(x_t.shape, generator, x_t.device, x_t.dtype) if eta > 0 else None
        x_next = dpmpp_2m_update(x_t, d, float(self.alphas[t_next]), float(self.sigmas[t]),
                                 float(self.sigmas[t_next]), h, d_prev, h_prev, eta, z)
        return x_next, (d, h)
