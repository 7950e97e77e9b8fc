"""Checks of what a web user gives the app: uploads, option values, model files.

Every check raises :class:`AppInputError` with one line for the page that says what is
wrong and what to do; nothing here knows about Gradio. The files checked are the app's
own copies of uploads (in its job folder), never a path a user typed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

from ivid.errors import IvidError

__all__ = ["AppInputError", "PhotoInfo", "check_upload_size", "check_photo", "check_depth", "check_model_files",
           "check_midas", "DOWNLOAD_COMMAND"]

#: how to fetch the released checkpoints (ckpts/README.md)
DOWNLOAD_COMMAND = "python scripts/download_ckpts.py"

# Pillow format name -> file extension of the app's copy (anything else: .img; Pillow reads by content).
_EXTENSIONS = {"JPEG": ".jpg", "MPO": ".jpg", "PNG": ".png", "WEBP": ".webp", "BMP": ".bmp", "TIFF": ".tif",
               "GIF": ".gif"}


class AppInputError(IvidError, ValueError):
    """A user's input cannot be used; the message is one line for the page."""


@dataclass(frozen=True)
class PhotoInfo:
    """A checked photo: Pillow's format name, the extension for the app's copy, height and width (pixels)."""

    format: str
    extension: str
    height: int
    width: int


def _mb(num_bytes: float) -> str:
    return f"{num_bytes / 2 ** 20:.1f} MB"


def check_upload_size(path: str, max_mb: float, what: str) -> None:
    """The file at ``path`` exists and holds at most ``max_mb`` MiB (``what`` names it in messages)."""
    if not os.path.isfile(path):
        raise AppInputError(f"The {what} is gone from the server (uploads are deleted after each run); "
                            "upload it again.")
    size = os.path.getsize(path)
    if size > max_mb * 2 ** 20:
        raise AppInputError(f"The {what} is {_mb(size)}; the limit is {max_mb:g} MB. Upload a smaller file.")


def check_photo(path: str, name: str, max_megapixels: float, max_mb: float) -> PhotoInfo:
    """A decodable raster image of at most ``max_megapixels`` million pixels and ``max_mb`` MiB.

    Args:
        path: the app's copy of the upload.
        name: the name the user's file had (for messages only).

    Raises:
        AppInputError: too big a file, not an image, too many pixels, or a truncated/corrupt image.
    """
    from PIL import Image

    check_upload_size(path, max_mb, f"photo {name}")
    limit = f"the limit is {max_megapixels:g} megapixels"
    try:
        with Image.open(path) as image:  # reads the header only
            width, height, fmt = image.width, image.height, image.format or "?"
            if width * height > max_megapixels * 1e6:
                raise AppInputError(f"The photo {name} is {width}x{height} pixels ({width * height / 1e6:.1f} "
                                    f"megapixels); {limit}. Downscale it and upload it again.")
            image.load()  # decodes it: catches truncated and corrupt files
    except AppInputError:
        raise
    except Image.DecompressionBombError:
        raise AppInputError(f"The photo {name} has far too many pixels; {limit}.") from None
    except (OSError, ValueError, SyntaxError) as err:
        reason = "not an image" if isinstance(err, Image.UnidentifiedImageError) else "a broken image"
        raise AppInputError(f"The photo {name} is {reason} (expected a PNG, JPEG, WebP, BMP or TIFF "
                            "photo).") from None
    return PhotoInfo(fmt, _EXTENSIONS.get(fmt, ".img"), height, width)


def check_depth(path: str, name: str, photo: PhotoInfo, max_mb: float) -> None:
    """A depth ``.npz`` (``arr_0`` = the photo's MiDaS disparity) that fits the photo.

    Uses the loader of the sampling path (:func:`ivid.data.preprocess.load_depth01`), so
    what passes here is what sampling accepts: ``arr_0`` readable without pickles, a finite
    H x W array, and the photo's aspect ratio within 2%.

    Raises:
        AppInputError: too big, unreadable, or not matching the photo.
    """
    from ivid.data.preprocess import DataFileError, load_depth01

    check_upload_size(path, max_mb, f"depth file {name}")
    try:
        load_depth01(path, 8, image_hw=(photo.height, photo.width))  # 8: any size does, only errors matter
    except DataFileError as err:
        detail = str(err).replace(f"{path}: ", "").replace(path, name)
        raise AppInputError(f"The depth file {name} does not fit the {photo.width}x{photo.height} photo: {detail}. "
                            "Give the photo's MiDaS disparity as .npz with arr_0 of the photo's size, or leave "
                            "the depth empty.") from None


_ROLES = {"config_uncond": "config of G_u", "config_cond": "config of G_c", "ckpt_uncond": "weights of G_u",
          "ckpt_cond": "weights of G_c"}


def check_model_files(files: Sequence[Tuple[str, str]]) -> None:
    """Every ``(option, path)`` of ``files`` exists (``option``: config_uncond, ckpt_cond, ...; the files
    of the models a job needs).

    Raises:
        AppInputError: the first missing file, named with the download command for checkpoints.
    """
    for option, path in files:
        if os.path.isfile(path):
            continue
        role = f"{_ROLES.get(option, option)}, --{option}"
        if option.startswith("config"):
            raise AppInputError(f"The config {path} ({role}) is missing; restart the app with an existing file.")
        raise AppInputError(f"The checkpoint {path} ({role}) is missing: download the released checkpoints with "
                            f"`{DOWNLOAD_COMMAND}` (or copy the file there), or restart the app with "
                            "--preset demo for the bundled demo models.")


def check_midas(path: str, depth_given: bool) -> Optional[str]:
    """The MiDaS checkpoint is there when a photo comes without depth; returns it (None when not needed).

    Raises:
        AppInputError: no depth and no MiDaS checkpoint (says which file to fetch or what to upload).
    """
    if depth_given:
        return None
    if os.path.isfile(path):
        return path
    from ivid.depth import MIDAS_URL

    raise AppInputError(f"No depth file given, and the MiDaS depth model {path} is missing: upload the photo's depth "
                        f"(.npz, arr_0 = MiDaS disparity), or download {MIDAS_URL} to {path}.")
