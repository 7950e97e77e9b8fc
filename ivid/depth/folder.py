"""Depth for a whole dataset folder: ``D/images/...`` -> ``D/depths/...npz`` (docs/design.md#training-data).

Layout: every ``.png/.jpg/.jpeg`` (also .webp/.bmp/.tif/.tiff; any case) under ``D/images/`` (ImageNet
``images/<wnid>/<name>.JPEG`` or flat ``images/<name>.<ext>``) gets
``D/depths/<same relative path, extension replaced by .npz>`` holding ``arr_0``:
the MiDaS prediction at the image size as float16 (saturated to +-65504).
``preview=True`` also writes ``<same>.png``: the min-max normalised disparity
colourised (near = warm). Existing outputs are skipped unless ``overwrite``.

Batching: images are decoded and transformed in DataLoader workers one by one;
the main process groups them by network-input size (MiDaS keeps the aspect
ratio, so sizes vary) and runs a batch as soon as ``batch_size`` images of one
size are waiting; leftovers are flushed when more than ``4 * batch_size`` wait
and at the end. Predictions are identical to batch size 1 up to float noise.
"""

from __future__ import annotations

import os
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Tuple

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from ivid.data.preprocess import to_8bit
from ivid.errors import OptionError
from ivid.utils.images import colorize_depth, save_png
from ivid.utils.io import atomic_save_npz

from .transforms import NET_SIZE, transform_image

# lower-case image extensions; the same set as the training index (ivid.data.index)
IMAGE_EXTENSIONS = (".jpeg", ".jpg", ".png", ".webp", ".bmp", ".tif", ".tiff")
FLOAT16_MAX = float(np.finfo(np.float16).max)


def list_images(images_dir: str) -> List[str]:
    """Sorted relative POSIX paths of the images under ``images_dir`` (recursive)."""
    found = []
    for root, dirs, files in os.walk(images_dir):
        dirs.sort()
        for name in sorted(files):
            if name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith("."):
                found.append(os.path.relpath(os.path.join(root, name), images_dir).replace(os.sep, "/"))
    return found


def depth_relpath(image_relpath: str) -> str:
    """``n01440764/x.JPEG`` -> ``n01440764/x.npz`` (relative to ``depths/``)."""
    return os.path.splitext(image_relpath)[0] + ".npz"


@dataclass
class FolderPlan:
    """What a run over ``data_dir`` has to do."""

    data_dir: str
    todo: List[str]        # image paths relative to images/
    skipped: List[str]     # outputs already present

    def image_path(self, rel: str) -> str:
        return os.path.join(self.data_dir, "images", rel)

    def depth_path(self, rel: str) -> str:
        return os.path.join(self.data_dir, "depths", depth_relpath(rel))


def plan_folder(data_dir: str, overwrite: bool = False) -> FolderPlan:
    """List images and split them into to-do / already done. Raises on a bad folder."""
    images_dir = os.path.join(data_dir, "images")
    if not os.path.isdir(images_dir):
        raise FileNotFoundError(f"--data_dir {data_dir}: no 'images/' folder in it (expected "
                                "images/<wnid>/<name>.JPEG or images/<name>.<png|jpg|jpeg>)")
    images = list_images(images_dir)
    if not images:
        raise FileNotFoundError(f"--data_dir {data_dir}: no images ({', '.join(IMAGE_EXTENSIONS)}) "
                                f"under {images_dir}")
    owners: Dict[str, str] = {}
    for rel in images:
        other = owners.setdefault(depth_relpath(rel), rel)
        if other != rel:
            raise OptionError(f"--data_dir {data_dir}: images/{other} and images/{rel} would both "
                             f"write depths/{depth_relpath(rel)}; rename one of them")
    plan = FolderPlan(data_dir, [], [])
    for rel in images:
        done = not overwrite and os.path.isfile(plan.depth_path(rel))
        (plan.skipped if done else plan.todo).append(rel)
    return plan


class _ImageInputs(Dataset):
    """Item ``i``: dict(rel, size (H, W), input 3 x h x w float32 or None, error str or None)."""

    def __init__(self, plan: FolderPlan, net_size: int):
        self.plan = plan
        self.net_size = net_size

    def __len__(self) -> int:
        return len(self.plan.todo)

    def __getitem__(self, i: int) -> dict:
        rel = self.plan.todo[i]
        try:
            with Image.open(self.plan.image_path(rel)) as im:
                image = np.asarray(to_8bit(im).convert("RGB"))  # 16-bit greys keep their levels
            return {"rel": rel, "size": image.shape[:2], "input": transform_image(image, self.net_size)[0],
                    "error": None}
        except Exception as exc:  # unreadable image: reported and skipped by the caller
            return {"rel": rel, "size": None, "input": None, "error": f"{type(exc).__name__}: {exc}"}


