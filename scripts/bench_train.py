"""Benchmark training: optimizer steps/s per config, precision mode and device; warp pairs/s.

Random initial weights, toy data (generated once into ``--work_dir`` unless
``--data_dir`` is given; images are resized to each config's size). Measured:

- ``train``: ``BasicTrainer.run_step`` on a batch already on the device
  (``steps/s`` = pure compute), and the full loop with data loading
  (``steps/s (data)``: DataLoader with ``--num_workers`` workers + transfer).
  Precision modes: ``fp32`` (fp16_mode null, use_fp16 false), ``inflat_all``
  (use_fp16 true + float32 masters + loss scale, as the released configs) and
  ``bf16`` (autocast, use_fp16 false).
- ``warp``: condition pairs/s of the ``*Warp`` datasets built in DataLoader
  workers (CPU renderer, per sample) vs batched on the training device
  (``build_device_batch``, one renderer call per batch; excludes image loading).

Configs: ``tiny`` (32x32 test config, 0.2M params), ``small`` (single-category 128,
105M), ``large`` (ImageNet 128, 421M). Example::

    python scripts/bench_train.py                                   # tiny on CPU (+ CUDA when present)
    python scripts/bench_train.py --configs tiny,small,large --devices cuda --batch_size 8

Prints a table and writes JSON (``--output``, default bench_results/bench_train.json).
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import ivid.threads  # noqa: F401 - first: OpenMP's CPU-thread defaults, read when torch loads
import torch

from ivid.cli import add_debug_option, run_cli
from ivid.config import build, load_config
from ivid.utils.device import resolve_device
from ivid.utils.run_record import write_json

CONFIGS = {"tiny": "configs/tiny_uncond.json", "small": "configs/rgbd_singlecategory_adm_128_small.json",
           "large": "configs/rgbd_imagenet_adm_128_large_cfg.json"}
MODES = {"fp32": (None, False), "inflat_all": ("inflat_all", True), "bf16": ("bf16", False)}
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--configs", default="tiny", help=f"comma list of {', '.join(CONFIGS)} or JSON paths")
    p.add_argument("--devices", default=None, help="comma list; default: cpu, plus cuda when present")
    p.add_argument("--modes", default=None,
                   help="comma list of fp32, inflat_all, bf16 (default: fp32 on CPU, all on CUDA)")
    p.add_argument("--batch_size", type=int, default=8, help="per-GPU batch of the timed steps")
    p.add_argument("--steps", type=int, default=10, help="timed steps (after --warmup)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--num_workers", type=int, default=None, help="DataLoader workers (default: CPU count - 1)")
    p.add_argument("--warp_image_size", type=int, default=64)
    p.add_argument("--warp_batches", type=int, default=4, help="batches timed per warp measurement")
    p.add_argument("--data_dir", default=None, help="RGBD data folder (default: a toy set in --work_dir)")
    p.add_argument("--work_dir", default="bench_results/bench_train_work", help="toy data and scratch run folders")
    p.add_argument("--num_threads", type=int, default=None, help="torch CPU threads of this process")
    p.add_argument("--skip_warp", action="store_true")
    p.add_argument("--output", default="bench_results/bench_train.json")
    add_debug_option(p)
    return p.parse_args(argv)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _config(name: str, mode: str, batch_size: int, num_workers: int) -> dict:
    cfg = load_config(os.path.join(REPO, CONFIGS.get(name, name)))
    fp16_mode, use_fp16 = MODES[mode]
    cfg["backbone"]["args"]["use_fp16"] = use_fp16
    cfg["trainer"] = {"name": "BasicTrainer", "args": {
        **{k: v for k, v in cfg["trainer"]["args"].items() if k not in ("finetune_ckpt", "batch_size")},
        "batch_size_per_gpu": batch_size, "batch_split": 1, "fp16_mode": fp16_mode, "num_workers": num_workers,
        "num_sample_images": 0, "max_steps": 10 ** 9, "i_log": 10 ** 9, "i_save": 10 ** 9, "i_sample": 10 ** 9}}
    cfg["dataset"]["name"] = "ImageNet" if cfg["dataset"]["name"].startswith("ImageNet") else "SingleCategory"
    cfg["dataset"]["args"] = {k: v for k, v in cfg["dataset"]["args"].items() if k not in ("augments", "image_size_lr")}
    return cfg


def bench_train(name: str, mode: str, device: torch.device, args: argparse.Namespace, data_dir: str) -> dict:
    """Steps/s of one (config, precision mode, device)."""
    cfg = _config(name, mode, args.batch_size, args.num_workers)
    torch.manual_seed(0)
    backbone = build("backbone", cfg)
    framework = build("framework", cfg, backbone)
    dataset = build("dataset", cfg, data_dir)
    trainer = build("trainer", cfg, framework, dataset, output_dir=os.path.join(args.work_dir, "run"),
                    device=device, config=cfg, show_progress=False)
    batch = trainer.prepare_batch(trainer.stream.next())
    for _ in range(args.warmup):
        trainer.run_step(batch)
    _sync(device)
    start = time.perf_counter()
    for _ in range(args.steps):
        trainer.run_step(batch)
    _sync(device)
    compute = args.steps / (time.perf_counter() - start)
    start = time.perf_counter()
    for _ in range(args.steps):
        trainer.run_step(trainer.prepare_batch(trainer.stream.next()))
    _sync(device)
    with_data = args.steps / (time.perf_counter() - start)
    trainer.stream.close()
    params = sum(p.numel() for p in backbone.parameters())
    return {"config": name, "mode": mode, "device": str(device), "batch_size": args.batch_size, "params": params,
            "image_size": cfg["backbone"]["args"]["image_size"], "steps_per_s": compute,
            "samples_per_s": compute * args.batch_size, "steps_per_s_with_data": with_data,
            "skipped_steps": trainer.skipped_total}


def _warp_dataset(data_dir: str, size: int, on_device: bool):
    from ivid.data import DATASETS

    return DATASETS["ImageNetWarp"](data_dir, image_size=size, augments=["prewarp_noise", "blur", "erode_rgb"],
                                    warp_on_device=on_device)


def bench_warp_workers(args: argparse.Namespace, data_dir: str, workers: int) -> dict:
    """Pairs/s of the worker path (image loading + per-sample CPU warp), ``workers`` processes."""
    loader = torch.utils.data.DataLoader(_warp_dataset(data_dir, args.warp_image_size, False),
                                         batch_size=args.batch_size, num_workers=workers, shuffle=False)
    it = iter(loader)
    next(it)
    start, n = time.perf_counter(), 0
    for _ in range(args.warp_batches):
        n += len(next(it)["x_0"])
    return {"path": f"workers({workers})", "device": "cpu", "image_size": args.warp_image_size,
            "pairs_per_s": n / (time.perf_counter() - start)}


def bench_warp_device(args: argparse.Namespace, data_dir: str, device: torch.device, batch: int) -> dict:
    """Pairs/s of ``build_device_batch`` on ``device`` (batched renderer; images already loaded)."""
    dataset = _warp_dataset(data_dir, args.warp_image_size, True)
    samples = torch.utils.data.default_collate([dataset[i % len(dataset)] for i in range(batch)])
    samples.pop("failures", None)
    samples = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in samples.items()}
    dataset.build_device_batch(samples, device)
    _sync(device)
    start = time.perf_counter()
    for _ in range(args.warp_batches):
        dataset.build_device_batch(samples, device)
    _sync(device)
    return {"path": f"device(batch {batch})", "device": str(device), "image_size": args.warp_image_size,
            "pairs_per_s": batch * args.warp_batches / (time.perf_counter() - start)}


def ensure_data(args: argparse.Namespace) -> str:
    if args.data_dir:
        return args.data_dir
    from ivid.toy import generate_dataset

    path = os.path.join(args.work_dir, "toy64")
    if not os.path.isfile(os.path.join(path, "toy_info.json")):
        generate_dataset(path, num_images=64, image_size=64, layout="imagenet", num_classes=10,
                         num_workers=os.cpu_count() or 1)
    return path


def print_table(results: dict) -> None:
    print(f"\n{'config':<14}{'mode':<12}{'device':<8}{'batch':>6}{'steps/s':>10}{'samples/s':>11}{'steps/s(data)':>15}")
    for r in results["train"]:
        name = os.path.splitext(os.path.basename(r["config"]))[0][:13]
        print(f"{name:<14}{r['mode']:<12}{r['device']:<8}{r['batch_size']:>6}{r['steps_per_s']:>10.2f}"
              f"{r['samples_per_s']:>11.1f}{r['steps_per_s_with_data']:>15.2f}")
    if results["warp"]:
        print(f"\n{'warp path':<20}{'device':<8}{'size':>6}{'pairs/s':>10}")
        for r in results["warp"]:
            print(f"{r['path']:<20}{r['device']:<8}{r['image_size']:>6}{r['pairs_per_s']:>10.1f}")


def main(args: argparse.Namespace) -> dict:
    devices = [resolve_device(d) for d in (args.devices.split(",") if args.devices else
                                           ["cpu"] + (["cuda"] if torch.cuda.is_available() else []))]
    args.num_workers = max(0, (os.cpu_count() or 1) - 1) if args.num_workers is None else args.num_workers
    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    data_dir = ensure_data(args)
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else None
    results = {"env": {"torch": torch.__version__, "cuda": torch.version.cuda, "python": platform.python_version(),
                       "cpus": os.cpu_count(), "threads": torch.get_num_threads(), "gpu": gpu},
               "train": [], "warp": []}
    for device in devices:
        modes = args.modes.split(",") if args.modes else (list(MODES) if device.type == "cuda" else ["fp32"])
        for name in args.configs.split(","):
            for mode in modes:
                results["train"].append(bench_train(name, mode, device, args, data_dir))
                print(results["train"][-1], flush=True)
    if not args.skip_warp:
        for workers in sorted({0, args.num_workers}):
            results["warp"].append(bench_warp_workers(args, data_dir, workers))
        for device in devices:
            for batch in sorted({args.batch_size, 4 * args.batch_size}):
                results["warp"].append(bench_warp_device(args, data_dir, device, batch))
    print_table(results)
    write_json(args.output, results)
    print(f"\nwrote {args.output}")
    return results


if __name__ == "__main__":
    run_cli(main, parse_args)
