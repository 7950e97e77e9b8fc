"""MiDaS input transform and output resize (our own code, docs/design.md#monocular-depth).

The network input of ``dpt_beit_large_512`` is built from an RGB uint8 image by

1. scaling to [0, 1] in float64;
2. an aspect-preserving resize: both sides use the one of ``target / H`` and
   ``target / W`` that is closer to 1 (ties go to the height), and each side is
   rounded to a multiple of 32 with ``np.round`` (half to even), so one side is
   ``target`` (512) exactly: 384x512 -> 384x512, 480x640 -> 512x672,
   640x480 -> 672x512. The resize is bicubic (A = -0.75, half-pixel centres,
   border pixels repeated, no antialias) on the float64 image, overshoot kept;
3. normalising with mean = std = 0.5 to [-1, 1] (plus bicubic overshoot);
4. HWC -> CHW, float32, a leading batch axis.

The prediction (relative inverse depth at the network-input size) goes back to
the image size with a bicubic resize (align_corners=False) in float32.

MiDaS resizes with OpenCV ``INTER_CUBIC``; torch's bicubic kernel is the same
(A = -0.75, replicated border) and agrees to ~4e-5 on [0, 1] images.
"""

from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

NET_SIZE = 512          # the MiDaS "height" target of dpt_beit_large_512
MULTIPLE_OF = 32        # both sides of the network input are multiples of this
MEAN = 0.5              # per-channel mean and std of the normalisation
STD = 0.5


def compute_input_size(height: int, width: int, target: int = NET_SIZE,
                       multiple_of: int = MULTIPLE_OF) -> Tuple[int, int]:
    """Network-input size ``(h, w)`` for an ``height x width`` image (MiDaS "minimal" resize).

    The scale closer to 1 wins for both sides (width only if strictly closer);
    each side is ``np.round(scale * side / multiple_of) * multiple_of``. MiDaS
    has no lower clamp; a side that would round to 0 (aspect ratios beyond
    ~32:1, where MiDaS fails) is raised to ``multiple_of``.
    """
    if height <= 0 or width <= 0:
        raise ValueError(f"image size must be positive, got {height}x{width}")
    scale_h = target / height
    scale_w = target / width
    if abs(1 - scale_w) < abs(1 - scale_h):
        scale_h = scale_w
    else:
        scale_w = scale_h
    new_h = int(np.round(scale_h * height / multiple_of) * multiple_of)
    new_w = int(np.round(scale_w * width / multiple_of) * multiple_of)
    return max(new_h, multiple_of), max(new_w, multiple_of)


def check_rgb_uint8(image: np.ndarray, name: str = "image") -> np.ndarray:
    """Return ``image`` as an ``H x W x 3`` uint8 array or raise ``ValueError``."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"{name}: expected an RGB uint8 H x W x 3 array, "
                         f"got dtype {image.dtype} and shape {image.shape}")
    return image


def transform_image(image: np.ndarray, target: int = NET_SIZE) -> torch.Tensor:
    """RGB uint8 ``H x W x 3`` -> network input ``1 x 3 x h x w`` float32 (CPU), about [-1, 1].

    ``(h, w) = compute_input_size(H, W, target)``; see the module docstring.
    """
    image = check_rgb_uint8(image)
    height, width = image.shape[:2]
    x = torch.from_numpy(image.astype(np.float64)).div_(255.0)
    x = x.permute(2, 0, 1).unsqueeze(0)
    size = compute_input_size(height, width, target)
    if size != (height, width):
        x = F.interpolate(x, size=size, mode="bicubic", align_corners=False)
    x = (x - MEAN) / STD
    return x.to(torch.float32).contiguous()


def resize_prediction(prediction: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Bicubic resize (align_corners=False) of ``B x h x w`` predictions to ``B x H x W`` float32.

    Values may dip slightly below 0 near edges (bicubic overshoot), as in MiDaS.
    """
    size = (int(size[0]), int(size[1]))
    pred = prediction.to(torch.float32)
    if tuple(pred.shape[-2:]) == size:
        return pred
    return F.interpolate(pred[:, None], size=size, mode="bicubic", align_corners=False)[:, 0]
