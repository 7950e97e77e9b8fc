"""Training: trainers (the config's ``trainer`` section), checkpoints, mixed precision, DDP helpers.

``TRAINERS`` maps ``trainer.name`` to the class; each is constructed as
``Cls(framework, dataset, output_dir=..., **trainer.args)`` and trained with
``.run()``. :func:`ivid.training.launch.launch` is what ``train.py`` calls
(single process, one process per GPU, or under ``torchrun``).
"""

from .checkpoint_files import ema_filename, find_latest_step, misc_filename, model_filename, unwrap
from .ema import update_ema
from .mixed_precision import INITIAL_LOG2_LOSS_SCALE, MixedPrecision
from .trainer import BasicTrainer
from .variants import InpaintTrainer, SuperResTrainer

TRAINERS = {
    "BasicTrainer": BasicTrainer,
    "InpaintTrainer": InpaintTrainer,
    "SuperResTrainer": SuperResTrainer,
}

__all__ = [
    "TRAINERS", "BasicTrainer", "InpaintTrainer", "SuperResTrainer", "MixedPrecision", "INITIAL_LOG2_LOSS_SCALE",
    "update_ema", "unwrap", "model_filename", "ema_filename", "misc_filename", "find_latest_step",
]
