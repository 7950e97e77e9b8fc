"""Ancestral DDPM and DDIM samplers over a framework's (guided) eps prediction.

Both samplers:

* start from ``noise`` or N(0, 1) drawn with ``generator`` (shape
  ``(num, out_channels, image_size, image_size)`` of the backbone), on the
  backbone's device, in float32;
* predict x_0 from eps each step, clip it to [-1, 1] only when
  ``clip_denoised=True`` (default False, as the reference's samplers and its
  ``inference/sample.py``; ADM's own default is True), apply the guidance options
  (``ivid.diffusion.guidance``) to it, then step;
* draw every random number from ``generator``, so the same generator seed gives
  identical samples (InpaintCFG's condition noise included); ``generator`` may
  also be a list with one generator per sample, each sample then depends on its
  own generator only (see ``ivid.diffusion.noise``). The draws are those of the
  reference, in its order: x_T (unless ``noise`` is given), then per step the
  framework's own draws and one ``randn`` of x_t's shape (used only by DDPM for
  t > 0 and by DDIM with eta > 0 before the last step), so with the global RNG
  (``generator=None``) and the same seed the reference's samplers and these
  consume the same stream;
* run under ``torch.no_grad()`` and show a tqdm bar when ``verbose``.

``sample(...)`` keyword conditions: ``strength`` (guidance scale), the
framework's conditions (``y``, ``mask``, ``mask_rgb``), and the guidance options
``replace_rgb``, ``replace_depth``, ``constrain_depth`` (docs/design.md#samplers).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import torch
from tqdm.auto import tqdm

from .guidance import GUIDANCE_KEYS, apply_guidance, check_guidance
from .noise import GeneratorLike, randn
from .schedules import ddim_tables, ddpm_tables, extract

__all__ = ["SampleResult", "DdpmSampler", "DdimSampler"]


@dataclass
class SampleResult:
    """Output of a sampler.

    Attributes:
        samples: ``(N, C, H, W)`` float32 final samples (about [-1, 1]; values outside are kept
            unless ``clip_denoised``).
        noise: ``(N, C, H, W)`` the initial x_T the chain started from.
    """

    samples: torch.Tensor
    noise: torch.Tensor


def _to_device(value: Any, device: torch.device) -> Any:
    if torch.is_tensor(value):
        return value.to(device, torch.float32) if value.is_floating_point() else value.to(device)
    if isinstance(value, (tuple, list)):
        return type(value)(_to_device(v, device) for v in value)
    return value


class _Sampler:
    """Shared set-up of the samplers: noise, labels, conditions and guidance options."""

    name = "sampler"

    def __init__(self, framework):
        self.framework = framework

    def _initial_noise(self, num: int, noise: Optional[torch.Tensor], generator, device) -> torch.Tensor:
        backbone = self.framework.backbone
        shape = (num, backbone.out_channels, backbone.image_size, backbone.image_size)
        if noise is None:
            return randn(shape, generator, device, torch.float32)
        if noise.shape[0] != num:
            raise ValueError(f"{self.name}: noise has {noise.shape[0]} samples but num={num}")
        return noise.to(device, torch.float32)

    def _prepare(self, num, noise, classes, generator, cond: Dict[str, Any]):
        device = self.framework.device
        strength = cond.pop("strength", 0.0)
        guides = {k: cond.pop(k) for k in GUIDANCE_KEYS if k in cond}
        guides = {k: _to_device(v, device) for k, v in guides.items() if v is not None}
        check_guidance(guides)
        cond = {k: _to_device(v, device) for k, v in cond.items() if v is not None}
        if classes is not None:
            classes = torch.as_tensor(classes, device=device).long()
            classes = classes.expand(num) if classes.ndim == 0 else classes
        x_T = self._initial_noise(num, noise, generator, device)
        return x_T, classes, strength, guides, cond

    def _predict_x0(self, x_t, t_index: torch.Tensor, eps, tables, clip_denoised: bool = False) -> torch.Tensor:
        """x_0 = sqrt(1/abar_t) x_t - sqrt(1/abar_t - 1) eps, clamped to [-1, 1] only if ``clip_denoised``."""
        x_0 = extract(tables["sqrt_recip_alphas_cumprod"], t_index, x_t.ndim) * x_t \
            - extract(tables["sqrt_recipm1_alphas_cumprod"], t_index, x_t.ndim) * eps
        return x_0.clamp(-1.0, 1.0) if clip_denoised else x_0


class DdpmSampler(_Sampler):
    """Ancestral sampling through all T steps with the posterior q(x_{t-1} | x_t, x_0).

    Variance: ``posterior_variance`` with the clipped log (index 0 replaced by
    index 1); no noise is added at t = 0. Tables (float64 NumPy ``(T,)``):
    ``alphas_cumprod_prev``, ``sqrt_recip_alphas_cumprod``,
    ``sqrt_recipm1_alphas_cumprod``, ``posterior_variance``,
    ``posterior_log_variance_clipped``, ``posterior_mean_coef1``, ``posterior_mean_coef2``.
    Guidance options are accepted as in DDIM (``replace_rgb`` skipped at t = 0).
    """

    name = "DdpmSampler"

    def __init__(self, framework):
        super().__init__(framework)
        self._tables = ddpm_tables(framework.betas)
        for key, value in self._tables.items():
            setattr(self, key, value)

    def timesteps(self) -> List[int]:
        """The 0-based model timesteps visited: T-1, ..., 0."""
        return list(range(self.framework.timesteps - 1, -1, -1))

    @torch.no_grad()
    def sample(self, num: int, noise: Optional[torch.Tensor] = None, classes=None, steps: Optional[int] = None,
               eta: float = 0.0, verbose: bool = False, generator: GeneratorLike = None,
               clip_denoised: bool = False, **cond: Any) -> SampleResult:
        """Draw ``num`` samples. ``steps`` must be None or >= T (DDPM always runs all T steps); ``eta`` is unused;
        ``clip_denoised`` clamps each step's predicted x_0 to [-1, 1] (off by default, as the reference)."""
        if steps is not None and steps < self.framework.timesteps:
            raise ValueError(f"DdpmSampler runs all {self.framework.timesteps} steps; got steps={steps} "
                             "(use DdimSampler for fewer steps)")
        x_T, classes, strength, guides, cond = self._prepare(num, noise, classes, generator, cond)
        x = x_T
        for t in tqdm(self.timesteps(), desc="DDPM", disable=not verbose, leave=False):
            x = self.step(x, t, classes, strength, generator, guides, cond, clip_denoised)
        return SampleResult(samples=x, noise=x_T)

    def step(self, x_t, t: int, classes, strength, generator, guides, cond,
             clip_denoised: bool = False) -> torch.Tensor:
        """One ancestral step from 0-based index ``t`` to ``t - 1`` (returns x_0's mean at t = 0)."""
        t_index = torch.full((x_t.shape[0],), t, device=x_t.device, dtype=torch.long)
        eps = self.framework.model_inference(x_t, t_index, classes, strength, generator=generator, **cond)
        x_0 = apply_guidance(self._predict_x0(x_t, t_index, eps, self._tables, clip_denoised), t == 0, **guides)
        nd = x_t.ndim
        mean = extract(self.posterior_mean_coef1, t_index, nd) * x_0 \
            + extract(self.posterior_mean_coef2, t_index, nd) * x_t
        # drawn on every step, t = 0 included, as the reference: the same generator stream
        noise = randn(x_t.shape, generator, x_t.device, x_t.dtype)
        if t == 0:
            return mean
        log_var = extract(self.posterior_log_variance_clipped, t_index, nd)
        return mean + torch.exp(0.5 * log_var) * noise


