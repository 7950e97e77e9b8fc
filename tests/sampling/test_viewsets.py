"""ivid.geometry.viewsets: --viewset parsing, per-sample cameras, grid layout."""

import json

import numpy as np
import pytest

from ivid.geometry.viewsets import ViewsetChoice, grid_layout, parse_viewset, sample_cameras

# fixtures/README.md section 5: reorder_3x9__from27
REORDER_3X9 = [23, 17, 11, 5, 2, 8, 14, 20, 26, 21, 15, 9, 3, 0, 6, 12, 18, 24, 22, 16, 10, 4, 1, 7, 13, 19, 25]


def _yaw_pitch(m):
    eye = -m[:3, :3].T @ m[:3, 3]
    return np.arctan2(eye[0], eye[2]), np.arcsin(np.clip(eye[1], -1, 1))


def test_3x9_layout_is_the_reference_grid():
    choice = parse_viewset("3x9")
    cams = sample_cameras(choice, 0)
    assert len(cams) == 27
    assert grid_layout(choice, cams) == (REORDER_3X9, 9)
    # the generic lattice layout agrees with the reference order
    assert grid_layout(ViewsetChoice("file", None, tuple(cams)), cams) == (REORDER_3X9, 9)


def test_360_is_one_row_sorted_by_decreasing_yaw():
    choice = parse_viewset("360")
    cams = sample_cameras(choice, 0)
    order, nrow = grid_layout(choice, cams)
    assert nrow == len(cams) and sorted(order) == list(range(len(cams)))
    yaws = [_yaw_pitch(cams[k])[0] for k in order]
    assert all(a > b for a, b in zip(yaws, yaws[1:]))


def test_random_view_is_drawn_per_seed():
    choice = parse_viewset("random")
    a0, a1, b = sample_cameras(choice, 0), sample_cameras(choice, 0), sample_cameras(choice, 1)
    assert len(a0) == 2 and np.array_equal(a0[1], a1[1]) and not np.allclose(a0[1], b[1])
    assert np.allclose(a0[0], np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, -1], [0, 0, 0, 1]]))
    assert grid_layout(choice, a0) == ([0, 1], 2)


def test_viewset_file(tmp_path):
    path = tmp_path / "my_views.json"
    path.write_text(json.dumps([[0, 0], [0.2, 0.1], [-0.2, 0.0]]))
    choice = parse_viewset(str(path))
    assert choice.label == "my_views" and not choice.is_single_view
    cams = sample_cameras(choice, 5)
    assert len(cams) == 3
    yaw, pitch = _yaw_pitch(cams[1])
    assert yaw == pytest.approx(0.2) and pitch == pytest.approx(0.1)


@pytest.mark.parametrize("content", ["not json", "[]", "[[0]]", "{\"a\": 1}", "[[0, 0], [1, 2, 3, 4]]"])
def test_malformed_viewset_file(tmp_path, content):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ValueError, match="--viewset.*bad.json"):
        parse_viewset(str(path))


def test_unknown_viewset():
    with pytest.raises(ValueError, match="--viewset 'nope'"):
        parse_viewset("nope")
