"""The bundled demo (configs/demo_*.json, ckpts/demo/): configs, weights, and the README's
two commands end to end with very few steps; plus scripts/plot_training_log.py."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from ivid.config import load_config
from ivid.geometry import viewset
from ivid.sampling.presets import PRESETS
from ivid.scene import load_scene
from repo_scripts import load_script

ROOT = pathlib.Path(__file__).resolve().parents[2]
DEMO = ROOT / "ckpts" / "demo"
CONFIGS = {"uncond": ROOT / "configs" / "demo_uncond.json", "cond": ROOT / "configs" / "demo_cond.json"}
CKPTS = {"uncond": DEMO / "uncond.pt", "cond": DEMO / "cond.pt"}


plot = load_script(ROOT / "scripts" / "plot_training_log.py", "plot_training_log")


# -- configs and weights ---------------------------------------------------------------------
def test_demo_configs_are_a_matching_pair():
    u, c = load_config(CONFIGS["uncond"]), load_config(CONFIGS["cond"])
    assert set(u) == set(c) == {"backbone", "framework", "dataset", "trainer"}
    assert u["framework"]["name"] == "ClassifierFreeGuidance" and c["framework"]["name"] == "InpaintCFG"
    assert u["backbone"]["args"]["in_channels"] == 4 and c["backbone"]["args"]["in_channels"] == 10
    assert u["trainer"]["name"] == "BasicTrainer" and c["trainer"]["name"] == "InpaintTrainer"
    for key in ("image_size", "num_classes", "model_channels", "channel_mult"):
        assert u["backbone"]["args"][key] == c["backbone"]["args"][key], key
    size = u["backbone"]["args"]["image_size"]
    assert u["dataset"]["args"]["image_size"] == c["dataset"]["args"]["image_size"] == size


@pytest.mark.parametrize("kind", ["uncond", "cond"])
def test_demo_weights_are_small_and_load_strictly(kind):
    from ivid.model_loading import load_framework

    assert CKPTS[kind].stat().st_size < 8 * 2 ** 20, "demo weights should stay a few MB"
    state = torch.load(CKPTS[kind], map_location="cpu", weights_only=True)
    # the sinusoid frequencies must stay float32 (float16 would shift t * freq by up to ~0.5 rad)
    assert state["time_embed.0.freqs"].dtype == torch.float32
    half = torch.arange(state["time_embed.0.freqs"].numel(), dtype=torch.float64)
    expected = torch.exp(-np.log(10000.0) * half / half.numel())
    assert torch.allclose(state["time_embed.0.freqs"].double(), expected, rtol=1e-6)
    framework = load_framework(str(CONFIGS[kind]), str(CKPTS[kind]), torch.device("cpu"))
    backbone = framework.backbone
    assert all(p.dtype == torch.float32 for p in backbone.parameters())  # float16 file, float32 model on CPU
    assert all(torch.isfinite(p).all() for p in backbone.parameters())


# -- the README command (scripts/run_demo.sh: sample.py --preset demo + render.py), end to end ------
def _frames(path):
    import imageio.v2 as imageio

    with imageio.get_reader(str(path), format="ffmpeg") as reader:
        return reader.get_meta_data()["size"], sum(1 for _ in reader)


@pytest.mark.slow
def test_run_demo_writes_grids_scenes_and_videos(tmp_path):
    frames = 5
    env = dict(os.environ, PYTHON=sys.executable, SEEDS="1", STEPS_UNCOND="2", STEPS_COND="1", FRAMES=str(frames),
               DEVICE="cpu")
    result = subprocess.run(["bash", str(ROOT / "scripts" / "run_demo.sh"), str(tmp_path / "demo")], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"run_demo.sh failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    run_dir = tmp_path / "demo" / "viewset_3x9_steps_u2_c1_guidance3.0"
    assert f"demo written to {run_dir}" in result.stdout
    args = json.loads((run_dir / "args.json").read_text())  # the preset's defaults, except what was given
    for key, value in PRESETS["demo"].sample_defaults.items():
        if key not in ("output_dir", "seeds", "steps_uncond", "steps_cond"):
            assert args[key] == value, key
    assert args["ckpt_cond"].endswith(os.path.join("ckpts", "demo", "cond.pt"))

    name = "class001_seed00001"  # classes 'mod': seed 1 -> class 1
    size = load_config(CONFIGS["uncond"])["backbone"]["args"]["image_size"]
    with Image.open(run_dir / "grids" / f"{name}.png") as grid:
        assert grid.size[0] >= 9 * size and grid.size[1] >= 3 * size  # 3 rows (pitch) x 9 columns (yaw)
    assert (run_dir / "grids" / f"{name}_depth.png").is_file()
    views = load_scene(run_dir / "scenes" / f"{name}.npz")
    cameras = viewset("3x9")
    assert len(views) == len(cameras) == 27
    for view, camera in zip(views, cameras):
        assert view["rgb"].shape == (size, size, 3) and view["rgb"].dtype == np.uint8
        assert view["depth"].shape == (size, size) and np.all(view["depth"] > 0)
        np.testing.assert_allclose(view["modelview"], camera, atol=1e-9)

    video_size = PRESETS["demo"].render_defaults["video_size"]
    for video in (f"{name}.mp4", f"{name}_depth.mp4"):
        assert _frames(run_dir / "videos" / video) == ((video_size, video_size), frames)


# -- scripts/plot_training_log.py -------------------------------------------------------------
def _write_log(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_read_log_skips_events_and_lets_a_resumed_run_supersede(tmp_path):
    log = _write_log(tmp_path / "log.jsonl", [
        {"step": 10, "loss": 0.9}, {"step": 20, "loss": 0.5}, {"step": 30, "loss": 0.4},
        {"event": "resume", "step": 20}, {"step": 30, "loss": 0.3}, {"step": 40, "loss": 0.2}])
    steps, losses = plot.read_log(str(log))
    assert steps.tolist() == [10, 20, 30, 40]
    assert losses.tolist() == [0.9, 0.5, 0.3, 0.2]


def test_read_log_reads_a_nested_key(tmp_path):
    log = _write_log(tmp_path / "log.jsonl", [
        {"step": 10, "loss": 0.9}, {"step": 20, "loss": 0.5, "condition_usage": {"gap": -0.01}},
        {"step": 30, "loss": 0.4, "condition_usage": {"gap": 0.2}}])
    steps, gaps = plot.read_log(str(log), "condition_usage.gap")
    assert steps.tolist() == [20, 30] and gaps.tolist() == [-0.01, 0.2]
    image = plot.draw_curves([("gap", steps, gaps)], log_y=False, y_name="gap")
    assert image.ndim == 3 and image.dtype == np.uint8


def test_read_log_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.jsonl"):
        plot.read_log(str(tmp_path / "missing.jsonl"))
    with pytest.raises(ValueError, match="no line with"):
        plot.read_log(str(_write_log(tmp_path / "events.jsonl", [{"event": "resume", "step": 0}])))


def test_smooth_and_ticks():
    np.testing.assert_allclose(plot.smooth(np.full(5, 0.25), 0.9), 0.25)  # debiased: constant stays constant
    np.testing.assert_allclose(plot.smooth(np.array([1.0, 3.0]), 0.0), [1.0, 3.0])
    assert plot.nice_ticks(0, 6000) == [0, 2000, 4000, 6000]
    assert plot.log_ticks(0.03, 1.1) == [0.05, 0.1, 0.2, 0.5, 1.0]


def test_plot_cli_writes_a_png(tmp_path):
    logs = [_write_log(tmp_path / f"{n}.jsonl", [{"step": s, "loss": 1.0 / s} for s in range(10, 110, 10)])
            for n in ("a", "b")]
    output = tmp_path / "curves.png"
    plot.main(plot.parse_args(["--log", *map(str, logs), "--label", "A", "B", "--output", str(output),
                               "--width", "400", "--height", "300"]))
    with Image.open(output) as image:
        assert image.size == (400, 300)
        pixels = np.asarray(image.convert("RGB")).reshape(-1, 3)
    for color in plot.COLORS[:2]:  # both curves are drawn
        assert (np.abs(pixels.astype(int) - color).sum(1) == 0).any()
