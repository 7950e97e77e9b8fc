"""SSAA reduction stage: supersampled renders (S = ssaa x the image size) back to the image size.

- colour: truncate to uint8 (``uint8(clip(c, 0, 1) * 255)``, no rounding), then
  Pillow's LANCZOS resize (:func:`lanczos_resize_uint8` reproduces Pillow's 8-bit
  separable filter bit-exactly in torch: same double-precision coefficients,
  22-bit fixed-point weights accumulated exactly in int32, horizontal pass first,
  uint8 intermediate);
- depth: the sub-pixel at offset ``(ssaa - 1) // 2`` of every ssaa x ssaa block
  (the one that samples exactly the low-resolution pixel centre);
- masks: a pixel is valid when more than ``0.75 * ssaa**2`` of its sub-pixels are.

Images are channel-last (..., H, W, C), row 0 = top; any leading batch dims.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Tuple

import torch

__all__ = ["downsample_color", "pick_subpixel", "coverage_mask", "lanczos_resize_uint8", "to_uint8_trunc"]

LANCZOS_SUPPORT = 3.0
#: Pillow's fixed-point precision for 8-bit images: 32 - 8 - 2
PRECISION_BITS = 22
COVERAGE_FRACTION = 0.75


def to_uint8_trunc(x01: torch.Tensor) -> torch.Tensor:
    """[0, 1] floats -> uint8 by truncation, as the reference's ``to8b`` (same shape)."""
    return (x01.to(torch.float32).clamp(0, 1) * 255).to(torch.uint8)


def _lanczos(x: float) -> float:
    """Pillow's truncated sinc: sinc(x) sinc(x/3) on [-3, 3)."""
    def sinc(v: float) -> float:
        if v == 0.0:
            return 1.0
        v *= math.pi
        return math.sin(v) / v
    return sinc(x) * sinc(x / 3) if -LANCZOS_SUPPORT <= x < LANCZOS_SUPPORT else 0.0


@lru_cache(maxsize=32)
def _pillow_coefficients(in_size: int, out_size: int) -> Tuple[Tuple[int, ...], Tuple[Tuple[int, ...], ...]]:
    """Pillow's ``precompute_coeffs`` + ``normalize_coeffs_8bpc`` for the full-image box.

    Returns ``(xmin per output, integer weights per output)``.
    """
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = LANCZOS_SUPPORT * filterscale
    starts, weights = [], []
    for xx in range(out_size):
        center = (xx + 0.5) * scale
        ss = 1.0 / filterscale
        xmin = max(int(center - support + 0.5), 0)
        xmax = min(int(center + support + 0.5), in_size) - xmin
        w = [_lanczos((x + xmin - center + 0.5) * ss) for x in range(xmax)]
        total = sum(w)
        if total != 0.0:
            w = [v / total for v in w]
        one = 1 << PRECISION_BITS
        fixed = tuple(int(-0.5 + v * one) if v < 0 else int(0.5 + v * one) for v in w)
        starts.append(xmin)
        weights.append(fixed)
    return tuple(starts), tuple(weights)


def _strided(image: torch.Tensor, dim: int, start: int, count: int, step: int) -> torch.Tensor:
    """View of ``count`` entries of ``image`` along ``dim`` from ``start`` every ``step``."""
    index = [slice(None)] * image.dim()
    index[dim] = slice(start, start + step * (count - 1) + 1, step)
    return image[tuple(index)]


def _gather_outputs(image: torch.Tensor, dim: int, starts, weights, outputs: range) -> torch.Tensor:
    """Exact weighted sums (int64) of a few outputs along ``dim``, by gathering their taps."""
    taps = max(len(weights[o]) for o in outputs)
    index, kernel = [], []
    for o in outputs:  # pad short kernels with zero weights on a valid index
        count = len(weights[o])
        index += list(range(starts[o], starts[o] + count)) + [starts[o]] * (taps - count)
        kernel += list(weights[o]) + [0] * (taps - count)
    gathered = image.index_select(dim, torch.tensor(index, device=image.device))
    shape = [1] * image.dim()
    shape[dim] = len(outputs) * taps
    gathered = gathered.to(torch.int64) * torch.tensor(kernel, device=image.device).view(shape)
    grouped = list(image.shape)
    grouped[dim:dim + 1] = [len(outputs), taps]
    return gathered.view(grouped).sum(dim + 1)


