"""inference/sample.py fed bad options and files: one error line naming the culprit, nothing written."""

from __future__ import annotations

import json
import os
import shutil
import sys

import numpy as np
import pytest
import torch
from PIL import Image

H = sys.modules["bad_inputs_helpers"]  # loaded by conftest.py
FAST_SAMPLE, REPO_ROOT, run_tool = H.FAST_SAMPLE, H.REPO_ROOT, H.run_tool


def _sample(sample_tool, capsys, out, *extra):
    return run_tool(sample_tool, [*FAST_SAMPLE, "--viewset", "random", "--seeds", "0", "--output_dir", str(out),
                                  *extra], capsys)


@pytest.mark.parametrize("option, value, named", [
    ("--near", "-1", "--near"),                 # negative depths were written
    ("--near", "0", "--near"),                  # ZeroDivisionError
    ("--far", "0.5", "--far"),                  # far < near (0.6): inverted depths
    ("--guidance", "nan", "--guidance"),        # crashed after writing a blank grid
    ("--guidance", "-2", "--guidance"),
    ("--atol", "-0.1", "--atol"),
    ("--rtol", "-1", "--rtol"),
    ("--erode_rgb", "-3", "--erode_rgb"),
    ("--eta", "-0.5", "--eta"),
    ("--eta", "2", "--eta"),
    ("--replace_rgb", "1.5", "--replace_rgb"),
    ("--replace_depth", "1.5", "--replace_depth"),
    ("--constrain_depth", "7", "--constrain_depth"),
    ("--fov", "0", "--fov"),
    ("--fov", "200", "--fov"),
    ("--steps_cond", "0", "--steps_cond"),
    ("--steps_cond", "5000", "--steps_cond"),   # more DDIM steps than the model's 1000
    ("--batchsize", "0", "--batchsize"),
    ("--device", "banana", "--device banana"),
    ("--seeds", "0-100000000000", "--seeds"),   # MemoryError before
])
def test_every_sampling_option_is_checked_before_anything_is_written(sample_tool, capsys, tmp_path, option, value,
                                                                      named):
    outcome = _sample(sample_tool, capsys, tmp_path / "out", option, value)
    assert outcome.code != 0
    assert named in outcome.error_line()
    assert not (tmp_path / "out").exists()


def test_a_config_without_model_sections_is_one_line(sample_tool, capsys, tmp_path):
    broken = tmp_path / "no_backbone.json"
    broken.write_text(json.dumps({"framework": {"name": "GaussianDiffusion", "args": {}}}))
    line = _sample(sample_tool, capsys, tmp_path / "out", "--config_uncond", str(broken)).error_line()
    assert "--config_uncond" in line and "no_backbone.json" in line and "'backbone'" in line
    cond = json.loads((REPO_ROOT / "configs" / "demo_cond.json").read_text())
    no_framework = tmp_path / "no_framework.json"
    no_framework.write_text(json.dumps({"backbone": cond["backbone"]}))
    line = _sample(sample_tool, capsys, tmp_path / "out", "--config_cond", str(no_framework)).error_line()
    assert "--config_cond" in line and "'framework'" in line
    assert not (tmp_path / "out").exists()


