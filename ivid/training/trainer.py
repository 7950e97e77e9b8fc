"""``BasicTrainer``: the training loop of the unconditional / class-conditional RGBD model (G_u).

One optimizer step (:meth:`BasicTrainer.run_step`) takes a per-rank batch of
``batch_size_per_gpu`` samples, splits it into ``batch_split`` micro-batches,
accumulates their gradients (DDP gradient sync only on the last one), then
steps AdamW on the float32 master parameters (see :mod:`.mixed_precision`)
and updates one EMA per rate. The loss of a micro-batch is
``framework.training_losses(x_0, classes, generator=g, **cond)["loss"]`` with a
generator seeded from ``(seed, rank, step, micro-batch)``, so the noise of a
step does not depend on what happened before it (exact resume).

Every ``i_log`` steps a JSON line goes to ``<output_dir>/log.jsonl``; every
``i_sample`` steps (and at start) a DDIM sample grid goes to
``<output_dir>/samples/``; every ``i_save`` steps (and at the end, and on
SIGTERM/SIGINT) a checkpoint goes to ``<output_dir>/ckpts/`` (see
:mod:`.checkpoint_files`, :mod:`.state`). Rank 0 alone writes files.
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import time
from typing import Any, Dict, List, Literal, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import nn

from ivid.utils.io import atomic_write
from ivid.utils.run_record import run_record, write_run_folder

from . import distributed as dist
from .checkpoint_files import params_to_state_dict, unwrap
from .data_loop import BatchStream, epoch_permutation
from .ema import EmaSet
from .mixed_precision import MixedPrecision, normalize_fp16_mode
from .run_dir import JsonlLog, parameter_summary
from .samples import GridSampler
from .signals import GracefulStop
from .state import RunSettings, TrainingState

__all__ = ["BasicTrainer"]


def _step_seed(seed: int, rank: int, step: int, micro: int) -> int:
    """64-bit generator seed of one micro-batch."""
    state = np.random.SeedSequence([int(seed), int(rank), int(step), int(micro), 17]).generate_state(2, np.uint32)
    return ((int(state[0]) << 32) | int(state[1])) & (2 ** 63 - 1)


def _split_batch(batch: Dict[str, Any], parts: int) -> List[Dict[str, Any]]:
    """Split every tensor / list entry of ``batch`` along dim 0 into ``parts`` equal chunks."""
    size = len(batch["x_0"])
    if size % parts:
        raise ValueError(f"trainer.args.batch_split: {parts} does not divide the per-GPU batch of {size}")
    n = size // parts
    return [{k: v[i * n:(i + 1) * n] if isinstance(v, (torch.Tensor, list, tuple)) else v
             for k, v in batch.items()} for i in range(parts)]


class _StatsWindow:
    """Sums between two log lines (kept as device tensors where possible to avoid syncs)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.steps, self.skipped, self.loss_sum, self.grad_norm_sum, self.grad_norm_n = 0, 0, 0.0, 0.0, 0
        self.step_time, self.data_time, self.started = 0.0, 0.0, time.perf_counter()

    def add(self, info: Dict[str, Any], step_time: float, data_time: float) -> None:
        self.steps += 1
        self.loss_sum = self.loss_sum + info["loss"]
        self.skipped += int(info["stepped"] == 0.0)
        if math.isfinite(info["grad_norm"]):
            self.grad_norm_sum += info["grad_norm"]
            self.grad_norm_n += 1
        self.step_time += step_time
        self.data_time += data_time


