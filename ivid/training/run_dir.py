"""Self-describing run directories: resolved config, command, environment, parameters, JSONL log.

Layout of ``<output_dir>`` (written by rank 0 only)::

    config.json    the validated config with every constructor default filled in
    command.txt    the command line that started the run (one line per start, appended)
    env.txt        time, Python / torch / CUDA versions, device, world size (one line per start)
    params.txt     parameter counts per top-level module and per dtype

``config.json``, ``command.txt`` and ``env.txt`` are the run record of :mod:`ivid.utils.run_record`
(the format every tool uses); this module adds what only training writes.
    log.jsonl      one JSON object per log interval (see BasicTrainer)
    ckpts/         model_step*.pt, ema_<rate>_step*.pt, misc_step*.pt
    samples/       sample grids step*.png
"""

from __future__ import annotations

import copy
import inspect
import json
import math
import os
from typing import Any, Dict, Mapping

from torch import nn

from ivid.config import registry

__all__ = ["resolve_defaults", "parameter_summary", "JsonlLog", "to_jsonable"]


def _json_default(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    return value


def resolve_defaults(cfg: Mapping[str, Any]) -> Dict[str, Any]:
    """A copy of a validated config where each section's ``args`` also lists the constructor defaults.

    Runtime parameters (``RUNTIME_ARGS``) and defaults that are not JSON values are left out.
    """
    out = copy.deepcopy(dict(cfg))
    for section, body in out.items():
        cls = registry(section)[body["name"]]
        runtime = set(getattr(cls, "RUNTIME_ARGS", ()))
        args = dict(body.get("args") or {})
        for name, p in list(inspect.signature(cls.__init__).parameters.items())[1:]:
            if name in args or name in runtime or p.default is inspect.Parameter.empty:
                continue
            if p.kind not in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
                continue
            default = _json_default(p.default)
            try:
                json.dumps(default)
            except TypeError:
                continue
            args[name] = default
        body["args"] = args
    return out


def parameter_summary(model: nn.Module) -> str:
    """Human-readable parameter counts: total, per top-level child, per dtype."""
    total = sum(p.numel() for p in model.parameters())
    lines = [f"{type(model).__name__}: {total:,} parameters in {len(list(model.parameters()))} tensors"]
    for name, child in model.named_children():
        n = sum(p.numel() for p in child.parameters())
        lines.append(f"  {name:<16} {n:>14,}")
    per_dtype: Dict[str, int] = {}
    for p in model.parameters():
        per_dtype[str(p.dtype)] = per_dtype.get(str(p.dtype), 0) + p.numel()
    lines.append("by dtype: " + ", ".join(f"{k} {v:,}" for k, v in sorted(per_dtype.items())))
    return "\n".join(lines) + "\n"


def to_jsonable(value: Any) -> Any:
    """Tensors/NumPy scalars -> Python numbers; non-finite floats -> strings ("nan", "inf")."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


class JsonlLog:
    """Append-only JSON-lines file (one object per call to :meth:`write`)."""

    def __init__(self, path: str):
        self.path = path
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)

    def write(self, record: Mapping[str, Any]) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(to_jsonable(dict(record)), sort_keys=False) + "\n")
