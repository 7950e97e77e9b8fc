"""Load and preprocess one training image and its depth map (pure functions).

Conventions (docs/design.md#training-data):

- Images are resized so that the SHORTER side equals ``image_size`` (Pillow
  LANCZOS; the longer side is ``int(image_size * long / short)``, truncated, as
  torchvision's ``Resize(int)``), then centre-cropped to ``image_size`` squared
  (crop offset ``round((L - image_size) / 2)``, as torchvision's ``CenterCrop``).
  Grey images become 3 identical channels, RGBA/LA images lose their alpha
  channel (after the resize, which Pillow does on premultiplied alpha).
- Depth files hold MiDaS-style relative inverse depth (disparity): an ``.npz``
  with one float16 array ``arr_0`` (H x W). :func:`disparity_to_depth_code`
  turns it into the depth channel of a mode (:data:`DEPTH_MODES`; the released
  configs use ``z_buffer``, the constructors' default is ``none`` as in the
  reference); the depth map then gets the same resize with NEAREST and the same
  centre crop.
- Colour leaves this module in [0, 1] (``rgb01``), the depth channel in [0, 1]
  for the code modes (``z01``); :func:`to_pm1` maps them to [-1, 1] (``2 x - 1``).
- The super-resolution condition (:func:`load_sr_rgbd`) is made from the
  ORIGINAL image at the low resolution, as the reference: LANCZOS resize of the
  short side to ``image_size_lr`` and centre crop, as 8-bit RGB; its depth is
  NEAREST from the full-resolution depth channel, centre-cropped.
"""

from __future__ import annotations

import os
from typing import Optional, Tuple, Union

import numpy as np
from PIL import Image

from ivid.errors import IvidError

PathLike = Union[str, os.PathLike]

#: MiDaS disparities are divided by this before use (docs/design.md#training-data)
DISPARITY_SCALE = 6250.0
#: smallest disparity kept (depth at most 1000 units)
MIN_DISPARITY = 1e-3
#: depth channel modes of :func:`disparity_to_depth_code` (the reference's five, plus ``linear``)
DEPTH_MODES = ("none", "to_depth", "disparity_minmax", "depth_minmax", "z_buffer", "linear")
#: modes whose channel is a depth code in [0, 1] that geometry can read back (``z_buffer``/``linear``)
CODE_MODES = ("z_buffer", "linear")
#: modes whose channel is not in [0, 1] (so it cannot be normalised to [-1, 1])
UNBOUNDED_MODES = ("none", "to_depth")
#: Pillow modes resized as they are; anything else is converted to RGB first
_NATIVE_MODES = ("RGB", "RGBA", "L", "LA")
#: single-channel modes with more than 8 bits (16-bit PNG/TIFF greys, 32-bit int and float images)
_WIDE_GREY_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")


class DataFileError(IvidError):
    """A data file cannot be used (unreadable, truncated, wrong content); the message names it."""


def _minmax(x: np.ndarray) -> np.ndarray:
    """``(x - min) / (max - min)``; a constant map gives zeros (the reference would divide by 0)."""
    low, span = x.min(), x.max() - x.min()
    return (x - low) / span if span > 0 else np.zeros_like(x)


def disparity_to_depth_code(arr_0: np.ndarray, near: float = 0.5, far: float = 100.0,
                            mode: str = "z_buffer") -> np.ndarray:
    """MiDaS disparity -> the depth channel of ``mode`` (docs/design.md#training-data; reference: ``prepocess_depth``).

    ``disp = arr_0 / 6250``; if ``max(disp) > 1 / near`` then ``disp /= max(disp) * near``
    (so the nearest point sits at ``near``); ``disp = max(disp, 1e-3)``; then

    - ``none``: ``disp`` itself (in [1e-3, 1/near]);
    - ``to_depth``: ``1 / disp`` (linear depth, in [near, 1000]);
    - ``disparity_minmax``: ``disp`` min-max normalised over the map to [0, 1];
    - ``depth_minmax``: ``1 / disp`` min-max normalised over the map to [0, 1];
    - ``z_buffer``: ``z = clip((disp - 1/near) / (1/far - 1/near), 0, 1)`` (released configs);
    - ``linear`` (ours): ``z = clip((1/disp - near) / (far - near), 0, 1)``.

    Only ``z_buffer`` and ``linear`` are depth codes that the geometry can read back
    (:data:`CODE_MODES`); the min-max modes lose the scale.

    Args:
        arr_0: (H, W) disparity, any float dtype (float16 on disk).
        near, far: depth planes in scene units.
        mode: one of :data:`DEPTH_MODES`.

    Returns:
        (H, W) float32 depth channel (0 = near for the code and min-max depth modes).
    """
    if mode not in DEPTH_MODES:
        raise ValueError(f"preprocess_depth must be one of {DEPTH_MODES}, got {mode!r}")
    disp = np.asarray(arr_0, dtype=np.float64) / DISPARITY_SCALE
    peak = disp.max()
    if peak > 1.0 / near:
        disp = disp / (peak * near)
    disp = np.maximum(disp, MIN_DISPARITY)
    if mode == "none":
        return disp.astype(np.float32)
    if mode == "to_depth":
        return (1.0 / disp).astype(np.float32)
    if mode == "disparity_minmax":
        return _minmax(disp).astype(np.float32)
    if mode == "depth_minmax":
        return _minmax(1.0 / disp).astype(np.float32)
    if mode == "z_buffer":
        z = (disp - 1.0 / near) / (1.0 / far - 1.0 / near)
    else:
        z = (1.0 / disp - near) / (far - near)
    return np.clip(z, 0.0, 1.0).astype(np.float32)


