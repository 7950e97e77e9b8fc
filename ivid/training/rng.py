"""Capture and restore the global random-number generators as plain tensors.

``ivid`` draws its own noise from explicit generators, but third-party code
(``nn.Dropout``, some augmentations) uses the global ones. For exact resume the
trainer stores them in ``misc_step*.pt`` without pickling Python objects: every
state is a tensor of fixed shape (so it can also be gathered across ranks).

Keys of a state dict: ``python`` (int64, 625 words + version), ``python_gauss``
(float64 ``[has_gauss, value]``), ``numpy`` (int64, 624 keys + pos + has_gauss),
``numpy_gauss`` (float64 ``[cached_gaussian]``), ``torch_cpu`` (uint8) and, on a
CUDA device, ``torch_cuda`` (uint8).
"""

from __future__ import annotations

import random
from typing import Dict, Optional

import numpy as np
import torch

__all__ = ["capture_rng_state", "restore_rng_state"]


def capture_rng_state(device: Optional[torch.device] = None) -> Dict[str, torch.Tensor]:
    """Snapshot Python, NumPy, torch CPU and (for a CUDA ``device``) torch CUDA generator states."""
    version, words, gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state = {
        "python": torch.tensor(list(words) + [version], dtype=torch.int64),
        "python_gauss": torch.tensor([0.0 if gauss is None else 1.0, 0.0 if gauss is None else gauss],
                                     dtype=torch.float64),
        "numpy": torch.tensor(np.concatenate([np.asarray(np_keys, np.int64), [np_pos, np_has_gauss]]),
                              dtype=torch.int64),
        "numpy_gauss": torch.tensor([np_gauss], dtype=torch.float64),
        "torch_cpu": torch.get_rng_state(),
    }
    if device is not None and torch.device(device).type == "cuda":
        state["torch_cuda"] = torch.cuda.get_rng_state(device)
    return state


def restore_rng_state(state: Dict[str, torch.Tensor], device: Optional[torch.device] = None) -> None:
    """Inverse of :func:`capture_rng_state` (keys that are absent are left alone)."""
    if "python" in state:
        values = [int(v) for v in state["python"].tolist()]
        has_gauss, gauss = state["python_gauss"].tolist()
        random.setstate((values[-1], tuple(values[:-1]), gauss if has_gauss else None))
    if "numpy" in state:
        values = state["numpy"].tolist()
        np.random.set_state(("MT19937", np.asarray(values[:624], dtype=np.uint32), int(values[624]),
                             int(values[625]), float(state["numpy_gauss"][0])))
    if "torch_cpu" in state:
        torch.set_rng_state(state["torch_cpu"].to(torch.uint8).cpu())
    if "torch_cuda" in state and device is not None and torch.device(device).type == "cuda":
        torch.cuda.set_rng_state(state["torch_cuda"].to(torch.uint8).cpu(), device)
