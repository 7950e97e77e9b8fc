"""Arithmetic precision and compilation of the denoising UNets (``--precision``, ``--compile``).

Only the backbone's forward is affected: the samplers' arithmetic, the conditioning renderer and
the meshes stay in float32 / float64 whatever the precision.

Precisions (``inference/sample.py --precision``):

- ``fp32`` (default): the models exactly as configured and as the reference runs them: float32
  on the CPU; on CUDA the torso convolutions in float16 when the config says ``use_fp16`` (the
  released configs do), everything else float32. Bit-identical to runs without the option.
- ``bf16``: float32 weights, every forward under ``torch.autocast(bfloat16)`` (convolutions,
  linear layers and attention in bfloat16, norms and the output in float32), in channels-last
  memory format (faster convolutions on the CPU). CPU and CUDA.
- ``fp16``: the same with float16; CUDA only (float16 arithmetic on the CPU is emulated and
  slow), refused elsewhere.

``bf16`` and ``fp16`` change the samples (a few 8-bit levels per pixel, growing along a
trajectory), so a run folder holds samples of one precision (``ivid.sampling.run_folder``).

``--compile`` runs each backbone's forward through ``torch.compile``. Compilation happens at the
first call (once per process, model and batch shape: tens of seconds on a GPU machine, minutes on
a small CPU); where it does not work (no C++
compiler, an unsupported Python, a backend error) one warning is printed and the model runs
as it is. Compiled kernels fuse operations, so results differ from the eager ones in the last
bits of float32 (as with another CPU thread count; on the demo models 0.09 8-bit levels on
average after 27 views): compile is recorded in ``args.json`` but does not separate run folders.
Measurements: docs/performance.md#precision-and-compilation.
"""

from __future__ import annotations

import functools
import warnings
from typing import Any, Callable, Optional

import torch

from ivid.errors import OptionError, one_line

__all__ = ["PRECISIONS", "AUTOCAST_DTYPES", "check_precision", "master_weights_fp16",
           "autocast_forward", "uses_channels_last", "compile_forward", "prepare_backbone"]

#: ``--precision`` choices; the first is the default
PRECISIONS = ("fp32", "bf16", "fp16")
#: autocast dtype of each reduced precision
AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
#: device types on which each reduced precision is offered
_DEVICES = {"bf16": ("cpu", "cuda"), "fp16": ("cuda",)}


def check_precision(precision: str, device_type: str) -> None:
    """Refuse an unknown precision, or one the device cannot run (fp16 off CUDA).

    Raises:
        OptionError: naming ``--precision``, the value and what to use instead.
    """
    if precision not in PRECISIONS:
        raise OptionError(f"--precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    allowed = _DEVICES.get(precision)
    if allowed is not None and device_type not in allowed:
        what = "a CUDA GPU" if allowed == ("cuda",) else " or ".join(allowed)
        other = "bf16 or fp32" if precision == "fp16" and device_type == "cpu" else "fp32"
        raise OptionError(f"--precision {precision}: needs {what}, this run is on {device_type}; use {other}")


def master_weights_fp16(precision: str) -> Optional[bool]:
    """``use_fp16`` to load the models with: None (the config's choice) for ``fp32``, else False
    (float32 weights that autocast casts per operation)."""
    return None if precision == "fp32" else False


def autocast_forward(forward: Callable[..., Any], precision: str, device_type: str,
                     channels_last: bool = False) -> Callable[..., Any]:
    """``forward`` run under ``torch.autocast`` of ``precision`` (``forward`` itself for ``fp32``).

    With ``channels_last`` the input image is passed in channels-last memory format (the
    module's weights must be converted by the caller). Floating outputs are returned in the
    dtype of the first input (float32 for the samplers), in the usual contiguous layout.
    """
    if precision == "fp32" and not channels_last:
        return forward
    dtype = AUTOCAST_DTYPES.get(precision)

    @functools.wraps(forward)
    def run(x: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        inner = x.contiguous(memory_format=torch.channels_last) if channels_last and x.ndim == 4 else x
        with torch.autocast(device_type=device_type, dtype=dtype, enabled=dtype is not None):
            out = forward(inner, *args, **kwargs)
        if torch.is_tensor(out) and out.is_floating_point():
            return out.to(x.dtype).contiguous()
        return out

    return run


class _Compiled:
    """A forward through ``torch.compile``; on its first failure, warns once and runs ``forward`` from then on."""

    def __init__(self, forward: Callable[..., Any], name: str):
        self.forward, self.name = forward, name
        self.compiled: Optional[Callable[..., Any]] = None
        try:
            self.compiled = torch.compile(forward)
        except Exception as err:  # noqa: B902 - an unsupported platform raises here already
            self._give_up(err)

    def _give_up(self, err: BaseException) -> None:
        self.compiled = None
        warnings.warn(f"--compile: torch.compile does not work here for {self.name} "
                      f"({type(err).__name__}: {one_line(str(err))[:200]}); running it without compilation",
                      RuntimeWarning, stacklevel=3)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.compiled is not None:
            try:
                return self.compiled(*args, **kwargs)
            except Exception as err:  # noqa: B902 - compiler missing or failing: the eager forward decides
                self._give_up(err)
        return self.forward(*args, **kwargs)


def compile_forward(forward: Callable[..., Any], name: str = "the UNet") -> Callable[..., Any]:
    """``forward`` compiled with ``torch.compile``, falling back to ``forward`` with one warning."""
    return _Compiled(forward, name)


def uses_channels_last(precision: str) -> bool:
    """Whether the UNet runs in channels-last memory format: with ``bf16`` / ``fp16`` (faster on the
    CPU, see docs/performance.md#precision-and-compilation), never in ``fp32``, where it would change
    the last bits of float32 results."""
    return precision != "fp32"


def prepare_backbone(backbone: torch.nn.Module, precision: str = "fp32", compile: bool = False,
                     name: str = "the UNet") -> torch.nn.Module:
    """Set ``backbone``'s forward to run in ``precision`` and, with ``compile``, compiled (in place).

    The module's parameters, attributes and state_dict keep their values and dtypes, so the
    frameworks use it as before (convolution weights are re-laid out in channels-last memory
    format with ``bf16`` / ``fp16``, :func:`uses_channels_last`). ``fp32`` without ``compile``
    leaves it untouched.

    Returns:
        ``backbone``.
    """
    if precision == "fp32" and not compile:
        return backbone
    device_type = next(iter(backbone.parameters()), torch.empty(0)).device.type
    check_precision(precision, device_type)
    channels_last = uses_channels_last(precision)
    if channels_last:
        backbone.to(memory_format=torch.channels_last)
    forward = autocast_forward(backbone.forward, precision, device_type, channels_last)
    if compile:
        forward = compile_forward(forward, name)
    backbone.forward = forward
    return backbone
