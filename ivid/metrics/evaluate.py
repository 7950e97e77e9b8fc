"""FID / KID / IS between a folder of real images and a folder of generated images.

:func:`run_evaluation` runs an :class:`~ivid.metrics.request.EvaluationRequest` and returns the scores
with a record of the run; :func:`compute_metrics` is the same with plain arguments, scores only.

Cache rules (per image set, ``<cache_dir>/<name>.npz``; no name = no cache):

* ``use_cache=True`` (CLI ``--use_real_images_cache`` / ``--use_fake_images_cache``):
  an existing cache is reused when it matches the request (mode, image size,
  extractor, image list; else :class:`MetricsError`); a missing one is computed
  and saved.
* ``use_cache=False``: features are computed from the images; the cache is saved
  if none exists under that name; an existing one is left unchanged.
* ``overwrite_cache=True`` (``--overwrite_cache``): features are recomputed and
  every cache in play is replaced.
* A reused fake cache without logits when IS is asked for is recomputed and replaced.
* A real cache is reused without checking the image list when the real folder
  is absent (e.g. statistics kept after deleting the dataset).

Randomness: the fake sub-sample, the rows kept for KID, the KID subsets and the
IS shuffle each use their own ``numpy.random.default_rng(seed)``.
"""

from __future__ import annotations

import datetime
import os
import re
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, Optional, Sequence, Tuple

import numpy as np
import torch

from ivid.utils.device import resolve_device

from .cache import cache_path, check_compatible, load_cache, save_cache, CACHE_VERSION
from .errors import MetricsError
from .features import extract_feature_set
from .files import fingerprint, list_images, select_samples
from .inception import build_inception
from .preprocess import load_fake_image, load_real_image
from .request import EvaluationRequest
from .stats import FeatureSet, frechet_distance, inception_score, kernel_inception_distance

__all__ = ["EvaluationReport", "run_evaluation", "compute_metrics", "default_cache_name"]


@dataclass
class EvaluationReport:
    """``scores``: subset of ``fid, kid_mean, kid_std, is_mean, is_std``; ``settings``: JSON-ready run record."""

    scores: Dict[str, float]
    settings: Dict[str, object] = field(default_factory=dict)


@dataclass
class _Run:
    """Options shared by the real and the fake image set."""

    extractor: Callable
    extractor_name: str
    logits_extractor: Optional[Callable]
    device: torch.device
    mode: str
    image_size: int
    batch_size: int
    num_workers: int
    seed: int
    cache_dir: str
    overwrite_cache: bool
    kid_max_features: int
    verbose: bool
    skip_bad_images: bool = False

    def note(self, message: str) -> None:
        if self.verbose:
            print(message)


def default_cache_name(folder: str, mode: str, image_size: int) -> str:
    """``<last 3 path parts>_<mode>_<image_size>`` with characters outside ``[A-Za-z0-9._+-]`` as ``_``."""
    parts = [p for p in os.path.abspath(folder).replace("\\", "/").split("/") if p][-3:]
    stem = re.sub(r"[^A-Za-z0-9._+-]", "_", "_".join(parts)) or "images"
    return f"{stem}_{mode}_{image_size}"


def _module_device(module: Callable) -> torch.device:
    if isinstance(module, torch.nn.Module):
        for tensor in list(module.parameters()) + list(module.buffers()):
            return tensor.device
    return torch.device("cpu")


def _prepare_extractor(feature_extractor, mode, inception_weights, device) -> Tuple[Callable, str, torch.device]:
    """The extractor to run, its name (for caches) and the device its inputs go to."""
    if feature_extractor is None:
        device = resolve_device(device)
        extractor = build_inception(mode, inception_weights, device)
        return extractor, extractor.name, device
    device = resolve_device(device) if device is not None else _module_device(feature_extractor)
    name = getattr(feature_extractor, "name", None) or type(feature_extractor).__qualname__
    return feature_extractor, str(name), device


