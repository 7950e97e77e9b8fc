"""Training data: RGBD datasets (G_u), warped pairs (G_c), low/high-res pairs (SR).

- ``DATASETS``: the config registry (``dataset.name`` -> class), built as
  ``Cls(data_dir, **dataset.args)``.
- Load failures travel with the batch: :func:`pop_failures` / :class:`FailureLog`.
- Batches completed on the training device: datasets implement :class:`DeviceBatchDataset`
  (``batch_on_device``, ``build_device_batch(batch, device)``); the warp datasets built with
  ``warp_on_device=True`` build their warp pairs there (:func:`build_warp_batch`).
  :func:`builds_batch_on_device` is the trainer's check.
- The procedural toy dataset generator lives in :mod:`ivid.toy`.
"""

from .datasets import (
    SEED_KEY,
    DeviceBatchDataset,
    ImageNet,
    ImageNetSR,
    ImageNetWarp,
    SingleCategory,
    SingleCategorySR,
    SingleCategoryWarp,
    builds_batch_on_device,
    probe_dataset,
    sample_seed,
)
from .failures import FAILURES_KEY, DataUnreadableError, FailureLog, pop_failures
from .index import DataLayoutError
from .preprocess import DataFileError, disparity_to_depth_code
from .warp_pairs import build_warp_batch

DATASETS = {
    "ImageNet": ImageNet,
    "ImageNetWarp": ImageNetWarp,
    "ImageNetSR": ImageNetSR,
    "SingleCategory": SingleCategory,
    "SingleCategoryWarp": SingleCategoryWarp,
    "SingleCategorySR": SingleCategorySR,
}

__all__ = [
    "DATASETS",
    "ImageNet",
    "ImageNetWarp",
    "ImageNetSR",
    "SingleCategory",
    "SingleCategoryWarp",
    "SingleCategorySR",
    "FAILURES_KEY",
    "SEED_KEY",
    "FailureLog",
    "pop_failures",
    "build_warp_batch",
    "DeviceBatchDataset",
    "builds_batch_on_device",
    "sample_seed",
    "disparity_to_depth_code",
    "DataLayoutError",
    "DataFileError",
    "DataUnreadableError",
    "probe_dataset",
]
