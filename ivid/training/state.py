"""The state of a training run and its checkpoints: :class:`TrainingState`, a component the trainer owns.

What a checkpoint holds is given to :class:`TrainingState` explicitly: the objects whose state it
saves and restores in place (backbone, :class:`~.mixed_precision.MixedPrecision`, optimizer,
:class:`~.ema.EmaSet`) and the run's fixed :class:`RunSettings` at construction, the counters and
the data position per call. File names and formats: :mod:`.checkpoint_files`.

``misc_step%07d.pt`` holds (all tensors or plain values, ``weights_only``-loadable):
``step``, ``optimizer`` (AdamW state over the float32 masters), ``log2_loss_scale``,
``loss_scale``, ``skipped_steps_total``, ``rng_states`` (one dict per rank, see
:mod:`.rng`), ``data`` (epoch, batch_in_epoch, batch_size, world_size, seed of the
data stream), ``ema_rates``, ``world_size``, ``seed``, ``fp16_mode`` and
``config_json`` (the resolved config as a JSON string).
"""

from __future__ import annotations

import dataclasses
import json
import os
import warnings
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
from torch import nn

from ivid.errors import OptionError
from ivid.model_loading import CheckpointError, CheckpointNotFoundError

from . import distributed as dist
from .checkpoint_files import (CheckpointFiles, ModelMismatchError, list_steps, load_file, params_to_state_dict,
                               save_checkpoint, state_dict_to_params, unwrap)
from .ema import EmaSet
from .mixed_precision import MixedPrecision
from .rng import capture_rng_state, restore_rng_state

__all__ = ["TrainingState", "RunSettings", "Resumed", "resolve_ckpt_dir", "config_differences"]

MISC_FORMAT_VERSION = 1