def resized_size(width: int, height: int, image_size: int) -> Tuple[int, int]:
    """(width, height) after resizing the shorter side to ``image_size`` (torchvision's rule)."""
    if width <= height:
        return image_size, int(image_size * height / width)
    return int(image_size * width / height), image_size


def resize_and_crop(image: Image.Image, image_size: int, resample: int) -> Image.Image:
    """Resize the shorter side to ``image_size`` with ``resample``, then centre-crop to a square."""
    size = resized_size(image.width, image.height, image_size)
    if size != image.size:
        image = image.resize(size, resample)
    left = int(round((image.width - image_size) / 2.0))
    top = int(round((image.height - image_size) / 2.0))
    return image.crop((left, top, left + image_size, top + image_size))


def image_error_reason(path: PathLike, err: BaseException) -> str:
    """``"<Type>: <message>"`` of an image decoding error, without the path PIL repeats in it."""
    name = os.fspath(path)
    text = str(err).replace(f" '{name}'", "").replace(f" {name}", "").strip() or "unreadable"
    try:
        empty = os.path.getsize(name) == 0
    except OSError:
        empty = False
    return f"{type(err).__name__}: {text}" + ("; the file is empty (0 bytes)" if empty else "")


def to_8bit(image: Image.Image) -> Image.Image:
    """A 16-bit / 32-bit grey image as an 8-bit ``L`` image over its full range; other images unchanged.

    Pillow's own conversion clips such images at 255 (a 16-bit photo becomes white). Integer
    images are scaled by their bit depth (``I;16*``: 65535; ``I``: 65535 when every value fits
    in 16 bits, as 16-bit PNGs load, else 2**32 - 1); float images (``F``) by 1 when their
    values lie in [0, 1], else by 255. Values are rounded to the nearest 8-bit level.
    """
    if image.mode not in _WIDE_GREY_MODES:
        return image
    values = np.asarray(image, dtype=np.float64)
    if image.mode == "F":
        scale = 1.0 if values.size and np.nanmax(values) <= 1.0 else 255.0
    elif image.mode.startswith("I;16") or (values.size and values.max() <= 65535):
        scale = 65535.0
    else:
        scale = 4294967295.0
    levels = np.clip(np.nan_to_num(values / scale * 255.0), 0.0, 255.0)
    return Image.fromarray(np.rint(levels).astype(np.uint8))


def read_image(path: PathLike) -> Tuple[Image.Image, Tuple[int, int]]:
    """Open and decode an image file (modes other than RGB/RGBA/L/LA become RGB, or RGBA for
    palette images with transparency).

    Returns:
        ``(image, (height, width))``: the loaded Pillow image at its original size.

    Raises:
        DataFileError: the file is missing, not an image, truncated or too small to decode.
    """
    try:
        with Image.open(path) as image:
            image.load()
            image = to_8bit(image)
            if image.mode not in _NATIVE_MODES:
                keep_alpha = image.mode == "P" and "transparency" in image.info
                image = image.convert("RGBA" if keep_alpha else "RGB")
            return image, (image.height, image.width)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise DataFileError(f"{os.fspath(path)}: cannot read image ({image_error_reason(path, e)})") from None


def crop_rgb_uint8(image: Image.Image, size: int) -> np.ndarray:
    """LANCZOS resize of the short side to ``size``, centre crop, as (size, size, 3) uint8 RGB
    (grey replicated, alpha dropped after the resize)."""
    return np.asarray(resize_and_crop(image, size, Image.LANCZOS).convert("RGB"), dtype=np.uint8)


