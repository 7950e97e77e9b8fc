"""Evaluation metrics: FID, KID and Inception Score with clean-fid's Inception, named feature caches.

Entry points: :func:`compute_metrics`, and :func:`run_evaluation` of an
:class:`EvaluationRequest` (``eval.py`` is its command line). See
``docs/evaluation.md`` for the paper's protocol. The 3D consistency of sampled scenes
(condition adherence, reprojection PSNR) is in :mod:`ivid.metrics.consistency`, with its
command line in :mod:`ivid.metrics.consistency_run` (``scripts/eval_consistency.py``).
"""

from .cache import load_cache, save_cache
from .errors import MetricsError
from .evaluate import EvaluationReport, compute_metrics, default_cache_name, run_evaluation
from .features import extract_feature_set
from .files import list_images, select_samples
from .inception import DEFAULT_MODE, INCEPTION_FILE, INCEPTION_URL, MODES, build_inception
from .preprocess import load_fake_image, load_real_image
from .request import METRIC_CHOICES, EvaluationRequest
from .stats import FeatureSet, frechet_distance, inception_score, kernel_inception_distance

__all__ = [
    "compute_metrics", "run_evaluation", "EvaluationRequest", "EvaluationReport", "METRIC_CHOICES", "MetricsError",
    "default_cache_name",
    "frechet_distance", "kernel_inception_distance", "inception_score", "FeatureSet",
    "extract_feature_set", "list_images", "select_samples", "load_real_image", "load_fake_image",
    "build_inception", "MODES", "DEFAULT_MODE", "INCEPTION_FILE", "INCEPTION_URL",
    "load_cache", "save_cache",
]
