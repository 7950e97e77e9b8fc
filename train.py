"""Train an IVID model (G_u, G_c or the super-resolution model) from a JSON config.

Examples::

    python train.py --config configs/tiny_uncond.json --data_dir toy --output_dir runs/x
    python train.py --config C --data_dir D --output_dir runs/x --num_gpus 2 --device cpu   # 2 gloo processes
    torchrun --nproc_per_node 8 train.py --config C --data_dir D --output_dir runs/x
    python train.py --load_dir runs/x --data_dir D --output_dir runs/x                      # resume (latest)

The config is validated before any process starts. A run folder that already
holds checkpoints is resumed from its latest one unless ``--load_dir`` says
otherwise. SIGTERM / Ctrl-C saves a checkpoint after the current step and exits 0.
One training at a time writes into a run folder (``<output_dir>/.lock``).
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import json
import os

import ivid.threads  # noqa: F401 - first: OpenMP's CPU-thread defaults, read when torch loads
import torch

from ivid.cli import add_debug_option, run_cli
from ivid.config import ConfigError, build, load_config, registry, resolve_num_classes
from ivid.data import probe_dataset
from ivid.training.checkpoint_files import find_latest_step
from ivid.training.distributed import read_launch_env
from ivid.training.launch import launch, parse_port, plan_layout
from ivid.training.run_dir import resolve_defaults
from ivid.training.state import resolve_ckpt_dir
from ivid.utils import resolve_device
from ivid.utils.io import remove_orphan_temps
from ivid.utils.lock import RunLock
from ivid.utils.run_record import command_line


def _port(text: str) -> str:
    """argparse type of --master_port: the reference's string form, checked to be a port number."""
    try:
        parse_port(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e).replace("--master_port ", "")) from None
    return text


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", type=str, default=None, help="JSON config (default: <load_dir>/config.json)")
    p.add_argument("--output_dir", type=str, required=True, help="run folder (config, log, ckpts/, samples/)")
    p.add_argument("--load_dir", type=str, default=None, help="run folder (or its ckpts/) to resume from")
    p.add_argument("--ckpt", type=str, default="latest",
                   help="step to resume from, 'latest', or 'none' (start fresh even if checkpoints exist)")
    p.add_argument("--data_dir", type=str, default="./data/", help="dataset folder (images/, depths/)")
    p.add_argument("--num_nodes", type=int, default=1)
    p.add_argument("--node_rank", type=int, default=0)
    p.add_argument("--num_gpus", type=int, default=None,
                   help="processes per node (default or -1: all GPUs; on CPU 1, or N gloo processes)")
    p.add_argument("--master_addr", type=str, default="127.0.0.1")
    p.add_argument("--master_port", type=_port, default="12345", help="rendezvous port, e.g. 12345")
    p.add_argument("--device", type=str, default=None, help="cpu, cuda, cuda:1, ... (default: auto)")
    p.add_argument("--seed", type=int, default=None, help="overrides trainer.args.seed and dataset.args.seed")
    p.add_argument("--max_steps", type=int, default=None, help="overrides trainer.args.max_steps")
    p.add_argument("--num_threads", type=int, default=None, help="torch CPU threads per process (default: torch's)")
    p.add_argument("--no_progress", action="store_true", help="no tqdm bar")
    p.add_argument("--dry_run", action="store_true", help="print the resolved config and exit")
    add_debug_option(p)
    return p.parse_args(argv)


def _accepts(section: str, cfg: dict, name: str) -> bool:
    cls = registry(section)[cfg[section]["name"]]
    return name in inspect.signature(cls.__init__).parameters


