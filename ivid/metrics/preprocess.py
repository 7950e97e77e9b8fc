"""Image loading for evaluation, and clean-fid's per-image resize of the ``clean`` mode.

Real images: any mode PIL reads (RGB, grey, RGBA, palette, CMYK, ...) is
converted to RGB, the largest centred square is cropped (left/top offset
``(w - side) // 2`` / ``(h - side) // 2``) and then resized to ``image_size``
with LANCZOS (no resize when it already has that size).
Fake images are used as they are (converted to RGB) and must already be
``image_size`` x ``image_size``.

All loaders return ``H x W x 3`` uint8 arrays (row 0 at the top).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from .errors import MetricsError

# Errors PIL raises for unreadable, truncated or corrupt files.
_READ_ERRORS = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)


def _open_rgb(path: str) -> Image.Image:
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except _READ_ERRORS as exc:
        from ivid.data.preprocess import image_error_reason

        raise MetricsError(f"{path}: cannot read image ({image_error_reason(path, exc)})") from exc


def load_real_image(path: str, image_size: int) -> np.ndarray:
    """Read ``path``, convert to RGB, centre-crop to a square and LANCZOS-resize.

    Returns:
        ``image_size x image_size x 3`` uint8.

    Raises:
        MetricsError: the file cannot be read; the message names it.
    """
    img = _open_rgb(path)
    w, h = img.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    img = img.crop((left, top, left + side, top + side))
    if img.size != (image_size, image_size):
        img = img.resize((image_size, image_size), Image.LANCZOS)
    return np.asarray(img, dtype=np.uint8)


def load_fake_image(path: str, image_size: int) -> np.ndarray:
    """Read a generated image, which must be ``image_size`` x ``image_size``; converted to RGB.

    Returns:
        ``image_size x image_size x 3`` uint8.

    Raises:
        MetricsError: the file cannot be read, or has another size (the message
            names the file and both sizes).
    """
    img = _open_rgb(path)
    if img.size != (image_size, image_size):
        raise MetricsError(f"{path}: fake image is {img.size[0]}x{img.size[1]} pixels, expected "
                           f"{image_size}x{image_size} (--image_size); generated images are not resized")
    return np.asarray(img, dtype=np.uint8)


class CleanResize:
    """clean-fid's ``clean`` mode resize: each channel as a float32 PIL image, BICUBIC to 299x299, clipped to [0, 255].

    Same operations as ``cleanfid.resize.make_resizer("PIL", False, "bicubic", (299, 299))``
    (a picklable class, so DataLoader workers can run it on any platform).

    Call with an ``H x W x 3`` uint8 (or float) array in [0, 255]; returns a
    ``299 x 299 x 3`` float32 array in [0, 255].
    """

    def __init__(self, size: int = 299):
        self.size = size

    def __call__(self, image: np.ndarray) -> np.ndarray:
        channels = []
        for c in range(3):
            plane = Image.fromarray(image[:, :, c].astype(np.float32))  # 2-D float32 -> mode "F"
            plane = plane.resize((self.size, self.size), resample=Image.BICUBIC)
            channels.append(np.asarray(plane).clip(0, 255))
        return np.stack(channels, axis=2).astype(np.float32)
