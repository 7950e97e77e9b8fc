"""inference/render.py: a failed video encode reports the failure and never destroys existing videos."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

H = sys.modules["bad_inputs_helpers"]  # loaded by conftest.py


def _render(render_tool, capsys, scene_dir, out, *extra):
    return H.run_tool(render_tool, ["--scene_dir", str(scene_dir), "--output_dir", str(out), "--frames", "3",
                                    "--device", "cpu", "--no_progress", *extra], capsys)


def _videos(out):
    folder = out / "videos"
    return {name: (folder / name).read_bytes() for name in sorted(os.listdir(folder))}


def test_huge_video_size_fails_up_front_and_keeps_the_videos(render_tool, capsys, scene_dir, tmp_path):
    out = tmp_path / "out"
    assert _render(render_tool, capsys, scene_dir, out).code == 0
    before = _videos(out)
    assert len(before) == 4 and all(len(data) > 0 for data in before.values())
    outcome = _render(render_tool, capsys, scene_dir, out, "--video_size", "16384")  # ffmpeg cannot encode it
    assert outcome.code != 0 and "--video_size 16384" in outcome.error_line()
    assert "wrote" not in outcome.out
    assert _videos(out) == before


def test_an_encoder_failure_names_the_video_and_keeps_the_old_pair(render_tool, capsys, scene_dir, tmp_path,
                                                                   monkeypatch):
    import ivid.render.free_view as free_view
    from ivid.utils.video import VideoEncodeError

    out = tmp_path / "out"
    assert _render(render_tool, capsys, scene_dir, out).code == 0
    before = _videos(out)
    real_encode = free_view.encode_mp4

    def depth_fails(path, frames, *args, name=None, **kwargs):
        if name.endswith("_depth.mp4"):
            raise VideoEncodeError(f"{name}: the video encoder (ffmpeg) failed with exit status 1: disk full")
        return real_encode(path, frames, *args, name=name, **kwargs)

    monkeypatch.setattr(free_view, "encode_mp4", depth_fails)
    outcome = _render(render_tool, capsys, scene_dir, out, "--frames", "5")
    line = outcome.error_line()
    assert outcome.code != 0 and "a_depth.mp4" in line and "disk full" in line
    assert _videos(out) == before  # the colour video of the failed pair was not replaced either
    assert not [n for n in os.listdir(out / "videos") if n.startswith(".")]  # no temporaries left


@pytest.mark.slow
def test_encode_mp4_raises_with_ffmpegs_reason(tmp_path):
    from ivid.utils.video import VideoEncodeError, encode_mp4, write_mp4

    frames = [np.zeros((8, 8, 3), np.uint8)] * 3
    with pytest.raises(VideoEncodeError, match=r"bad\.mp4: the video encoder \(ffmpeg\) failed .*invalid"):
        encode_mp4(str(tmp_path / "bad.mp4"), frames, size=(16384, 16384))
    target = tmp_path / "keep.mp4"
    target.write_bytes(b"old video")
    with pytest.raises(ValueError, match="video size"):
        write_mp4(target, frames, size=(16384, 16384))
    assert target.read_bytes() == b"old video"
    assert write_mp4(target, frames) == 3 and target.stat().st_size > 100


@pytest.mark.parametrize("option, value", [("--atol", "-1"), ("--rtol", "nan"), ("--erode_rgb", "-1"),
                                           ("--seed", "-5"), ("--frames", "0"), ("--device", "banana")])
def test_render_options_are_checked_first(render_tool, capsys, scene_dir, tmp_path, option, value):
    outcome = _render(render_tool, capsys, scene_dir, tmp_path / "out", option, value)
    assert outcome.code != 0 and option in outcome.error_line()
    assert not (tmp_path / "out").exists()
