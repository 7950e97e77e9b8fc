"""Training checkpoints: the reference's file names, bare float32 state_dicts, no pickles.

A checkpoint at step ``S`` in ``<output_dir>/ckpts/`` is three kinds of file:

* ``model_step%07d.pt``: the backbone ``state_dict`` (float32, built from the
  master parameters, no ``module.`` / ``_orig_mod.`` prefixes) -- loads
  strictly into a fresh ``AdmUnet2d``;
* ``ema_<rate>_step%07d.pt`` for each EMA rate (``<rate>`` = ``str(float)``,
  e.g. ``ema_0.9999_step0050000.pt``): same format, a drop-in for sampling;
* ``misc_step%07d.pt``: a dict of tensors and plain Python values (optimizer
  state, step, loss scale, RNG states, data position, ``config_json``).

Every file is written atomically and ``misc`` last, so a ``misc`` file marks a
complete checkpoint. Every file loads with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import collections
import os
import re
from typing import Any, List, Mapping, Optional, Sequence, Tuple

import torch
from torch import nn

from ivid.errors import IvidError
from ivid.utils.io import atomic_torch_save

__all__ = [
    "model_filename", "ema_filename", "misc_filename", "unwrap", "strip_prefixes", "params_to_state_dict",
    "state_dict_to_params", "list_steps", "find_latest_step", "save_checkpoint", "load_file", "CheckpointFiles",
    "ModelMismatchError",
]

_MISC_RE = re.compile(r"^misc_step(\d{7,})\.pt$")


class ModelMismatchError(IvidError, ValueError):
    """A checkpoint's tensors do not fit the model (another architecture); the message names the file."""
_PREFIXES = ("module.", "_orig_mod.")


def model_filename(step: int) -> str:
    return f"model_step{step:07d}.pt"


def ema_filename(rate: float, step: int) -> str:
    return f"ema_{float(rate)}_step{step:07d}.pt"


def misc_filename(step: int) -> str:
    return f"misc_step{step:07d}.pt"


def unwrap(model: nn.Module) -> nn.Module:
    """Strip ``DistributedDataParallel`` (``.module``) and ``torch.compile`` (``._orig_mod``) wrappers."""
    while True:
        if hasattr(model, "_orig_mod") and isinstance(model._orig_mod, nn.Module):
            model = model._orig_mod
        elif isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        else:
            return model


def strip_prefixes(state_dict: Mapping[str, torch.Tensor]) -> "collections.OrderedDict[str, torch.Tensor]":
    """Remove leading ``module.`` / ``_orig_mod.`` from every key."""
    out = collections.OrderedDict()
    for key, value in state_dict.items():
        changed = True
        while changed:
            changed = False
            for prefix in _PREFIXES:
                if key.startswith(prefix):
                    key, changed = key[len(prefix):], True
        out[key] = value
    return out


def params_to_state_dict(model: nn.Module, params: Sequence[torch.Tensor]) -> "collections.OrderedDict":
    """The model's ``state_dict`` with its parameters replaced by ``params`` (float32, CPU).

    Args:
        model: the module (wrappers are stripped); supplies key order and buffers.
        params: one tensor per ``model.parameters()`` entry, same order (e.g. the
            float32 masters or an EMA).

    Returns:
        An ``OrderedDict`` of float32 CPU tensors (floating buffers cast to float32).
    """
    model = unwrap(model)
    names = [name for name, _ in model.named_parameters()]
    if len(names) != len(params):
        raise ValueError(f"params_to_state_dict: model has {len(names)} parameters, got {len(params)} tensors")
    by_name = dict(zip(names, params))
    out = collections.OrderedDict()
    for key, value in strip_prefixes(model.state_dict()).items():
        value = by_name.get(key, value).detach()
        if value.is_floating_point():
            value = value.float()
        out[key] = value.cpu().clone()
    return out


def state_dict_to_params(model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str) -> List[torch.Tensor]:
    """Float32 parameter tensors in ``model.parameters()`` order from a state_dict (strict on names/shapes).

    Raises:
        ModelMismatchError (a ValueError): missing or unexpected keys, or shape mismatches,
            listed with ``source``.
    """
    model = unwrap(model)
    state_dict = strip_prefixes(state_dict)
    expected = strip_prefixes(model.state_dict())
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    shapes = [f"{k}: file {tuple(state_dict[k].shape)} vs model {tuple(v.shape)}"
              for k, v in expected.items() if k in state_dict and tuple(state_dict[k].shape) != tuple(v.shape)]
    if missing or unexpected or shapes:
        raise ModelMismatchError(f"{source}: state_dict does not match the model; missing {missing[:10]}, "
                                 f"unexpected {unexpected[:10]}, shape mismatches {shapes[:10]}")
    return [state_dict[name].detach().float() for name, _ in model.named_parameters()]


def list_steps(ckpt_dir: str) -> List[int]:
    """Steps that have a complete checkpoint (a ``misc_step*.pt`` file) in ``ckpt_dir``, ascending."""
    if not os.path.isdir(ckpt_dir):
        return []
    steps = [int(m.group(1)) for m in map(_MISC_RE.match, os.listdir(ckpt_dir)) if m]
    return sorted(steps)


def find_latest_step(ckpt_dir: str) -> Optional[int]:
    """The highest complete checkpoint step in ``ckpt_dir``, or ``None``."""
    steps = list_steps(ckpt_dir)
    return steps[-1] if steps else None


def save_checkpoint(ckpt_dir: str, step: int, model_state: Mapping[str, torch.Tensor],
                    ema_states: Mapping[float, Mapping[str, torch.Tensor]], misc: Mapping[str, Any]) -> List[str]:
    """Write model, EMA and misc files for ``step`` atomically (misc last); return the paths."""
    os.makedirs(ckpt_dir, exist_ok=True)
    paths = [os.path.join(ckpt_dir, model_filename(step))]
    atomic_torch_save(dict(model_state), paths[-1])
    for rate, state in ema_states.items():
        paths.append(os.path.join(ckpt_dir, ema_filename(rate, step)))
        atomic_torch_save(dict(state), paths[-1])
    paths.append(os.path.join(ckpt_dir, misc_filename(step)))
    atomic_torch_save(dict(misc), paths[-1])
    return paths


def load_file(path: str) -> Any:
    """``torch.load`` without pickles; a clear error when the file is missing or unreadable.

    Raises:
        ivid.model_loading.CheckpointNotFoundError (a FileNotFoundError): no such file.
        ivid.model_loading.CheckpointError: empty, truncated, foreign or pickled-object file
            (the message names the file and the reason).
    """
    from ivid.model_loading import safe_torch_load

    return safe_torch_load(path)


class CheckpointFiles:
    """Paths of the checkpoint at ``step`` in ``ckpt_dir`` (nothing is read)."""

    def __init__(self, ckpt_dir: str, step: int):
        self.ckpt_dir, self.step = ckpt_dir, int(step)
        self.model = os.path.join(ckpt_dir, model_filename(self.step))
        self.misc = os.path.join(ckpt_dir, misc_filename(self.step))

    def ema(self, rate: float) -> str:
        return os.path.join(self.ckpt_dir, ema_filename(rate, self.step))

    def describe(self, rates: Sequence[float]) -> Tuple[str, ...]:
        return (self.model, *(self.ema(r) for r in rates), self.misc)