def _keep_item(item: dict) -> dict:
    return item


def _group_by_size(items, batch_size: int) -> Iterator[Tuple[str, list]]:
    """Yield ("failed", [item]) and ("batch", items sharing one input size)."""
    pending: Dict[Tuple[int, ...], list] = {}
    for item in items:
        if item["error"] is not None:
            yield "failed", [item]
            continue
        key = tuple(item["input"].shape)
        pending.setdefault(key, []).append(item)
        if len(pending[key]) >= batch_size:
            yield "batch", pending.pop(key)
        elif sum(len(v) for v in pending.values()) > 4 * batch_size:
            yield "batch", pending.pop(max(pending, key=lambda k: len(pending[k])))
    for key in list(pending):
        yield "batch", pending.pop(key)


def save_depth(path: str, disparity: np.ndarray, preview: bool = False) -> None:
    """Write ``arr_0`` = float16 ``disparity`` (H x W) atomically; optionally a colourised PNG."""
    atomic_save_npz(path, {"arr_0": np.clip(disparity, -FLOAT16_MAX, FLOAT16_MAX).astype(np.float16)})
    if preview:
        d = disparity.astype(np.float64)
        span = d.max() - d.min()
        d01 = (d - d.min()) / span if span > 0 else np.zeros_like(d)
        save_png(os.path.splitext(path)[0] + ".png", colorize_depth(d01, invert=False))


@dataclass
class FolderSummary:
    """Counts and speed of a run; ``failed`` holds (relative image path, error)."""

    done: int = 0
    skipped: int = 0
    failed: List[Tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def images_per_s(self) -> float:
        return self.done / self.seconds if self.seconds > 0 else 0.0

    def describe(self) -> str:
        return (f"done {self.done}, skipped {self.skipped} (already present), failed {len(self.failed)}; "
                f"{self.seconds:.1f} s, {self.images_per_s:.2f} images/s")


def predict_folder(model, plan: FolderPlan, batch_size: int = 4, num_workers: int = 2,
                   precision: str = "fp32", preview: bool = False, progress: bool = True) -> FolderSummary:
    """Run ``model`` (a ``MidasDepth``) over ``plan.todo`` and write the outputs.

    Unreadable images are reported on stderr with their path and skipped.
    """
    if batch_size < 1:
        raise OptionError(f"--batch_size must be >= 1, got {batch_size}")
    summary = FolderSummary(skipped=len(plan.skipped))
    loader = DataLoader(_ImageInputs(plan, getattr(model, "net_size", NET_SIZE)), batch_size=None,
                        shuffle=False, num_workers=num_workers, collate_fn=_keep_item,
                        pin_memory=model.device.type == "cuda")
    start = time.perf_counter()
    writes: List[Future] = []
    with ThreadPoolExecutor(max_workers=2) as writer, \
            tqdm(total=len(plan.todo), unit="img", desc="depth", disable=not progress) as bar:
        for kind, items in _group_by_size(loader, batch_size):
            if kind == "failed":
                rel, error = items[0]["rel"], items[0]["error"]
                summary.failed.append((rel, error))
                tqdm.write(f"skipping unreadable image {plan.image_path(rel)}: {error}", file=sys.stderr)
                bar.update(1)
                continue
            inputs = torch.stack([item["input"] for item in items])
            predictions = model.predict_batch(inputs, [item["size"] for item in items], precision)
            for item, disparity in zip(items, predictions):
                writes.append(writer.submit(save_depth, plan.depth_path(item["rel"]), disparity, preview))
            writes = _finish_writes(writes, keep=8)
            summary.done += len(items)
            bar.update(len(items))
        _finish_writes(writes, keep=0)
    summary.seconds = time.perf_counter() - start
    return summary


def _finish_writes(writes: List[Future], keep: int) -> List[Future]:
    """Wait until at most ``keep`` writes are pending; re-raise a failed write."""
    while len(writes) > keep:
        writes.pop(0).result()
    pending = []
    for write in writes:
        if write.done():
            write.result()
        else:
            pending.append(write)
    return pending
