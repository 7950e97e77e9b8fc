"""Fingerprint what users get from the CLIs and the training data path, to check a refactor is bit-identical.

Runs small but complete cases on the CPU -- the demo models sampling a 3x9 and a random viewset, the
free-view renderer on those scenes (swing and random videos' frames, PLY export), and a batch of training
warp pairs from a generated toy dataset -- and writes one SHA-256 per output array or file to a JSON
file. Run it before and after a change and compare:

    python scripts/fingerprint_outputs.py --output before.json
    ...change...
    python scripts/fingerprint_outputs.py --output after.json --compare before.json

Arrays are hashed by content (dtype, shape, bytes), so files whose containers carry timestamps still
compare; run records (args.json, logs) are not hashed. Videos are compared by their decoded frames.
CPU results depend on the thread count, so both runs must use the same OMP_NUM_THREADS (default 2):
it is stored in the JSON, and a comparison across thread counts is refused.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from typing import Dict

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import ivid.threads  # noqa: F401,E402 - first: OpenMP's CPU-thread defaults, read when torch loads
from ivid.cli import add_debug_option, run_cli  # noqa: E402
from ivid.errors import OptionError  # noqa: E402


#: the JSON entry holding the run's OMP_NUM_THREADS (not an output)
THREADS_KEY = "meta:omp_num_threads"


def _digest(array: np.ndarray) -> str:
    array = np.ascontiguousarray(array)
    h = hashlib.sha256(f"{array.dtype.str}{array.shape}".encode())
    h.update(array.tobytes())
    return h.hexdigest()


def _hash_folder(folder: str, prefix: str, out: Dict[str, str]) -> None:
    """Hash every output file under ``folder`` (PNG/JPG pixels, NPZ arrays, MP4 frames, PLY bytes)."""
    import imageio.v3 as iio

    for root, _, files in os.walk(folder):
        for name in sorted(files):
            path = os.path.join(root, name)
            key = prefix + os.path.relpath(path, folder)
            ext = os.path.splitext(name)[1].lower()
            if ext in (".png", ".jpg", ".jpeg"):
                out[key] = _digest(iio.imread(path))
            elif ext == ".npz":
                with np.load(path, allow_pickle=False) as data:
                    for k in sorted(data.files):
                        out[f"{key}:{k}"] = _digest(data[k])
            elif ext == ".mp4":
                out[key] = _digest(np.stack(list(iio.imiter(path, plugin="pyav"))) if _has_pyav() else
                                   np.stack(list(iio.imiter(path))))
            elif ext in (".ply", ".glb"):
                with open(path, "rb") as f:
                    out[key] = hashlib.sha256(f.read()).hexdigest()


def _has_pyav() -> bool:
    try:
        import av  # noqa: F401
    except ImportError:
        return False
    return True


def _run(args, env=None) -> None:
    result = subprocess.run([sys.executable] + args, cwd=REPO, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:2])} failed:\n{result.stderr[-2000:]}")


def _warp_pairs(work: str, out: Dict[str, str]) -> None:
    import torch

    from ivid.data.datasets import ImageNetWarp

    data = os.path.join(work, "toy")
    _run(["scripts/make_toy_dataset.py", "--output_dir", data, "--num_images", "8", "--image_size", "32",
          "--layout", "imagenet", "--num_classes", "2", "--seed", "0"])
    for on_device in (False, True):
        ds = ImageNetWarp(data, 32, preprocess_depth="z_buffer", normalize=True, normalize_depth=True,
                          augments=["prewarp_noise", "blur", "erode_rgb"], warp_on_device=on_device,
                          warp_atol=0.1, warp_rtol=0.1, erode_rgb_max=3)
        batch = torch.utils.data.default_collate([ds[i] for i in range(8)])
        batch.pop("failures", None)
        if on_device:
            batch = ds.build_device_batch(batch)
        for k, v in sorted(batch.items()):
            if isinstance(v, torch.Tensor):
                out[f"warp_pairs[on_device={on_device}]:{k}"] = _digest(v.numpy())


def fingerprint(work: str) -> Dict[str, str]:
    threads = os.environ.get("OMP_NUM_THREADS", "2")
    env = dict(os.environ, OMP_NUM_THREADS=threads)
    out: Dict[str, str] = {THREADS_KEY: threads}
    samples = os.path.join(work, "samples")
    for viewset in ("3x9", "random"):
        folder = os.path.join(samples, viewset)
        _run(["inference/sample.py", "--preset", "demo", "--viewset", viewset, "--seeds", "0-1",
              "--steps_uncond", "20", "--steps_cond", "4", "--output_dir", folder, "--device", "cpu",
              "--no_progress"], env)
        scene_dirs = [os.path.join(r, d) for r, ds, _ in os.walk(folder) for d in ds if d == "scenes"]
        for traj in ("swing", "random"):
            for scene_dir in scene_dirs:
                _run(["inference/render.py", "--preset", "demo", "--scene_dir", scene_dir, "--traj", traj,
                      "--frames", "6", "--video_size", "64", "--device", "cpu", "--no_progress",
                      "--output_dir", os.path.join(work, "render", viewset, traj), "--export", "ply"], env)
        _hash_folder(folder, f"sample/{viewset}/", out)
    _hash_folder(os.path.join(work, "render"), "render/", out)
    _warp_pairs(work, out)
    return out


def compare(now: Dict[str, str], before: Dict[str, str]) -> int:
    keys = sorted((set(now) | set(before)) - {THREADS_KEY})
    differ = [k for k in keys if now.get(k) != before.get(k)]
    for k in differ:
        state = "missing now" if k not in now else "new" if k not in before else "differs"
        print(f"{state}: {k}")
    print(f"{len(keys) - len(differ)} of {len(keys)} outputs identical")
    return 1 if differ else 0


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--output", required=True, help="JSON file of output name -> SHA-256")
    parser.add_argument("--compare", default=None, help="an earlier --output to compare with (exit 1 if any differs)")
    add_debug_option(parser)
    return parser.parse_args(argv)


def main(args) -> int:
    before = None
    if args.compare is not None:
        if not os.path.isfile(args.compare):
            raise OptionError(f"--compare: no file {args.compare}")
        with open(args.compare) as f:
            before = json.load(f)
        threads = os.environ.get("OMP_NUM_THREADS", "2")
        if before.get(THREADS_KEY, threads) != threads:
            raise OptionError(f"--compare {args.compare}: made with OMP_NUM_THREADS={before[THREADS_KEY]}, this run "
                              f"uses {threads}; CPU outputs differ between thread counts: use the same")
    with tempfile.TemporaryDirectory(prefix="ivid_fingerprint_") as work:
        now = fingerprint(work)
    with open(args.output, "w") as f:
        json.dump(now, f, indent=1, sort_keys=True)
    print(f"{len(now)} outputs fingerprinted -> {args.output}")
    return compare(now, before) if before is not None else 0


if __name__ == "__main__":
    run_cli(main, parse_args)
