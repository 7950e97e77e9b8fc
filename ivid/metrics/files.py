"""Which image files an evaluation reads: listing, seeded sub-sampling, fingerprints.

Image files are ``.png``, ``.jpg`` and ``.jpeg`` in any letter case, found
recursively (symbolic links to folders are followed). Lists are sorted by the
path relative to the folder (``/`` separators), so they do not depend on the
file system's order.
"""

from __future__ import annotations

import hashlib
import os
from typing import List, Optional, Sequence

import numpy as np

from .errors import MetricsError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")


def list_images(folder: str, role: str = "image") -> List[str]:
    """All image files under ``folder``, sorted by relative path.

    Args:
        folder: the folder to search recursively.
        role: word used in error messages (``"real"``, ``"fake"``).

    Returns:
        Absolute paths (str), sorted by their path relative to ``folder``.

    Raises:
        MetricsError: ``folder`` is not a directory, or holds no image file.
    """
    if not os.path.isdir(folder):
        raise MetricsError(f"{role} image folder {folder!r} does not exist or is not a directory")
    root = os.path.abspath(folder)
    found = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames.sort()
        for name in filenames:
            if name.lower().endswith(IMAGE_EXTENSIONS):
                found.append(os.path.join(dirpath, name))
    if not found:
        raise MetricsError(f"no images ({'/'.join(IMAGE_EXTENSIONS)}, any case) found under "
                           f"{role} image folder {folder!r}")
    return sorted(found, key=lambda p: relative_posix(p, root))


def relative_posix(path: str, root: str) -> str:
    """``path`` relative to ``root`` with ``/`` separators."""
    return os.path.relpath(path, root).replace(os.sep, "/")


def select_samples(files: Sequence[str], num_samples: Optional[int], seed: int, role: str = "fake") -> List[str]:
    """A seeded choice of ``num_samples`` files without replacement, kept in list order.

    ``None`` keeps every file. The choice is
    ``numpy.random.default_rng(seed).choice(len(files), num_samples, replace=False)``,
    sorted, so the same folder, count and seed always give the same files.

    Raises:
        MetricsError: ``num_samples`` is below 1 or above ``len(files)``.
    """
    if num_samples is None:
        return list(files)
    if num_samples < 1 or num_samples > len(files):
        raise MetricsError(f"num_samples={num_samples} {role} images were asked for, but the {role} "
                           f"folder holds {len(files)}")
    chosen = np.sort(np.random.default_rng(seed).choice(len(files), num_samples, replace=False))
    return [files[i] for i in chosen]


def fingerprint(files: Sequence[str], root: str) -> str:
    """SHA-1 (hex) of the newline-joined relative paths: identifies the set of files a cache was built from."""
    digest = hashlib.sha1()
    for path in files:
        digest.update(relative_posix(path, os.path.abspath(root)).encode("utf-8") + b"\n")
    return digest.hexdigest()
