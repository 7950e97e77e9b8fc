"""Image helpers shared by training and sampling: uint8 conversion, grids,
colourised depth, atomic PNG writes.

Conventions: model-space images are ``N x C x H x W`` in [-1, 1]; images for
disk are ``H x W x 3`` uint8; row 0 is the top.
"""

from __future__ import annotations

import os
from typing import Optional, Sequence, Union

import numpy as np
from PIL import Image

from .io import atomic_write

ArrayLike = Union[np.ndarray, "torch.Tensor"]  # noqa: F821


def _to_numpy(x: ArrayLike) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().float().cpu().numpy()
    return np.asarray(x)


def to_uint8(x01: ArrayLike) -> np.ndarray:
    """[0, 1] floats -> uint8 with TRUNCATION (``uint8(clip(x, 0, 1) * 255)``), as the reference's ``to8b``."""
    return (np.clip(_to_numpy(x01), 0.0, 1.0) * 255).astype(np.uint8)


def pm1_to_uint8(x_pm1: ArrayLike) -> np.ndarray:
    """[-1, 1] floats -> uint8, rounding to nearest (for viewing/saving samples)."""
    return np.round(np.clip((_to_numpy(x_pm1) + 1.0) * 127.5, 0, 255)).astype(np.uint8)


def _turbo_lut() -> np.ndarray:
    """256 x 3 uint8 colour table of a perceptual 'turbo'-like map (polynomial fit, no matplotlib)."""
    t = np.linspace(0.0, 1.0, 256)
    r = 0.13572138 + t * (4.61539260 + t * (-42.66032258 + t * (132.13108234 + t * (-152.94239396 + t * 59.28637943))))
    g = 0.09140261 + t * (2.19418839 + t * (4.84296658 + t * (-14.18503333 + t * (4.27729857 + t * 2.82956604))))
    b = 0.10667330 + t * (12.64194608 + t * (-60.58204836 + t * (110.36276771 + t * (-89.90310912 + t * 27.34824973))))
    return (np.clip(np.stack([r, g, b], -1), 0, 1) * 255).astype(np.uint8)


_TURBO = _turbo_lut()


def colorize_depth(z01: ArrayLike, mask: Optional[ArrayLike] = None, invert: bool = True) -> np.ndarray:
    """Colourise an encoded depth map for viewing.

    Args:
        z01: ``H x W`` (or ``H x W x 1``) depth code in [0, 1] (z-buffer or linear
            encoding; 0 = near). Values outside [0, 1] are clipped.
        mask: optional ``H x W`` bool/0-1 array; pixels where it is 0 are black.
        invert: map near to warm colours (default) rather than far.

    Returns:
        ``H x W x 3`` uint8.
    """
    z = _to_numpy(z01).astype(np.float64)
    if z.ndim == 3:
        z = z[..., 0]
    z = np.clip(z, 0.0, 1.0)
    if invert:
        z = 1.0 - z
    out = _TURBO[np.round(z * 255).astype(np.int64)]
    if mask is not None:
        m = _to_numpy(mask).astype(bool)
        if m.ndim == 3:
            m = m[..., 0]
        out = out * m[..., None]
    return out.astype(np.uint8)


def make_grid(images: Sequence[np.ndarray], nrow: int, padding: int = 2, pad_value: int = 255) -> np.ndarray:
    """Tile equally sized ``H x W x C`` uint8 images into rows of ``nrow``; ``None`` entries stay blank."""
    first = next(im for im in images if im is not None)
    h, w, c = first.shape
    ncol = nrow
    nrows = (len(images) + ncol - 1) // ncol
    grid = np.full((nrows * (h + padding) + padding, ncol * (w + padding) + padding, c), pad_value, np.uint8)
    for k, im in enumerate(images):
        if im is None:
            continue
        r, q = divmod(k, ncol)
        y, x = padding + r * (h + padding), padding + q * (w + padding)
        grid[y:y + h, x:x + w] = im
    return grid


def save_png(path: Union[str, os.PathLike], image: np.ndarray) -> None:
    """Write an ``H x W x 3`` (or ``H x W``) uint8 array as PNG, atomically."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise TypeError(f"{path}: save_png expects uint8, got {image.dtype}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    with atomic_write(path, "wb") as f:
        Image.fromarray(image).save(f, format="PNG")
