"""inference/render.py: fusion videos, random views, PLY export and errors, on synthetic scenes (CPU)."""

import os

import imageio.v2 as imageio
import numpy as np
import pytest
from PIL import Image

from ivid.geometry import viewset
from ivid.scene import save_scene
from repo_scripts import load_script

S = 32


cli = load_script("inference/render.py", "render_cli")


def _scene(color, num_views=2):
    """Single-coloured views at constant depth 2 from the first cameras of 3x9 (a slightly different
    fronto-parallel wall per view: enough for fusion tests)."""
    views = []
    for modelview in viewset("3x9")[:num_views]:
        views.append({"rgb": np.broadcast_to(np.array(color, np.uint8), (S, S, 3)).copy(),
                      "depth": np.full((S, S), 2.0, np.float32), "modelview": modelview, "fov": 45.0})
    return views


@pytest.fixture(scope="module")
def scene_dir(tmp_path_factory):
    run = tmp_path_factory.mktemp("run")
    save_scene(run / "scenes" / "a.npz", _scene((200, 40, 40)))
    save_scene(run / "scenes" / "b.npz", _scene((40, 40, 200), num_views=1))
    return run / "scenes"


def _read_video(path):
    reader = imageio.get_reader(str(path))
    frames = [f for f in reader]
    fps = reader.get_meta_data()["fps"]
    reader.close()
    return frames, fps


@pytest.mark.slow
def test_swing_writes_colour_and_depth_videos(scene_dir, tmp_path):
    out = tmp_path / "out"
    cli.main(cli.parse_args(["--scene_dir", str(scene_dir), "--output_dir", str(out), "--frames", "4",
                             "--device", "cpu", "--no_progress"]))
    assert sorted(os.listdir(out / "videos")) == ["a.mp4", "a_depth.mp4", "b.mp4", "b_depth.mp4"]
    for name in ("a", "b"):
        frames, fps = _read_video(out / "videos" / f"{name}.mp4")
        depth_frames, _ = _read_video(out / "videos" / f"{name}_depth.mp4")
        assert len(frames) == len(depth_frames) == 4 and fps == pytest.approx(30)
        assert frames[0].shape == depth_frames[0].shape == (S, S, 3)
    # a single-coloured wall renders its colour in the middle of every frame (lossy codec: loose)
    frames, _ = _read_video(out / "videos" / "a.mp4")
    centre = np.stack([f[S // 2 - 2:S // 2 + 2, S // 2 - 2:S // 2 + 2].reshape(-1, 3).mean(0) for f in frames])
    np.testing.assert_allclose(centre, np.tile([200, 40, 40], (4, 1)), atol=20)


@pytest.mark.slow
def test_random_writes_one_image_per_scene_and_ply(scene_dir, tmp_path):
    out = tmp_path / "out"
    cli.main(cli.parse_args(["--scene_dir", str(scene_dir), "--output_dir", str(out), "--traj", "random",
                             "--export", "ply", "--device", "cpu", "--seed", "3", "--no_progress"]))
    assert sorted(os.listdir(out / "results")) == ["a.png", "b.png"]
    with Image.open(out / "results" / "b.png") as im:
        assert im.size == (S, S)
        assert np.abs(np.asarray(im)[S // 2, S // 2].astype(int) - [40, 40, 200]).max() <= 2
    assert sorted(os.listdir(out / "meshes")) == ["a.ply", "b.ply"]
    header = open(out / "meshes" / "a.ply", "rb").read(400).split(b"end_header")[0].decode()
    assert f"element vertex {2 * S * S}" in header and "element face" in header


def test_default_output_dir_is_the_run_folder(scene_dir):
    written = cli.main(cli.parse_args(["--scene_dir", str(scene_dir), "--traj", "none", "--export", "ply",
                                       "--ply_mode", "points", "--no_progress"]))
    assert sorted(os.path.relpath(p, scene_dir.parent) for p in written) == [
        os.path.join("meshes", "a.ply"), os.path.join("meshes", "b.ply")]


@pytest.mark.slow
def test_preset_sets_tolerances_and_video_size(scene_dir, tmp_path):
    from ivid.sampling.presets import PRESETS, resolve_request

    defaults = PRESETS["demo"].render_defaults
    request = resolve_request(cli.to_request(cli.parse_args(["--preset", "demo", "--scene_dir", str(scene_dir),
                                                             "--atol", "0.2"])))
    assert request.atol == 0.2 and (request.rtol, request.erode_rgb) == (defaults["rtol"], defaults["erode_rgb"])
    args = cli.parse_args(["--preset", "demo", "--scene_dir", str(scene_dir), "--output_dir", str(tmp_path),
                           "--frames", "2", "--video_size", "64", "--device", "cpu", "--no_progress"])
    cli.main(args)
    frames, _ = _read_video(tmp_path / "videos" / "b.mp4")
    assert len(frames) == 2 and frames[0].shape == (64, 64, 3)
    assert np.abs(frames[0][24:40, 24:40].reshape(-1, 3).mean(0) - [40, 40, 200]).max() < 20


def test_errors(tmp_path, scene_dir):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="--scene_dir .*no scenes"):
        cli.main(cli.parse_args(["--scene_dir", str(tmp_path / "empty")]))
    with pytest.raises(FileNotFoundError, match="no such folder"):
        cli.main(cli.parse_args(["--scene_dir", str(tmp_path / "missing")]))
    with pytest.raises(ValueError, match="--traj none"):
        cli.main(cli.parse_args(["--scene_dir", str(scene_dir), "--traj", "none"]))
    with pytest.raises(ValueError, match="--frames"):
        cli.main(cli.parse_args(["--scene_dir", str(scene_dir), "--frames", "0"]))
    with pytest.raises(ValueError, match="--video_size 33"):
        cli.main(cli.parse_args(["--scene_dir", str(scene_dir), "--video_size", "33"]))
    with pytest.raises(SystemExit):
        cli.parse_args(["--scene_dir", str(scene_dir), "--traj", "circle"])


def test_scene_dir_defaults_to_the_reference_run_folder(tmp_path, monkeypatch):
    """As the reference's render.py: where sample.py's default options write."""
    args = cli.parse_args([])
    assert args.scene_dir == "samples/imagenet128/viewset_3x9_steps_u1000_c50_guidance3.0"
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="--scene_dir samples/imagenet128/viewset_3x9"):
        cli.main(cli.parse_args(["--no_progress"]))
