"""eval.py: a corrupt or wrongly sized fake image is named in one line, or skipped and counted on request."""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

H = sys.modules["bad_inputs_helpers"]  # loaded by conftest.py


class PoolFeatures(torch.nn.Module):
    """Deterministic stand-in for Inception: 2x2 average pool of the [0, 255] image (12 features)."""

    name = "pool-2x2"

    def forward(self, x):
        return F.adaptive_avg_pool2d(x / 255.0, 2).flatten(1)


def _images(folder, count, size=16, seed=0):
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(folder / f"img{i:02d}.png")


@pytest.fixture
def bad_fakes(tmp_path):
    real, fake = tmp_path / "real", tmp_path / "fake"
    _images(real, 12, seed=1)
    _images(fake, 12, seed=2)
    (fake / "img03.png").write_text("not an image")                                      # corrupt
    Image.fromarray(np.zeros((20, 16, 3), np.uint8)).save(fake / "img07.png")            # odd-sized
    return real, fake


def _eval(eval_tool, capsys, real, fake, tmp_path, *extra):
    argv = ["--real_images_dir", str(real), "--fake_images_dir", str(fake), "--image_size", "16", "--metrics",
            "fid", "kid", "--batch_size", "4", "--tmp_dir", str(tmp_path / "cache"), "--metrics_dir",
            str(tmp_path / "metrics"), "--quiet", "--device", "cpu", *extra]
    return H.run_tool(eval_tool, argv, capsys, main=lambda args: eval_tool.main(args, feature_extractor=PoolFeatures()))


@pytest.mark.parametrize("workers", ["0", "2"])
def test_a_bad_fake_image_is_named_in_one_line(eval_tool, capsys, tmp_path, bad_fakes, workers):
    real, fake = bad_fakes
    outcome = _eval(eval_tool, capsys, real, fake, tmp_path, "--num_workers", workers)
    line = outcome.error_line()  # was a 20-50 line DataLoader traceback with workers
    assert outcome.code != 0 and "img03.png" in line and "cannot read image" in line
    assert "--skip_bad_images" in line and "Caught" not in line
    assert not (tmp_path / "metrics").exists()


def test_bad_fake_images_can_be_skipped_and_are_counted(eval_tool, capsys, tmp_path, bad_fakes):
    real, fake = bad_fakes
    outcome = _eval(eval_tool, capsys, real, fake, tmp_path, "--num_workers", "2", "--skip_bad_images")
    assert outcome.code == 0, outcome.err
    assert "skipped 2 of 12 images" in outcome.err and "img03.png" in outcome.err
    [record] = [json.loads(line) for line in next((tmp_path / "metrics").glob("*.jsonl")).read_text().splitlines()]
    assert record["settings"]["num_fake"] == 10 and record["settings"]["fake"]["skipped_images"] == 2


def test_eval_device_and_folder_errors_are_one_line(eval_tool, capsys, tmp_path, bad_fakes):
    real, fake = bad_fakes
    assert "--device banana" in _eval(eval_tool, capsys, real, fake, tmp_path, "--device", "banana").error_line()
    assert "nowhere" in _eval(eval_tool, capsys, real, tmp_path / "nowhere", tmp_path).error_line()


def test_a_missing_folder_is_reported_before_inception_is_built(eval_tool, capsys, tmp_path, monkeypatch):
    import ivid.metrics.evaluate as evaluate

    def no_inception(*args, **kwargs):
        raise AssertionError("the feature extractor must not be built (or downloaded) for a missing folder")

    monkeypatch.setattr(evaluate, "build_inception", no_inception)
    outcome = H.run_tool(eval_tool, ["--real_images_dir", str(tmp_path / "real"), "--fake_images_dir",
                                     str(tmp_path / "fake"), "--device", "cpu"], capsys)
    assert "real image folder" in outcome.error_line() and outcome.code != 0
