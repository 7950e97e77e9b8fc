"""Feature extraction over image files: DataLoader workers, device batches, streaming statistics, progress.

The pipeline for one image set:
    file --loader--> H x W x 3 uint8 --extractor.cpu_transform (optional, in the
    workers)--> N x 3 x H' x W' batch --float32 on the device--> extractor -> N x D features
Features never need to fit in memory at once: mean and covariance are
accumulated in float64 (``ddof=1`` covariance, as ``np.cov``); only the rows KID
draws from (at most ``kid_max_features``) and, when asked, the logits are kept.
"""

from __future__ import annotations

import contextlib
import sys
import time
from typing import Callable, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
from tqdm import tqdm

from ivid.errors import unwrap_worker_error

from .errors import MetricsError
from .stats import FeatureSet

#: what a run that stopped at a bad image may do instead (eval.py's option)
SKIP_HINT = "rerun with --skip_bad_images to leave out unreadable or wrongly sized images (they are counted)"

KID_MAX_FEATURES = 50_000

Loader = Callable[[str, int], np.ndarray]


class ImageFileDataset(torch.utils.data.Dataset):
    """Reads one image per index: ``loader(path, image_size)`` then the optional ``transform``.

    Items are ``3 x H x W`` tensors: uint8 in [0, 255] without a transform, else
    the transform's float32 output in [0, 255].
    """

    def __init__(self, files: Sequence[str], loader: Loader, image_size: int,
                 transform: Optional[Callable[[np.ndarray], np.ndarray]] = None, skip_bad: bool = False):
        self.files = list(files)
        self.loader = loader
        self.image_size = image_size
        self.transform = transform
        self.skip_bad = bool(skip_bad)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int):
        """The image tensor; with ``skip_bad``, the loader's error message (str) instead of raising."""
        try:
            image = self.loader(self.files[index], self.image_size)
        except MetricsError as err:
            if not self.skip_bad:
                raise
            return str(err)
        if self.transform is not None:
            image = self.transform(image)
        return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))


def collate_skipping(items: Sequence) -> Tuple[Optional[torch.Tensor], List[str]]:
    """Stack the tensors of a batch; the strings (skipped files' errors) are returned apart."""
    tensors = [item for item in items if isinstance(item, torch.Tensor)]
    skipped = [item for item in items if isinstance(item, str)]
    return (torch.stack(tensors) if tensors else None), skipped


class StreamingMoments:
    """Running mean and covariance of ``N x D`` batches, in float64 on the given device.

    Sums are taken around the first batch's mean, which keeps the covariance
    accurate when the mean is large compared with the spread.
    """

    def __init__(self, device: torch.device):
        self.device = torch.device("cpu") if device.type == "mps" else device  # no float64 on MPS
        self.count = 0
        self.shift = self.sum = self.outer = None

    def update(self, features: torch.Tensor) -> None:
        x = features.detach().to(self.device, torch.float64)
        if self.shift is None:
            self.shift = x.mean(dim=0)
            self.sum = torch.zeros_like(self.shift)
            self.outer = torch.zeros(x.shape[1], x.shape[1], dtype=torch.float64, device=self.device)
        centred = x - self.shift
        self.sum += centred.sum(dim=0)
        self.outer += centred.T @ centred
        self.count += x.shape[0]

    def mean_and_covariance(self) -> Tuple[np.ndarray, np.ndarray]:
        """``(D,)`` mean and ``(D, D)`` covariance (ddof=1; NaN when fewer than 2 rows) as float64 NumPy."""
        n = self.count
        mean_shifted = self.sum / n
        cov = (self.outer - n * torch.outer(mean_shifted, mean_shifted)) / (n - 1) if n > 1 else \
            torch.full_like(self.outer, float("nan"))
        return (self.shift + mean_shifted).cpu().numpy(), cov.cpu().numpy()


def kid_rows(count: int, max_features: int, seed: int) -> np.ndarray:
    """Boolean mask of the rows kept for KID: all, or ``default_rng(seed).choice(count, max_features)`` rows."""
    keep = np.zeros(count, dtype=bool)
    if count <= max_features:
        keep[:] = True
    else:
        keep[np.random.default_rng(seed).choice(count, max_features, replace=False)] = True
    return keep


@contextlib.contextmanager
def exact_float32() -> Iterator[None]:
    """Turn TF32 off for CUDA matmuls/convolutions inside the block (restored after), so features are full float32."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def run_extractors(extractor: Callable, logits_extractor: Optional[Callable], batch: torch.Tensor,
                   need_logits: bool) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Features (``N x D``) and, if ``need_logits``, logits (``N x C``) of a float batch in [0, 255].

    Logits come from ``logits_extractor`` when given, else from the extractor's
    ``forward_with_logits`` method (clean-fid's Inception has one).
    """
    if not need_logits:
        return extractor(batch), None
    if logits_extractor is not None:
        return extractor(batch), logits_extractor(batch)
    if hasattr(extractor, "forward_with_logits"):
        return extractor.forward_with_logits(batch)
    raise MetricsError("IS needs class logits: the feature extractor has no forward_with_logits method; "
                       "pass logits_extractor=")


