"""Run records: the command line, environment, settings and time of a run, in one format, written atomically.

Every tool describes a run with :func:`run_record`::

    {"time": "2024-05-01T12:00:00+00:00",                    # UTC, ISO 8601, seconds
     "command": "/usr/bin/python train.py --config c.json",  # shell-quoted
     "environment": {"python": "3.11.9", "torch": "2.3.1", "numpy": "1.26.4",
                     "cuda": "12.1" or null, "cudnn": 8902 or null, "device": "cuda:0",
                     "gpu": "NVIDIA H100 80GB HBM3" or null, "world_size": 1, "host": "node1"},
     "settings": {...}}                                      # what the run was asked to do (JSON values)

and keeps it where its readers look:

=======================  ===========================================================================
``train.py``             run folder (:func:`write_run_folder`): ``config.json`` = the settings (the
                         resolved config, a model config sampling reads), ``command.txt``, ``env.txt``
``inference/sample.py``  run folder: ``args.json`` = the settings (resolved options and the
                         ``output_settings`` a later run into the folder is checked against),
                         ``command.txt``, ``env.txt``
``eval.py``              one JSON line per evaluation (:func:`append_json_line`) in
                         ``metrics/<fake cache name>.jsonl``: the record plus ``scores`` and ``args``
=======================  ===========================================================================

``command.txt`` and ``env.txt`` get one line per start (a resumed training, or a sampling run
that adds seeds to its folder, appends): the command, and :func:`environment_line`
(``<time> python=... torch=... device=... world_size=N host=...``). Every write replaces its
file atomically, so a killed run never leaves half a file.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import shlex
import sys
from typing import Any, Dict, Mapping, Optional, Sequence, Union

import numpy as np
import torch

from .io import atomic_write

__all__ = ["RECORD_KEYS", "utc_now", "command_line", "environment", "run_record", "environment_line",
           "write_json", "append_line", "append_json_line", "write_run_folder"]

#: the keys every run record has (a tool may add more)
RECORD_KEYS = ("time", "command", "environment", "settings")

Command = Union[str, Sequence[str], None]


def utc_now() -> str:
    """The current time, UTC, ISO 8601 to the second (``2024-05-01T12:00:00+00:00``)."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def command_line(command: Command = None) -> str:
    """The command of a run as one shell-quoted line.

    ``command``: a line (kept as it is), an argv list (quoted and joined), or None for this
    process (``python`` executable + ``sys.argv``).
    """
    if isinstance(command, str):
        return command
    argv = [sys.executable, *sys.argv] if command is None else list(command)
    return " ".join(shlex.quote(str(a)) for a in argv)


def environment(device: Union[str, torch.device, None] = None, world_size: int = 1) -> Dict[str, Any]:
    """Versions, device and world size of this process (JSON values).

    ``device``: where the run computes (None: not known / not applicable); ``gpu`` names the
    CUDA device when it is one.
    """
    gpu = None
    if device is not None and torch.device(device).type == "cuda" and torch.cuda.is_available():
        gpu = torch.cuda.get_device_name(torch.device(device))
    return {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
            "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version() if torch.cuda.is_available() else None,
            "device": None if device is None else str(device), "gpu": gpu, "world_size": int(world_size),
            "host": platform.node()}


def run_record(settings: Mapping[str, Any], command: Command = None, device: Union[str, torch.device, None] = None,
               world_size: int = 1, **extra: Any) -> Dict[str, Any]:
    """The record of a run: ``time``, ``command``, ``environment``, ``settings`` (+ ``extra`` keys).

    Args:
        settings: what the run was asked to do (JSON values).
        command: see :func:`command_line`.
        device, world_size: see :func:`environment`.
        extra: further top-level keys (e.g. an evaluation's ``scores``).
    """
    return {"time": utc_now(), "command": command_line(command), "environment": environment(device, world_size),
            "settings": dict(settings), **extra}


def environment_line(record: Mapping[str, Any]) -> str:
    """One line of ``env.txt``: the record's time, then its environment as ``key=value`` pairs
    (None as ``none``, values with spaces shell-quoted)."""
    pairs = [f"{key}={'none' if value is None else shlex.quote(str(value))}"
             for key, value in record["environment"].items()]
    return " ".join([record["time"], *pairs])


def write_json(path: str, obj: Any) -> None:
    """``obj`` as indented JSON (values JSON cannot hold written as text), replacing ``path`` atomically."""
    with atomic_write(path, "w") as f:
        json.dump(obj, f, indent=2, default=str)
        f.write("\n")


def append_line(path: str, line: str) -> None:
    """Append one line to a text file: the whole file is rewritten atomically (created with its folder)."""
    previous = b""
    if os.path.isfile(path):
        with open(path, "rb") as f:
            previous = f.read()
        if previous and not previous.endswith(b"\n"):
            previous += b"\n"
    with atomic_write(path, "wb") as f:
        f.write(previous + (line.rstrip("\n") + "\n").encode("utf-8"))


def append_json_line(path: str, obj: Mapping[str, Any]) -> None:
    """Append ``obj`` as one JSON line to ``path`` (see :func:`append_line`)."""
    append_line(path, json.dumps(dict(obj), default=str))


def write_run_folder(folder: str, record: Mapping[str, Any], settings_file: Optional[str]) -> None:
    """Keep a run record in a run folder: ``settings_file`` (the settings, replaced; None: not kept),
    one more line in ``command.txt`` and in ``env.txt``."""
    os.makedirs(folder, exist_ok=True)
    if settings_file is not None:
        write_json(os.path.join(folder, settings_file), record["settings"])
    append_line(os.path.join(folder, "command.txt"), record["command"])
    append_line(os.path.join(folder, "env.txt"), environment_line(record))
