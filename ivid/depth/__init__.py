"""Monocular depth for data preparation: MiDaS v3.1 ``dpt_beit_large_512`` (docs/design.md#monocular-depth).

``MidasDepth`` is our own DPT implementation on timm's BEiT-L/16 that loads the
official checkpoint; ``ensure_midas_checkpoint`` fetches that file when missing.
"""

from .official_weights import MidasCheckpointError, map_checkpoint_key
from .folder import FolderSummary, plan_folder, predict_folder
from .download import DEFAULT_CKPT, MIDAS_URL, MidasDownloadError, ensure_midas_checkpoint
from .midas import TINY_ARGS, MidasDepth
from .transforms import compute_input_size, resize_prediction, transform_image

__all__ = [
    "MidasDepth",
    "TINY_ARGS",
    "MidasCheckpointError",
    "map_checkpoint_key",
    "MidasDownloadError",
    "ensure_midas_checkpoint",
    "DEFAULT_CKPT",
    "MIDAS_URL",
    "plan_folder",
    "predict_folder",
    "FolderSummary",
    "compute_input_size",
    "transform_image",
    "resize_prediction",
]
