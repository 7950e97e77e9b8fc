"""Diffusion frameworks: the forward process, the training loss and the (guided) eps prediction.

A framework is a plain Python object wrapping a backbone ``nn.Module``
(``framework.backbone``); it is built from a config's ``framework`` section as
``Cls(backbone, **framework.args)``.

* :class:`GaussianDiffusion` - plain eps-prediction DDPM.
* :class:`ClassifierFreeGuidance` - adds label dropout in training and the guided
  eps ``(1 + s) eps(x, t, c) - s eps(x, t, null)`` at inference.
* :class:`InpaintCFG` - conditions on a partial RGBD image ``y`` with masks
  (input channel order of docs/design.md#diffusion-frameworks).
* :class:`SuperResCFG` - conditions on a low-resolution RGBD image.

Conventions: images ``(N, C, H, W)`` in [-1, 1]; ``t`` is an int64 ``(N,)``
tensor of 0-based indices in ``[0, timesteps)``; class labels are int64
``(N,)`` with -1 = null class.
"""

from __future__ import annotations

from typing import Any, Dict, Literal, Optional, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .noise import GeneratorLike, rand, randint, randn
from .schedules import diffusion_tables, extract, get_betas

__all__ = ["GaussianDiffusion", "ClassifierFreeGuidance", "InpaintCFG", "SuperResCFG"]

#: Keys a data loader may put into a training batch that no framework uses (ignored).
IGNORED_BATCH_KEYS = ("pose",)

Strength = Union[float, torch.Tensor]


def _as_labels(classes: Any, n: int, device: torch.device) -> Optional[torch.Tensor]:
    """Class labels as an int64 ``(n,)`` tensor on ``device`` (None stays None)."""
    if classes is None:
        return None
    classes = torch.as_tensor(classes, device=device).long()
    return classes.expand(n) if classes.ndim == 0 else classes


