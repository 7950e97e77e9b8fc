"""Official MiDaS ``dpt_beit_large_512.pt`` key layout -> ``MidasDepth`` state_dict (docs/design.md#monocular-depth).

The official file is a bare state_dict of 487 tensors. 24 of them are the
``relative_position_index`` buffers of the 32 x 32 grid, which we recompute per
input grid, so they are dropped; the other 463 map one to one:

==============================================  ======================================
checkpoint key                                  ``MidasDepth`` key
==============================================  ======================================
``pretrained.model.<rest>``                     ``backbone.model.<rest>`` (timm Beit)
``pretrained.act_postprocess{i}.0.project.0.*`` ``decoder.reassemble.{i-1}.readout.*``
``pretrained.act_postprocess{i}.3.*``           ``decoder.reassemble.{i-1}.project.*``
``pretrained.act_postprocess{i}.4.*``           ``decoder.reassemble.{i-1}.resample.*``
``scratch.layer{i}_rn.weight``                  ``decoder.layer_rn.{i-1}.weight``
``scratch.refinenet{i}.resConfUnit{j}.conv{k}`` ``decoder.fusion.{i-1}.rcu{j}.conv{k}``
``scratch.refinenet{i}.out_conv.*``             ``decoder.fusion.{i-1}.out_conv.*``
``scratch.output_conv.{0,2,4}.*``               ``decoder.head.conv{1,2,3}.*``
==============================================  ======================================
"""

from __future__ import annotations

import os
import re
from collections import OrderedDict
from typing import Mapping, Optional

import torch

from ivid.errors import IvidError

DROPPED_KEY = re.compile(r"^pretrained\.model\.blocks\.\d+\.attn\.relative_position_index$")

_HEAD_CONVS = {"0": "conv1", "2": "conv2", "4": "conv3"}
_ACT_POSTPROCESS_PARTS = {"0.project.0": "readout", "3": "project", "4": "resample"}


def _sub_level(match: "re.Match") -> str:
    return str(int(match.group(1)) - 1)


_RULES = [
    (re.compile(r"^pretrained\.model\.(.+)$"), lambda m: f"backbone.model.{m.group(1)}"),
    (re.compile(r"^pretrained\.act_postprocess([1-4])\.(0\.project\.0|3|4)\.(weight|bias)$"),
     lambda m: f"decoder.reassemble.{_sub_level(m)}.{_ACT_POSTPROCESS_PARTS[m.group(2)]}.{m.group(3)}"),
    (re.compile(r"^scratch\.layer([1-4])_rn\.weight$"), lambda m: f"decoder.layer_rn.{_sub_level(m)}.weight"),
    (re.compile(r"^scratch\.refinenet([1-4])\.resConfUnit([12])\.(conv[12])\.(weight|bias)$"),
     lambda m: f"decoder.fusion.{_sub_level(m)}.rcu{m.group(2)}.{m.group(3)}.{m.group(4)}"),
    (re.compile(r"^scratch\.refinenet([1-4])\.out_conv\.(weight|bias)$"),
     lambda m: f"decoder.fusion.{_sub_level(m)}.out_conv.{m.group(2)}"),
    (re.compile(r"^scratch\.output_conv\.([024])\.(weight|bias)$"),
     lambda m: f"decoder.head.{_HEAD_CONVS[m.group(1)]}.{m.group(2)}"),
]


class MidasCheckpointError(IvidError, ValueError):
    """A MiDaS checkpoint file does not fit the model (message names the file and the keys)."""


def map_checkpoint_key(key: str) -> Optional[str]:
    """Official checkpoint key -> ``MidasDepth`` key; ``None`` for dropped or unknown keys."""
    if DROPPED_KEY.match(key):
        return None
    for pattern, rename in _RULES:
        match = pattern.match(key)
        if match:
            return rename(match)
    return None


def _describe(keys, limit: int = 8) -> str:
    keys = sorted(keys)
    more = f" ... (+{len(keys) - limit} more)" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def convert_checkpoint(state_dict: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor],
                       source: str = "checkpoint") -> "OrderedDict[str, torch.Tensor]":
    """Rename an official-layout state_dict and check it against ``expected`` (a model state_dict).

    Floating tensors are cast to the expected dtype. Raises ``MidasCheckpointError``
    listing unexpected keys, missing keys and shape mismatches.
    """
    converted: "OrderedDict[str, torch.Tensor]" = OrderedDict()
    unexpected = []
    for key, value in state_dict.items():
        if DROPPED_KEY.match(key):
            continue
        new_key = map_checkpoint_key(key)
        if new_key is None or new_key not in expected:
            unexpected.append(key)
            continue
        converted[new_key] = value
    missing = [k for k in expected if k not in converted]
    mismatched = [f"{k}: file {tuple(converted[k].shape)} vs model {tuple(expected[k].shape)}"
                  for k in converted if tuple(converted[k].shape) != tuple(expected[k].shape)]
    if unexpected or missing or mismatched:
        parts = [f"{source}: not a MiDaS dpt_beit_large_512 state_dict"]
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s): {_describe(unexpected)}")
        if missing:
            parts.append(f"{len(missing)} missing key(s) (model names): {_describe(missing)}")
        if mismatched:
            parts.append(f"{len(mismatched)} shape mismatch(es): {_describe(mismatched)}")
        raise MidasCheckpointError("; ".join(parts))
    for key, value in converted.items():
        if value.is_floating_point() and value.dtype != expected[key].dtype:
            converted[key] = value.to(expected[key].dtype)
    return converted


def load_checkpoint_file(path: "os.PathLike | str") -> Mapping[str, torch.Tensor]:
    """Load a bare state_dict safely (``weights_only=True``) on the CPU."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"MiDaS checkpoint {path!r} does not exist")
    try:
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt or not a torch file: name it
        raise MidasCheckpointError(f"{path}: cannot be read as a torch state_dict ({exc})") from exc
    if not isinstance(state_dict, Mapping) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise MidasCheckpointError(f"{path}: expected a bare state_dict (key -> tensor), "
                                   f"got {type(state_dict).__name__}")
    return state_dict