def _metadata(role: str, folder: Optional[str], files: Optional[Sequence[str]], run: _Run,
              num_samples: Optional[int]) -> dict:
    return {
        "version": CACHE_VERSION, "role": role, "folder": os.path.abspath(folder) if folder else None,
        "mode": run.mode, "image_size": run.image_size, "feature_extractor": run.extractor_name,
        "count": len(files) if files is not None else None,
        "files_sha1": fingerprint(files, folder) if files is not None else None,
        "num_samples": num_samples, "seed": run.seed,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def _load_reusable(path: str, role: str, folder: Optional[str], files, expected: dict, run: _Run,
                   need_logits: bool) -> Optional[FeatureSet]:
    """The cached features when they can serve this run, else ``None`` (they lack IS logits)."""
    features, metadata = load_cache(path)
    check_compatible(path, metadata, expected, skip={"count", "files_sha1"} if files is None else None)
    if files is None:
        run.note(f"{role} folder {folder!r} not found: using cache {path} without checking its image list")
    if need_logits and features.logits is None:
        if files is None:
            raise MetricsError(f"{path}: cache has no logits (needed for IS) and the {role} folder is absent")
        run.note(f"{path}: cache has no logits (needed for IS); recomputing and replacing it")
        return None
    run.note(f"{role}: reusing {features.count} cached features from {path}")
    return features


def _image_set(role: str, folder: Optional[str], run: _Run, cache_name: Optional[str], use_cache: bool,
               num_samples: Optional[int] = None, need_logits: bool = False) -> Tuple[FeatureSet, dict]:
    """Features of one image set, from its cache or its images, following the module's cache rules."""
    path = cache_path(run.cache_dir, cache_name) if cache_name else None
    reuse = path is not None and use_cache and not run.overwrite_cache and os.path.isfile(path)
    files = None
    if not (reuse and (folder is None or not os.path.isdir(folder))):
        files = select_samples(list_images(folder, role), num_samples, run.seed, role)
    expected = _metadata(role, folder, files, run, num_samples)
    info = {"cache": path, "cache_reused": False, "seconds": 0.0}
    replace = run.overwrite_cache
    if reuse:
        features = _load_reusable(path, role, folder, files, expected, run, need_logits)
        if features is not None:
            return features, dict(info, count=features.count, cache_reused=True)
        replace = True
    loader = load_real_image if role == "real" else load_fake_image
    skipped: list = []
    features, seconds = extract_feature_set(
        files, loader, run.image_size, run.extractor, device=run.device, batch_size=run.batch_size,
        num_workers=run.num_workers, logits_extractor=run.logits_extractor, need_logits=need_logits,
        kid_max_features=run.kid_max_features, seed=run.seed, desc=f"{role} features", verbose=run.verbose,
        skip_bad=run.skip_bad_images, skipped=skipped)
    info["skipped_images"] = len(skipped)
    if path is not None:
        if replace or not os.path.isfile(path):
            save_cache(path, features, expected)
            run.note(f"{role}: saved features to {path}")
        else:
            run.note(f"{role}: left the existing cache {path} unchanged (reuse it with --use_{role}_images_cache, "
                     "replace it with --overwrite_cache)")
    return features, dict(info, count=features.count, seconds=round(seconds, 3),
                          images_per_second=round(features.count / max(seconds, 1e-9), 1))


def _scores(metrics: Sequence[str], real: Optional[FeatureSet], fake: FeatureSet, seed: int,
            kid_subsets: int, kid_subset_size: int, is_splits: int) -> Dict[str, float]:
    scores: Dict[str, float] = {}
    if "fid" in metrics:
        if min(real.count, fake.count) < 2:
            raise MetricsError(f"FID needs at least 2 real and 2 fake images (got {real.count} and {fake.count})")
        scores["fid"] = frechet_distance(fake.mu, fake.sigma, real.mu, real.sigma)
    if "kid" in metrics:
        scores["kid_mean"], scores["kid_std"] = kernel_inception_distance(
            real.kid_features, fake.kid_features, kid_subsets, kid_subset_size, rng=np.random.default_rng(seed))
    if "is" in metrics:
        scores["is_mean"], scores["is_std"] = inception_score(fake.logits, is_splits, rng=np.random.default_rng(seed))
    return scores


def _check_extractors(request: EvaluationRequest, feature_extractor, logits_extractor) -> None:
    if "is" in request.metrics and feature_extractor is None and request.mode == "legacy_pytorch":
        raise MetricsError("IS is not available in legacy_pytorch mode (pytorch-fid's Inception has no logits); "
                           "use --mode legacy_tensorflow or clean")
    if "is" in request.metrics and feature_extractor is not None and logits_extractor is None \
            and not hasattr(feature_extractor, "forward_with_logits"):
        raise MetricsError("IS needs class logits: pass logits_extractor= along with feature_extractor=")


def run_evaluation(request: EvaluationRequest, feature_extractor=None, logits_extractor=None) -> EvaluationReport:
    """Run one evaluation: the scores and the run's settings (image counts, caches, timings).

    Args:
        request: what to compare and how (:class:`~ivid.metrics.request.EvaluationRequest`).
        feature_extractor, logits_extractor: replace clean-fid's Inception (see :func:`compute_metrics`).

    Raises:
        MetricsError: see :class:`~ivid.metrics.errors.MetricsError`.
    """
    start = time.perf_counter()
    _check_extractors(request, feature_extractor, logits_extractor)
    # missing folders are reported before the feature extractor is built (or downloaded)
    needed = [("fake", request.fake_dir, request.fake_cache_name, request.use_fake_cache)]
    if request.needs_real:
        needed.insert(0, ("real", request.real_dir, request.real_cache_name, request.use_real_cache))
    for role, folder, cache_name, use_cache in needed:
        reusable = (cache_name is not None and use_cache and not request.overwrite_cache
                    and os.path.isfile(cache_path(request.cache_dir, cache_name)))
        if not reusable and not os.path.isdir(folder):
            raise MetricsError(f"{role} image folder {folder!r} does not exist or is not a directory")
    extractor, name, device = _prepare_extractor(feature_extractor, request.mode, request.inception_weights,
                                                 request.device)
    run = _Run(extractor, name, logits_extractor, device, request.mode, request.image_size, request.batch_size,
               request.num_workers, request.seed, request.cache_dir, request.overwrite_cache,
               request.kid_max_features, request.verbose, request.skip_bad_images)
    real, real_info = None, None
    if request.needs_real:
        real, real_info = _image_set("real", request.real_dir, run, request.real_cache_name, request.use_real_cache)
    fake, fake_info = _image_set("fake", request.fake_dir, run, request.fake_cache_name, request.use_fake_cache,
                                 request.num_samples, need_logits="is" in request.metrics)
    scores = _scores(request.metrics, real, fake, request.seed, request.kid_subsets, request.kid_subset_size,
                     request.is_splits)
    settings = {
        "metrics": list(request.metrics), "mode": request.mode, "image_size": request.image_size,
        "feature_extractor": name, "num_real": real_info["count"] if real_info else None, "num_fake": fake.count,
        "num_samples": request.num_samples, "seed": request.seed, "device": str(device),
        "batch_size": request.batch_size,
        "real_images_dir": os.path.abspath(request.real_dir) if request.real_dir else None,
        "fake_images_dir": os.path.abspath(request.fake_dir), "real": real_info, "fake": fake_info,
        "kid_subsets": request.kid_subsets, "kid_subset_size": request.kid_subset_size,
        "is_splits": request.is_splits, "seconds": round(time.perf_counter() - start, 3),
    }
    return EvaluationReport(scores, settings)


def compute_metrics(real_dir: Optional[str], fake_dir: str, metrics: Sequence[str] = ("fid", "kid"),
                    image_size: int = 128, num_samples: Optional[int] = None, feature_extractor=None,
                    cache_dir: Optional[str] = None, real_cache_name: Optional[str] = None,
                    fake_cache_name: Optional[str] = None, overwrite_cache: bool = False, device=None,
                    batch_size: int = 64, seed: int = 0, **options) -> Dict[str, float]:
    """FID / KID / IS of the images in ``fake_dir`` against those in ``real_dir``.

    Args:
        real_dir: real images (png/jpg/jpeg, any case, recursive), centre-cropped and
            LANCZOS-resized to ``image_size``. Not read when only ``"is"`` is asked.
        fake_dir: generated images, each already ``image_size`` x ``image_size``.
        metrics: any of ``"fid"``, ``"kid"``, ``"is"``.
        num_samples: use a seeded choice of this many fake images (``None``: all).
        feature_extractor: callable (e.g. ``nn.Module``) mapping an ``N x 3 x S x S``
            float32 batch in [0, 255] to ``N x D`` features; an optional attribute
            ``cpu_transform`` (``H x W x 3`` uint8 -> ``H' x W' x 3`` float32) runs
            per image in the loader, an optional ``name`` identifies it in caches, an
            optional ``forward_with_logits(x) -> (features, logits)`` serves IS.
            Its inputs go to ``device`` if given, else to the device of its first
            parameter (CPU without parameters); it is not moved. ``None``: clean-fid's
            Inception in ``mode`` (see :mod:`ivid.metrics.inception`).
        cache_dir: where named caches live (default ``metrics/cache``).
        real_cache_name, fake_cache_name: cache names (``None``: no cache); see the
            module docstring for the reuse/overwrite rules.
        overwrite_cache: recompute and replace the named caches.
        device: ``None`` picks CUDA when available (clean-fid's Inception).
        seed: the fake sub-sample, KID subsets and IS shuffle.
        **options: ``logits_extractor`` (callable batch -> ``N x C`` logits for IS with a plugged
            extractor) and further :class:`~ivid.metrics.request.EvaluationRequest` fields: ``mode``
            (``legacy_tensorflow`` default, ``clean``, ``legacy_pytorch``), ``inception_weights``
            (local ``inception-2015-12-05.pt``), ``use_real_cache`` / ``use_fake_cache`` (default
            True), ``num_workers``,
            ``kid_subsets`` (100), ``kid_subset_size`` (1000), ``kid_max_features``
            (50,000), ``is_splits`` (10), ``verbose``, ``skip_bad_images`` (leave out unreadable or
            wrongly sized images, counted in the report, instead of stopping at the first).

    Returns:
        dict with keys among ``fid``, ``kid_mean``, ``kid_std``, ``is_mean``, ``is_std``.

    Raises:
        MetricsError: see :class:`~ivid.metrics.errors.MetricsError`.
    """
    logits_extractor = options.pop("logits_extractor", None)
    request = EvaluationRequest(real_dir, fake_dir, metrics, image_size, num_samples, cache_dir=cache_dir,
                                real_cache_name=real_cache_name, fake_cache_name=fake_cache_name,
                                overwrite_cache=overwrite_cache, device=device, batch_size=batch_size, seed=seed,
                                **options)
    return run_evaluation(request, feature_extractor, logits_extractor).scores