def read_image01(path: PathLike, image_size: int) -> Tuple[np.ndarray, Tuple[int, int]]:
    """Read an image file and return its centre crop and its original size.

    Returns:
        ``(rgb01, (height, width))``: (image_size, image_size, 3) float32 RGB in
        [0, 1], and the size of the file's image before resizing.

    Raises:
        DataFileError: the file is missing, not an image, truncated or too small to decode.
    """
    image, original_hw = read_image(path)
    try:
        rgb01 = crop_rgb_uint8(image, image_size).astype(np.float32) / 255.0
    except (OSError, ValueError) as e:
        raise DataFileError(f"{os.fspath(path)}: cannot read image ({type(e).__name__}: {e})") from None
    return rgb01, original_hw


def load_rgb01(path: PathLike, image_size: int) -> np.ndarray:
    """Read an image file; (image_size, image_size, 3) float32 RGB in [0, 1] (see :func:`read_image01`)."""
    return read_image01(path, image_size)[0]


#: what a depth file must be, for error messages
DEPTH_FORMAT = ("an .npz file holding arr_0 = MiDaS relative inverse depth (disparity, larger = nearer), "
                "an H x W float array, as scripts/predict_depth.py writes")
_NOT_NPZ = ((b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"GIF8", "a GIF image"),
            (b"II*\x00", "a TIFF image"), (b"MM\x00*", "a TIFF image"), (b"\x93NUMPY", "a .npy array"),
            (b"\x80", "a pickle / torch file"))


def _npz_problem(name: str) -> Optional[str]:
    """Why ``name`` is not an .npz (zip) file, or None when it starts like one."""
    with open(name, "rb") as f:
        head = f.read(8)
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return None
    if not head:
        return "the file is empty (0 bytes)"
    kind = next((what for magic, what in _NOT_NPZ if head.startswith(magic)), None)
    return f"not an .npz file (it looks like {kind})" if kind else "not an .npz file"


def read_disparity(path: PathLike) -> np.ndarray:
    """Read ``arr_0`` of a depth ``.npz`` (never unpickles).

    Returns:
        (H, W) float32 disparity (finite, as stored).

    Raises:
        DataFileError: missing/truncated file, no ``arr_0``, wrong rank, empty or non-finite values.
    """
    name = os.fspath(path)
    try:
        problem = _npz_problem(name)
        if problem is not None:
            raise DataFileError(f"{name}: {problem}; a depth file must be {DEPTH_FORMAT}")
        with np.load(name, allow_pickle=False) as npz:
            if "arr_0" not in npz.files:
                raise DataFileError(f"{name}: depth file has no 'arr_0' array (keys: {npz.files})")
            disp = np.asarray(npz["arr_0"])
    except DataFileError:
        raise
    except FileNotFoundError:
        raise DataFileError(f"{name}: depth file is missing") from None
    except Exception as e:  # zipfile.BadZipFile, EOFError, ValueError, OSError on truncation
        raise DataFileError(f"{name}: cannot read depth ({type(e).__name__}: {e})") from None
    if disp.ndim == 3 and 1 in (disp.shape[0], disp.shape[-1]):
        disp = disp.reshape(disp.shape[1:] if disp.shape[0] == 1 else disp.shape[:2])
    if disp.ndim != 2 or disp.size == 0:
        raise DataFileError(f"{name}: depth 'arr_0' must be a non-empty H x W array, got shape {disp.shape}")
    if not np.issubdtype(disp.dtype, np.floating) and not np.issubdtype(disp.dtype, np.integer):
        raise DataFileError(f"{name}: depth 'arr_0' has non-numeric dtype {disp.dtype}")
    disp = disp.astype(np.float32)
    if not np.isfinite(disp).all():
        raise DataFileError(f"{name}: depth 'arr_0' holds non-finite values")
    return disp


def read_depth_channel(path: PathLike, near: float = 0.5, far: float = 100.0, mode: str = "z_buffer",
                       image_hw: Optional[Tuple[int, int]] = None) -> np.ndarray:
    """Read a depth ``.npz`` and convert its disparity to the depth channel of ``mode``, at full resolution.

    Args:
        path: the ``.npz`` file.
        near, far, mode: see :func:`disparity_to_depth_code`.
        image_hw: (height, width) of the matching image, when known: a depth map
            whose aspect ratio differs by more than 2% is rejected.

    Returns:
        (H, W) float32 depth channel at the file's resolution.
    """
    disp = read_disparity(path)
    if image_hw is not None:
        ratio_img = image_hw[1] / image_hw[0]
        ratio_depth = disp.shape[1] / disp.shape[0]
        if abs(ratio_depth / ratio_img - 1.0) > 0.02:
            raise DataFileError(f"{os.fspath(path)}: depth is {disp.shape[0]}x{disp.shape[1]} but its image is "
                                f"{image_hw[0]}x{image_hw[1]} (aspect ratios differ)")
    return disparity_to_depth_code(disp, near, far, mode)


