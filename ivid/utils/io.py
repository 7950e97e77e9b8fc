"""Atomic file writes: a file users keep is either complete or absent, never torn.

Each writer writes to a temporary file in the destination folder, flushes it to
disk and renames it over the destination (``os.replace`` is atomic on POSIX and
Windows when source and destination are on the same file system).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from typing import Any, Callable, Iterator, Mapping, Union

import numpy as np

PathLike = Union[str, os.PathLike]


@contextlib.contextmanager
def atomic_write(path: PathLike, mode: str = "wb") -> Iterator[Any]:
    """Open a temporary file next to ``path``; on success rename it to ``path``.

    On any exception the temporary file is removed and ``path`` is untouched.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=folder)
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