class GaussianDiffusion:
    """Plain eps-prediction Gaussian diffusion (DDPM forward process).

    Args:
        backbone: eps model ``backbone(x, t, classes) -> eps`` (e.g. ``AdmUnet2d``).
        timesteps: number of diffusion steps T.
        beta_schedule: ``"linear"`` or ``"cosine"`` (see ``ivid.diffusion.schedules``).

    Attributes: ``backbone``, ``timesteps``, ``beta_schedule`` and the float64
    NumPy tables ``betas``, ``alphas_cumprod``, ``sqrt_alphas_cumprod``,
    ``sqrt_one_minus_alphas_cumprod`` (shape ``(T,)``).
    """

    RUNTIME_ARGS = ("backbone",)
    #: names of the keyword conditions ``model_input`` takes
    COND_KEYS: tuple = ()

    def __init__(self, backbone: nn.Module, timesteps: int = 1000,
                 beta_schedule: Literal["linear", "cosine"] = "linear"):
        self.backbone = backbone
        self.timesteps = timesteps
        self.beta_schedule = beta_schedule
        tables = diffusion_tables(get_betas(beta_schedule, timesteps))
        self.betas: np.ndarray = tables["betas"]
        self.alphas_cumprod: np.ndarray = tables["alphas_cumprod"]
        self.sqrt_alphas_cumprod: np.ndarray = tables["sqrt_alphas_cumprod"]
        self.sqrt_one_minus_alphas_cumprod: np.ndarray = tables["sqrt_one_minus_alphas_cumprod"]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(timesteps={self.timesteps}, beta_schedule={self.beta_schedule!r})"

    @property
    def device(self) -> torch.device:
        """Device of the backbone's parameters (CPU for a parameter-free backbone)."""
        param = next(iter(self.backbone.parameters()), None)
        return param.device if param is not None else torch.device("cpu")

    # -- forward process -----------------------------------------------------------------
    def diffuse(self, x_0: torch.Tensor, t: torch.Tensor, noise: Optional[torch.Tensor] = None,
                generator: GeneratorLike = None) -> torch.Tensor:
        """Sample q(x_t | x_0): ``sqrt(abar_t) x_0 + sqrt(1 - abar_t) noise``.

        Args:
            x_0: ``(N, C, H, W)`` clean images.
            t: ``(N,)`` int64 indices (index t = t + 1 noising steps).
            noise: optional ``(N, C, H, W)`` N(0, 1) noise; drawn with ``generator`` if None.
        Returns:
            x_t like ``x_0`` (coefficients are looked up as float32, as in the reference).
        """
        if noise is None:
            noise = randn(x_0.shape, generator, x_0.device, x_0.dtype)
        nd = x_0.ndim
        return (extract(self.sqrt_alphas_cumprod, t, nd) * x_0
                + extract(self.sqrt_one_minus_alphas_cumprod, t, nd) * noise)

    def reverse_diffuse(self, x_t: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Invert :meth:`diffuse` for known noise: ``(x_t - sqrt(1 - abar_t) noise) / sqrt(abar_t)``."""
        nd = x_t.ndim
        return ((x_t - extract(self.sqrt_one_minus_alphas_cumprod, t, nd) * noise)
                / extract(self.sqrt_alphas_cumprod, t, nd))

    # -- conditioning hooks (overridden by the conditional frameworks) ---------------------
    def model_input(self, x_t: torch.Tensor, generator: GeneratorLike = None,
                    **cond: Any) -> torch.Tensor:
        """Backbone input for ``x_t`` and the framework's conditions (here: ``x_t`` itself)."""
        self._check_cond_keys(cond)
        return x_t

    def _check_cond_keys(self, cond: Dict[str, Any]) -> None:
        unknown = sorted(set(cond) - set(self.COND_KEYS))
        if unknown:
            valid = ", ".join(self.COND_KEYS) or "none"
            raise TypeError(f"{type(self).__name__}: unexpected condition(s) {unknown}; valid: {valid}")

    def drop_labels(self, classes: Optional[torch.Tensor], generator: GeneratorLike = None):
        """Training-time label dropout (none for the plain framework)."""
        return classes

    def drop_conditions(self, cond: Dict[str, Any], generator: GeneratorLike = None):
        """Training-time dropout of the image condition (none for the plain framework)."""
        return cond

    def guided_eps(self, x_in: torch.Tensor, t: torch.Tensor, classes: Optional[torch.Tensor] = None,
                   strength: Strength = 0.0) -> torch.Tensor:
        """Backbone eps for an already assembled input (no guidance here; ``strength`` is ignored)."""
        return self.backbone(x_in, t, classes)

    # -- training ---------------------------------------------------------------------------
    def training_losses(self, x_0: torch.Tensor, classes: Optional[torch.Tensor] = None,
                        generator: GeneratorLike = None, *, t: Optional[torch.Tensor] = None,
                        noise: Optional[torch.Tensor] = None, **cond: Any) -> Dict[str, torch.Tensor]:
        """eps-prediction MSE on a batch.

        Args:
            x_0: ``(N, C, H, W)`` clean images in [-1, 1].
            classes: optional ``(N,)`` int64 labels (dropped to -1 with ``p_uncond`` by CFG frameworks).
            generator: draws t (uniform in ``[0, T)``), the noise and the dropouts (one
                generator, or a list with one per sample).
            t, noise: optional fixed timesteps / noise (tests, reproducible evaluation).
            **cond: the framework's conditions (``y``, ``mask``, ``mask_rgb``); keys
                in ``IGNORED_BATCH_KEYS`` (e.g. ``pose``) are ignored.
        Returns:
            ``{"loss": scalar float32 tensor (mean over all elements), "t": (N,) the timesteps used}``.
        """
        cond = {k: v for k, v in cond.items() if k not in IGNORED_BATCH_KEYS}
        n, device = x_0.shape[0], x_0.device
        if t is None:
            t = randint(0, self.timesteps, (n,), generator, device)
        if noise is None:
            noise = randn(x_0.shape, generator, device, x_0.dtype)
        x_t = self.diffuse(x_0, t, noise)
        classes = self.drop_labels(_as_labels(classes, n, device), generator)
        cond = self.drop_conditions(cond, generator)
        eps = self.backbone(self.model_input(x_t, generator=generator, **cond), t, classes)
        loss = F.mse_loss(eps.float(), noise.float())
        return {"loss": loss, "t": t}

    # -- inference --------------------------------------------------------------------------
    def model_inference(self, x_t: torch.Tensor, t: torch.Tensor, classes: Optional[torch.Tensor] = None,
                        strength: Strength = 0.0, generator: GeneratorLike = None,
                        **cond: Any) -> torch.Tensor:
        """Predicted eps for ``x_t`` at 0-based steps ``t`` (guided for the CFG frameworks).

        Args:
            x_t: ``(N, C, H, W)`` noisy images.
            t: ``(N,)`` int64 0-based indices (a scalar is broadcast).
            classes: ``(N,)`` int64 labels, -1 = null, or None.
            strength: guidance scale s; ``eps = (1 + s) eps_c - s eps_null`` (CFG frameworks).
            generator: draws the noise some conditions need (InpaintCFG).
            **cond: framework conditions (see ``COND_KEYS``).
        Returns:
            eps ``(N, out_channels, H, W)``.
        """
        n = x_t.shape[0]
        t = torch.as_tensor(t, device=x_t.device).long()
        t = t.expand(n) if t.ndim == 0 else t
        x_in = self.model_input(x_t, generator=generator, **cond)
        return self.guided_eps(x_in, t, _as_labels(classes, n, x_t.device), strength)


class ClassifierFreeGuidance(GaussianDiffusion):
    """Gaussian diffusion with classifier-free guidance on the class label.

    Training: each label becomes -1 (null) with probability ``p_uncond``.
    Inference with strength s != 0: one batched backbone call on ``2N`` inputs
    (labels, then all -1) and ``eps = (1 + s) eps_c - s eps_null``; s = 0, an
    unconditional backbone (``num_classes=None``) or ``classes=None`` run a single
    conditional pass.
    """

    def __init__(self, backbone: nn.Module, timesteps: int = 1000,
                 beta_schedule: Literal["linear", "cosine"] = "linear", p_uncond: float = 0.1):
        super().__init__(backbone, timesteps, beta_schedule)
        self.p_uncond = float(p_uncond)

    def drop_labels(self, classes, generator=None):
        """Replace each label by -1 with probability ``p_uncond`` (one uniform draw per sample)."""
        if classes is None or self.p_uncond <= 0:
            return classes
        drop = rand((classes.shape[0],), generator, classes.device) < self.p_uncond
        return torch.where(drop, torch.full_like(classes, -1), classes)

    def guided_eps(self, x_in, t, classes=None, strength: Strength = 0.0):
        backbone = self.backbone
        unconditional = getattr(backbone, "num_classes", 0) is None
        if classes is None or unconditional or (not torch.is_tensor(strength) and strength == 0):
            return backbone(x_in, t, classes)
        if getattr(backbone, "has_null_class", True):
            null = torch.full_like(classes, -1)
            eps_c, eps_null = backbone(torch.cat([x_in, x_in]), torch.cat([t, t]),
                                       torch.cat([classes, null])).chunk(2)
        else:  # no null label: the null pass is the classes=None pass
            eps_c, eps_null = backbone(x_in, t, classes), backbone(x_in, t, None)
        if torch.is_tensor(strength) and strength.ndim > 0:
            strength = strength.to(eps_c.device, eps_c.dtype).reshape(-1, *([1] * (eps_c.ndim - 1)))
        return (1 + strength) * eps_c - strength * eps_null


class InpaintCFG(ClassifierFreeGuidance):
    """CFG model conditioned on a partial RGBD image (novel-view completion, G_c).

    Backbone input, concatenated along channels in this order (docs/design.md#diffusion-frameworks):
    ``x_t`` (4), ``mask_rgb`` (1, only if given), ``y_rgb * mask_rgb + n_rgb *
    (1 - mask_rgb)`` (3), ``y_depth * mask + n_d * (1 - mask)`` (1), ``mask`` (1),
    where ``n`` is fresh N(0, 1) noise (drawn with the generator on every call)
    and ``mask`` stands in for ``mask_rgb`` when that is not given. Conditions:
    ``y`` ``(N, 4, H, W)`` in [-1, 1], ``mask`` / ``mask_rgb`` ``(N, 1, H, W)`` in {0, 1}.

    Training: labels are dropped as in CFG; additionally, with probability
    ``p_uncond_img`` per sample the image condition is dropped by setting that
    sample's ``mask`` to 0 (its condition channels become pure noise and a zero
    mask). As in the reference, a model trained with ``p_uncond_img > 0`` never
    gets ``mask_rgb`` (9 input channels): :meth:`drop_conditions` removes it. At
    inference the image condition is always kept.
    """

    COND_KEYS = ("y", "mask", "mask_rgb")

    def __init__(self, backbone: nn.Module, timesteps: int = 1000,
                 beta_schedule: Literal["linear", "cosine"] = "linear", p_uncond: float = 0.1,
                 p_uncond_img: float = 0.0):
        super().__init__(backbone, timesteps, beta_schedule, p_uncond)
        self.p_uncond_img = float(p_uncond_img)

    def model_input(self, x_t, generator=None, **cond):
        self._check_cond_keys(cond)
        y, mask, mask_rgb = cond.get("y"), cond.get("mask"), cond.get("mask_rgb")
        if y is None or mask is None:
            raise ValueError("InpaintCFG needs the conditions y (N x 4 x H x W) and mask (N x 1 x H x W)")
        if y.shape[1] != 4:
            raise ValueError(f"InpaintCFG: y must have 4 channels (RGB + depth), got shape {tuple(y.shape)}")
        dtype, device = x_t.dtype, x_t.device
        y, mask = y.to(device, dtype), mask.to(device, dtype)
        given_rgb_mask = mask_rgb is not None
        mask_rgb = mask_rgb.to(device, dtype) if given_rgb_mask else mask
        size = tuple(x_t.shape[2:])
        # two draws, colour then depth, as the reference (same generator stream)
        rgb_noise = randn((x_t.shape[0], 3) + size, generator, device, dtype)
        depth_noise = randn((x_t.shape[0], 1) + size, generator, device, dtype)
        rgb = y[:, :3] * mask_rgb + rgb_noise * (1 - mask_rgb)
        depth = y[:, 3:4] * mask + depth_noise * (1 - mask)
        parts = [x_t] + ([mask_rgb] if given_rgb_mask else []) + [rgb, depth, mask]
        x_in = torch.cat(parts, dim=1)
        expected = getattr(self.backbone, "in_channels", x_in.shape[1])
        if x_in.shape[1] != expected:
            hint = " (pass mask_rgb)" if not given_rgb_mask else " (this backbone takes no mask_rgb)"
            raise ValueError(f"InpaintCFG built a {x_in.shape[1]}-channel input but the backbone expects "
                             f"{expected}{hint}")
        return x_in

    @property
    def takes_mask_rgb(self) -> bool:
        """Whether the backbone has the ``mask_rgb`` input channel (``in_channels == out_channels + 6``,
        10 as released) rather than 9 (``out_channels + 5``)."""
        backbone = self.backbone
        in_ch, out_ch = getattr(backbone, "in_channels", None), getattr(backbone, "out_channels", None)
        return in_ch is None or out_ch is None or in_ch != out_ch + 5

    def training_conditions(self, cond: Dict[str, Any]) -> Dict[str, Any]:
        """The conditions a training step feeds: without ``mask_rgb`` when ``p_uncond_img > 0``
        (the reference builds those inputs without it)."""
        if self.p_uncond_img > 0 and "mask_rgb" in cond:
            cond = {k: v for k, v in cond.items() if k != "mask_rgb"}
        return cond

    def drop_conditions(self, cond, generator=None):
        """Zero ``mask`` of each sample with probability ``p_uncond_img`` (and never feed ``mask_rgb``
        then, see :meth:`training_conditions`)."""
        cond = self.training_conditions(cond)
        if self.p_uncond_img <= 0 or cond.get("mask") is None:
            return cond
        mask = cond["mask"]
        keep = (rand((mask.shape[0],), generator, mask.device) >= self.p_uncond_img).to(mask.dtype)
        keep = keep.reshape(-1, *([1] * (mask.ndim - 1)))
        return dict(cond, mask=mask * keep)


class SuperResCFG(ClassifierFreeGuidance):
    """CFG model conditioned on a low-resolution RGBD image (the 256 model from 128).

    Backbone input: ``cat[x_t, bilinear_upsample(y)]`` with ``y`` ``(N, 4, h, w)``
    in [-1, 1] (``F.interpolate(mode="bilinear", align_corners=False)`` to x_t's size).
    """

    COND_KEYS = ("y",)

    def model_input(self, x_t, generator=None, **cond):
        self._check_cond_keys(cond)
        y = cond.get("y")
        if y is None:
            raise ValueError("SuperResCFG needs the low-resolution condition y (N x 4 x h x w)")
        y = y.to(x_t.device, x_t.dtype)
        if tuple(y.shape[-2:]) != tuple(x_t.shape[-2:]):
            y = F.interpolate(y, size=tuple(x_t.shape[-2:]), mode="bilinear", align_corners=False)
        return torch.cat([x_t, y], dim=1)
