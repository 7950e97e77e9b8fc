"""clean-fid Inception wrapper, exercised offline with a stand-in TorchScript file of the same interface.

The stand-in mirrors ``inception-2015-12-05.pt``: ``forward(img, return_features, use_fp16,
no_output_bias)`` resizes to 299, normalises ``(x - 128) / 128``, runs ``layers`` to
N x 2048 (x 1 x 1) features, and returns softmax probabilities of the 1008-class ``output``.
"""

import os
import urllib.error

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import ivid.metrics.inception as inception
from ivid.metrics import INCEPTION_FILE, INCEPTION_URL, MetricsError, build_inception, compute_metrics

from .conftest import write_images

# the stand-in is built and read with TorchScript, which recent torch marks as deprecated
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.*` is deprecated:FutureWarning")


class _Layers(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Conv2d(3, 2048, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.proj(F.adaptive_avg_pool2d(x, 6))).mean(dim=(2, 3), keepdim=True)


class _StandInInception(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = _Layers()
        self.output = nn.Linear(2048, 1008)

    def forward(self, img: torch.Tensor, return_features: bool = False, use_fp16: bool = False,
                no_output_bias: bool = False) -> torch.Tensor:
        x = F.interpolate(img, size=(299, 299), mode="bilinear", align_corners=False)
        features = self.layers.forward((x - 128) / 128).reshape(-1, 2048)
        if return_features:
            return features
        if no_output_bias:
            return F.softmax(F.linear(features, self.output.weight), dim=1)
        return F.softmax(self.output(features), dim=1)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / INCEPTION_FILE
    torch.jit.script(_StandInInception().eval()).save(str(path))
    return str(path)


def _batch(size, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).uniform(0, 255, (3, 3, size, size))).float()


def test_legacy_tensorflow_feeds_the_image_to_the_network_and_logits_drop_the_bias(weights):
    model = build_inception("legacy_tensorflow", weights)
    base = torch.jit.load(weights)
    x = _batch(32)
    with torch.no_grad():
        features, logits = model.forward_with_logits(x)
        torch.testing.assert_close(model(x), base(x, return_features=True))
        torch.testing.assert_close(features, base(x, return_features=True))
        torch.testing.assert_close(F.softmax(logits, dim=1), base(x, no_output_bias=True))
    assert model.cpu_transform is None and logits.shape == (3, 1008)


def test_clean_mode_resizes_outside_and_runs_the_layers(weights):
    model = build_inception("clean", weights)
    base = torch.jit.load(weights)
    image = np.random.default_rng(1).integers(0, 256, (20, 20, 3)).astype(np.uint8)
    x = torch.from_numpy(model.cpu_transform(image).transpose(2, 0, 1).copy())[None]
    assert x.shape == (1, 3, 299, 299)
    with torch.no_grad():
        torch.testing.assert_close(model(x), base.layers((x - 128) / 128).reshape(1, 2048))
    with pytest.raises(MetricsError, match="299x299"):
        model(_batch(32))


def test_compute_metrics_with_local_inception_weights(weights, tmp_path):
    write_images(tmp_path / "real", 12, (20, 16), seed=1)
    write_images(tmp_path / "fake", 10, 16, seed=2)
    # (FID is left out: scipy's sqrtm of a 2048 x 2048 matrix takes a minute on a 2-core CI machine)
    scores = compute_metrics(str(tmp_path / "real"), str(tmp_path / "fake"), metrics=("kid", "is"),
                             image_size=16, device="cpu", batch_size=5, inception_weights=weights, verbose=False)
    assert set(scores) == {"kid_mean", "kid_std", "is_mean", "is_std"}
    assert all(np.isfinite(v) for v in scores.values()) and scores["is_mean"] >= 1.0


def test_offline_message_names_file_url_and_destination(tmp_path, monkeypatch):
    import cleanfid.downloads_helper

    def offline(fpath):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(inception, "default_weights_dir", lambda: str(tmp_path))
    monkeypatch.setattr(cleanfid.downloads_helper, "check_download_inception", offline)
    with pytest.raises(MetricsError) as info:
        build_inception("legacy_tensorflow")
    message = str(info.value)
    for part in (INCEPTION_FILE, INCEPTION_URL, str(tmp_path / INCEPTION_FILE), "--inception_weights", "no network"):
        assert part in message
    assert os.listdir(tmp_path) == []  # no partial download left behind


def test_first_use_downloads_with_clean_fid_into_its_folder(tmp_path, monkeypatch, weights):
    import shutil

    import cleanfid.downloads_helper

    seen = []

    def fake_download(fpath):
        seen.append(fpath)
        shutil.copy(weights, os.path.join(fpath, INCEPTION_FILE))

    monkeypatch.setattr(inception, "default_weights_dir", lambda: str(tmp_path))
    monkeypatch.setattr(cleanfid.downloads_helper, "check_download_inception", fake_download)
    assert inception.resolve_inception_weights() == os.path.join(str(tmp_path), INCEPTION_FILE)
    assert os.listdir(tmp_path) == [INCEPTION_FILE] and len(seen) == 1
    inception.resolve_inception_weights()
    assert len(seen) == 1  # found, not fetched again


def test_default_weights_dir_is_a_user_cache_not_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert inception.default_weights_dir() == str(tmp_path / "home" / ".cache" / "ivid")


def test_bad_weights_paths_and_modes(tmp_path):
    with pytest.raises(MetricsError, match="no such file"):
        build_inception("legacy_tensorflow", str(tmp_path / "missing.pt"))
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(MetricsError, match="junk.pt: not a loadable TorchScript"):
        build_inception("clean", str(tmp_path / "junk.pt"))
    with pytest.raises(MetricsError, match="unknown clean-fid mode"):
        build_inception("tensorflow")
    with pytest.raises(MetricsError, match="not legacy_pytorch"):
        build_inception("legacy_pytorch", str(tmp_path / "junk.pt"))


def test_legacy_pytorch_resizes_bilinear_and_scales_to_unit_range():
    seen = []

    class _Net(nn.Module):
        def forward(self, x):
            seen.append(x)
            return [torch.ones(x.shape[0], 2048, 1, 1)]

    model = inception.PytorchFidInception(_Net())
    x = _batch(32)
    assert model(x).shape == (3, 2048)
    expected = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False) / 255.0
    torch.testing.assert_close(seen[0], expected)


def test_legacy_pytorch_offline_message_names_the_url(monkeypatch):
    import cleanfid.inception_pytorch

    def offline(url, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(cleanfid.inception_pytorch, "load_state_dict_from_url", offline)
    with pytest.raises(MetricsError, match=r"legacy_pytorch mode.*no network.*pt_inception-2015-12-05"):
        build_inception("legacy_pytorch")
