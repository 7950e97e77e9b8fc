"""Saving, resuming and sample grids of :class:`ivid.training.BasicTrainer` (a mixin).

``misc_step%07d.pt`` holds (all tensors or plain values, ``weights_only``-loadable):
``step``, ``optimizer`` (AdamW state over the float32 masters), ``log2_loss_scale``,
``loss_scale``, ``skipped_steps_total``, ``rng_states`` (one dict per rank, see
:mod:`.rng`), ``data`` (epoch, batch_in_epoch, batch_size, world_size, seed of the
data stream), ``ema_rates``, ``world_size``, ``seed``, ``fp16_mode`` and
``config_json`` (the resolved config as a JSON string).
"""

from __future__ import annotations

import copy
import json
import os
import warnings
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch

from ivid.model_loading import CheckpointError, CheckpointNotFoundError
from ivid.errors import OptionError

from . import distributed as dist
from .checkpoint_files import (CheckpointFiles, ModelMismatchError, list_steps, load_file, params_to_state_dict,
                         save_checkpoint, state_dict_to_params, unwrap)
from .rng import capture_rng_state, restore_rng_state
from .samples import grid_from_rows, sample_rows

__all__ = ["TrainerStateMixin", "resolve_ckpt_dir", "config_differences"]

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


class TrainerStateMixin:
    """save() / load() / maybe_sample() for the trainers (expects BasicTrainer's attributes)."""

    # -- save ------------------------------------------------------------------------------
    def _gather_rng_states(self) -> List[Dict[str, torch.Tensor]]:
        local = capture_rng_state(self.device)
        if self.world_size == 1:
            return [local]
        per_rank: List[Dict[str, torch.Tensor]] = [{} for _ in range(self.world_size)]
        for key, value in local.items():
            dtype = value.dtype
            parts = dist.all_gather_tensors(value.to(self.device))
            for r, part in enumerate(parts):
                per_rank[r][key] = part.to(dtype)
        return per_rank

    def misc_state(self) -> Dict[str, Any]:
        """The ``misc`` checkpoint dict (collective: every rank must call it)."""
        return {
            "format_version": MISC_FORMAT_VERSION, "step": int(self.step),
            "optimizer": self.optimizer.state_dict(),
            "log2_loss_scale": float(self.mp.log2_scale), "loss_scale": float(2.0 ** self.mp.log2_scale),
            "fp16_mode": self.mp.mode, "skipped_steps_total": int(self.skipped_total),
            "rng_states": self._gather_rng_states(), "data": self.stream.state_dict(),
            "ema_rates": list(self.ema.rates), "world_size": int(self.world_size), "seed": int(self.seed),
            "config_json": self.config_json(),
        }

    def save(self) -> List[str]:
        """Write the checkpoint of the current step (rank 0 writes; every rank must call)."""
        misc = self.misc_state()
        paths: List[str] = []
        if dist.is_main():
            model_sd = params_to_state_dict(self.backbone, self.mp.master_params)
            ema_sds = {r: params_to_state_dict(self.backbone, self.ema.params[r]) for r in self.ema.rates}
            paths = save_checkpoint(os.path.join(self.output_dir, "ckpts"), self.step, model_sd, ema_sds, misc)
        dist.barrier()
        self._last_saved = self.step
        return paths

    # -- load ------------------------------------------------------------------------------
    def load(self, load_dir: str, ckpt: Optional[Any] = None) -> bool:
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
        self._load_misc(misc, files.misc)
        self.loaded_files = tuple(loaded)
        dist.print0(f"resumed from step {self.step}: loaded " + ", ".join(loaded))
        return True

    def _load_misc(self, misc: Dict[str, Any], source: str) -> None:
        try:
            self.optimizer.load_state_dict(misc["optimizer"])
        except (KeyError, ValueError) as e:
            raise ModelMismatchError(f"{source}: optimizer state does not match this model/config ({e})") from None
        for group in self.optimizer.param_groups:  # the config's values win over the checkpoint's
            group["lr"], group["weight_decay"] = self.learning_rate, self.weight_decay
        self.mp.load_state_dict(misc)
        self.step = int(misc["step"])
        self.skipped_total = int(misc.get("skipped_steps_total", 0))
        self._check_config(misc.get("config_json"), source)
        self._restore_rng(misc.get("rng_states") or [], int(misc.get("world_size", 1)))
        self._data_position = self._data_position_from(misc.get("data") or {}, source)

    def _check_config(self, config_json: Optional[str], source: str) -> None:
        """Warn about, and keep in :attr:`config_changes`, every setting that differs from the checkpoint's.

        ``trainer.args.max_steps`` is recorded but not warned about: raising it is how a finished
        run is extended.
        """
        if not config_json or self.config is None:
            return
        try:
            old = json.loads(config_json)
        except ValueError:
            warnings.warn(f"{source}: its config_json is unreadable; changed settings cannot be checked")
            return
        self.config_changes = config_differences(old, self.config)
        changed = [f"{key} {old_new[0]!r} -> {old_new[1]!r}" for key, old_new in self.config_changes.items()
                   if key != "trainer.args.max_steps"]
        if changed:
            warnings.warn(f"resuming {source} with changed settings: {'; '.join(changed)} "
                          "(recorded in log.jsonl as the resume event's config_changes)")

    def _restore_rng(self, states: List[Dict[str, torch.Tensor]], saved_world: int) -> None:
        if not states:
            return
        if saved_world != self.world_size:
            warnings.warn(f"checkpoint was written by {saved_world} ranks, resuming with {self.world_size}: "
                          "global RNG states are reused modulo the old world size")
        restore_rng_state(states[self.rank % len(states)], self.device)

    def _data_position_from(self, data: Dict[str, Any], source: str) -> Tuple[int, int]:
        epoch, batch = int(data.get("epoch", 0)), int(data.get("batch_in_epoch", 0))
        same = (int(data.get("batch_size", -1)) == self.batch_size_per_gpu
                and int(data.get("world_size", -1)) == self.world_size and int(data.get("seed", -1)) == self.seed)
        if same:
            return epoch, batch
        if batch:
            warnings.warn(f"{source}: batch size, world size or seed changed; the data stream restarts at "
                          f"the beginning of epoch {epoch + 1}")
            return epoch + 1, 0
        return epoch, 0

    # -- sample grids ----------------------------------------------------------------------
    def _sample_backbone(self) -> torch.nn.Module:
        params = self.ema.params[self.ema.rates[0]] if (self.sample_with == "ema" and self.ema.rates) \
            else self.mp.master_params
        if getattr(self, "_sampling_model", None) is None:
            self._sampling_model = copy.deepcopy(unwrap(self.backbone)).eval().requires_grad_(False)
        self._sampling_model.load_state_dict(params_to_state_dict(self.backbone, params), strict=True)
        return self._sampling_model

    def sample_kwargs(self, batch: Dict[str, Any]) -> Dict[str, Any]:
        """Arguments of ``DdimSampler.sample`` for the grid (classes, guidance, conditions)."""
        kwargs = dict(self.sample_cond(batch))
        backbone = unwrap(self.backbone)
        if getattr(backbone, "num_classes", None) is not None and "classes" in batch:
            kwargs["classes"] = batch["classes"]
            if hasattr(self.framework, "p_uncond"):
                kwargs["strength"] = self.sample_guidance
        return kwargs

    @torch.no_grad()
    def make_sample_grid(self) -> Any:
        """Sample the grid batch with DDIM (``sample_steps``); returns an ``H x W x 3`` uint8 array."""
        from ivid.diffusion import DdimSampler

        batch = self.sample_batch
        framework = copy.copy(self.framework)
        framework.backbone = self._sample_backbone()
        generator = torch.Generator(device=self.device).manual_seed(self.seed)
        result = DdimSampler(framework).sample(len(batch["x_0"]), steps=self.sample_steps, generator=generator,
                                               **self.sample_kwargs(batch))
        return grid_from_rows(sample_rows(result.samples, batch, self.SAMPLE_KIND))

    def maybe_sample(self, at_start: bool = False) -> Optional[str]:
        """Write ``samples/step%07d.png`` on rank 0 (skipped at start when that file exists)."""
        from ivid.utils.images import save_png

        if not dist.is_main() or self.sample_batch is None:
            return None
        path = os.path.join(self.output_dir, "samples", f"step{self.step:07d}.png")
        if at_start and os.path.exists(path):
            return None
        save_png(path, self.make_sample_grid())
        return path