def config_differences(old: Any, new: Any, prefix: str = "") -> Dict[str, List[Any]]:
    """``{dotted key: [old, new]}`` for every leaf value that differs between two configs."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: Dict[str, List[Any]] = {}
        for key in sorted(set(old) | set(new), key=str):
            out.update(config_differences(old.get(key), new.get(key), f"{prefix}{key}."))
        return out
    if old != new and not (isinstance(old, (list, tuple)) and isinstance(new, (list, tuple))
                           and list(old) == list(new)):
        return {prefix.rstrip("."): [old, new]}
    return {}


def resolve_ckpt_dir(load_dir: str) -> str:
    """``<load_dir>/ckpts`` when it exists, else ``load_dir`` itself (a ckpts folder given directly)."""
    sub = os.path.join(load_dir, "ckpts")
    return sub if os.path.isdir(sub) else load_dir


def _pick_steps(ckpt_dir: str, ckpt: Optional[Any]) -> List[int]:
    """Steps to try, in order: the one asked for, or for 'latest' every complete step from the newest down."""
    steps = list_steps(ckpt_dir)
    if not steps:
        raise CheckpointNotFoundError(f"--load_dir {ckpt_dir}: no checkpoint found (expected misc_step*.pt files)")
    if ckpt is None or str(ckpt).lower() == "latest":
        return steps[::-1]
    try:
        step = int(ckpt)
    except ValueError:
        raise OptionError(f"--ckpt {ckpt!r}: expected a step number or 'latest'") from None
    if step not in steps:
        raise CheckpointNotFoundError(f"--ckpt {step}: no checkpoint at that step in {ckpt_dir}; found {steps}")
    return [step]


def _read_step(files: CheckpointFiles, rates: Sequence[float]) -> Tuple[Any, Dict[float, Any], Any]:
    """Read every file of one checkpoint (model, EMAs present, misc) before anything is applied."""
    model_sd = load_file(files.model)
    emas = {rate: load_file(files.ema(rate)) for rate in rates if os.path.isfile(files.ema(rate))}
    misc = load_file(files.misc)
    if not isinstance(misc, dict) or "step" not in misc or "optimizer" not in misc:
        raise CheckpointError(f"{files.misc}: not a training state file (no 'step' / 'optimizer' entries)")
    return model_sd, emas, misc


@dataclasses.dataclass(frozen=True)
class RunSettings:
    """The run's fixed settings that a checkpoint records and that a resume is checked against.

    Attributes:
        seed: base seed of the run (data order, noise).
        rank, world_size: this process and the number of processes.
        batch_size_per_gpu: samples per rank per step (with world_size and seed: the data stream).
        learning_rate, weight_decay: AdamW settings; on resume they win over the checkpoint's.
        device: where the RNG states of CUDA generators live.
        config: the resolved config (stored as ``config_json``; None: an empty object).
    """

    seed: int
    rank: int
    world_size: int
    batch_size_per_gpu: int
    learning_rate: float
    weight_decay: float
    device: torch.device
    config: Optional[Dict[str, Any]] = None

    def config_json(self) -> str:
        return json.dumps(self.config if self.config is not None else {})


@dataclasses.dataclass(frozen=True)
class Resumed:
    """What :meth:`TrainingState.load` read besides the tensors it restored in place.

    Attributes:
        step: optimizer steps done.
        skipped_total: steps skipped so far for non-finite gradients.
        data_position: ``(epoch, batch_in_epoch)`` where the data stream goes on.
        files: the files that were loaded (model, EMAs, misc).
        config_changes: ``{dotted key: [old, new]}`` for settings that differ from the checkpoint's.
    """

    step: int
    skipped_total: int
    data_position: Tuple[int, int]
    files: Tuple[str, ...]
    config_changes: Dict[str, List[Any]]


class TrainingState:
    """Saves and restores a training run's checkpoints (the trainer owns one).

    Args:
        ckpt_dir: where :meth:`save` writes (``<output_dir>/ckpts``).
        backbone: the trained module (wrappers are stripped); gives the state_dict keys and buffers.
        mp: mixed precision: its float32 masters are the saved model weights; loss scale, fp16 mode.
        optimizer: AdamW over the masters.
        ema: one EMA per rate (``ema_<rate>_step*.pt``).
        settings: the run's :class:`RunSettings`.

    :meth:`load` restores ``backbone``, ``mp``, ``optimizer``, ``ema`` and the global RNG states in
    place and returns the counters (:class:`Resumed`); :meth:`save` takes the counters and the data
    stream position per call. Both are collective under DDP (every rank calls them).
    """

    def __init__(self, ckpt_dir: str, backbone: nn.Module, mp: MixedPrecision, optimizer: torch.optim.Optimizer,
                 ema: EmaSet, settings: RunSettings):
        self.ckpt_dir = ckpt_dir
        self.backbone, self.mp, self.optimizer, self.ema = backbone, mp, optimizer, ema
        self.settings = settings

    # -- save ------------------------------------------------------------------------------
    def _gather_rng_states(self) -> List[Dict[str, torch.Tensor]]:
        device, world_size = self.settings.device, self.settings.world_size
        local = capture_rng_state(device)
        if world_size == 1:
            return [local]
        per_rank: List[Dict[str, torch.Tensor]] = [{} for _ in range(world_size)]
        for key, value in local.items():
            dtype = value.dtype
            parts = dist.all_gather_tensors(value.to(device))
            for r, part in enumerate(parts):
                per_rank[r][key] = part.to(dtype)
        return per_rank

    def misc_state(self, step: int, skipped_total: int, data_state: Mapping[str, int]) -> Dict[str, Any]:
        """The ``misc`` checkpoint dict (collective: every rank must call it).

        Args:
            step: optimizer steps done.
            skipped_total: steps skipped so far.
            data_state: the data stream position (``BatchStream.state_dict()``).
        """
        s = self.settings
        return {
            "format_version": MISC_FORMAT_VERSION, "step": int(step),
            "optimizer": self.optimizer.state_dict(),
            "log2_loss_scale": float(self.mp.log2_scale), "loss_scale": float(2.0 ** self.mp.log2_scale),
            "fp16_mode": self.mp.mode, "skipped_steps_total": int(skipped_total),
            "rng_states": self._gather_rng_states(), "data": dict(data_state),
            "ema_rates": list(self.ema.rates), "world_size": int(s.world_size), "seed": int(s.seed),
            "config_json": s.config_json(),
        }

    def save(self, step: int, skipped_total: int, data_state: Mapping[str, int]) -> List[str]:
        """Write the checkpoint of ``step`` (rank 0 writes; every rank must call); return the paths."""
        misc = self.misc_state(step, skipped_total, data_state)
        paths: List[str] = []
        if dist.is_main():
            model_sd = params_to_state_dict(self.backbone, self.mp.master_params)
            ema_sds = {r: params_to_state_dict(self.backbone, self.ema.params[r]) for r in self.ema.rates}
            paths = save_checkpoint(self.ckpt_dir, step, model_sd, ema_sds, misc)
        dist.barrier()
        return paths

    # -- load ------------------------------------------------------------------------------
    def load(self, load_dir: str, ckpt: Optional[Any] = None) -> Resumed:
        """Resume from ``load_dir`` (a run folder or its ``ckpts``); ``ckpt`` = step or latest.

        With ``latest``, a checkpoint whose files cannot be read (e.g. truncated by a crash or a
        full disk) is skipped with a warning and the previous complete one is used.

        Raises:
            CheckpointError: the step asked for is unreadable (the message names the file and
                the earlier steps), or no step is readable.
            ModelMismatchError: the checkpoint holds another architecture than the config's.
        """
        ckpt_dir = resolve_ckpt_dir(load_dir)
        candidates = _pick_steps(ckpt_dir, ckpt)
        explicit = not (ckpt is None or str(ckpt).lower() == "latest")
        for k, step in enumerate(candidates):
            files = CheckpointFiles(ckpt_dir, step)
            try:
                model_sd, emas, misc = _read_step(files, self.ema.rates)
                break
            except CheckpointError as err:
                earlier = [s for s in list_steps(ckpt_dir) if s < step]
                if explicit:
                    hint = f"; resume from an earlier step with --ckpt {earlier[-1]}" if earlier else ""
                    raise CheckpointError(f"{err}{hint}") from None
                if k + 1 == len(candidates):
                    raise CheckpointError(f"{err}; no readable checkpoint is left in {ckpt_dir} (start a new "
                                          "--output_dir or restore the files)") from None
                warnings.warn(f"{err}; resuming from the previous complete checkpoint, step {candidates[k + 1]}")
        try:
            params = state_dict_to_params(self.backbone, model_sd, files.model)
        except ModelMismatchError as err:
            raise ModelMismatchError(
                f"{err}. The run in {load_dir} was trained with another model than the config gives; resume it "
                f"with its own config ({os.path.join(load_dir, 'config.json')}, used when --config is left out) "
                "or start the new model in another --output_dir") from None
        unwrap(self.backbone).load_state_dict(model_sd, strict=True)
        self.mp.load_master(params)
        loaded = [files.model]
        for rate in self.ema.rates:
            path = files.ema(rate)
            if rate in emas:
                self.ema.copy_from(rate, state_dict_to_params(self.backbone, emas[rate], path))
                loaded.append(path)
            else:
                warnings.warn(f"{path} not found: EMA {rate} restarts from the model weights")
                self.ema.copy_from(rate, params)
        loaded.append(files.misc)
        resumed = self._load_misc(misc, files.misc, tuple(loaded))
        dist.print0(f"resumed from step {resumed.step}: loaded " + ", ".join(loaded))
        return resumed

    def _load_misc(self, misc: Dict[str, Any], source: str, files: Tuple[str, ...]) -> Resumed:
        s = self.settings
        try:
            self.optimizer.load_state_dict(misc["optimizer"])
        except (KeyError, ValueError) as e:
            raise ModelMismatchError(f"{source}: optimizer state does not match this model/config ({e})") from None
        for group in self.optimizer.param_groups:  # the config's values win over the checkpoint's
            group["lr"], group["weight_decay"] = s.learning_rate, s.weight_decay
        self.mp.load_state_dict(misc)
        step = int(misc["step"])
        skipped_total = int(misc.get("skipped_steps_total", 0))
        config_changes = self._check_config(misc.get("config_json"), source)
        self._restore_rng(misc.get("rng_states") or [], int(misc.get("world_size", 1)))
        data_position = self._data_position_from(misc.get("data") or {}, source)
        return Resumed(step, skipped_total, data_position, files, config_changes)

    def _check_config(self, config_json: Optional[str], source: str) -> Dict[str, List[Any]]:
        """Warn about, and return, every setting that differs from the checkpoint's.

        ``trainer.args.max_steps`` is returned but not warned about: raising it is how a finished
        run is extended.
        """
        config = self.settings.config
        if not config_json or config is None:
            return {}
        try:
            old = json.loads(config_json)
        except ValueError:
            warnings.warn(f"{source}: its config_json is unreadable; changed settings cannot be checked")
            return {}
        changes = config_differences(old, config)
        changed = [f"{key} {old_new[0]!r} -> {old_new[1]!r}" for key, old_new in changes.items()
                   if key != "trainer.args.max_steps"]
        if changed:
            warnings.warn(f"resuming {source} with changed settings: {'; '.join(changed)} "
                          "(recorded in log.jsonl as the resume event's config_changes)")
        return changes

    def _restore_rng(self, states: List[Dict[str, torch.Tensor]], saved_world: int) -> None:
        s = self.settings
        if not states:
            return
        if saved_world != s.world_size:
            warnings.warn(f"checkpoint was written by {saved_world} ranks, resuming with {s.world_size}: "
                          "global RNG states are reused modulo the old world size")
        restore_rng_state(states[s.rank % len(states)], s.device)

    def _data_position_from(self, data: Dict[str, Any], source: str) -> Tuple[int, int]:
        s = self.settings
        epoch, batch = int(data.get("epoch", 0)), int(data.get("batch_in_epoch", 0))
        same = (int(data.get("batch_size", -1)) == s.batch_size_per_gpu
                and int(data.get("world_size", -1)) == s.world_size and int(data.get("seed", -1)) == s.seed)
        if same:
            return epoch, batch
        if batch:
            warnings.warn(f"{source}: batch size, world size or seed changed; the data stream restarts at "
                          f"the beginning of epoch {epoch + 1}")
            return epoch + 1, 0
        return epoch, 0
