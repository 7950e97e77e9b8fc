"""Graceful stop on SIGTERM / SIGINT.

The first signal only raises a flag: the trainer finishes the step in flight,
saves a checkpoint and returns normally (exit status 0). A second signal exits
at once with status ``128 + signum``, without saving. Signals arriving within
:data:`DUPLICATE_WINDOW_S` of the first count as the same event: a spawned
worker may get one Ctrl-C from the terminal and the same one forwarded by its
launcher (or SIGTERM from a cluster scheduler to every process and again from
the launcher).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from typing import Dict, Optional

__all__ = ["GracefulStop"]

_SIGNALS = (signal.SIGTERM, signal.SIGINT)
#: seconds after the first signal during which further signals are duplicates
DUPLICATE_WINDOW_S = 1.0


class GracefulStop:
    """Context manager that installs the two-stage handlers (main thread only; elsewhere a no-op).

    Attributes:
        requested: the signal number received first, or ``None``.
    """

    def __init__(self, duplicate_window_s: float = DUPLICATE_WINDOW_S) -> None:
        self.requested: Optional[int] = None
        self.duplicate_window_s = float(duplicate_window_s)
        self._first_time = 0.0
        self._previous: Dict[int, object] = {}

    def _handle(self, signum: int, frame) -> None:
        if self.requested is not None:
            if time.monotonic() - self._first_time < self.duplicate_window_s:
                return
            sys.stderr.write(f"\nsecond signal {signal.Signals(signum).name}: exiting now without saving\n")
            sys.stderr.flush()
            os._exit(128 + signum)
        self.requested, self._first_time = signum, time.monotonic()
        sys.stderr.write(f"\n{signal.Signals(signum).name} received: finishing this step, saving a checkpoint "
                         "and exiting (send it again to exit at once)\n")
        sys.stderr.flush()

    def __enter__(self) -> "GracefulStop":
        if threading.current_thread() is threading.main_thread():
            for sig in _SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()
