"""Write a procedural RGBD toy dataset (exact depth) in the training layout.

Example::

    python scripts/make_toy_dataset.py --output_dir data/toy64 --num_images 1000 \\
        --image_size 64 --layout imagenet --num_classes 10

Writes ``images/`` (PNG), ``depths/`` (``.npz`` with float16 ``arr_0`` = 6250 / depth,
the MiDaS storage format), ``dataset.json`` and ``toy_info.json``. See
``ivid/toy/generator.py`` for the scenes and the depth scaling.
"""

from __future__ import annotations

import argparse
import os
import time

import ivid.threads  # noqa: F401 - first: OpenMP's CPU-thread defaults, read when torch loads
from ivid.cli import add_debug_option, run_cli


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output_dir", required=True, help="folder to write (created if missing)")
    parser.add_argument("--num_images", type=int, required=True, help="number of images")
    parser.add_argument("--image_size", type=int, default=64, help="side of the square images (pixels)")
    parser.add_argument("--layout", choices=("imagenet", "single"), default="imagenet",
                        help="imagenet: images/<wnid>/<name>.png with classes; single: images/<name>.png")
    parser.add_argument("--num_classes", type=int, default=10, help="classes of the imagenet layout")
    parser.add_argument("--seed", type=int, default=0, help="base seed (image i depends on (seed, i) only)")
    parser.add_argument("--num_workers", type=int, default=os.cpu_count() or 1, help="worker processes")
    parser.add_argument("--ssaa", type=int, default=3, help="odd colour supersampling factor per pixel side")
    parser.add_argument("--device", default="cpu", help="accepted for CLI uniformity; generation runs on the CPU")
    add_debug_option(parser)
    return parser.parse_args(argv)


def main(args: argparse.Namespace) -> None:
    from ivid.toy import generate_dataset

    start = time.time()
    info = generate_dataset(args.output_dir, args.num_images, args.image_size, args.layout, args.num_classes,
                            args.seed, args.num_workers, args.ssaa)
    print(f"wrote {info['num_images']} {args.image_size}x{args.image_size} images ({args.layout} layout, "
          f"{len(info['classes']) or 1} classes) to {args.output_dir} in {time.time() - start:.1f} s")


if __name__ == "__main__":
    run_cli(main, parse_args)
