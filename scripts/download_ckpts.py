"""Download the released IVID checkpoints from Hugging Face (repo JeffreyXiang/ivid).

Example:
    python scripts/download_ckpts.py                      # both files into ckpts/
    python scripts/download_ckpts.py --files imagenet128_cond.pt --ckpt_dir /data/ckpts
"""

from __future__ import annotations

import argparse
import os
import sys

import ivid.threads  # noqa: F401 - first: OpenMP's CPU-thread defaults, read when torch loads
from ivid.model_loading import RELEASED_CHECKPOINTS, CheckpointError, download_checkpoint, hub_reachable
from ivid.cli import add_debug_option, run_cli


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--files", nargs="+", default=list(RELEASED_CHECKPOINTS), choices=list(RELEASED_CHECKPOINTS),
                   help="which released files to fetch (default: all)")
    p.add_argument("--ckpt_dir", default="ckpts", help="folder to put them in")
    p.add_argument("--force", action="store_true", help="download even if the file already exists")
    add_debug_option(p)
    return p.parse_args(argv)


def main(args) -> int:
    failed = 0
    todo = []
    for name in args.files:
        target = os.path.join(args.ckpt_dir, name)
        if os.path.isfile(target) and not args.force:
            print(f"{target}: already present (use --force to download again)")
        else:
            todo.append(name)
    if todo:
        ok, why = hub_reachable()  # offline: one message at once, not one timeout per file
        if not ok:
            raise CheckpointError(f"cannot download {', '.join(os.path.join(args.ckpt_dir, n) for n in todo)}: "
                                  f"the Hugging Face Hub is unreachable ({why}); run this on a machine with "
                                  "network access and copy the files, or see ckpts/README.md for the direct links")
    for name in todo:
        target = os.path.join(args.ckpt_dir, name)
        try:
            print(f"{target}: downloading (config {RELEASED_CHECKPOINTS[name]})")
            download_checkpoint(name, args.ckpt_dir)
            print(f"{target}: done")
        except CheckpointError as e:
            print(f"error: {e}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    run_cli(main, parse_args)
