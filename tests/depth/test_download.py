"""Weights download: offline message, atomic write with length check, no download for odd names."""

import io
import os
import urllib.error

import pytest

from ivid.depth import download
from ivid.depth.download import MIDAS_URL, MidasDownloadError, ensure_midas_checkpoint


class _FakeResponse(io.BytesIO):
    def __init__(self, payload, length=None):
        super().__init__(payload)
        self.headers = {"Content-Length": str(len(payload) if length is None else length)}


def test_offline_error_says_where_to_get_and_put_the_file(tmp_path, monkeypatch):
    def offline(url, timeout=None):
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.setattr(download, "urlopen", offline)
    target = tmp_path / "ckpts" / "dpt_beit_large_512.pt"
    with pytest.raises(MidasDownloadError) as info:
        ensure_midas_checkpoint(target, progress=False)
    message = str(info.value)
    assert MIDAS_URL in message and str(target) in message and "--ckpt" in message
    assert not target.exists()


def test_download_writes_atomically_and_checks_length(tmp_path, monkeypatch):
    payload = os.urandom(3 * (1 << 20) + 5)
    monkeypatch.setattr(download, "urlopen", lambda url, timeout=None: _FakeResponse(payload))
    target = tmp_path / "ckpts" / "dpt_beit_large_512.pt"
    assert ensure_midas_checkpoint(target, progress=False) == str(target)
    assert target.read_bytes() == payload
    assert os.listdir(target.parent) == ["dpt_beit_large_512.pt"]          # no temp file left
    # an existing file is used as is (no network)
    monkeypatch.setattr(download, "urlopen", None)
    assert ensure_midas_checkpoint(target, progress=False) == str(target)

    truncated = tmp_path / "other" / "dpt_beit_large_512.pt"
    monkeypatch.setattr(download, "urlopen", lambda url, timeout=None: _FakeResponse(payload[:100], len(payload)))
    with pytest.raises(MidasDownloadError, match="stopped after 100"):
        ensure_midas_checkpoint(truncated, progress=False)
    assert not truncated.exists() and os.listdir(truncated.parent) == []


def test_missing_file_with_another_name_is_not_downloaded(tmp_path, monkeypatch):
    monkeypatch.setattr(download, "urlopen", None)    # would fail if called
    with pytest.raises(FileNotFoundError, match="my_weights.pt"):
        ensure_midas_checkpoint(tmp_path / "my_weights.pt", progress=False)
