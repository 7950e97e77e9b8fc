"""Mixed precision of the ADM torso and dtype-casting state_dict loads.

ADM's ``use_fp16`` keeps a float32 model except for the convolutions of the
three block stacks (``input_blocks``, ``middle_block``, ``output_blocks``):
their weights and biases are float16 (242 tensors in the released configs).
Linear layers, norms, embeddings and the ``out`` head stay float32.
"""

from __future__ import annotations

from typing import Dict, Iterator, Mapping

import torch
from torch import nn

__all__ = ["TORSO_STACKS", "torso_convs", "convert_torso", "cast_state_dict_like"]

#: Sub-module names of the UNet whose convolutions follow the torso dtype.
TORSO_STACKS = ("input_blocks", "middle_block", "output_blocks")


def torso_convs(model: nn.Module) -> Iterator[nn.Module]:
    """Yield every ``Conv1d`` / ``Conv2d`` inside the torso stacks of ``model``."""
    for stack in TORSO_STACKS:
        for module in getattr(model, stack).modules():
            if isinstance(module, (nn.Conv1d, nn.Conv2d)):
                yield module


def convert_torso(model: nn.Module, dtype: torch.dtype) -> nn.Module:
    """Cast the torso convolutions of ``model`` to ``dtype`` in place (float16 = ADM ``use_fp16``)."""
    for conv in torso_convs(model):
        conv.to(dtype)
    return model


def cast_state_dict_like(state_dict: Mapping[str, torch.Tensor],
                         reference: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Return ``state_dict`` with every floating tensor cast to the dtype of the same key in ``reference``.

    Keys absent from ``reference`` and non-floating tensors are passed through
    unchanged (strict key checking is the loader's job). No copy is made for
    tensors that already have the right dtype.
    """
    out: Dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        target = reference.get(key)
        if (target is not None and isinstance(value, torch.Tensor) and value.is_floating_point()
                and target.is_floating_point() and value.dtype != target.dtype):
            value = value.to(target.dtype)
        out[key] = value
    return out
