"""MiDaS v3.1 dpt_beit_large_512 depth for a training folder: D/images/... -> D/depths/....npz.

    python scripts/predict_depth.py --data_dir data/imagenet [--ckpt ckpts/dpt_beit_large_512.pt]
        [--batch_size 4] [--num_workers 2] [--device cuda] [--precision fp16] [--overwrite] [--preview]

Each image ``images/<rel>.<ext>`` gets ``depths/<rel>.npz`` with ``arr_0`` = relative
inverse depth at the image size, float16 (the layout train.py reads, docs/design.md#training-data).
Resumable: existing outputs are skipped unless --overwrite. A missing --ckpt named
dpt_beit_large_512.pt is downloaded from the MiDaS v3.1 release. See
docs/data_preparation.md.
"""

from __future__ import annotations

import argparse
import os
import sys

import ivid.threads  # noqa: F401 - first: OpenMP's CPU-thread defaults, read when torch loads
from ivid.cli import add_debug_option, run_cli
from ivid.depth import DEFAULT_CKPT, MidasDepth, ensure_midas_checkpoint
from ivid.depth.folder import FolderSummary, plan_folder, predict_folder
from ivid.utils import resolve_device
from ivid.utils.io import remove_orphan_temps


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", required=True,
                        help="dataset folder holding images/ (depths/ is written next to it)")
    parser.add_argument("--ckpt", default=DEFAULT_CKPT,
                        help=f"official MiDaS weights (default {DEFAULT_CKPT}; downloaded when missing)")
    parser.add_argument("--batch_size", type=int, default=4, help="images per forward (grouped by input size)")
    parser.add_argument("--num_workers", type=int, default=2, help="DataLoader workers decoding images")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: cuda if available)")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "bf16"],
                        help="fp32 (reference), or fp16/bf16 autocast on CUDA (faster, ~1e-3 relative)")
    parser.add_argument("--overwrite", action="store_true", help="recompute depths that already exist")
    parser.add_argument("--preview", action="store_true", help="also write colourised depths/<name>.png")
    parser.add_argument("--random_weights", action="store_true", help=argparse.SUPPRESS)  # speed checks only
    add_debug_option(parser)
    return parser.parse_args(argv)


def load_model(args: argparse.Namespace, device) -> MidasDepth:
    if args.random_weights:
        print("WARNING: --random_weights: the outputs are NOT depth (speed check only)", file=sys.stderr)
        return MidasDepth.random(device=device)
    return MidasDepth.from_checkpoint(ensure_midas_checkpoint(args.ckpt), device=device)


def main(args: argparse.Namespace, model: MidasDepth = None):
    """Run the folder; ``model`` (any ``MidasDepth``, e.g. random weights in tests) skips loading."""
    remove_orphan_temps(os.path.join(args.data_dir, "depths"), recursive=True)  # of a killed earlier run
    plan = plan_folder(args.data_dir, overwrite=args.overwrite)
    print(f"{len(plan.todo) + len(plan.skipped)} images under {args.data_dir}/images, "
          f"{len(plan.skipped)} already have depths")
    if plan.todo:
        device = resolve_device(args.device)
        model = load_model(args, device) if model is None else model.to(device).eval()
        summary = predict_folder(model, plan, batch_size=args.batch_size, num_workers=args.num_workers,
                                 precision=args.precision, preview=args.preview)
    else:
        summary = FolderSummary(skipped=len(plan.skipped))
    print(summary.describe())
    for rel, error in summary.failed:
        print(f"  failed: images/{rel}: {error}")
    return summary


if __name__ == "__main__":
    run_cli(main, parse_args)