def _damaged(tmp_path, kind):
    good = (REPO_ROOT / "ckpts" / "demo" / "uncond.pt").read_bytes()
    path = tmp_path / f"{kind}.pt"
    data = {"truncated": good[:len(good) // 2], "random": np.random.default_rng(0).bytes(50_000), "empty": b"",
            "text": b"<html>not found</html>"}[kind]
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("kind, reason", [("truncated", "truncated"), ("random", "not a PyTorch checkpoint"),
                                          ("empty", "empty (0 bytes)"), ("text", "not a PyTorch checkpoint")])
def test_damaged_checkpoints_are_one_line_without_torch_advice(sample_tool, capsys, tmp_path, kind, reason):
    path = _damaged(tmp_path, kind)
    line = _sample(sample_tool, capsys, tmp_path / "out", "--ckpt_uncond", str(path)).error_line()
    assert "--ckpt_uncond" in line and str(path) in line and reason in line
    assert "weights_only" not in line  # never advise loading with weights_only=False
    assert not (tmp_path / "out").exists()


def test_a_checkpoint_of_another_model_is_one_line(sample_tool, capsys, tmp_path):
    line = _sample(sample_tool, capsys, tmp_path / "out", "--ckpt_uncond",
                   str(REPO_ROOT / "ckpts" / "demo" / "cond.pt")).error_line()
    assert "--ckpt_uncond" in line and "cond.pt" in line and "does not match" in line
    assert not (tmp_path / "out").exists()


def test_a_pickled_object_checkpoint_is_refused_without_unpickling(sample_tool, capsys, tmp_path):
    path = tmp_path / "objects.pt"
    torch.save({"w": torch.zeros(1), "obj": torch.nn.Linear(1, 1)}, path)
    line = _sample(sample_tool, capsys, tmp_path / "out", "--ckpt_cond", str(path)).error_line()
    assert "objects.pt" in line and "pickled Python objects" in line and "weights_only" not in line


def test_offline_names_every_missing_released_file_at_once(sample_tool, capsys, tmp_path, monkeypatch):
    import huggingface_hub

    def never(*args, **kwargs):
        raise AssertionError("no download may be attempted offline")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", never)
    ckpts = tmp_path / "ckpts"
    outcome = run_tool(sample_tool, ["--ckpt_uncond", str(ckpts / "imagenet128_uncond.pt"), "--ckpt_cond",
                                     str(ckpts / "imagenet128_cond.pt"), "--output_dir", str(tmp_path / "out"),
                                     "--device", "cpu"], capsys)
    line = outcome.error_line()
    assert "imagenet128_uncond.pt" in line and "imagenet128_cond.pt" in line  # both, not only the first
    assert "--ckpt_uncond" in line and "--ckpt_cond" in line
    assert "scripts/download_ckpts.py" in line and "unreachable" in line
    assert not (tmp_path / "out").exists()


def test_preset_with_explicit_model_files_uses_the_explicit_ones(sample_tool, capsys, tmp_path):
    mine = tmp_path / "my_uncond.pt"
    shutil.copy(REPO_ROOT / "ckpts" / "demo" / "uncond.pt", mine)
    outcome = _sample(sample_tool, capsys, tmp_path / "out", "--ckpt_uncond", str(mine), "--viewset", "uncond")
    assert outcome.code == 0, outcome.err
    args = json.loads(next((tmp_path / "out").glob("*/args.json")).read_text())
    assert args["ckpt_uncond"] == str(mine)  # --preset used to replace it silently
    assert args["ckpt_cond"].endswith(os.path.join("ckpts", "demo", "cond.pt"))  # the rest from the preset


def test_a_run_folder_never_mixes_settings(sample_tool, capsys, tmp_path):
    out = tmp_path / "out"
    assert _sample(sample_tool, capsys, out, "--viewset", "uncond", "--fov", "45").code == 0
    [run_dir] = list(out.iterdir())
    other = _sample(sample_tool, capsys, out, "--viewset", "uncond", "--fov", "20", "--seeds", "1")
    line = other.error_line()
    assert str(run_dir) in line and "fov 45.0 there, 20.0 now" in line
    assert sorted(os.listdir(run_dir / "scenes")) == ["class000_seed00000.npz"]  # nothing of the refused run
    more = _sample(sample_tool, capsys, out, "--viewset", "uncond", "--fov", "45", "--seeds", "1")
    assert more.code == 0, more.err  # the same settings may add seeds
    assert sorted(os.listdir(run_dir / "scenes")) == ["class000_seed00000.npz", "class001_seed00001.npz"]
    assert len((run_dir / "command.txt").read_text().splitlines()) == 2
    assert json.loads((run_dir / "args.json").read_text())["output_settings"]["fov"] == 45.0


def test_other_model_files_are_other_settings(sample_tool, capsys, tmp_path):
    out = tmp_path / "out"
    assert _sample(sample_tool, capsys, out, "--viewset", "uncond").code == 0
    mine = tmp_path / "other_uncond.pt"
    state = torch.load(REPO_ROOT / "ckpts" / "demo" / "uncond.pt", map_location="cpu", weights_only=True)
    torch.save({k: v * 1.0 for k, v in state.items()}, mine, _use_new_zipfile_serialization=False)
    line = _sample(sample_tool, capsys, out, "--viewset", "uncond", "--ckpt_uncond", str(mine)).error_line()
    assert "ckpt_uncond" in line and "other_uncond.pt" in line


def test_viewset_file_with_a_scaled_camera_is_refused(sample_tool, capsys, tmp_path):
    scaled = np.eye(4)
    scaled[:3, :3] *= 2.0
    sheared = np.eye(4)
    sheared[0, 1] = 0.5
    for name, matrix in (("scaled", scaled), ("sheared", sheared)):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps([[0.0, 0.0], matrix.tolist()]))
        line = _sample(sample_tool, capsys, tmp_path / "out", "--viewset", str(path)).error_line()
        assert "--viewset" in line and f"{name}.json" in line and "entry 1" in line and "rigid" in line
    assert not (tmp_path / "out").exists()


