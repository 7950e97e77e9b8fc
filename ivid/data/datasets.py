"""Training datasets: RGBD images (G_u), warped pairs (G_c), low/high-res pairs (SR).

Built as ``Cls(data_dir, **dataset_args)`` from a config's ``dataset`` section
(``RUNTIME_ARGS = ("data_dir",)``). Folder layout and ``dataset.json``: see
:mod:`ivid.data.index`; preprocessing: :mod:`ivid.data.preprocess`.

Constructor defaults are the reference's (``normalize=False``,
``normalize_depth=False``, ``preprocess_depth='none'``); the released configs set
``true``, ``true``, ``"z_buffer"``.

Samples (tensors float32, ``S = image_size``; [-1, 1] when ``normalize`` /
``normalize_depth``, else [0, 1] - the depth channel of ``none`` / ``to_depth`` is
a disparity / a linear depth, see :func:`ivid.data.preprocess.disparity_to_depth_code`):

- ``ImageNet`` / ``SingleCategory``: ``x_0`` (4, S, S).
- ``*Warp``: ``x_0``, ``y`` (4, S, S; masked pixels -1 when normalised), ``mask``
  (1, S, S; 0/1), ``pose`` (2,) = (theta, phi) of the random camera, and ``mask_rgb``
  (1, S, S; 0/1) only with the ``erode_rgb`` augment (as the reference). With
  ``warp_on_device=True`` only ``x_0`` and ``seed`` (int): the trainer builds the
  rest on its device (see "Batches built on the device" below).
- ``*SR``: ``x_0`` (4, S, S) and ``y`` (4, s, s), s = ``image_size_lr``: the ORIGINAL
  image LANCZOS-resized to s and centre-cropped, then 3x3-blurred as 8-bit with
  sigma ~ U(0, 1) + 1e-3; depth NEAREST from the full-resolution depth (as the reference).
- ImageNet layout only: ``classes`` (int, sorted-wnid index).
- Always: ``failures`` (str): files that could not be read while producing this
  sample, one ``"path: reason"`` per line (see :mod:`ivid.data.failures`).

Batches built on the device: a dataset may leave part of each sample to be built batched on
the training device (:class:`DeviceBatchDataset`). Every dataset here declares it with
``batch_on_device`` (False unless a ``*Warp`` dataset has ``warp_on_device=True``); where it is
True, the trainer passes every collated batch (already on its device) through
``build_device_batch(batch, device)`` before the step (see :func:`builds_batch_on_device`).

Reproducibility: every random draw of sample ``index`` comes from a generator
seeded with ``sample_seed(seed, epoch, index)``; call :meth:`set_epoch` before
creating each epoch's DataLoader iterator (not with ``persistent_workers``).
An unreadable file is replaced by another index chosen deterministically from
(seed, epoch, index, attempt); after ``max_consecutive_failures`` failures in a
row a :class:`~ivid.data.failures.DataUnreadableError` stops training.
"""

from __future__ import annotations

import os
from typing import Any, Dict, List, Optional, Protocol, Sequence, Tuple, runtime_checkable

import numpy as np
import torch

from .augment import check_augments, draw_blur_sigma, gaussian_blur3_uint8
from .failures import FAILURES_KEY, DataUnreadableError, format_failures
from .index import load_or_build_index
from .preprocess import (
    CODE_MODES,
    DEPTH_MODES,
    UNBOUNDED_MODES,
    DataFileError,
    load_rgbd01,
    load_sr_rgbd,
    normalize_rgbd,
    unnormalize_rgbd,
)
from .warp_pairs import WarpSettings, build_warp_batch, build_warp_pair, draw_warp, sample_generator

#: default number of failed loads in a row before giving up
MAX_CONSECUTIVE_FAILURES = 50
#: key of the per-sample seed in ``warp_on_device`` samples
SEED_KEY = "seed"


@runtime_checkable
class DeviceBatchDataset(Protocol):
    """A dataset whose collated batches are completed on the training device, batched.

    ``batch_on_device``: whether samples are incomplete (e.g. a warp dataset built with
    ``warp_on_device=True`` returns ``x_0`` and a seed, not the warped condition).
    ``build_device_batch(batch, device)``: the complete batch (a new dict) from a collated one;
    called by the trainer on every batch when ``batch_on_device`` is True, never otherwise.
    """

    batch_on_device: bool

    def build_device_batch(self, batch: Dict[str, Any], device: Optional[torch.device] = None) -> Dict[str, Any]:
        ...


