"""Run-time device selection. Nothing in ivid hard-codes CUDA."""

from __future__ import annotations

from typing import Optional, Union

import torch

from ivid.errors import OptionError


def resolve_device(device: Optional[Union[str, torch.device]] = None) -> torch.device:
    """Return the device to run on.

    Args:
        device: ``None`` or ``"auto"`` picks ``cuda`` when a GPU is visible, else
            ``mps`` when available, else ``cpu``. Anything else (``"cpu"``,
            ``"cuda:1"``, a ``torch.device``) is used as given, after checking
            that it exists.

    Raises:
        OptionError (a ValueError): not a device name, or the device is not available here.
    """
    if device is None or (isinstance(device, str) and device.lower() == "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise OptionError(f"--device {device}: not a device; use cpu, cuda, cuda:N (N-th GPU) or mps, "
                          "or leave --device unset to pick automatically") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise OptionError(f"--device {device}: CUDA was requested but no CUDA GPU is visible "
                          "(use --device cpu, or leave --device unset to pick automatically)")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise OptionError(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) visible")
    if dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise OptionError(f"--device {device}: Apple MPS is not available on this machine (use --device cpu)")
    if dev.type not in ("cpu", "cuda", "mps") and not _backend_available(dev.type):
        raise OptionError(f"--device {device}: no {dev.type} backend is available on this machine "
                          "(use cpu, cuda or mps)")
    return dev


def _backend_available(kind: str) -> bool:
    """True when torch has a usable backend module ``torch.<kind>`` (xpu, ...) with a device."""
    module = getattr(torch, kind, None)
    try:
        return bool(module is not None and module.is_available())
    except Exception:  # a backend stub without is_available()
        return False