class DdimSampler(_Sampler):
    """DDIM over ``steps`` evenly spaced steps (eta = 0: deterministic given x_T).

    Step pairs (``t`` counts noising steps, the model sees index ``t - 1``):
    ``jump = T // steps``, pairs ``(jump * (i + 1), jump * i)`` for i = steps-1 .. 0.
    ``alpha_bar = alphas_cumprod[t - 1]``, ``alpha_bar_prev = alphas_cumprod_prev[t_prev]``
    (``= 1`` for ``t_prev = 0``). With eta > 0, ``sigma = eta sqrt((1 - abar_prev) /
    (1 - abar)) sqrt(1 - abar / abar_prev)`` and noise is added except on the last step.
    Tables (float64 ``(T,)``): ``alphas_cumprod_prev``, ``sqrt_recip_alphas_cumprod``,
    ``sqrt_recipm1_alphas_cumprod``.
    """

    name = "DdimSampler"

    def __init__(self, framework):
        super().__init__(framework)
        self._tables = ddim_tables(framework.alphas_cumprod)
        for key, value in self._tables.items():
            setattr(self, key, value)

    def timestep_pairs(self, steps: Optional[int] = None) -> List[Tuple[int, int]]:
        """The ``(t, t_prev)`` pairs visited for ``steps`` steps (default: all T)."""
        total = self.framework.timesteps
        steps = total if steps is None else int(steps)
        if not 1 <= steps <= total:
            raise ValueError(f"DdimSampler: steps must be in [1, {total}], got {steps}")
        jump = total // steps
        return [(jump * (i + 1), jump * i) for i in range(steps - 1, -1, -1)]

    @torch.no_grad()
    def sample(self, num: int, noise: Optional[torch.Tensor] = None, classes=None, steps: Optional[int] = None,
               eta: float = 0.0, verbose: bool = False, generator: GeneratorLike = None,
               clip_denoised: bool = False, **cond: Any) -> SampleResult:
        """Draw ``num`` samples with ``steps`` DDIM steps (None = T) and stochasticity ``eta``;
        ``clip_denoised`` clamps each step's predicted x_0 to [-1, 1] (off by default, as the reference)."""
        pairs = self.timestep_pairs(steps)
        x_T, classes, strength, guides, cond = self._prepare(num, noise, classes, generator, cond)
        x = x_T
        for t, t_prev in tqdm(pairs, desc="DDIM", disable=not verbose, leave=False):
            x = self.step(x, t, t_prev, classes, strength, eta, generator, guides, cond, clip_denoised)
        return SampleResult(samples=x, noise=x_T)

    def step(self, x_t, t: int, t_prev: int, classes, strength, eta: float, generator, guides, cond,
             clip_denoised: bool = False):
        """One DDIM step from ``t`` to ``t_prev`` (step counts; the model sees index ``t - 1``)."""
        n, nd, device = x_t.shape[0], x_t.ndim, x_t.device
        t_index = torch.full((n,), t - 1, device=device, dtype=torch.long)
        eps = self.framework.model_inference(x_t, t_index, classes, strength, generator=generator, **cond)
        x_0 = apply_guidance(self._predict_x0(x_t, t_index, eps, self._tables, clip_denoised), t_prev == 0,
                             **guides)
        eps = (extract(self.sqrt_recip_alphas_cumprod, t_index, nd) * x_t - x_0) \
            / extract(self.sqrt_recipm1_alphas_cumprod, t_index, nd)
        alpha_bar = extract(self.framework.alphas_cumprod, t_index, nd)
        alpha_bar_prev = extract(self.alphas_cumprod_prev, torch.full_like(t_index, t_prev), nd)
        sigma = eta * torch.sqrt((1 - alpha_bar_prev) / (1 - alpha_bar)) * torch.sqrt(1 - alpha_bar / alpha_bar_prev)
        x_prev = x_0 * torch.sqrt(alpha_bar_prev) + torch.sqrt((1 - alpha_bar_prev - sigma ** 2).clamp(min=0)) * eps
        # drawn on every step, eta = 0 and the last step included, as the reference (same generator stream)
        noise = randn(x_t.shape, generator, device, x_t.dtype)
        if eta > 0 and t_prev > 0:
            x_prev = x_prev + sigma * noise
        return x_prev
