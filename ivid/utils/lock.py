"""An exclusive lock on a run folder, so two trainings never write into one ``--output_dir``.

The lock is the file ``<folder>/.lock`` holding a JSON line (pid, host, start time, command) of
its holder. While it runs, the holder keeps the file open with an ``fcntl.flock`` on it; the
kernel releases that when the process ends in any way (crash, SIGKILL, power loss), so a lock
file of this host whose flock can be taken is *stale* and is taken over with a warning. Where
``flock`` is not available, the lock counts as stale when its holder's pid no longer runs. A lock
of another host (a shared network file system, where flock may be host-local) is never broken:
the message says which file to delete if that training is really gone.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import socket
import sys
import warnings
from typing import Any, Dict, Optional

from ivid.errors import RunFolderError

from .io import process_alive

try:  # POSIX
    import fcntl
except ImportError:  # Windows: pid checks only
    fcntl = None

__all__ = ["RunLock", "LOCK_NAME"]

LOCK_NAME = ".lock"


def _flock(fd: int) -> Optional[bool]:
    """Try to take an exclusive flock: True taken, False held by another process, None unsupported."""
    if fcntl is None:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    except OSError:  # e.g. ENOLCK on some network file systems
        return None


def _describe(holder: Dict[str, Any]) -> str:
    parts = [f"pid {holder.get('pid', '?')}"]
    if holder.get("host"):
        parts.append(f"on {holder['host']}")
    if holder.get("started"):
        parts.append(f"since {holder['started']}")
    text = " ".join(parts)
    if holder.get("command"):
        text += f": {holder['command']}"
    return text


class RunLock:
    """Context manager holding ``<folder>/.lock`` (see the module docstring).

    Args:
        folder: the run folder (created if missing).
        what: the option naming the folder in messages (``--output_dir``).

    Raises (on enter):
        RunFolderError: another live process holds the lock; the message names it and the lock file.
    """

    def __init__(self, folder: str, what: str = "--output_dir"):
        self.folder, self.what = os.fspath(folder), what
        self.path = os.path.join(self.folder, LOCK_NAME)
        self._fd: Optional[int] = None
        self._made_folder = False

    def _record(self) -> bytes:
        argv = " ".join(sys.argv)
        return (json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                            "started": datetime.datetime.now().isoformat(timespec="seconds"),
                            "command": argv[:500]}) + "\n").encode("utf-8")

    def _read_holder(self, fd: int) -> Dict[str, Any]:
        with contextlib.suppress(OSError, ValueError):
            os.lseek(fd, 0, os.SEEK_SET)
            data = os.read(fd, 4096).decode("utf-8", "replace").strip()
            holder = json.loads(data) if data else {}
            return holder if isinstance(holder, dict) else {}
        return {}

    def _refuse(self, holder: Dict[str, Any], why: str = "") -> RunFolderError:
        return RunFolderError(
            f"{self.what} {self.folder}: another training is writing there ({_describe(holder)}){why}; wait for "
            f"it to finish or stop it, or use another {self.what} (if no such training runs any more, delete "
            f"{self.path})")

    def acquire(self) -> "RunLock":
        """Take the lock (see the class docstring)."""
        self._made_folder = not os.path.isdir(self.folder)
        os.makedirs(self.folder, exist_ok=True)
        for _ in range(10):  # retries only when the lock file is replaced under our feet
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
                created = True
            except FileExistsError:
                try:
                    fd = os.open(self.path, os.O_RDWR)
                except FileNotFoundError:  # released in between: try again
                    continue
                created = False
            locked = _flock(fd)
            if locked is False:
                holder = self._read_holder(fd)
                os.close(fd)
                raise self._refuse(holder)
            if not created:
                try:  # the file may have been deleted and re-created by its owner meanwhile
                    same = os.path.samestat(os.fstat(fd), os.stat(self.path))
                except FileNotFoundError:
                    same = False
                if not same:
                    os.close(fd)
                    continue
                holder = self._read_holder(fd)
                other_host = bool(holder.get("host")) and holder.get("host") != socket.gethostname()
                if other_host:  # flock may be host-local on network file systems: never break such a lock
                    os.close(fd)
                    raise self._refuse(holder, " (a lock of another host cannot be checked from here)")
                if locked is None and not self._stale_by_pid(holder):
                    os.close(fd)
                    raise self._refuse(holder, " (its lock cannot be checked with flock here)")
                if holder:
                    warnings.warn(f"{self.path}: removed the stale lock of a training that ended without "
                                  f"releasing it ({_describe(holder)})")
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, self._record())
            os.fsync(fd)
            self._fd = fd
            return self
        raise RunFolderError(f"{self.what} {self.folder}: could not take the lock {self.path} (it keeps changing); "
                             "is another training starting there?")

    @staticmethod
    def _stale_by_pid(holder: Dict[str, Any]) -> bool:
        if not holder:
            return True
        if holder.get("host") != socket.gethostname():
            return False
        try:
            return not process_alive(int(holder.get("pid", -1)))
        except (TypeError, ValueError):
            return True

    def release(self) -> None:
        """Remove the lock file and release the lock (idempotent)."""
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.remove(self.path)  # remove first: a waiter that opened the old file sees it is gone
        with contextlib.suppress(OSError):
            os.close(self._fd)
        self._fd = None
        if self._made_folder:  # a run that failed before writing anything leaves no empty folder behind
            with contextlib.suppress(OSError):
                os.rmdir(self.folder)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
