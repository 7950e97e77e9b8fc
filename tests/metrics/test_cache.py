"""Cache files: round trip without pickle, metadata checks, safe names."""

import numpy as np
import pytest

from ivid.metrics import FeatureSet, MetricsError, load_cache, save_cache
from ivid.metrics.cache import cache_path, check_compatible


def _features(with_logits):
    rng = np.random.default_rng(0)
    return FeatureSet(count=5, mu=rng.normal(size=3), sigma=np.eye(3), kid_features=rng.normal(size=(5, 3)),
                      logits=rng.normal(size=(5, 4)) if with_logits else None)


@pytest.mark.parametrize("with_logits", [False, True])
def test_round_trip_without_pickle(tmp_path, with_logits):
    path = cache_path(str(tmp_path / "c"), "real_x_legacy_tensorflow_32")
    meta = {"version": 1, "mode": "clean", "image_size": 32, "feature_extractor": "f", "count": 5,
            "files_sha1": "ab"}
    features = _features(with_logits)
    save_cache(path, features, meta)
    with np.load(path, allow_pickle=False) as data:  # readable with pickling off
        assert data["metadata"].dtype.kind == "U"
    loaded, loaded_meta = load_cache(path)
    assert loaded_meta == meta and loaded.count == 5
    np.testing.assert_array_equal(loaded.mu, features.mu)
    np.testing.assert_array_equal(loaded.kid_features, features.kid_features.astype(np.float32))
    assert (loaded.logits is None) == (not with_logits)


def test_mismatch_lists_every_differing_key(tmp_path):
    cached = {"mode": "clean", "image_size": 32, "feature_extractor": "f", "count": 5, "files_sha1": "ab"}
    wanted = dict(cached, mode="legacy_tensorflow", count=6, files_sha1="cd")
    with pytest.raises(MetricsError, match="mode: cached 'clean', requested 'legacy_tensorflow'.*count.*files_sha1"
                                           ".*--overwrite_cache"):
        check_compatible("x.npz", cached, wanted)
    check_compatible("x.npz", cached, dict(cached, count=None, files_sha1=None), skip={"count", "files_sha1"})


def test_bad_names_and_bad_files(tmp_path):
    with pytest.raises(MetricsError, match="cache name"):
        cache_path(str(tmp_path), "../escape")
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(MetricsError, match="junk.npz: not a readable ivid metrics cache"):
        load_cache(str(tmp_path / "junk.npz"))