def _interior(starts, weights, in_size: int, out_size: int) -> Tuple[int, int, int]:
    """For an integer downscale: (first, end, offset) of the outputs sharing the middle kernel at start s*o + offset."""
    if in_size % out_size or out_size < 3:
        return 0, 0, 0
    scale, mid = in_size // out_size, out_size // 2
    offset = starts[mid] - scale * mid
    same = [starts[o] == scale * o + offset and weights[o] == weights[mid] for o in range(out_size)]
    first = mid
    while first > 0 and same[first - 1]:
        first -= 1
    end = mid
    while end < out_size and same[end]:
        end += 1
    return first, end, offset


def _convolve_interior(image: torch.Tensor, dim: int, kernel, scale: int, first: int, end: int,
                       offset: int) -> torch.Tensor:
    """Exact weighted sums of outputs first..end-1 sharing ``kernel``: one strided slice per tap.

    int32 is exact: inputs are 0..255 and the 22-bit Lanczos weights have an absolute
    sum below 1.5 * 2**22, so every partial sum stays below 2**31.
    """
    count = end - first
    begin = scale * first + offset
    acc = _strided(image, dim, begin, count, scale) * kernel[0]
    for tap in range(1, len(kernel)):
        acc.add_(_strided(image, dim, begin + tap, count, scale), alpha=kernel[tap])
    return acc


def _resample_axis(image: torch.Tensor, out_size: int, dim: int) -> torch.Tensor:
    """One Pillow 8-bit pass along ``dim`` of an int32 image (values 0..255) -> int32 0..255."""
    dim = dim % image.dim()
    in_size = image.shape[dim]
    starts, weights = _pillow_coefficients(in_size, out_size)
    first, end, offset = _interior(starts, weights, in_size, out_size)
    parts = []
    if first > 0 or end == 0:
        parts.append(_gather_outputs(image, dim, starts, weights, range(0, first if end else out_size)))
    if end > 0:
        parts.append(_convolve_interior(image, dim, weights[first], in_size // out_size, first, end, offset))
        if end < out_size:
            parts.append(_gather_outputs(image, dim, starts, weights, range(end, out_size)))
    acc = torch.cat([part.to(torch.int32) for part in parts], dim=dim) if len(parts) > 1 else parts[0]
    acc += 1 << (PRECISION_BITS - 1)
    return (acc >> PRECISION_BITS).clamp_(0, 255)  # arithmetic shift = Pillow's clip8


def lanczos_resize_uint8(image: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
    """``PIL.Image.resize((W, H), LANCZOS)`` of uint8 images, bit-exact, on any device.

    Args:
        image: (..., H_in, W_in, C) uint8.
        size: (H, W) output size.

    Returns:
        (..., H, W, C) uint8.
    """
    height, width = size
    # work on (W, ..., H, C): each pass then reads whole contiguous rows per tap
    work = image.movedim(-2, 0).to(torch.int32).contiguous()
    if width != image.shape[-2]:
        work = _resample_axis(work, width, dim=0)
    work = work.movedim(0, -2).movedim(-3, 0).contiguous()  # (H, ..., W', C)
    if height != image.shape[-3]:
        work = _resample_axis(work, height, dim=0)
    return work.movedim(0, -3).to(torch.uint8)


def downsample_color(color01: torch.Tensor, ssaa: int) -> torch.Tensor:
    """SSAA colour reduction: truncate to uint8, LANCZOS to (H/ssaa, W/ssaa).

    Args:
        color01: (..., S_h, S_w, C) float colour in [0, 1].

    Returns:
        (..., S_h/ssaa, S_w/ssaa, C) uint8.
    """
    size = (color01.shape[-3] // ssaa, color01.shape[-2] // ssaa)
    return lanczos_resize_uint8(to_uint8_trunc(color01), size)


def pick_subpixel(values: torch.Tensor, ssaa: int) -> torch.Tensor:
    """Sub-pixel ``((ssaa-1)//2, (ssaa-1)//2)`` of each block: (..., S, S, C) -> (..., S/ssaa, S/ssaa, C)."""
    offset = (ssaa - 1) // 2
    return values[..., offset::ssaa, offset::ssaa, :]


def coverage_mask(covered: torch.Tensor, ssaa: int) -> torch.Tensor:
    """Blocks with more than 0.75 ssaa^2 covered sub-pixels: (..., S, S) -> (..., S/ssaa, S/ssaa) bool."""
    height, width = covered.shape[-2] // ssaa, covered.shape[-1] // ssaa
    blocks = covered.reshape(covered.shape[:-2] + (height, ssaa, width, ssaa)).to(torch.int32)
    return blocks.sum(dim=(-3, -1)) > COVERAGE_FRACTION * ssaa * ssaa
