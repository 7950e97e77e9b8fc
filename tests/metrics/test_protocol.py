"""The paper's FID protocols end to end on the bundled demo models (docs/evaluation.md), with tiny step
counts: sample.py -> (render.py --traj random) -> eval.py, checking that results/ holds exactly the images
each protocol scores. eval.py runs with the tests' small feature extractor (no Inception download)."""

import json
import os
import pathlib

import numpy as np
import pytest
from PIL import Image

from ivid.scene import load_scene

from .conftest import write_images
from repo_scripts import load_script

# the reference README's options, with tiny step counts and sample counts for a CPU test
PROTOCOL = ["--classes", "uniform", "--steps_uncond", "2", "--steps_cond", "1", "--guidance", "0.5"]
COMMON = ["--preset", "demo", "--device", "cpu", "--no_progress"]
SIZE = 32  # the demo models' image size
# a handful of generated images gives a singular covariance: FID is still finite, scipy warns
pytestmark = pytest.mark.filterwarnings("ignore:Matrix is singular")


sample_cli = load_script("inference/sample.py", "protocol_sample_cli")
render_cli = load_script("inference/render.py", "protocol_render_cli")
eval_cli = load_script("eval.py", "protocol_eval_cli")


def _sample(out, viewset, num_samples):
    return pathlib.Path(sample_cli.main(sample_cli.parse_args(
        COMMON + PROTOCOL + ["--viewset", viewset, "--num_samples", str(num_samples), "--output_dir", str(out)])))


def _eval(real, fake, tmp_path, toy_features):
    args = eval_cli.parse_args(["--real_images_dir", str(real), "--fake_images_dir", str(fake), "--image_size",
                                str(SIZE), "--tmp_dir", str(tmp_path / "cache"), "--metrics_dir",
                                str(tmp_path / "metrics"), "--num_workers", "0", "--metrics", "fid", "kid",
                                "--quiet"])
    scores = eval_cli.main(args, feature_extractor=toy_features)
    assert np.isfinite(scores["fid"]) and np.isfinite(scores["kid_mean"])
    return json.loads(next((tmp_path / "metrics").iterdir()).read_text().splitlines()[-1])


def _pixels(path):
    with Image.open(path) as im:
        assert im.size == (SIZE, SIZE)
        return np.asarray(im)


@pytest.fixture
def real(tmp_path):
    folder = tmp_path / "real"
    write_images(folder, 12, (40, 48), seed=5)
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("viewset,scored_view", [("random", 1), ("uncond", 0)])
def test_protocol_without_fusion(tmp_path, real, toy_features, viewset, scored_view):
    """results/ holds one image per sample: the novel view for 'random', the first view for 'uncond'."""
    run = _sample(tmp_path / "samples", viewset, 3)
    assert run.name == f"viewset_{viewset}_steps_u2_c1_guidance0.5"
    names = ["00000", "00001", "00002"]
    assert sorted(os.listdir(run / "results")) == [f"{n}.png" for n in names]
    for name in names:
        scene = load_scene(run / "scenes" / f"{name}.npz")
        assert np.array_equal(_pixels(run / "results" / f"{name}.png"), scene[scored_view]["rgb"])
    record = _eval(real, run / "results", tmp_path, toy_features)
    assert record["settings"]["num_fake"] == 3 and record["args"]["num_samples"] == 10000


@pytest.mark.slow
def test_protocol_with_fusion(tmp_path, real, toy_features):
    """3x9 writes nothing to results/; render.py --traj random then writes one fusion render per scene there."""
    run = _sample(tmp_path / "samples", "3x9", 2)
    assert run.name == "viewset_3x9_steps_u2_c1_guidance0.5"
    assert os.listdir(run / "results") == []
    assert len(load_scene(run / "scenes" / "00000.npz")) == 27
    written = render_cli.main(render_cli.parse_args(["--preset", "demo", "--traj", "random", "--scene_dir",
                                                     str(run), "--device", "cpu", "--no_progress"]))
    assert sorted(os.listdir(run / "results")) == ["00000.png", "00001.png"]
    assert sorted(map(os.path.basename, written)) == ["00000.png", "00001.png"]
    assert _pixels(run / "results" / "00000.png").std() > 0
    record = _eval(real, run / "results", tmp_path, toy_features)
    assert record["settings"]["num_fake"] == 2
