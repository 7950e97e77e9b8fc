"""Fetch the official MiDaS v3.1 ``dpt_beit_large_512.pt`` weights (1.5 GB) when missing.

The file is written atomically (a partial download never looks like a
checkpoint) with a tqdm progress bar. Offline, ``MidasDownloadError`` says where
to get the file and where to put it.
"""

from __future__ import annotations

import os
import urllib.error
from typing import Union
from urllib.request import urlopen

from tqdm import tqdm

from ivid.errors import IvidError
from ivid.utils.io import atomic_write

MIDAS_FILENAME = "dpt_beit_large_512.pt"
MIDAS_URL = f"https://github.com/isl-org/MiDaS/releases/download/v3_1/{MIDAS_FILENAME}"
MIDAS_RELEASE_PAGE = "https://github.com/isl-org/MiDaS/releases/tag/v3_1"
DEFAULT_CKPT = os.path.join("ckpts", MIDAS_FILENAME)
_CHUNK = 1 << 20
_TIMEOUT_S = 60


class MidasDownloadError(IvidError, RuntimeError):
    """The MiDaS weights could not be downloaded; the message says how to get them by hand."""


def _manual_instructions(path: str) -> str:
    return (f"Download {MIDAS_FILENAME} by hand from {MIDAS_URL} (MiDaS v3.1 release page "
            f"{MIDAS_RELEASE_PAGE}) and put it at {os.path.abspath(path)}, or pass its location with --ckpt.")


def download_file(url: str, path: Union[str, os.PathLike], progress: bool = True) -> str:
    """Download ``url`` to ``path`` atomically, with a progress bar; checks the announced length.

    Raises:
        MidasDownloadError: network failure or truncated transfer (``path`` is left untouched).
    """
    path = os.fspath(path)
    try:
        with urlopen(url, timeout=_TIMEOUT_S) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            received = 0
            with atomic_write(path, "wb") as f, tqdm(total=total, unit="B", unit_scale=True,
                                                     unit_divisor=1024, desc=os.path.basename(path),
                                                     disable=not progress) as bar:
                while True:
                    chunk = response.read(_CHUNK)
                    if not chunk:
                        break
                    f.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
                if total is not None and received != total:
                    raise MidasDownloadError(f"download of {url} stopped after {received} of {total} bytes")
    except MidasDownloadError as exc:
        raise MidasDownloadError(f"{exc}. {_manual_instructions(path)}") from exc
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise MidasDownloadError(f"could not download {url} ({exc}). {_manual_instructions(path)}") from exc
    return path


def ensure_midas_checkpoint(path: Union[str, os.PathLike] = DEFAULT_CKPT, progress: bool = True) -> str:
    """Return ``path`` if it is a file; else download the official weights there.

    Only a path named ``dpt_beit_large_512.pt`` is downloaded to (a missing file
    of another name is most likely a typo and raises ``FileNotFoundError``).
    """
    path = os.fspath(path)
    if os.path.isfile(path):
        return path
    if os.path.basename(path) != MIDAS_FILENAME:
        raise FileNotFoundError(f"--ckpt {path}: no such file (only a missing '{MIDAS_FILENAME}' is "
                                f"downloaded automatically). {_manual_instructions(path)}")
    print(f"MiDaS weights not found at {path}; downloading {MIDAS_URL}")
    return download_file(MIDAS_URL, path, progress=progress)