def _batches(batch_iter: Iterator) -> Iterator[Tuple[Optional[torch.Tensor], List[str]]]:
    """The loader's batches; a loader error (also from a worker process) is re-raised with its own
    one-line message and the hint of :data:`SKIP_HINT`."""
    while True:
        try:
            item = next(batch_iter)
        except StopIteration:
            return
        except Exception as err:
            cleaned = unwrap_worker_error(err)
            if isinstance(cleaned, MetricsError):
                raise MetricsError(f"{cleaned}; {SKIP_HINT}") from None
            if cleaned is err:
                raise
            raise cleaned from None
        yield item


def extract_feature_set(files: Sequence[str], loader: Loader, image_size: int, extractor: Callable, *,
                        device: torch.device, batch_size: int = 64, num_workers: int = 0,
                        logits_extractor: Optional[Callable] = None, need_logits: bool = False,
                        kid_max_features: int = KID_MAX_FEATURES, seed: int = 0, desc: str = "features",
                        verbose: bool = True, skip_bad: bool = False,
                        skipped: Optional[List[str]] = None) -> Tuple[FeatureSet, float]:
    """Run ``extractor`` over ``files`` and summarise the features.

    Args:
        files: image paths. loader: ``loader(path, image_size) -> H x W x 3 uint8``.
        extractor: maps an ``N x 3 x S x S`` float32 batch in [0, 255] on ``device``
            to ``N x D`` features; its optional ``cpu_transform`` attribute is applied
            to each image in the loader workers first.
        kid_max_features, seed: at most this many feature rows are kept for KID,
            chosen by :func:`kid_rows` with ``seed``.
        skip_bad: leave out files the loader cannot use (unreadable, wrong size) instead of
            stopping; their messages are appended to ``skipped`` (when given) and counted on stderr.

    Returns:
        ``(FeatureSet, seconds)``; the wall time covers loading and the network.

    Raises:
        MetricsError: an unusable file (without ``skip_bad``; the message names it), or no
            usable file at all.
    """
    dataset = ImageFileDataset(files, loader, image_size, getattr(extractor, "cpu_transform", None), skip_bad)
    batches = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, drop_last=False,
                                          num_workers=num_workers, pin_memory=device.type == "cuda",
                                          collate_fn=collate_skipping)
    keep = kid_rows(len(files), kid_max_features, seed)
    moments, kept, logits = StreamingMoments(device), [], []
    start, done = time.perf_counter(), 0
    bad: List[str] = [] if skipped is None else skipped
    batch_iter = iter(batches)
    try:
        with tqdm(total=len(files), unit="img", desc=desc, disable=not verbose) as bar, \
                torch.inference_mode(), exact_float32():
            for batch, batch_skipped in _batches(batch_iter):
                bad.extend(batch_skipped)
                bar.update(len(batch_skipped))
                if batch is None:
                    continue
                x = batch.to(device, non_blocking=True).float()
                feats, batch_logits = run_extractors(extractor, logits_extractor, x, need_logits)
                feats = feats.reshape(x.shape[0], -1)
                moments.update(feats)
                kept.append(feats.float().cpu().numpy()[keep[done:done + x.shape[0]]])
                if batch_logits is not None:
                    logits.append(batch_logits.float().cpu().numpy())
                done += x.shape[0]
                bar.update(x.shape[0])
    finally:  # stop loader workers now: a propagating exception's traceback would keep them alive
        shutdown = getattr(batch_iter, "_shutdown_workers", None)
        if shutdown is not None:
            shutdown()
    seconds = time.perf_counter() - start
    if bad:
        print(f"warning: {desc}: skipped {len(bad)} of {len(files)} images that cannot be used "
              f"(first: {bad[0]})", file=sys.stderr, flush=True)
    if done == 0:
        raise MetricsError(f"{desc}: none of the {len(files)} images could be used (first: {bad[0]})"
                           if bad else f"{desc}: no images")
    if verbose:
        print(f"{desc}: {done} images in {seconds:.1f} s ({done / max(seconds, 1e-9):.1f} images/s)")
    mu, sigma = moments.mean_and_covariance()
    return FeatureSet(count=done, mu=mu, sigma=sigma, kid_features=np.concatenate(kept),
                      logits=np.concatenate(logits) if logits else None), seconds
