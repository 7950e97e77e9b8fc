"""Named feature caches: one ``<cache_dir>/<name>.npz`` per image set, written atomically, read without pickle.

A cache holds a :class:`~ivid.metrics.stats.FeatureSet` (``mu``, ``sigma``,
``kid_features``, optional ``logits``) and a JSON metadata string
(``metadata``): format ``version``, ``role`` (real/fake), ``folder``, ``mode``,
``image_size``, ``feature_extractor`` (its name), ``count``, ``files_sha1``
(relative paths of the images used), ``num_samples``, ``seed``, ``created``.
A cache is reused only when ``mode``, ``image_size``, ``feature_extractor``,
``count`` and ``files_sha1`` match the request (:func:`check_compatible`).
"""

from __future__ import annotations

import json
import os
import re
from typing import Mapping, Optional, Tuple

import numpy as np

from ivid.utils.io import atomic_save_npz

from .errors import MetricsError
from .stats import FeatureSet

CACHE_VERSION = 1
MATCHED_KEYS = ("mode", "image_size", "feature_extractor", "count", "files_sha1")
_NAME_OK = re.compile(r"^[A-Za-z0-9._+-]+$")


def cache_path(cache_dir: str, name: str) -> str:
    """``<cache_dir>/<name>.npz``; ``name`` may hold letters, digits and ``. _ + -`` only."""
    if not _NAME_OK.match(name) or name in (".", ".."):
        raise MetricsError(f"cache name {name!r}: use letters, digits and . _ + - only")
    return os.path.join(cache_dir, f"{name}.npz")


def save_cache(path: str, features: FeatureSet, metadata: Mapping) -> None:
    """Write ``features`` and ``metadata`` (JSON-serialisable) to ``path`` atomically."""
    arrays = {
        "mu": np.asarray(features.mu, np.float64),
        "sigma": np.asarray(features.sigma, np.float64),
        "kid_features": np.asarray(features.kid_features, np.float32),
        "count": np.asarray(features.count, np.int64),
        "metadata": np.asarray(json.dumps(dict(metadata), sort_keys=True)),
    }
    if features.logits is not None:
        arrays["logits"] = np.asarray(features.logits, np.float32)
    atomic_save_npz(path, arrays)


def load_cache(path: str) -> Tuple[FeatureSet, dict]:
    """Read a cache written by :func:`save_cache`.

    Raises:
        MetricsError: the file is not a readable cache (the message names it).
    """
    try:
        with np.load(path, allow_pickle=False) as data:
            metadata = json.loads(str(data["metadata"]))
            features = FeatureSet(count=int(data["count"]), mu=data["mu"], sigma=data["sigma"],
                                  kid_features=data["kid_features"],
                                  logits=data["logits"] if "logits" in data.files else None)
    except (OSError, KeyError, ValueError) as exc:
        raise MetricsError(f"{path}: not a readable ivid metrics cache ({type(exc).__name__}: {exc}); "
                           "delete it or pass --overwrite_cache") from exc
    if metadata.get("version") != CACHE_VERSION:
        raise MetricsError(f"{path}: cache format version {metadata.get('version')} (expected {CACHE_VERSION}); "
                           "pass --overwrite_cache to rebuild it")
    return features, metadata


def check_compatible(path: str, metadata: Mapping, expected: Mapping, skip: Optional[set] = None) -> None:
    """Raise :class:`MetricsError` listing every key of :data:`MATCHED_KEYS` whose cached value differs.

    Keys in ``skip`` are not compared (``count`` and ``files_sha1`` when the image folder is absent).
    """
    skip = skip or set()
    diffs = [f"{key}: cached {metadata.get(key)!r}, requested {expected.get(key)!r}"
             for key in MATCHED_KEYS if key not in skip and metadata.get(key) != expected.get(key)]
    if diffs:
        what = "; ".join(diffs)
        raise MetricsError(f"{path}: cache does not match this evaluation ({what}). Pass --overwrite_cache "
                           "(overwrite_cache=True) to recompute it, or choose another cache name")
