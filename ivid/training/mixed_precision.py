"""Mixed-precision training: float32 master parameters, dynamic loss scaling, bf16 autocast.

Modes (``trainer.args.fp16_mode``):

* ``None`` / ``"none"``: plain float32 training (the model's parameters are the
  optimizer's parameters). Steps whose gradients are not finite are skipped and
  counted, nothing else.
* ``"inflat_all"`` (the reference's mode): the optimizer updates a float32
  *master* copy of every parameter; the model itself may hold float16 weights
  (``backbone.args.use_fp16: true`` makes the torso convolutions float16). The
  loss is multiplied by ``2 ** log2_scale`` before ``backward``; gradients are
  unscaled into the master copies. ``log2_scale`` starts at
  :data:`INITIAL_LOG2_LOSS_SCALE` (20), grows by ``fp16_scale_growth`` after
  every good step, and on non-finite gradients drops by 1 while the step is
  skipped (parameters, EMA and optimizer state unchanged). The reference keeps
  its master copy as one flat tensor; ours is one float32 tensor per parameter
  (same arithmetic, simpler optimizer state). A float32 parameter is its own
  master. As in the reference, ``inflat_all`` is switched off (to ``none``: no
  loss scale) when the model holds no float16 parameter (``use_fp16: false``, as
  ``rgbd_imagenet_adm_128_large_cfg.json``): loss-scaling float32 gradients only
  lets the growing scale overflow after ~100k steps and skip steps.
* ``"bf16"``: the forward pass runs under ``torch.autocast(dtype=bfloat16)`` on
  the model's device (CUDA or CPU); parameters and optimizer stay float32 (or
  float32 masters of float16 weights), no loss scaling is needed since bfloat16
  has float32's exponent range. Non-finite steps are skipped as in fp32 mode.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import ContextManager, Dict, List, Optional

import torch
from torch import nn

__all__ = ["INITIAL_LOG2_LOSS_SCALE", "FP16_MODES", "normalize_fp16_mode", "MixedPrecision"]

INITIAL_LOG2_LOSS_SCALE = 20.0
FP16_MODES = ("none", "inflat_all", "bf16")


def normalize_fp16_mode(mode: Optional[str]) -> str:
    """Map ``None``/``"none"``/``"inflat_all"``/``"bf16"`` to one of :data:`FP16_MODES`."""
    mode = "none" if mode is None else str(mode).lower()
    if mode not in FP16_MODES:
        raise ValueError(f"trainer.args.fp16_mode: {mode!r} is not one of null, {', '.join(map(repr, FP16_MODES))}")
    return mode


class MixedPrecision:
    """Owns the master parameters, the loss scale and the forward-pass precision.

    Args:
        model: the (unwrapped) module being trained; its parameters may be float32
            or float16.
        mode: see the module docstring (``inflat_all`` without float16 parameters runs as ``none``).
        scale_growth: log2 growth of the loss scale per good step (``inflat_all``).
        initial_log2_scale: starting log2 loss scale.

    Attributes:
        mode: the effective mode; ``requested_mode``: the one asked for.
        master_params: float32 tensors, one per model parameter in ``named_parameters``
            order; hand these to the optimizer.
        log2_scale: current log2 loss scale (0.0 unless ``inflat_all``).
    """

    def __init__(self, model: nn.Module, mode: Optional[str] = None, scale_growth: float = 1e-3,
                 initial_log2_scale: float = INITIAL_LOG2_LOSS_SCALE):
        self.requested_mode = normalize_fp16_mode(mode)
        self.scale_growth = float(scale_growth)
        self.model_params: List[nn.Parameter] = list(model.parameters())
        has_fp16 = any(p.dtype == torch.float16 for p in self.model_params)
        # the reference: fp16_mode = fp16_mode if any fp16 parameter else None
        self.mode = "none" if self.requested_mode == "inflat_all" and not has_fp16 else self.requested_mode
        self.master_params: List[torch.Tensor] = [
            p if p.dtype == torch.float32 else nn.Parameter(p.detach().float()) for p in self.model_params]
        self.use_loss_scale = self.mode == "inflat_all"
        if not self.use_loss_scale and has_fp16:
            warnings.warn(f"fp16_mode {self.mode!r} with float16 weights (backbone use_fp16: true): gradients are "
                          "not loss-scaled and may underflow; use fp16_mode 'inflat_all' or use_fp16: false")
        self.log2_scale = float(initial_log2_scale) if self.use_loss_scale else 0.0
        self._device_type = self.model_params[0].device.type if self.model_params else "cpu"

    # -- forward / backward ----------------------------------------------------------------
    def autocast(self) -> ContextManager:
        """Context for the forward pass: bf16 autocast in ``bf16`` mode, otherwise a no-op."""
        if self.mode == "bf16":
            return torch.autocast(device_type=self._device_type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def backward(self, loss: torch.Tensor) -> None:
        """``backward`` of ``loss`` times the current loss scale."""
        if self.use_loss_scale:
            loss = loss * (2.0 ** self.log2_scale)
        loss.backward()

    # -- optimizer step --------------------------------------------------------------------
    def _unscale_into_master(self) -> None:
        inv_scale = 2.0 ** (-self.log2_scale)
        grads = []
        for p, m in zip(self.model_params, self.master_params):
            if m is not p:
                m.grad = None if p.grad is None else p.grad.detach().float()
            if m.grad is not None:
                grads.append(m.grad)
        if grads and inv_scale != 1.0:
            torch._foreach_mul_(grads, inv_scale)

    def grad_norm(self) -> torch.Tensor:
        """L2 norm of the (unscaled) master gradients as a float32 scalar tensor (inf/nan if not finite)."""
        grads = [m.grad for m in self.master_params if m.grad is not None]
        if not grads:
            return torch.zeros(())
        return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)).float())

    def step(self, optimizer: torch.optim.Optimizer) -> Dict[str, float]:
        """Unscale, check, step (or skip), copy masters back into the model, zero gradients.

        Returns:
            ``{"stepped": 1.0 or 0.0, "grad_norm": float}``. On a skipped step the
            model, the masters and the optimizer state are untouched.
        """
        self._unscale_into_master()
        norm = float(self.grad_norm())
        finite = norm == norm and norm != float("inf")
        if finite:
            optimizer.step()
            self.copy_master_to_model()
            if self.use_loss_scale:
                self.log2_scale += self.scale_growth
        elif self.use_loss_scale:
            self.log2_scale -= 1.0
        self.zero_grad()
        return {"stepped": 1.0 if finite else 0.0, "grad_norm": norm}

    def zero_grad(self) -> None:
        for p in self.model_params:
            p.grad = None
        for m in self.master_params:
            m.grad = None

    @torch.no_grad()
    def copy_master_to_model(self) -> None:
        """Write the masters into the model's (e.g. float16) parameters."""
        pairs = [(p, m) for p, m in zip(self.model_params, self.master_params) if m is not p]
        if pairs and hasattr(torch, "_foreach_copy_"):
            torch._foreach_copy_([p for p, _ in pairs], [m for _, m in pairs])
        else:
            for p, m in pairs:
                p.copy_(m)

    @torch.no_grad()
    def load_master(self, tensors: List[torch.Tensor]) -> None:
        """Set the masters (and through them the model) from float32 tensors in parameter order."""
        if len(tensors) != len(self.master_params):
            raise ValueError(f"expected {len(self.master_params)} parameter tensors, got {len(tensors)}")
        for m, t in zip(self.master_params, tensors):
            m.copy_(t)
        self.copy_master_to_model()

    # -- state -----------------------------------------------------------------------------
    def state_dict(self) -> Dict[str, float]:
        return {"log2_loss_scale": float(self.log2_scale)}

    def load_state_dict(self, state: Dict[str, float]) -> None:
        if self.use_loss_scale and "log2_loss_scale" in state:
            self.log2_scale = float(state["log2_loss_scale"])
