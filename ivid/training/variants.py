"""``InpaintTrainer`` (G_c, warped-condition inpainting) and ``SuperResTrainer`` (256 from 128).

Both add ``finetune_ckpt``: start a fresh run from a checkpoint whose input
convolution has FEWER input channels than the model (e.g. the unconditional
4-channel G_u into the 10-channel G_c). The missing input channels of that
first convolution are zero-filled, so the new model initially ignores the
condition and reproduces the loaded one; every other tensor must match exactly.
"""

from __future__ import annotations

import collections
import inspect
import os
import typing
from typing import Any, Callable, Dict, Mapping, Optional

import numpy as np
import torch

from . import distributed as dist
from .checkpoint_files import load_file, state_dict_to_params, strip_prefixes, unwrap
from .condition_usage import condition_usage
from .trainer import BasicTrainer

__all__ = ["InpaintTrainer", "SuperResTrainer", "pad_input_channels", "first_conv_key"]


def first_conv_key(state_dict: Mapping[str, torch.Tensor]) -> str:
    """Key of the first 4-D (convolution) weight in state_dict order (``input_blocks.0.0.weight``)."""
    for key, value in state_dict.items():
        if value.ndim == 4:
            return key
    raise ValueError("the model has no convolution weight")


def pad_input_channels(loaded: Mapping[str, torch.Tensor], model_state: Mapping[str, torch.Tensor],
                       source: str) -> "collections.OrderedDict[str, torch.Tensor]":
    """Zero-pad the input channels of the first conv of ``loaded`` up to ``model_state``'s.

    Args:
        loaded: the checkpoint's state_dict (prefixes such as ``module.`` are stripped).
        model_state: the target model's state_dict (supplies names and shapes).
        source: file name for error messages.

    Returns:
        A state_dict with the first conv weight ``(C_out, C_in_model, k, k)``: the
        checkpoint's weights in input channels ``[0, C_in_file)``, zeros after.

    Raises:
        ValueError: the first conv cannot be padded (more channels in the file, or a
            different output/kernel shape), or other keys/shapes do not match.
    """
    loaded = strip_prefixes(loaded)
    key = first_conv_key(model_state)
    if key not in loaded:
        raise ValueError(f"{source}: has no {key!r}; not a checkpoint of this backbone")
    src, dst = loaded[key], model_state[key]
    if src.shape[0] != dst.shape[0] or src.shape[2:] != dst.shape[2:] or src.shape[1] > dst.shape[1]:
        raise ValueError(f"{source}: {key} has shape {tuple(src.shape)}; cannot zero-pad it to the model's "
                         f"{tuple(dst.shape)} (only MORE input channels in the model are supported)")
    padded = torch.zeros(dst.shape, dtype=torch.float32)
    padded[:, :src.shape[1]] = src.float()
    out = collections.OrderedDict(loaded)
    out[key] = padded
    return out


def _probe_seed(seed: int, step: int) -> int:
    """Seed of the condition-usage probe at ``step`` (independent of the training noise)."""
    return int(np.random.SeedSequence([int(seed), int(step), 23]).generate_state(1, np.uint32)[0])


def _resolve_path(path: str) -> str:
    if os.path.isfile(path):
        return path
    try:
        from ivid.model_loading import resolve_checkpoint
    except ImportError:
        raise FileNotFoundError(f"trainer.args.finetune_ckpt: {path} not found") from None
    return str(resolve_checkpoint(path))


def _extends_signature(base_init: Callable, **extra: Any) -> Callable[[Callable], Callable]:
    """Give a ``(self, *args, name=..., **kwargs)`` ``__init__`` the full signature of ``base_init``
    plus keyword-only ``extra`` parameters (``name=(annotation, default)``).

    The config validator reads ``inspect.signature`` and type hints of ``__init__``,
    so the variants stay strict schemas without repeating BasicTrainer's list.
    """
    def decorate(init: Callable) -> Callable:
        base = inspect.signature(base_init)
        added = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)
                 for name, (annotation, default) in extra.items()]
        init.__signature__ = base.replace(parameters=[*base.parameters.values(), *added])
        hints = typing.get_type_hints(base_init)
        init.__annotations__ = {**hints, **{name: annotation for name, (annotation, _) in extra.items()}}
        return init
    return decorate


class _FinetuneMixin:
    """The ``finetune_ckpt`` argument, and ``init_weights`` that loads it with input-channel zero padding
    (mixed in before :class:`BasicTrainer`, whose arguments ``__init__`` passes on)."""

    @_extends_signature(BasicTrainer.__init__, finetune_ckpt=(Optional[str], None))
    def __init__(self, *args: Any, finetune_ckpt: Optional[str] = None, **kwargs: Any):
        self.finetune_ckpt = finetune_ckpt
        super().__init__(*args, **kwargs)

    def init_weights(self) -> None:
        if not self.finetune_ckpt:
            return
        path = _resolve_path(self.finetune_ckpt)
        model = unwrap(self.backbone)
        state = pad_input_channels(load_file(path), model.state_dict(), path)
        params = state_dict_to_params(model, state, path)
        model.load_state_dict(state, strict=True)
        self.mp.load_master(params)
        dist.print0(f"finetuning from {path}")