@pytest.fixture
def photo(tmp_path):
    path = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (24, 32, 3), dtype=np.uint8)).save(path)
    return path


@pytest.mark.parametrize("case, needles", [
    ("small", ["12x16", "24x32", ".npz"]),          # half-size depth of the photo
    ("tall", ["32x24", "24x32"]),                   # another aspect ratio
    ("negative", ["positive"]),
    ("zero", ["positive"]),
    ("png", ["not an .npz file", "PNG image", "arr_0"]),
])
def test_input_depth_is_checked_against_the_photo(sample_tool, capsys, tmp_path, photo, case, needles):
    depth = tmp_path / f"{case}.npz"
    arrays = {"small": np.full((12, 16), 3000.0), "tall": np.full((32, 24), 3000.0),
              "negative": np.full((24, 32), -3000.0), "zero": np.zeros((24, 32))}
    if case == "png":
        depth = photo
    else:
        np.savez(depth, arr_0=arrays[case].astype(np.float16))
    line = _sample(sample_tool, capsys, tmp_path / "out", "--input_image", str(photo), "--input_depth",
                   str(depth)).error_line()
    assert "--input_depth" in line and all(n in line for n in needles), line
    assert "pickled" not in line
    assert not (tmp_path / "out").exists()


def test_16_bit_grey_photo_keeps_its_levels(tmp_path):
    from ivid.data.preprocess import read_image01
    from ivid.sampling.image_to_3d import load_photo_uint8

    ramp = np.tile(np.linspace(0, 65535, 32), (32, 1)).astype(np.uint16)
    path = tmp_path / "grey16.png"
    Image.fromarray(ramp).save(path)
    with Image.open(path) as im:
        assert im.mode.startswith("I")  # Pillow's 16-bit grey mode
    photo = load_photo_uint8(str(path))
    np.testing.assert_array_equal(photo[..., 0], np.rint(ramp / 65535.0 * 255).astype(np.uint8))
    rgb01, _ = read_image01(str(path), 32)  # no resize: the same levels in [0, 1]
    np.testing.assert_allclose(rgb01[..., 1], np.rint(ramp / 65535.0 * 255) / 255.0, atol=1e-6)
    assert rgb01.min() == 0.0 and rgb01.max() == 1.0  # not a solid white view


def test_orphan_temporaries_of_a_killed_run_are_removed(sample_tool, capsys, tmp_path):
    from ivid.utils.io import HOST_TAG

    out = tmp_path / "out"
    assert _sample(sample_tool, capsys, out, "--viewset", "uncond").code == 0
    [run_dir] = list(out.iterdir())
    dead = H.dead_pid()
    orphan = run_dir / "scenes" / f".class000_seed00000.npz.{HOST_TAG}-{dead}-0badc0de.tmp"
    orphan.write_bytes(b"half a scene")
    live = run_dir / "scenes" / f".x.npz.{HOST_TAG}-{os.getpid()}-0badc0de.tmp"
    live.write_bytes(b"being written")
    assert _sample(sample_tool, capsys, out, "--viewset", "uncond", "--seeds", "1").code == 0
    assert not orphan.exists() and live.exists()

