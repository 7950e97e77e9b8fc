"""Run-time device selection. Nothing in ivid hard-codes CUDA."""

from __future__ import annotations

from typing import Optional, Union

import torch


def resolve_device(device: Optional[Union[str, torch.device]] = None) -> torch.device:
    """Return the device to run on.

    Args:
        device: ``None`` or ``"auto"`` picks ``cuda`` when a GPU is visible, else
            ``mps`` when available, else ``cpu``. Anything else (``"cpu"``,
            ``"cuda:1"``, a ``torch.device``) is used as given, after checking
            that it exists.

    Raises:
        ValueError: the requested device is not available on this machine.
    """
    if device is None or (isinstance(device, str) and device.lower() == "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {device}: CUDA was requested but no CUDA GPU is visible "
                         "(use --device cpu, or leave --device unset to pick automatically)")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) visible")
    return dev