def resolve_run_config(args: argparse.Namespace) -> dict:
    """Validated config with the CLI's run-level overrides and all constructor defaults filled in."""
    config_path = args.config or (os.path.join(args.load_dir, "config.json") if args.load_dir else None)
    if config_path is None:
        raise ConfigError("--config: required unless --load_dir holds a config.json")
    cfg = load_config(config_path)
    for section in ("backbone", "framework", "dataset", "trainer"):
        if section not in cfg:
            raise ConfigError(f"{config_path}: {section}: missing section (training needs all four)")
    if args.seed is not None:
        cfg["trainer"]["args"]["seed"] = args.seed
        if _accepts("dataset", cfg, "seed"):
            cfg["dataset"]["args"]["seed"] = args.seed
    if args.max_steps is not None:
        cfg["trainer"]["args"]["max_steps"] = args.max_steps
    return resolve_defaults(cfg)


def train_worker(ctx, cfg: dict, args: argparse.Namespace, command: str) -> None:
    """Build backbone, framework, dataset and trainer in one process and train."""
    seed = int(cfg["trainer"]["args"].get("seed", 0))
    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    if ctx.device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    torch.manual_seed(seed)  # same initial weights on every rank (rank 0's are broadcast anyway)
    backbone = build("backbone", cfg)
    torch.manual_seed(seed * ctx.world_size + ctx.rank)  # per-rank global RNG (dropout)
    framework = build("framework", cfg, backbone)
    dataset = build("dataset", cfg, args.data_dir)
    trainer = build("trainer", cfg, framework, dataset, output_dir=args.output_dir, device=ctx.device, config=cfg,
                    load_dir=args.load_dir, ckpt=args.ckpt, command=command, show_progress=not args.no_progress)
    trainer.run()


def _starts_fresh(args: argparse.Namespace) -> bool:
    """``--ckpt none``: the reference's way to train from scratch even where checkpoints exist."""
    return str(args.ckpt).strip().lower() == "none"


def main(args: argparse.Namespace) -> None:
    if _starts_fresh(args):
        if args.config is None and args.load_dir is not None:
            args.config = os.path.join(args.load_dir, "config.json")
        args.load_dir = None
        if find_latest_step(resolve_ckpt_dir(args.output_dir)) is not None:
            print(f"--ckpt none: training from scratch; checkpoints of the same steps in {args.output_dir} "
                  "will be overwritten", flush=True)
    elif args.load_dir is None and find_latest_step(resolve_ckpt_dir(args.output_dir)) is not None:
        args.load_dir = args.output_dir
        print(f"{args.output_dir} holds checkpoints: resuming from it (--ckpt {args.ckpt})", flush=True)
    cfg = resolve_run_config(args)
    if args.dry_run:
        print(json.dumps(cfg, indent=2))
        return
    if not os.path.isdir(args.data_dir):
        raise FileNotFoundError(f"--data_dir {args.data_dir}: not a folder")
    layout = plan_layout(resolve_device(args.device), args.num_gpus, args.num_nodes, args.node_rank,
                         args.master_addr, args.master_port)
    dataset = build("dataset", cfg, args.data_dir)  # fails fast on a bad folder; writes dataset.json once
    print(f"{type(dataset).__name__}: {len(dataset)} samples in {args.data_dir}", flush=True)
    cfg = resolve_num_classes(cfg, getattr(dataset, "num_classes", None))  # "auto": the data's class count
    bad = probe_dataset(dataset)  # a folder of nothing but broken files fails here, in one line
    if bad:
        print(f"warning: {len(bad)} of the {type(dataset).__name__} samples probed could not be read (training "
              f"replaces them by others; first: {bad[0]})", flush=True)
    env = read_launch_env()  # under torchrun only global rank 0 writes, so only it takes the lock
    with RunLock(args.output_dir) if env is None or env.rank == 0 else contextlib.nullcontext():
        for folder in (args.output_dir, os.path.join(args.output_dir, "ckpts"),
                       os.path.join(args.output_dir, "samples"), args.data_dir):  # temporaries of a killed run
            remove_orphan_temps(folder)
        launch(train_worker, (cfg, args, command_line()), layout)


if __name__ == "__main__":
    run_cli(main, parse_args)