class InpaintTrainer(_FinetuneMixin, BasicTrainer):
    """Trainer of the conditional model G_c on warped pairs (``*Warp`` datasets, ``InpaintCFG``).

    Batches carry ``y`` (N x 4 x H x W), ``mask`` and, with the ``erode_rgb`` augment, ``mask_rgb``
    (N x 1 x H x W; not fed when ``p_uncond_img > 0``, so such a G_c has 9 input channels);
    with a dataset built with ``warp_on_device: true`` they are made on the
    training device right before the step. Extra arg: ``finetune_ckpt`` (path or
    released file name, or null). Other args: :class:`BasicTrainer`.

    Every log line of rank 0 also carries ``condition_usage`` (see
    :mod:`.condition_usage`): the loss of the step's batch with its true vs shuffled
    conditions, their relative gap, and the fraction of known pixels. Once
    ``CONDITION_CHECK_AFTER`` steps (or a tenth of ``max_steps``, if more) have passed,
    a gap below ``CONDITION_GAP_WARN`` on average over the last ``CONDITION_GAP_WINDOW``
    log lines prints a warning and logs ``condition_warning``: the model is not
    learning to use its condition.
    """

    SAMPLE_KIND = "inpaint"
    _COND_KEYS = ("y", "mask", "mask_rgb")
    CONDITION_CHECK_AFTER = 1000
    CONDITION_GAP_WARN = 0.05
    CONDITION_GAP_WINDOW = 5

    def run_step(self, batch: Dict[str, Any]) -> Dict[str, Any]:
        self._last_batch = batch
        return super().run_step(batch)

    def extra_log_fields(self) -> Dict[str, Any]:
        batch = getattr(self, "_last_batch", None)
        if batch is None or "mask" not in batch:
            return {}
        usage = condition_usage(self.framework, batch, seed=_probe_seed(self.seed, self.step),
                                autocast=self.mp.autocast())
        if not usage:
            return {}
        fields: Dict[str, Any] = {"condition_usage": usage}
        gaps = getattr(self, "_recent_gaps", [])
        self._recent_gaps = (gaps + [usage["gap"]])[-self.CONDITION_GAP_WINDOW:]
        mean_gap = sum(self._recent_gaps) / len(self._recent_gaps)
        if self.step >= max(self.CONDITION_CHECK_AFTER, self.max_steps // 10) and mean_gap < self.CONDITION_GAP_WARN:
            message = (f"warning: step {self.step}: the model hardly uses its condition (loss gap true vs "
                       f"shuffled condition {mean_gap:.3f} < {self.CONDITION_GAP_WARN}; known depth pixels "
                       f"{usage['known_depth']:.0%}); check the dataset's warp_atol/warp_rtol for this image "
                       f"size (docs/evaluation.md, 'Condition usage during training')")
            dist.print0(message)
            fields["condition_warning"] = message
        return fields

    def _conditions(self, batch: Dict[str, Any]) -> Dict[str, Any]:
        """The batch's conditions the model is fed: ``mask_rgb`` only when the dataset made it
        (``erode_rgb`` augment) and the framework feeds it (``p_uncond_img == 0``), as the reference."""
        cond = {k: batch[k] for k in self._COND_KEYS if k in batch}
        select = getattr(self.framework, "training_conditions", None)
        return select(cond) if select is not None else cond

    def loss_inputs(self, batch: Dict[str, Any]) -> Dict[str, Any]:
        inputs = super().loss_inputs(batch)
        inputs.update(self._conditions(batch))
        return inputs

    def sample_cond(self, batch: Dict[str, Any]) -> Dict[str, Any]:
        return self._conditions(batch)


class SuperResTrainer(_FinetuneMixin, BasicTrainer):
    """Trainer of the super-resolution model (``*SR`` datasets, ``SuperResCFG``): batches carry the
    low-res RGBD ``y`` (N x 4 x h x w). Extra arg: ``finetune_ckpt``. Other args: :class:`BasicTrainer`."""

    SAMPLE_KIND = "superres"

    def loss_inputs(self, batch: Dict[str, Any]) -> Dict[str, Any]:
        inputs = super().loss_inputs(batch)
        inputs["y"] = batch["y"]
        return inputs

    def sample_cond(self, batch: Dict[str, Any]) -> Dict[str, Any]:
        return {"y": batch["y"]}
