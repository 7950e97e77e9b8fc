"""ivid.utils.video.write_mp4: frame count, fps, atomicity."""

import os

import imageio.v2 as imageio
import numpy as np
import pytest

from ivid.utils.video import write_mp4


def test_frames_read_back(tmp_path):
    frames = [np.full((32, 48, 3), 20 * i, np.uint8) for i in range(9)]
    path = tmp_path / "v" / "a.mp4"
    assert write_mp4(path, iter(frames)) == 9
    reader = imageio.get_reader(str(path))
    got = [f for f in reader]
    assert reader.get_meta_data()["fps"] == pytest.approx(30.0)
    reader.close()
    assert len(got) == 9 and got[0].shape == (32, 48, 3)
    assert abs(int(got[5].mean()) - 100) <= 3  # flat grey frames survive the codec
    assert os.listdir(tmp_path / "v") == ["a.mp4"]


def test_odd_sizes_are_padded(tmp_path):
    write_mp4(tmp_path / "odd.mp4", [np.zeros((15, 17, 3), np.uint8)] * 2)
    reader = imageio.get_reader(str(tmp_path / "odd.mp4"))
    assert next(iter(reader)).shape == (16, 18, 3)
    reader.close()


def test_errors_leave_no_file(tmp_path):
    with pytest.raises(ValueError, match="no frames"):
        write_mp4(tmp_path / "e.mp4", [])
    with pytest.raises(ValueError, match="uint8"):
        write_mp4(tmp_path / "e.mp4", [np.zeros((8, 8, 3), np.float32)])
    with pytest.raises(ValueError, match="size"):
        write_mp4(tmp_path / "e.mp4", [np.zeros((8, 8, 3), np.uint8), np.zeros((10, 8, 3), np.uint8)])
    assert os.listdir(tmp_path) == []


def test_size_resizes_the_video(tmp_path):
    """A left-dark / right-bright frame keeps its layout when scaled 4x (bicubic, by ffmpeg)."""
    frame = np.zeros((16, 24, 3), np.uint8)
    frame[:, 12:] = 220
    assert write_mp4(tmp_path / "big.mp4", [frame] * 3, size=(64, 96)) == 3
    reader = imageio.get_reader(str(tmp_path / "big.mp4"))
    got = [f for f in reader]
    reader.close()
    assert len(got) == 3 and got[0].shape == (64, 96, 3)
    assert got[0][:, :40].mean() < 15 and got[0][:, 56:].mean() > 205
    with pytest.raises(ValueError, match="even"):
        write_mp4(tmp_path / "bad.mp4", [frame], size=(63, 96))
    assert sorted(os.listdir(tmp_path)) == ["big.mp4"]