class BasicTrainer:
    """Train ``framework.backbone`` on ``dataset`` (docs/design.md#training).

    Config args (``trainer.args``):
        max_steps: total optimizer steps.
        batch_size: global batch per step (split evenly over ranks), or
        batch_size_per_gpu: batch per rank per step (give exactly one of the two).
        batch_split: micro-batches per step (gradient accumulation; must divide the per-GPU batch;
            ``null`` = 1, as the reference).
        learning_rate, weight_decay: AdamW settings (betas 0.9/0.999, eps 1e-8).
        ema_rate: EMA decay rate(s): a number or a list, one EMA (and one ``ema_<rate>_step*.pt``
            file) each (default 0.9999, as the reference).
        fp16_mode: ``null``/``"none"`` (float32), ``"inflat_all"`` (the default, as the reference:
            float32 masters + dynamic log2 loss scale from 20; switched off when the backbone has
            no float16 parameter, as the reference) or ``"bf16"`` (bfloat16 autocast).
        fp16_scale_growth: log2 loss-scale growth per good step (``inflat_all``).
        i_log, i_sample, i_save: intervals in steps for the log line, sample grid, checkpoint
            (i_save 10000 by default, as the reference).
        i_print: steps between progress-bar updates (the reference's meaning; 1 by default:
            tqdm throttles its own redraws).
        i_ddpcheck: steps between cross-rank parameter checks (the reference's name; ``null``
            = only the checksums of every log line); ``check_sync_every``, when given, wins.
        seed: base seed of data order, diffusion noise and sample grids (per rank:
            mixed with the rank).
        num_workers: DataLoader workers per rank (``null`` = up to 8, by CPU count).
        sample_steps: DDIM steps of the sample grids (250 as the reference).
        sample_guidance: classifier-free guidance strength of the grids (3.0).
        num_sample_images: samples per grid (0 disables grids).
        sample_with: ``"ema"`` (first EMA rate) or ``"model"`` weights for the grids.
        check_sync_every: our older name of ``i_ddpcheck`` (``null`` = use ``i_ddpcheck``).

    Runtime args (not in JSON): framework, dataset, output_dir, device, config (the
    resolved config dict stored in checkpoints), load_dir / ckpt (resume), command
    (for ``command.txt``), show_progress (tqdm bar on rank 0).

    Components it owns: ``training_state`` (:class:`~.state.TrainingState`: checkpoints and
    resume), ``mp`` (mixed precision and the float32 masters), ``optimizer``, ``ema``,
    ``stream`` (the data), ``grids`` (:class:`~.samples.GridSampler`, rank 0, or None).
    """

    RUNTIME_ARGS = ("framework", "dataset", "output_dir", "device", "config", "load_dir", "ckpt", "command",
                    "show_progress")
    SAMPLE_KIND = "basic"

    def __init__(self, framework: Any, dataset: Any, output_dir: str, max_steps: int,
                 batch_size: Optional[int] = None, batch_size_per_gpu: Optional[int] = None,
                 batch_split: Optional[int] = None, learning_rate: float = 1e-4, weight_decay: float = 0.0,
                 ema_rate: Union[float, Sequence[float]] = 0.9999,
                 fp16_mode: Optional[Literal["none", "inflat_all", "bf16"]] = "inflat_all",
                 fp16_scale_growth: float = 1e-3, i_print: int = 1, i_log: int = 500, i_sample: int = 10000,
                 i_save: int = 10000, i_ddpcheck: Optional[int] = 10000, seed: int = 0,
                 num_workers: Optional[int] = None, sample_steps: int = 250, sample_guidance: float = 3.0,
                 num_sample_images: int = 8, sample_with: Literal["ema", "model"] = "ema",
                 check_sync_every: Optional[int] = None, device: Optional[Any] = None,
                 config: Optional[Dict[str, Any]] = None, load_dir: Optional[str] = None,
                 ckpt: Optional[Any] = None, command: Optional[str] = None, show_progress: bool = True):
        from ivid.data import FailureLog

        self.framework, self.dataset, self.output_dir = framework, dataset, str(output_dir)
        self.failures = FailureLog()
        self.max_steps, self.batch_split = int(max_steps), 1 if batch_split is None else int(batch_split)
        self.learning_rate, self.weight_decay = float(learning_rate), float(weight_decay)
        self.i_print, self.i_log, self.i_sample, self.i_save = int(i_print), int(i_log), int(i_sample), int(i_save)
        self.seed, self.sample_steps, self.sample_guidance = int(seed), int(sample_steps), float(sample_guidance)
        self.num_sample_images, self.sample_with = int(num_sample_images), sample_with
        sync_every = check_sync_every if check_sync_every is not None else i_ddpcheck
        self.check_sync_every = int(sync_every) if sync_every else None
        ema_rate = [ema_rate] if isinstance(ema_rate, (int, float)) else list(ema_rate)
        self.config, self.command, self.show_progress = config, command, bool(show_progress)
        self.rank, self.world_size = dist.rank(), dist.world_size()
        self.device = torch.device(device) if device is not None else next(framework.backbone.parameters()).device
        self._check_args(fp16_mode)
        self.batch_size_per_gpu = self._per_gpu_batch(batch_size, batch_size_per_gpu)
        self.num_workers = self._default_workers() if num_workers is None else int(num_workers)
        self._build_model(fp16_mode, fp16_scale_growth, ema_rate)
        self.training_state = TrainingState(
            os.path.join(self.output_dir, "ckpts"), self.backbone, self.mp, self.optimizer, self.ema,
            RunSettings(self.seed, self.rank, self.world_size, self.batch_size_per_gpu, self.learning_rate,
                        self.weight_decay, self.device, self.config))
        self.step, self.skipped_total, self._last_saved = 0, 0, -1
        data_position = (0, 0)
        self.loaded_files: Tuple[str, ...] = ()
        self.config_changes: Dict[str, Any] = {}  # resumed with other settings: {dotted key: [old, new]}
        self._resumed = bool(load_dir)
        if load_dir:
            resumed = self.training_state.load(load_dir, ckpt)
            self.step, self.skipped_total, data_position = resumed.step, resumed.skipped_total, resumed.data_position
            self.loaded_files, self.config_changes = resumed.files, resumed.config_changes
        else:
            self.init_weights()
        self._sync_across_ranks(fresh=not self._resumed)
        self._wrap_for_training()
        self.sample_batch = self._make_sample_batch()
        self.grids = None if self.sample_batch is None else GridSampler(
            self.framework, unwrap(self.backbone), self.sample_batch, self.sample_kwargs(self.sample_batch),
            self.SAMPLE_KIND, self.sample_steps, self.seed, self.device)
        self.stream = BatchStream(dataset, self.batch_size_per_gpu, self.rank, self.world_size, self.seed,
                                  self.num_workers, *data_position, pin_memory=self.device.type == "cuda")

    # -- construction helpers --------------------------------------------------------------
    def _check_args(self, fp16_mode: Optional[str]) -> None:
        from ivid.config import ConfigError

        try:
            normalize_fp16_mode(fp16_mode)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        for name in ("max_steps", "batch_split", "i_print", "i_log", "i_sample", "i_save"):
            if getattr(self, name) < 1:
                raise ConfigError(f"trainer.args.{name}: must be >= 1, got {getattr(self, name)}")
        if self.sample_with not in ("ema", "model"):
            raise ConfigError(f"trainer.args.sample_with: 'ema' or 'model', got {self.sample_with!r}")
        if not (math.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise ConfigError(f"trainer.args.learning_rate: must be a finite number > 0, got {self.learning_rate}")
        if self.sample_steps < 1:
            raise ConfigError(f"trainer.args.sample_steps: must be >= 1, got {self.sample_steps}")

    def _per_gpu_batch(self, batch_size: Optional[int], batch_size_per_gpu: Optional[int]) -> int:
        from ivid.config import ConfigError

        if (batch_size is None) == (batch_size_per_gpu is None):
            raise ConfigError("trainer.args: give exactly one of batch_size (global) and batch_size_per_gpu")
        if batch_size is not None:
            if batch_size % self.world_size:
                raise ConfigError(f"trainer.args.batch_size: {batch_size} is not divisible by the world size "
                                  f"{self.world_size}")
            batch_size_per_gpu = batch_size // self.world_size
        if batch_size_per_gpu < 1 or batch_size_per_gpu % self.batch_split:
            raise ConfigError(f"trainer.args.batch_split: {self.batch_split} must divide the per-GPU batch "
                              f"{batch_size_per_gpu}")
        return int(batch_size_per_gpu)

    def _default_workers(self) -> int:
        cpus = os.cpu_count() or 1
        return max(0, min(8, cpus // max(1, torch.cuda.device_count() if self.device.type == "cuda" else 1) - 1))

    def _build_model(self, fp16_mode: Optional[str], scale_growth: float, ema_rate: Sequence[float]) -> None:
        if hasattr(self.framework, "to"):
            self.framework.to(self.device)
        self.backbone: nn.Module = self.framework.backbone.to(self.device).train()
        self.mp = MixedPrecision(self.backbone, fp16_mode, scale_growth)
        fused = self.device.type == "cuda"
        self.optimizer = torch.optim.AdamW(self.mp.master_params, lr=self.learning_rate,
                                           weight_decay=self.weight_decay, fused=fused or None)
        self.ema = EmaSet(self.mp.master_params, ema_rate)

    def init_weights(self) -> None:
        """Initial weights of a fresh run (the constructor's; variants load ``finetune_ckpt``)."""

    def _sync_across_ranks(self, fresh: bool) -> None:
        """Give every rank rank 0's weights; check they agree."""
        buffers = [b for b in self.backbone.buffers()]
        dist.broadcast_tensors(self.mp.master_params + buffers)
        self.mp.copy_master_to_model()
        if fresh:
            self.ema.reset(self.mp.master_params)
        dist.check_params_in_sync(self.mp.master_params, "parameters at start")

    def _wrap_for_training(self) -> None:
        # a class-conditional backbone trained on unlabelled data never uses label_emb
        unused = (getattr(self.backbone, "num_classes", None) is not None
                  and getattr(self.dataset, "num_classes", 0) is None)
        self.ddp = dist.wrap_ddp(self.backbone, self.device, unused) if self.world_size > 1 else None
        self.train_framework = copy.copy(self.framework)
        self.train_framework.backbone = self.ddp if self.ddp is not None else self.backbone

    def _make_sample_batch(self) -> Optional[Dict[str, Any]]:
        """A fixed batch of dataset samples (epoch-0 augmentation) that conditions the sample grids."""
        n = min(self.num_sample_images, len(self.dataset))
        if n <= 0 or not dist.is_main():
            return None
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(0)
        order = epoch_permutation(len(self.dataset), self.seed, 0)[:n].tolist()
        batch = torch.utils.data.default_collate([self.dataset[i] for i in order])
        return self.prepare_batch(batch, record_failures=False)

    # -- batches ---------------------------------------------------------------------------
    def prepare_batch(self, batch: Dict[str, Any], record_failures: bool = True) -> Dict[str, Any]:
        """Move a collated batch to the device, collect load-failure reports, and complete it there when
        the dataset leaves that to the device (:class:`ivid.data.DeviceBatchDataset`, e.g. warp pairs)."""
        from ivid.data import builds_batch_on_device, pop_failures

        failures = pop_failures(batch)
        if record_failures:
            self.failures.add(failures)
        batch = {k: v.to(self.device, non_blocking=True) if isinstance(v, torch.Tensor) else v
                 for k, v in batch.items()}
        if builds_batch_on_device(self.dataset):
            batch = self.dataset.build_device_batch(batch, self.device)
        return batch

    def loss_inputs(self, batch: Dict[str, Any]) -> Dict[str, Any]:
        """Keyword arguments of ``training_losses`` for a (micro-)batch."""
        inputs = {"x_0": batch["x_0"]}
        if getattr(unwrap(self.backbone), "num_classes", None) is not None and "classes" in batch:
            inputs["classes"] = batch["classes"]
        return inputs

    def sample_cond(self, batch: Dict[str, Any]) -> Dict[str, Any]:
        """Keyword arguments of ``sampler.sample`` besides ``classes`` (conditions of the variants)."""
        return {}

    def sample_kwargs(self, batch: Dict[str, Any]) -> Dict[str, Any]:
        """Arguments of ``DdimSampler.sample`` for the grid (classes, guidance, conditions)."""
        kwargs = dict(self.sample_cond(batch))
        if getattr(unwrap(self.backbone), "num_classes", None) is not None and "classes" in batch:
            kwargs["classes"] = batch["classes"]
            if hasattr(self.framework, "p_uncond"):
                kwargs["strength"] = self.sample_guidance
        return kwargs

    # -- checkpoints and sample grids --------------------------------------------------------
    def save(self) -> List[str]:
        """Write the checkpoint of the current step (rank 0 writes; every rank must call)."""
        paths = self.training_state.save(self.step, self.skipped_total, self.stream.state_dict())
        self._last_saved = self.step
        return paths

    def maybe_sample(self, at_start: bool = False) -> Optional[str]:
        """Write ``samples/step%07d.png`` on rank 0 (skipped at start when that file exists)."""
        from ivid.utils.images import save_png

        if not dist.is_main() or self.grids is None:
            return None
        path = os.path.join(self.output_dir, "samples", f"step{self.step:07d}.png")
        if at_start and os.path.exists(path):
            return None
        params = self.ema.params[self.ema.rates[0]] if (self.sample_with == "ema" and self.ema.rates) \
            else self.mp.master_params
        save_png(path, self.grids.grid(params_to_state_dict(self.backbone, params)))
        return path

    # -- one step --------------------------------------------------------------------------
    def run_step(self, batch: Dict[str, Any]) -> Dict[str, Any]:
        """One optimizer step on a per-rank batch (already on the device).

        Returns:
            ``{"loss": scalar tensor (mean over micro-batches, this rank), "stepped": 1.0/0.0,
            "grad_norm": float}``.
        """
        micro_batches = _split_batch(batch, self.batch_split)
        losses = []
        for i, micro in enumerate(micro_batches):
            last = i == len(micro_batches) - 1
            sync = contextlib.nullcontext() if (self.ddp is None or last) else self.ddp.no_sync()
            with sync:
                generator = torch.Generator(device=self.device).manual_seed(
                    _step_seed(self.seed, self.rank, self.step, i))
                with self.mp.autocast():
                    loss = self.train_framework.training_losses(**self.loss_inputs(micro), generator=generator)["loss"]
                self.mp.backward(loss.float() / len(micro_batches))
                losses.append(loss.detach().float())
        info = self.mp.step(self.optimizer)
        if info["stepped"]:
            self.ema.update(self.mp.master_params)
        else:
            self.skipped_total += 1
        return {"loss": torch.stack(losses).mean(), **info}

    # -- the loop --------------------------------------------------------------------------
    def run(self) -> Dict[str, Any]:
        """Train until ``max_steps`` (or a stop signal); return a short summary.

        The data loader's worker processes are stopped on every way out, errors included.
        """
        try:
            return self._train()
        finally:
            self.stream.close()

    def _train(self) -> Dict[str, Any]:
        from tqdm.auto import tqdm

        self.write_run_files()
        self.log = JsonlLog(os.path.join(self.output_dir, "log.jsonl"))
        if self._resumed and dist.is_main():
            event = {"event": "resume", "step": self.step, "files": list(self.loaded_files)}
            if self.config_changes:
                event["config_changes"] = self.config_changes
            self.log.write(event)
        window, stopped = _StatsWindow(), False
        bar = tqdm(total=self.max_steps, initial=self.step, disable=not (dist.is_main() and self.show_progress),
                   desc="train", dynamic_ncols=True)
        with GracefulStop() as stop:
            self.maybe_sample(at_start=True)
            while self.step < self.max_steps and not stopped:
                t0 = time.perf_counter()
                batch = self.prepare_batch(self.stream.next())
                t1 = time.perf_counter()
                info = self.run_step(batch)
                self.step += 1
                window.add(info, time.perf_counter() - t0, t1 - t0)
                if self.step % self.i_print == 0 or self.step == self.max_steps:
                    bar.update(self.step - bar.n)
                stopped = self._stop_requested(stop.requested)
                self._periodic(window, bar, sample=not stopped)
        bar.update(self.step - bar.n)
        bar.close()
        if self._last_saved != self.step:
            self.save()
        if stopped and dist.is_main():
            self.log.write({"event": "stopped", "step": self.step, "signal": stop.requested})
        self.stream.close()
        dist.print0(f"{'stopped' if stopped else 'finished'} at step {self.step}; checkpoints in "
                    f"{os.path.join(self.output_dir, 'ckpts')}")
        return {"step": self.step, "stopped": stopped, "skipped_steps": self.skipped_total}

    def _periodic(self, window: _StatsWindow, bar: Any, sample: bool = True) -> None:
        if self.step % self.i_log == 0:
            record = self.log_record(window)
            bar.set_postfix(loss=f"{record['loss']:.4f}", scale=f"{record['log2_loss_scale']:.2f}")
            window.reset()
        if self.check_sync_every and self.step % self.check_sync_every == 0 and self.step % self.i_log != 0:
            dist.check_params_in_sync(self.mp.master_params, f"parameters at step {self.step}")
        if sample and self.step % self.i_sample == 0:
            self.maybe_sample()
        if self.step % self.i_save == 0:
            self.save()

    def _stop_requested(self, requested: Optional[int]) -> bool:
        """True on every rank once any rank got SIGTERM/SIGINT (one tiny all-reduce per step)."""
        if self.world_size == 1:
            return requested is not None
        flag = torch.tensor([1.0 if requested is not None else 0.0], device=self.device)
        return bool(dist.all_reduce_max(flag).item() > 0)

    def log_record(self, window: _StatsWindow) -> Dict[str, Any]:
        """Build, all-reduce and (rank 0) write the log line for the window that just ended."""
        steps = max(window.steps, 1)
        loss = dist.all_reduce_mean(torch.as_tensor(window.loss_sum, device=self.device, dtype=torch.float32))
        step_time = window.step_time / steps
        record = {
            "step": self.step, "epoch": self.stream.epoch + self.stream.batch_in_epoch / self.stream.batches_per_epoch,
            "loss": float(loss) / steps,
            "grad_norm": window.grad_norm_sum / max(window.grad_norm_n, 1),
            "step_time": step_time, "data_time": window.data_time / steps,
            "samples_per_s": self.batch_size_per_gpu * self.world_size / max(step_time, 1e-12),
            "lr": self.optimizer.param_groups[0]["lr"],
            "log2_loss_scale": self.mp.log2_scale, "loss_scale": 2.0 ** self.mp.log2_scale,
            "skipped_steps": window.skipped, "skipped_steps_total": self.skipped_total,
            "data_failures": {"count": self.failures.count, "total": self.failures.total,
                              "paths": self.failures.by_path()},
            "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "param_checksums": dist.check_params_in_sync(self.mp.master_params, f"parameters at step {self.step}"),
        }
        if dist.is_main():
            record.update(self.extra_log_fields())
            self.log.write(record)
            if self.failures.count:
                dist.print0(self.failures.summary())
        self.failures.reset()
        return record

    def extra_log_fields(self) -> Dict[str, Any]:
        """More fields of rank 0's log line (variants add diagnostics; none here)."""
        return {}

    # -- run directory -----------------------------------------------------------------------
    def write_run_files(self) -> None:
        """config.json, command.txt, env.txt, params.txt (rank 0)."""
        if not dist.is_main():
            return
        os.makedirs(os.path.join(self.output_dir, "ckpts"), exist_ok=True)
        os.makedirs(os.path.join(self.output_dir, "samples"), exist_ok=True)
        record = run_record(self.config or {}, self.command, self.device, self.world_size)
        write_run_folder(self.output_dir, record, "config.json" if self.config is not None else None)
        summary = parameter_summary(self.backbone)
        with atomic_write(os.path.join(self.output_dir, "params.txt"), "w") as f:
            f.write(summary)
            f.write(f"trainer: {type(self).__name__}, batch {self.batch_size_per_gpu} per rank x "
                    f"{self.world_size} ranks, split {self.batch_split}, fp16_mode {self._fp16_text()}, "
                    f"ema {self.ema.rates}\n")

    def _fp16_text(self) -> str:
        if self.mp.mode == self.mp.requested_mode:
            return self.mp.mode
        return f"{self.mp.mode} ({self.mp.requested_mode} asked for, but the backbone has no float16 parameter)"
