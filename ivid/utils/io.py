"""Atomic file writes: a file users keep is either complete or absent, never torn.

Each writer writes to a temporary file in the destination folder, flushes it to
disk and renames it over the destination (``os.replace`` is atomic on POSIX and
Windows when source and destination are on the same file system).

Temporary files are created with the usual permissions (``0o666`` minus the
process umask, like any ``open(path, "w")``), so the renamed file has them too.
Their names, ``.<name>.<host>-<pid>-<random>.tmp``, say which process wrote them:
a write killed half way (SIGKILL, power loss) leaves one behind, and
:func:`remove_orphan_temps` - called by the command-line tools on the folders they
write into - deletes those whose process no longer runs on this host.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import socket
import zlib
from typing import Any, Callable, Iterator, List, Mapping, Union

import numpy as np

__all__ = ["atomic_write", "atomic_save_npz", "atomic_torch_save", "temp_path", "temp_dir_prefix",
           "remove_orphan_temps", "process_alive", "HOST_TAG"]

PathLike = Union[str, os.PathLike]

#: 8 hex digits naming this host in temporary file names (a crc of the host name)
HOST_TAG = f"{zlib.crc32(socket.gethostname().encode('utf-8', 'replace')) & 0xFFFFFFFF:08x}"
#: a temporary file or folder of this module: ``.<anything>.<host>-<pid>-<random>.tmp[.<ext>]``
_TEMP_RE = re.compile(r"^\..*\.([0-9a-f]{8})-(\d+)-[0-9a-f]{8}\.tmp(\.\w+)?$")


def _tag() -> str:
    return f"{HOST_TAG}-{os.getpid()}-{secrets.token_hex(4)}"


def temp_path(path: PathLike, suffix: str = "") -> str:
    """A fresh temporary name next to ``path``: ``<folder>/.<name>.<host>-<pid>-<random>.tmp<suffix>``.

    ``suffix`` (e.g. ``".mp4"``) lets tools that pick a format from the file name write it.
    """
    path = os.fspath(path)
    folder, name = os.path.split(os.path.abspath(path))
    return os.path.join(folder, f".{name}.{_tag()}.tmp{suffix}")


def temp_dir_prefix(name: str) -> str:
    """Name of a temporary folder (for downloads) that :func:`remove_orphan_temps` recognises."""
    return f".{name}.{_tag()}.tmp"


def process_alive(pid: int) -> bool:
    """True when a process ``pid`` exists on this host (also when it belongs to another user)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:  # e.g. Windows: no signal 0; assume alive (never delete a live writer's file)
        return True
    return True


def remove_orphan_temps(folder: PathLike, recursive: bool = False) -> List[str]:
    """Delete temporary files/folders left in ``folder`` by writers of this host that no longer run.

    Temporaries of live processes and of other hosts (a shared file system) are left alone.

    Args:
        folder: the folder to clean (missing: nothing to do).
        recursive: also clean every sub-folder.

    Returns:
        the paths removed.
    """
    folder = os.fspath(folder)
    removed: List[str] = []
    if not os.path.isdir(folder):
        return removed
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in list(filenames) + list(dirnames):
            match = _TEMP_RE.match(name)
            if match is None or match.group(1) != HOST_TAG or process_alive(int(match.group(2))):
                continue
            path = os.path.join(dirpath, name)
            with contextlib.suppress(OSError):
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path)
                    dirnames.remove(name)
                else:
                    os.remove(path)
                removed.append(path)
        if not recursive:
            break
    return removed


@contextlib.contextmanager
def atomic_write(path: PathLike, mode: str = "wb") -> Iterator[Any]:
    """Open a temporary file next to ``path``; on success rename it to ``path``.

    The file gets the permissions a plain ``open`` would give (umask respected).
    On any exception the temporary file is removed and ``path`` is untouched.
    """
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = temp_path(path)
    # O_EXCL: never follow or reuse an existing name; 0o666 & ~umask, as open() does
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def _atomic_call(path: PathLike, writer: Callable[[Any], None]) -> None:
    with atomic_write(path, "wb") as f:
        writer(f)


def atomic_save_npz(path: PathLike, arrays: Mapping[str, np.ndarray], compressed: bool = True) -> None:
    """Write ``arrays`` as an ``.npz`` file atomically (no pickled objects allowed)."""
    for key, value in arrays.items():
        if np.asarray(value).dtype == object:
            raise TypeError(f"{path}: array {key!r} has dtype object; refusing to pickle it")
    save = np.savez_compressed if compressed else np.savez
    _atomic_call(path, lambda f: save(f, **arrays))


def atomic_torch_save(obj: Any, path: PathLike) -> None:
    """``torch.save`` to ``path`` atomically."""
    import torch

    _atomic_call(path, lambda f: torch.save(obj, f))
