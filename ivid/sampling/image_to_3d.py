"""Image to 3D: a photo and its depth become the first view instead of a G_u sample.

The first view must look like what G_u produces, i.e. like G_u's training data,
so it goes through exactly the training preprocessing (docs/design.md#training-data, reusing
:mod:`ivid.data.preprocess`):

- colour: shorter side resized to the model size with LANCZOS, centre crop,
  [0, 1] (grey -> 3 channels, alpha dropped);
- depth: MiDaS relative inverse depth (disparity) of the FULL photo, either read
  from ``--input_depth`` (an ``.npz`` with ``arr_0``, the layout of the training
  ``depths/`` files) or predicted by :class:`ivid.depth.MidasDepth` and rounded
  to float16 as the training files store it; then ``disp = arr_0 / 6250``,
  normalised so the nearest point is at 0.5 when needed, turned into a z_buffer
  code with near 0.5 / far 100, resized with NEAREST and centre-cropped.

That code is then used as the depth channel of an RGBD sample in [-1, 1] and
re-interpreted by the sampler like any G_u output, i.e. linearised with the
sampling planes (near 0.6 / far 5 by default). This is the same (deliberate)
re-interpretation the reference applies to G_u samples, whose training depth
was encoded with (0.5, 100) too; using (0.6, 5) for the photo's own encoding
instead would give G_c first views unlike anything it saw in training.
"""

from __future__ import annotations

import os
from typing import Optional, Tuple

import numpy as np
import torch
from PIL import Image

from ivid.data.preprocess import (DEPTH_FORMAT, DataFileError, disparity_to_depth_code, image_error_reason,
                                  read_disparity, read_image01, resize_and_crop, to_8bit)
from ivid.errors import InputFileError

__all__ = ["TRAIN_NEAR", "TRAIN_FAR", "DEFAULT_MIDAS_CKPT", "load_photo_uint8", "disparity_to_code",
           "photo_rgbd01", "load_midas", "first_view_tensor"]

#: depth planes of the training data encoding (docs/design.md#training-data)
TRAIN_NEAR = 0.5
TRAIN_FAR = 100.0
#: where the MiDaS dpt_beit_large_512 checkpoint is looked for by default
DEFAULT_MIDAS_CKPT = "ckpts/dpt_beit_large_512.pt"
#: share of negative values tolerated in a given disparity map (MiDaS may dip just below 0 at the horizon)
MAX_NEGATIVE_FRACTION = 0.01


def load_photo_uint8(path: str) -> np.ndarray:
    """Read a photo as ``H x W x 3`` uint8 RGB (alpha dropped, grey expanded).

    Raises:
        InputFileError (a ValueError): the file is missing or not an image (names ``--input_image``).
    """
    try:
        with Image.open(path) as image:
            return np.asarray(to_8bit(image).convert("RGB"), dtype=np.uint8)
    except (OSError, ValueError, SyntaxError) as err:
        raise InputFileError(f"--input_image {path}: cannot read image ({image_error_reason(path, err)})") from None


def disparity_to_code(disparity: np.ndarray, image_size: int) -> np.ndarray:
    """Full-size MiDaS disparity -> ``image_size`` squared z_buffer code (near 0.5 / far 100), as in training.

    Args:
        disparity: ``H x W`` relative inverse depth of the whole photo (the ``arr_0`` scale).
        image_size: model size S.

    Returns:
        ``S x S`` float32 in [0, 1].
    """
    z01 = disparity_to_depth_code(np.asarray(disparity), TRAIN_NEAR, TRAIN_FAR, "z_buffer")
    cropped = resize_and_crop(Image.fromarray(z01, mode="F"), image_size, Image.NEAREST)
    return np.asarray(cropped, dtype=np.float32)


def load_midas(ckpt: str, device: torch.device):
    """Load the MiDaS model for photos given without ``--input_depth``.

    Raises:
        FileNotFoundError: the checkpoint is missing (names ``--midas_ckpt`` and the alternative).
    """
    if not os.path.isfile(ckpt):
        raise FileNotFoundError(
            f"--midas_ckpt {ckpt}: MiDaS checkpoint not found. Download the official MiDaS v3.1 "
            "dpt_beit_large_512.pt (github.com/isl-org/MiDaS releases) to that path, or give the "
            "photo's depth with --input_depth depth.npz (arr_0 = MiDaS disparity, as in training data)")
    from ivid.depth import MidasDepth  # lazy: timm takes seconds to import, and only photos without depth need it

    return MidasDepth.from_checkpoint(ckpt, device=device)


def photo_rgbd01(image_path: str, image_size: int, depth_path: Optional[str] = None,
                 midas=None) -> Tuple[np.ndarray, np.ndarray]:
    """The photo's first view: colour and depth code as G_u's training data.

    Args:
        image_path: the photo.
        image_size: model size S.
        depth_path: optional ``.npz`` holding the photo's MiDaS disparity ``arr_0``
            (H x W of the photo itself, positive, larger = nearer).
        midas: a :class:`ivid.depth.MidasDepth` used when ``depth_path`` is None.

    Returns:
        ``(rgb01, z01)``: ``S x S x 3`` and ``S x S`` float32 in [0, 1].

    Raises:
        InputFileError (a ValueError): unreadable image / depth, a depth of another size than
            the photo or without positive disparity; ValueError: neither depth nor model given.
    """
    try:
        rgb01, original_hw = read_image01(image_path, image_size)
    except DataFileError as err:
        raise InputFileError(f"--input_image: {err}") from None
    if depth_path is not None:
        return rgb01, _given_depth_code(depth_path, original_hw, image_size)
    if midas is None:
        raise ValueError("image to 3D needs --input_depth or a MiDaS model")
    disparity = midas.predict(load_photo_uint8(image_path)).astype(np.float16)  # stored as float16 in training
    return rgb01, disparity_to_code(disparity, image_size)


def _given_depth_code(depth_path: str, photo_hw: Tuple[int, int], image_size: int) -> np.ndarray:
    """``--input_depth`` checked against the photo (same size, positive disparity) -> S x S z_buffer code."""
    try:
        disparity = read_disparity(depth_path)
    except DataFileError as err:
        raise InputFileError(f"--input_depth: {err}") from None
    if tuple(disparity.shape) != tuple(photo_hw):
        raise InputFileError(f"--input_depth {depth_path}: depth is {disparity.shape[0]}x{disparity.shape[1]} "
                             f"(H x W) but the photo is {photo_hw[0]}x{photo_hw[1]}; expected the photo's own "
                             f"depth at its size: {DEPTH_FORMAT}")
    positive = disparity > 0
    if not positive.any() or (disparity < 0).mean() > MAX_NEGATIVE_FRACTION:
        raise InputFileError(f"--input_depth {depth_path}: disparity must be positive (larger = nearer) but it "
                             f"spans [{disparity.min():.4g}, {disparity.max():.4g}]; is it a depth map instead "
                             f"of a disparity map? expected {DEPTH_FORMAT}")
    return disparity_to_code(disparity, image_size)


def first_view_tensor(rgb01: np.ndarray, z01: np.ndarray, batch: int, device: torch.device) -> torch.Tensor:
    """``batch x 4 x S x S`` RGBD in [-1, 1] (the same photo for every sample of a batch)."""
    rgbd = np.concatenate([rgb01.transpose(2, 0, 1), z01[None]], 0).astype(np.float32)
    x = torch.from_numpy(rgbd * 2.0 - 1.0).to(device)
    return x[None].expand(batch, -1, -1, -1).contiguous()
