"""Does a conditional model use its condition? A cheap probe for the G_c trainer.

A conditional model that has learnt to restore a warped view predicts the noise
much better with the view's own condition than with another image's. One that
ignores its condition (it happens silently: with training conditions that keep
too few pixels, the model learns to ignore them) gives the same loss either way.

:func:`condition_usage` evaluates the eps loss of one batch twice, with the same
timesteps, noise and class labels: with the true conditions and with the
conditions rolled by one sample across the batch (each sample gets its
neighbour's). The loss is taken over the pixels the TRUE condition knows (its
depth mask), where a model that uses the condition can do better. The gap is
the per-sample relative gain ``1 - loss_true_i / loss_shuffled_i`` averaged over
the batch: ~0 for a model that ignores the condition, towards 1 for one that
copies it. Averaging the per-sample ratio (rather than taking the ratio of the
batch losses) keeps the few samples drawn at small t, whose eps loss is ~100x
larger and which no condition can help (the condition is blurred and noisy), from
hiding the gain at the mid and large t where the condition matters
(docs/evaluation.md, "Condition usage during training").
"""

from __future__ import annotations

import contextlib
from typing import Any, Dict, Mapping, Optional

import torch

from ivid.diffusion.noise import randint, randn

__all__ = ["condition_usage", "known_fractions", "CONDITION_KEYS"]

#: the batch entries that form the condition of an inpainting framework
CONDITION_KEYS = ("y", "mask", "mask_rgb")


def known_fractions(batch: Mapping[str, torch.Tensor]) -> Dict[str, float]:
    """Fraction of pixels with known depth (``mask``) and known colour (``mask_rgb``) in a batch.

    Args:
        batch: with ``mask`` and optionally ``mask_rgb``, (B, 1, H, W) 0/1 tensors.

    Returns:
        ``{"known_depth": f, "known_rgb": f}`` in [0, 1] (``known_rgb`` = ``known_depth``
        without ``mask_rgb``).
    """
    depth = float(batch["mask"].float().mean())
    rgb = float(batch["mask_rgb"].float().mean()) if batch.get("mask_rgb") is not None else depth
    return {"known_depth": depth, "known_rgb": rgb}


def _masked_eps_loss(framework: Any, x_t: torch.Tensor, t: torch.Tensor, noise: torch.Tensor,
                     classes: Optional[torch.Tensor], cond: Dict[str, torch.Tensor],
                     weight: torch.Tensor, seed: int) -> torch.Tensor:
    generator = torch.Generator(device=x_t.device).manual_seed(seed)  # same fill noise for both calls
    eps = framework.backbone(framework.model_input(x_t, generator=generator, **cond), t, classes)
    err = (eps.float() - noise.float()).pow(2).mean(dim=1, keepdim=True)
    return (err * weight).sum(dim=(1, 2, 3)) / weight.sum(dim=(1, 2, 3)).clamp_min(1.0)


@torch.no_grad()
def condition_usage(framework: Any, batch: Mapping[str, Any], seed: int,
                    autocast: Optional[contextlib.AbstractContextManager] = None) -> Dict[str, float]:
    """Eps loss of a batch with its true vs shuffled conditions (see module docstring).

    Args:
        framework: an inpainting framework (``InpaintCFG``): ``backbone``, ``timesteps``,
            ``diffuse``, ``model_input``. Its backbone is switched to eval mode for the
            probe and restored afterwards; no gradient, no global RNG is touched.
        batch: a training batch on the device: ``x_0`` (B, 4, H, W), ``y``, ``mask``
            (+ ``mask_rgb``), optionally ``classes`` (B,) int64. B >= 2.
        seed: seed of the probe's timesteps and noise (e.g. derived from the step).
        autocast: the trainer's mixed-precision context, if any.

    Returns:
        ``{"loss_true", "loss_shuffled", "gap", "known_depth", "known_rgb"}``: eps MSE
        over the true condition's known pixels (mean over the samples that have any),
        and ``gap``, the mean over those samples of ``1 - loss_true_i / loss_shuffled_i``
        (0 when the condition is ignored, towards 1 when it is used). Empty for B < 2
        or a batch without known pixels.
    """
    x_0 = batch["x_0"]
    n, device = x_0.shape[0], x_0.device
    weight = batch["mask"].float()
    if n < 2 or float(weight.sum()) == 0:
        return {}
    generator = torch.Generator(device=device).manual_seed(int(seed))
    t = randint(0, framework.timesteps, (n,), generator, device)
    noise = randn(x_0.shape, generator, device, x_0.dtype)
    x_t = framework.diffuse(x_0, t, noise)
    classes = batch.get("classes")
    if classes is not None and getattr(framework.backbone, "num_classes", None) is None:
        classes = None
    cond = {k: batch[k] for k in CONDITION_KEYS if batch.get(k) is not None}
    if hasattr(framework, "training_conditions"):  # no mask_rgb for a p_uncond_img > 0 model
        cond = framework.training_conditions(cond)
    shuffled = {k: torch.roll(v, shifts=1, dims=0) for k, v in cond.items()}
    backbone, was_training = framework.backbone, framework.backbone.training
    backbone.eval()
    try:
        with (autocast or contextlib.nullcontext()):
            fill_seed = int(seed) + 1
            loss_true = _masked_eps_loss(framework, x_t, t, noise, classes, cond, weight, fill_seed)
            loss_shuffled = _masked_eps_loss(framework, x_t, t, noise, classes, shuffled, weight, fill_seed)
    finally:
        backbone.train(was_training)
    has_known = (weight.sum(dim=(1, 2, 3)) > 0) & (loss_shuffled > 0)
    loss_true, loss_shuffled = loss_true[has_known], loss_shuffled[has_known]
    gap = float((1.0 - loss_true / loss_shuffled).mean())
    return {"loss_true": float(loss_true.mean()), "loss_shuffled": float(loss_shuffled.mean()), "gap": gap,
            **known_fractions(batch)}