def builds_batch_on_device(dataset: Any) -> bool:
    """True when ``dataset`` implements :class:`DeviceBatchDataset` and leaves its batches to the device."""
    return isinstance(dataset, DeviceBatchDataset) and bool(dataset.batch_on_device)


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """63-bit seed of sample ``index`` in ``epoch`` (well mixed, for ``torch.Generator``)."""
    state = np.random.SeedSequence([int(seed), int(epoch), int(index)]).generate_state(2, dtype=np.uint32)
    return ((int(state[0]) << 32) | int(state[1])) & (2 ** 63 - 1)


class _RGBDDataset(torch.utils.data.Dataset):
    """RGBD images of a data folder; base of every dataset here (see module docstring)."""

    RUNTIME_ARGS = ("data_dir",)
    LAYOUT = "single"
    #: samples are complete: no :meth:`build_device_batch` step (see :class:`DeviceBatchDataset`)
    batch_on_device = False

    def __init__(self, data_dir: str, image_size: int, normalize: bool = False, normalize_depth: bool = False,
                 preprocess_depth: str = "none", near: float = 0.5, far: float = 100.0,
                 seed: int = 0, max_consecutive_failures: int = MAX_CONSECUTIVE_FAILURES) -> None:
        """
        Args:
            data_dir: folder with ``images/``, ``depths/`` (and ``dataset.json`` once indexed).
            image_size: side S of the square samples (pixels).
            normalize: RGB in [-1, 1] (else [0, 1]; default False as the reference).
            normalize_depth: depth channel in [-1, 1] (else as preprocessed; default False).
            preprocess_depth: depth channel (config key ``prepocess_depth`` as the reference
                spells it too): ``"none"`` (disparity, the reference's default), ``"to_depth"``,
                ``"disparity_minmax"``, ``"depth_minmax"``, ``"z_buffer"`` (released configs)
                or ``"linear"``; see :func:`ivid.data.preprocess.disparity_to_depth_code`.
            near, far: depth planes of the code (scene units).
            seed: base seed of every random draw (>= 0).
            max_consecutive_failures: unreadable samples in a row before giving up.
        """
        name = type(self).__name__
        if not isinstance(image_size, int) or image_size < 2:
            raise ValueError(f"{name}: image_size must be an integer >= 2, got {image_size!r}")
        if preprocess_depth not in DEPTH_MODES:
            raise ValueError(f"{name}: preprocess_depth must be one of {DEPTH_MODES}, got {preprocess_depth!r}")
        if normalize_depth and preprocess_depth in UNBOUNDED_MODES:
            raise ValueError(f"{name}: normalize_depth needs a depth channel in [0, 1], but preprocess_depth "
                             f"{preprocess_depth!r} is not; use 'z_buffer' (as the released configs) or a "
                             "*_minmax mode, or normalize_depth false")
        if not 0 < near < far:
            raise ValueError(f"{name}: need 0 < near < far, got near={near}, far={far}")
        if seed < 0 or max_consecutive_failures < 1:
            raise ValueError(f"{name}: need seed >= 0 and max_consecutive_failures >= 1")
        self.data_dir = os.fspath(data_dir)
        self.image_size = image_size
        self.normalize = normalize
        self.normalize_depth = normalize_depth
        self.preprocess_depth = preprocess_depth
        self.near = float(near)
        self.far = float(far)
        self.seed = int(seed)
        self.max_consecutive_failures = int(max_consecutive_failures)
        self.epoch = 0
        self.index = load_or_build_index(self.data_dir, self.LAYOUT)

    def __len__(self) -> int:
        return len(self.index.images)

    @property
    def num_classes(self) -> Optional[int]:
        """Number of classes (ImageNet layout) or None."""
        return len(self.index.labels) if self.LAYOUT == "imagenet" else None

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose random draws ``__getitem__`` reproduces."""
        self.epoch = int(epoch)

    def sample_seed(self, index: int) -> int:
        """Seed of every random draw of sample ``index`` in the current epoch."""
        return sample_seed(self.seed, self.epoch, index)

    def load_rgbd01(self, i: int) -> np.ndarray:
        """Image ``i`` as (4, S, S) float32 RGBD in [0, 1] (depth channel as preprocessed).

        Raises:
            DataFileError: the image or depth file cannot be used (message names it).
        """
        image_path = os.path.join(self.data_dir, self.index.images[i])
        depth_path = os.path.join(self.data_dir, self.index.depths[i])
        return self._guarded(image_path, lambda: load_rgbd01(image_path, depth_path, self.image_size, self.near,
                                                             self.far, self.preprocess_depth))

    @staticmethod
    def _guarded(image_path: str, read):
        """``read()``, with any decoder error of a broken file turned into a DataFileError."""
        try:
            return read()
        except DataFileError:
            raise
        except Exception as e:  # any other decoder error of a broken file
            raise DataFileError(f"{image_path}: cannot load sample ({type(e).__name__}: {e})") from None

    def read_files(self, i: int) -> Tuple[np.ndarray, Any]:
        """``(rgbd01, extra)`` of image ``i``: extra data a subclass reads from the same files (None here)."""
        return self.load_rgbd01(i), None

    def _replacement(self, index: int, attempt: int) -> int:
        rng = np.random.default_rng([self.seed, self.epoch, index, attempt, 1])
        return int(rng.integers(len(self)))

    def _load(self, index: int) -> Tuple[int, np.ndarray, Any, List[str]]:
        """Load ``index`` or deterministic replacements; returns (index used, rgbd01, extra, failures)."""
        failures: List[str] = []
        i = index
        for attempt in range(self.max_consecutive_failures):
            try:
                return (i, *self.read_files(i), failures)
            except DataFileError as e:
                failures.append(str(e))
                i = self._replacement(index, attempt)
        raise DataUnreadableError(
            f"{self.data_dir}: {len(failures)} samples in a row could not be loaded (last: {failures[-1]}); "
            "fix or remove the broken image/depth files (docs/data_preparation.md)")

    def __getitem__(self, index: int) -> Dict[str, Any]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        i, rgbd01, extra, failures = self._load(int(index))
        x_0 = normalize_rgbd(torch.from_numpy(rgbd01), self.normalize, self.normalize_depth)
        sample = self._make_sample(int(index), x_0, extra)
        if self.LAYOUT == "imagenet":
            sample["classes"] = self.index.class_of(i)
        sample[FAILURES_KEY] = format_failures(failures)
        return sample

    def _make_sample(self, index: int, x_0: torch.Tensor, extra: Any = None) -> Dict[str, Any]:
        return {"x_0": x_0}

    def build_device_batch(self, batch: Dict[str, Any], device: Optional[torch.device] = None) -> Dict[str, Any]:
        """The collated ``batch`` as it is: samples here are complete (``batch_on_device`` False)."""
        return batch


class _WarpDataset(_RGBDDataset):
    """RGBD images with a forward-backward-warped condition (G_c training, docs/design.md#training-data)."""

    def __init__(self, data_dir: str, image_size: int, normalize: bool = False, normalize_depth: bool = False,
                 preprocess_depth: str = "none", near: float = 0.5, far: float = 100.0,
                 augments: Sequence[str] = (), warp_on_device: bool = False,
                 seed: int = 0, max_consecutive_failures: int = MAX_CONSECUTIVE_FAILURES,
                 std: float = 0.15, warp_atol: float = 0.02, warp_rtol: float = 0.02,
                 erode_rgb_max: int = 9) -> None:
        """
        Args (besides :class:`_RGBDDataset`'s):
            augments: subset of ``prewarp_noise``, ``postwarp_noise``, ``blur``, ``erode_rgb``.
            warp_on_device: return only ``x_0`` (+ ``classes``) and ``seed``; the trainer
                builds the conditions with :meth:`build_device_batch` on its device.
            std: spread (radians) of the random camera's yaw and pitch (0.15 as released).
            warp_atol, warp_rtol: depth-edge tolerances of the warp (0.02 as released, for
                128 px; small images need larger ones, see :mod:`ivid.data.warp_pairs`).
            erode_rgb_max: largest ``erode_rgb`` square side (odd; 9 as released).
        """
        self.augments = check_augments(augments)
        if preprocess_depth in DEPTH_MODES and preprocess_depth not in CODE_MODES:
            # the reference would warp the channel as if it were a z-buffer code: meaningless geometry
            default = " (the default)" if preprocess_depth == "none" else ""
            raise ValueError(f"{type(self).__name__}: the warp reads the depth channel as a depth code, but "
                             f"preprocess_depth {preprocess_depth!r}{default} is not one; set "
                             "\"prepocess_depth\": \"z_buffer\" (as the released configs) or \"linear\"")
        try:
            self.warp_settings = WarpSettings(float(std), float(warp_atol), float(warp_rtol), erode_rgb_max)
        except ValueError as e:
            raise ValueError(f"{type(self).__name__}: {e}") from None
        self.warp_on_device = bool(warp_on_device)
        super().__init__(data_dir, image_size, normalize, normalize_depth, preprocess_depth, near, far,
                         seed, max_consecutive_failures)

    def _make_sample(self, index: int, x_0: torch.Tensor, extra: Any = None) -> Dict[str, Any]:
        seed = self.sample_seed(index)
        if self.warp_on_device:
            return {"x_0": x_0, SEED_KEY: seed}
        draw = draw_warp(sample_generator(seed), self.image_size, self.augments, self.warp_settings)
        x01 = unnormalize_rgbd(x_0, self.normalize, self.normalize_depth)  # exactly as build_device_batch
        pair = build_warp_pair(x01, draw, self.near, self.far, self.preprocess_depth, self.warp_settings,
                               erode_rgb="erode_rgb" in self.augments)
        y = normalize_rgbd(pair["y01"], self.normalize, self.normalize_depth)
        sample = {"x_0": x_0, "y": y, "mask": pair["mask"], "pose": pair["pose"]}
        if "mask_rgb" in pair:  # only with the erode_rgb augment, as the reference
            sample["mask_rgb"] = pair["mask_rgb"]
        return sample

    @property
    def batch_on_device(self) -> bool:
        """``warp_on_device``: the warped conditions are built batched on the training device."""
        return self.warp_on_device

    def build_device_batch(self, batch: Dict[str, Any], device: Optional[torch.device] = None) -> Dict[str, Any]:
        """Complete a collated ``warp_on_device`` batch on ``device`` (:class:`DeviceBatchDataset`).

        Args:
            batch: collated samples with ``x_0`` (B, 4, S, S) and ``seed`` (B,).
            device: target device (default: where ``x_0`` is).

        Returns:
            a new dict: the batch's other entries (tensors moved to ``device``) plus
            ``x_0``, ``y``, ``mask``, ``mask_rgb``, ``pose`` as the worker path makes them.
        """
        if SEED_KEY not in batch:
            raise KeyError(f"{type(self).__name__}.build_device_batch: the batch has no {SEED_KEY!r}; "
                           "build the dataset with warp_on_device=True")
        out = build_warp_batch(batch["x_0"], batch[SEED_KEY], self.augments, self.near, self.far,
                               self.preprocess_depth, self.normalize, self.normalize_depth, device,
                               self.warp_settings)
        device = out["x_0"].device
        rest = {k: (v.to(device) if isinstance(v, torch.Tensor) else v)
                for k, v in batch.items() if k not in out and k != SEED_KEY}
        return {**rest, **out}


class _SRDataset(_RGBDDataset):
    """High-res RGBD ``x_0`` with a low-res RGBD condition ``y`` (super-resolution model)."""

    def __init__(self, data_dir: str, image_size: int, image_size_lr: int, normalize: bool = False,
                 normalize_depth: bool = False, preprocess_depth: str = "none", near: float = 0.5,
                 far: float = 100.0, seed: int = 0,
                 max_consecutive_failures: int = MAX_CONSECUTIVE_FAILURES) -> None:
        """
        Args (besides :class:`_RGBDDataset`'s):
            image_size_lr: side s of the low-resolution condition (< image_size).
        """
        if not isinstance(image_size_lr, int) or not 2 <= image_size_lr <= image_size:
            raise ValueError(f"{type(self).__name__}: image_size_lr must be an integer in [2, image_size], "
                             f"got {image_size_lr!r}")
        self.image_size_lr = image_size_lr
        super().__init__(data_dir, image_size, normalize, normalize_depth, preprocess_depth, near, far,
                         seed, max_consecutive_failures)

    def read_files(self, i: int) -> Tuple[np.ndarray, Any]:
        """``(rgbd01, (rgb_lr uint8 (s, s, 3), z_lr (s, s)))`` of image ``i`` (files decoded once)."""
        image_path = os.path.join(self.data_dir, self.index.images[i])
        depth_path = os.path.join(self.data_dir, self.index.depths[i])
        rgbd01, rgb_lr, z_lr = self._guarded(image_path, lambda: load_sr_rgbd(
            image_path, depth_path, self.image_size, self.image_size_lr, self.near, self.far, self.preprocess_depth))
        return rgbd01, (rgb_lr, z_lr)

    @staticmethod
    def make_low_res(rgb_lr: np.ndarray, z_lr: np.ndarray, sigma: float) -> torch.Tensor:
        """The low-res condition in [0, 1] (depth: as preprocessed): 8-bit colour blurred (3x3,
        ``sigma``, as OpenCV on uint8) then /255, and the depth channel -> (4, s, s) float32."""
        rgb = gaussian_blur3_uint8(rgb_lr, sigma).astype(np.float32).transpose(2, 0, 1) / 255.0
        return torch.from_numpy(np.concatenate([rgb, np.asarray(z_lr, np.float32)[None]]))

    def _make_sample(self, index: int, x_0: torch.Tensor, extra: Any = None) -> Dict[str, Any]:
        rgb_lr, z_lr = extra
        sigma = draw_blur_sigma(sample_generator(self.sample_seed(index)))
        y = normalize_rgbd(self.make_low_res(rgb_lr, z_lr, sigma), self.normalize, self.normalize_depth)
        return {"x_0": x_0, "y": y}


class ImageNet(_RGBDDataset):
    """RGBD images in class folders ``images/<wnid>/<name>.<ext>``; samples carry ``classes``."""

    LAYOUT = "imagenet"


class SingleCategory(_RGBDDataset):
    """RGBD images ``images/<name>.<ext>`` (no classes)."""

    LAYOUT = "single"


class ImageNetWarp(_WarpDataset):
    """:class:`ImageNet` layout with warped conditions (G_c)."""

    LAYOUT = "imagenet"


class SingleCategoryWarp(_WarpDataset):
    """:class:`SingleCategory` layout with warped conditions (G_c)."""

    LAYOUT = "single"


class ImageNetSR(_SRDataset):
    """:class:`ImageNet` layout with low-res conditions (super-resolution)."""

    LAYOUT = "imagenet"


class SingleCategorySR(_SRDataset):
    """:class:`SingleCategory` layout with low-res conditions (super-resolution)."""

    LAYOUT = "single"


#: samples :func:`probe_dataset` reads before training starts
PROBE_SAMPLES = 8


def probe_dataset(dataset: _RGBDDataset, count: int = PROBE_SAMPLES) -> List[str]:
    """Read ``count`` samples spread over ``dataset`` before training; fail at once when none loads.

    Training replaces an unreadable sample by another one, which is right for a few broken
    files but would spin through a folder of nothing but broken ones; this check makes that
    case one clear error before any model is built or process started.

    Returns:
        the failures (``"path: reason"``) among the probed samples (empty when all loaded).

    Raises:
        DataUnreadableError: every probed sample failed; the message names the data folder,
            the count and the first failure.
    """
    total = len(dataset)
    picks = sorted({int(k * total / min(count, total)) for k in range(min(count, total))}) if total else []
    failures = []
    for i in picks:
        try:
            dataset.load_rgbd01(i)
        except DataFileError as e:
            failures.append(str(e))
    if picks and len(failures) == len(picks):
        raise DataUnreadableError(
            f"--data_dir {dataset.data_dir}: {len(failures)} failures in {len(picks)} samples tried (of {total}): "
            f"none could be read (first: {failures[0]}); check the files under images/ and depths/ "
            "(docs/data_preparation.md)")
    return failures
