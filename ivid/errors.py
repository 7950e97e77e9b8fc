"""The error types of ivid: every *expected* problem (a bad option, an unusable file, a busy run
folder) is an :class:`IvidError` whose message names the option or file at fault and says what to do.

The command-line tools print such an error as ONE line (``error: <message>``) and exit non-zero;
anything else is an internal error (a bug), also reported in one line unless ``--debug`` or
``IVID_DEBUG=1`` asks for the traceback (see :mod:`ivid.cli`).

The classes also derive from the built-in exception a caller would naturally catch
(``ValueError`` for bad values, ``RuntimeError`` for run-time conditions), so
``except ValueError`` keeps working around ivid calls.

Errors raised in DataLoader workers or spawned processes reach the parent as text (a formatted
traceback); :func:`unwrap_worker_error` recovers the original ivid error from that text.
"""

from __future__ import annotations

import builtins
import importlib
import re
from typing import Optional, Tuple, Type

__all__ = ["IvidError", "OptionError", "InputFileError", "RunFolderError", "one_line", "unwrap_worker_error",
           "worker_error_origin"]


class IvidError(Exception):
    """An expected, user-facing error; the message names the option/file at fault and what to do."""


class OptionError(IvidError, ValueError):
    """A command-line option (or config value) is invalid, or two options do not go together."""


class InputFileError(IvidError, ValueError):
    """A file the user gave cannot be used (unreadable, wrong format, wrong size); the message names it."""


class RunFolderError(IvidError, RuntimeError):
    """A run folder is in use by another process, or holds results made with other settings."""


def one_line(text: str) -> str:
    """``text`` with its lines joined by ``'; '`` (blank lines dropped, runs of spaces kept)."""
    parts = [line.strip() for line in str(text).splitlines()]
    return "; ".join(p for p in parts if p)


# "package.module.ClassName: message" - the last line(s) of a formatted traceback
_EXCEPTION_LINE = re.compile(r"^([A-Za-z_][\w.]*): ?(.*)$")


def _resolve_exception(name: str) -> Optional[Type[BaseException]]:
    """The exception class a formatted traceback names (``RuntimeError``, ``ivid.x.FooError``), or None."""
    module, _, attr = name.rpartition(".")
    try:
        obj = getattr(importlib.import_module(module), attr) if module else getattr(builtins, attr)
    except (ImportError, AttributeError, ValueError):
        return None
    return obj if isinstance(obj, type) and issubclass(obj, BaseException) else None


def worker_error_origin(text: str) -> Optional[Tuple[Type[BaseException], str]]:
    """``(class, message)`` of the outermost exception in a formatted traceback ``text``, or None.

    The exception line is the last unindented ``Name: message`` line that follows a traceback
    frame (an indented line); the message runs to the end of the text.
    """
    lines = str(text).rstrip("\n").splitlines()
    for i in range(len(lines) - 1, 0, -1):
        previous = lines[i - 1]
        if not (previous.startswith(" ") or previous.startswith("Traceback")):
            continue
        match = _EXCEPTION_LINE.match(lines[i])
        if match is None:
            continue
        cls = _resolve_exception(match.group(1))
        if cls is None:
            continue
        return cls, "\n".join([match.group(2)] + lines[i + 1:]).strip()
    return None


def unwrap_worker_error(err: BaseException) -> BaseException:
    """The ivid error behind an exception re-raised from a DataLoader worker or a spawned process.

    PyTorch re-raises a worker's exception with the worker's whole traceback as its message
    (``Caught X in DataLoader worker process 0. Original Traceback ...``, or
    ``-- Process 1 terminated with the following error: Traceback ...``). When the original
    exception is an :class:`IvidError` (or an ``OSError``), a new one of the same class with
    the original message is returned; otherwise ``err`` itself.
    """
    text = str(err)
    if "Traceback (most recent call last)" not in text:
        return err
    origin = worker_error_origin(text)
    if origin is None:
        return err
    cls, message = origin
    if not issubclass(cls, (IvidError, OSError)):
        return err
    try:
        return cls(message)
    except Exception:  # a class with another constructor signature: keep what PyTorch gave
        return err
