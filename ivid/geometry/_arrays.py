"""NumPy-in/NumPy-out, tensor-in/tensor-out plumbing for the geometry functions.

Every geometry function has ONE implementation, written in PyTorch. The helpers
here let it accept NumPy arrays (and lists / scalars) as well:

- if any argument is a ``torch.Tensor``, NumPy arguments are moved next to it
  (same device, their own dtype) and the result stays a tensor;
- otherwise every NumPy argument becomes a CPU tensor (``torch.from_numpy``,
  dtype kept) and every tensor in the result is turned back into NumPy.

Results may be tensors or tuples / lists / dicts / dataclasses of them.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Optional, TypeVar

import numpy as np
import torch

F = TypeVar("F", bound=Callable[..., Any])


def first_tensor(*objs: Any) -> Optional[torch.Tensor]:
    """Return the first ``torch.Tensor`` among ``objs`` (looking into lists/tuples/dicts), or None."""
    for obj in objs:
        if isinstance(obj, torch.Tensor):
            return obj
        if isinstance(obj, (list, tuple)):
            found = first_tensor(*obj)
        elif isinstance(obj, dict):
            found = first_tensor(*obj.values())
        else:
            continue
        if found is not None:
            return found
    return None


def work_dtype(device: torch.device) -> torch.dtype:
    """float64 where the device supports it (everything but Apple MPS), else float32."""
    return torch.float32 if torch.device(device).type == "mps" else torch.float64


def to_tensor(x: Any, device: Optional[torch.device] = None, dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    """``x`` (tensor, NumPy array, list or scalar) as a tensor on ``device`` with ``dtype``.

    ``None`` keeps the tensor's own device / dtype (NumPy arrays keep their dtype;
    Python floats become float64). Never modifies ``x``; may return ``x`` itself.
    """
    if isinstance(x, torch.Tensor):
        return x.to(device=device if device is not None else x.device, dtype=dtype or x.dtype)
    if isinstance(x, np.ndarray):
        x = np.ascontiguousarray(x)
        t = torch.from_numpy(x if x.flags.writeable else x.copy())
    else:
        t = torch.as_tensor(np.asarray(x))
    return t.to(device=device if device is not None else t.device, dtype=dtype or t.dtype)


def tree_map(fn: Callable[[Any], Any], obj: Any) -> Any:
    """Apply ``fn`` to every leaf of nested tuples / lists / dicts / dataclass instances."""
    if isinstance(obj, dict):
        return type(obj)((k, tree_map(fn, v)) for k, v in obj.items())
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):  # namedtuple
        return type(obj)(*(tree_map(fn, v) for v in obj))
    if isinstance(obj, (list, tuple)):
        return type(obj)(tree_map(fn, v) for v in obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        changes = {f.name: tree_map(fn, getattr(obj, f.name)) for f in dataclasses.fields(obj) if f.init}
        return dataclasses.replace(obj, **changes)
    return fn(obj)


def tensors_to_numpy(obj: Any) -> Any:
    """Every tensor inside ``obj`` as a NumPy array (detached, on the CPU)."""
    return tree_map(lambda v: v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else v, obj)


def numpy_io(fn: F) -> F:
    """Decorator: let a torch implementation take NumPy arrays and return NumPy then.

    NumPy array arguments (also inside lists/tuples) are converted to tensors on the
    device of the first tensor argument, or on the CPU when there is none; in the
    latter case the result is converted back to NumPy. Dtypes are kept.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        anchor = first_tensor(*args, *kwargs.values())
        device = anchor.device if anchor is not None else torch.device("cpu")

        def convert(v: Any) -> Any:
            return to_tensor(v, device=device) if isinstance(v, np.ndarray) else v

        args = tuple(tree_map(convert, a) for a in args)
        kwargs = {k: tree_map(convert, v) for k, v in kwargs.items()}
        result = fn(*args, **kwargs)
        return result if anchor is not None else tensors_to_numpy(result)

    return wrapper  # type: ignore[return-value]
