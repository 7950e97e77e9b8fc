"""What one evaluation computes: :class:`EvaluationRequest`, checked when it is made.

``eval.py`` builds one from its options, :func:`ivid.metrics.compute_metrics` from its
arguments; :func:`ivid.metrics.run_evaluation` runs it. The feature extractors are not part of
the request (they are objects, not settings): ``run_evaluation`` takes them separately.
"""

from __future__ import annotations

import numbers
import os
from dataclasses import dataclass
from typing import Optional, Sequence

from .errors import MetricsError
from .features import KID_MAX_FEATURES
from .inception import DEFAULT_MODE, MODES
from .stats import IS_SPLITS, KID_NUM_SUBSETS, KID_SUBSET_SIZE

__all__ = ["EvaluationRequest", "METRIC_CHOICES", "DEFAULT_CACHE_DIR"]

METRIC_CHOICES = ("fid", "kid", "is")
DEFAULT_CACHE_DIR = os.path.join("metrics", "cache")


def _positive(name: str, value: object, low: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise MetricsError(f"{name}={value!r}: must be an integer >= {low}")


@dataclass(frozen=True)
class EvaluationRequest:
    """One FID / KID / IS evaluation (the options of ``eval.py``, by their library names).

    Attributes:
        real_dir: real images (png/jpg/jpeg, any case, recursive), centre-cropped and LANCZOS-resized
            to ``image_size``; not read when only ``"is"`` is asked (``--real_images_dir``).
        fake_dir: generated images, each already ``image_size`` x ``image_size`` (``--fake_images_dir``).
        metrics: any of ``"fid"``, ``"kid"``, ``"is"`` (stored lower-case, without repeats).
        image_size: side of the images compared, pixels.
        num_samples: a seeded choice of this many fake images (None: all).
        cache_dir: where named feature caches live (``--tmp_dir``; None: ``metrics/cache``).
        real_cache_name, fake_cache_name: cache names (None: no cache); see :mod:`ivid.metrics.evaluate`
            for the reuse / overwrite rules.
        use_real_cache, use_fake_cache: reuse an existing matching cache (``--use_*_images_cache``).
        overwrite_cache: recompute and replace the named caches.
        mode: clean-fid mode (``legacy_tensorflow``, ``clean``, ``legacy_pytorch``).
        inception_weights: a local ``inception-2015-12-05.pt`` (offline use); None: download.
        device: where features are computed (None: CUDA when available, or the plugged extractor's).
        batch_size, num_workers: feature batches and image-loader processes.
        seed: the fake sub-sample, KID subsets and IS shuffle.
        kid_subsets, kid_subset_size, kid_max_features, is_splits: the metrics' sampling constants.
        verbose: progress bars and notes.
        skip_bad_images: leave out unreadable or wrongly sized images (counted in the report) instead
            of stopping at the first.

    Raises:
        MetricsError: at construction, for an unknown metric or mode, FID / KID without ``real_dir``,
            or a count below its minimum.
    """

    real_dir: Optional[str]
    fake_dir: str
    metrics: Sequence[str] = ("fid", "kid")
    image_size: int = 128
    num_samples: Optional[int] = None
    cache_dir: Optional[str] = None
    real_cache_name: Optional[str] = None
    fake_cache_name: Optional[str] = None
    use_real_cache: bool = True
    use_fake_cache: bool = True
    overwrite_cache: bool = False
    mode: str = DEFAULT_MODE
    inception_weights: Optional[str] = None
    device: Optional[str] = None
    batch_size: int = 64
    num_workers: int = 0
    seed: int = 0
    kid_subsets: int = KID_NUM_SUBSETS
    kid_subset_size: int = KID_SUBSET_SIZE
    kid_max_features: int = KID_MAX_FEATURES
    is_splits: int = IS_SPLITS
    verbose: bool = True
    skip_bad_images: bool = False

    def __post_init__(self) -> None:
        metrics = tuple(dict.fromkeys(str(m).lower() for m in self.metrics))
        object.__setattr__(self, "metrics", metrics)
        if self.cache_dir is None:
            object.__setattr__(self, "cache_dir", DEFAULT_CACHE_DIR)
        unknown = [m for m in metrics if m not in METRIC_CHOICES]
        if unknown or not metrics:
            raise MetricsError(f"metrics {list(metrics)}: choose among {', '.join(METRIC_CHOICES)}")
        if self.mode not in MODES:
            raise MetricsError(f"unknown clean-fid mode {self.mode!r}; valid: {', '.join(MODES)}")
        if self.needs_real and self.real_dir is None:
            raise MetricsError("FID and KID need real images: give real_dir (--real_images_dir)")
        for name in ("image_size", "batch_size", "kid_subsets", "kid_subset_size", "kid_max_features", "is_splits"):
            _positive(name, getattr(self, name))
        _positive("num_workers", self.num_workers, 0)
        _positive("seed", self.seed, 0)
        if self.num_samples is not None:
            _positive("num_samples", self.num_samples)

    @property
    def needs_real(self) -> bool:
        """Whether the metrics compare with real images (FID, KID)."""
        return "fid" in self.metrics or "kid" in self.metrics