def crop_depth(z: np.ndarray, size: int) -> np.ndarray:
    """NEAREST resize of the short side of a full-resolution depth channel to ``size``, centre crop
    -> (size, size) float32."""
    return np.asarray(resize_and_crop(Image.fromarray(np.asarray(z, np.float32), mode="F"), size, Image.NEAREST),
                      dtype=np.float32)


def load_depth01(path: PathLike, image_size: int, near: float = 0.5, far: float = 100.0,
                 mode: str = "z_buffer", image_hw: Optional[Tuple[int, int]] = None) -> np.ndarray:
    """Read a depth ``.npz``, convert disparity to the depth channel, resize (NEAREST) and centre-crop.

    Args: see :func:`read_depth_channel`; ``image_size`` is the output side length.

    Returns:
        (image_size, image_size) float32 depth channel ([0, 1] for the code modes).
    """
    return crop_depth(read_depth_channel(path, near, far, mode, image_hw), image_size)


def load_rgbd01(image_path: PathLike, depth_path: PathLike, image_size: int, near: float = 0.5,
                far: float = 100.0, mode: str = "z_buffer") -> np.ndarray:
    """Image + depth as one (4, S, S) float32 RGBD array in [0, 1] (S = ``image_size``).

    Raises:
        DataFileError: either file cannot be used; the message names it.
    """
    rgb01, original_hw = read_image01(image_path, image_size)
    z01 = load_depth01(depth_path, image_size, near, far, mode, image_hw=original_hw)
    return np.concatenate([rgb01.transpose(2, 0, 1), z01[None]], axis=0)


def load_sr_rgbd(image_path: PathLike, depth_path: PathLike, image_size: int, image_size_lr: int,
                 near: float = 0.5, far: float = 100.0, mode: str = "z_buffer"
                 ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """High-res RGBD and the low-res condition's ingredients, both from the ORIGINAL files.

    Each file is decoded once. The low-res colour is the original image LANCZOS-resized
    (short side ``image_size_lr``) and centre-cropped, kept as 8-bit (the caller blurs it,
    see :func:`ivid.data.augment.gaussian_blur3_uint8`); the low-res depth is NEAREST from the
    full-resolution depth channel, centre-cropped (as the reference's ``SRDataset``).

    Returns:
        ``(rgbd01, rgb_lr, z_lr)``: (4, S, S) float32 as :func:`load_rgbd01`, (s, s, 3) uint8,
        (s, s) float32 (S = ``image_size``, s = ``image_size_lr``).
    """
    image, original_hw = read_image(image_path)
    try:
        rgb01 = crop_rgb_uint8(image, image_size).astype(np.float32) / 255.0
        rgb_lr = crop_rgb_uint8(image, image_size_lr)
    except (OSError, ValueError) as e:
        raise DataFileError(f"{os.fspath(image_path)}: cannot read image ({type(e).__name__}: {e})") from None
    z_full = read_depth_channel(depth_path, near, far, mode, image_hw=original_hw)
    rgbd01 = np.concatenate([rgb01.transpose(2, 0, 1), crop_depth(z_full, image_size)[None]], axis=0)
    return rgbd01, rgb_lr, crop_depth(z_full, image_size_lr)


def to_pm1(x01):
    """[0, 1] -> [-1, 1] (``2 x - 1``); NumPy or torch."""
    return x01 * 2.0 - 1.0


def from_pm1(x_pm1):
    """[-1, 1] -> [0, 1] (``(x + 1) / 2``); NumPy or torch."""
    return (x_pm1 + 1.0) * 0.5


def normalize_rgbd(rgbd01, normalize: bool = True, normalize_depth: bool = True):
    """(..., 4, H, W) RGBD in [0, 1] -> model space: RGB to [-1, 1] if ``normalize``,
    depth to [-1, 1] if ``normalize_depth`` (channels not normalised stay in [0, 1]).
    Returns a new array/tensor of the same kind."""
    out = rgbd01 * 1.0
    if normalize:
        out[..., :3, :, :] = to_pm1(rgbd01[..., :3, :, :])
    if normalize_depth:
        out[..., 3:, :, :] = to_pm1(rgbd01[..., 3:, :, :])
    return out


def unnormalize_rgbd(rgbd, normalize: bool = True, normalize_depth: bool = True):
    """Inverse of :func:`normalize_rgbd` (same flags): model-space RGBD -> [0, 1]."""
    out = rgbd * 1.0
    if normalize:
        out[..., :3, :, :] = from_pm1(rgbd[..., :3, :, :])
    if normalize_depth:
        out[..., 3:, :, :] = from_pm1(rgbd[..., 3:, :, :])
    return out
