"""scripts/eval_consistency.py (ivid.metrics.consistency_run), `eval.py --metrics consistency`: table, JSON, errors."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from ivid.geometry import viewset
from ivid.cli import run_cli
from ivid.metrics.consistency_run import main, parse_args
from ivid.scene import save_scene

from . import synthetic_scene as synth

SIZE = 16


def _cli(argv):
    """Exit status of the command line (as scripts/eval_consistency.py runs it, in ivid.cli.run_cli)."""
    with pytest.raises(SystemExit) as exit_info:
        run_cli(main, parse_args, argv)
    return exit_info.value.code


def _exact_conditions(views):
    """Each view's condition = the view itself on its left half (view 0: none): zero adherence error."""
    out = []
    for k, view in enumerate(views):
        mask = np.zeros((SIZE, SIZE), bool)
        if k > 0:
            mask[:, : SIZE // 2] = True
        out.append({**view, "cond": {"rgb": view["rgb"] * mask[..., None], "depth": view["depth"] * mask,
                                     "mask": mask, "mask_rgb": mask}})
    return out


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    run = tmp_path_factory.mktemp("run")
    cameras = viewset("3x9", num=9)
    views = synth.scene_views(cameras, SIZE)
    save_scene(run / "scenes" / "a_consistent.npz", _exact_conditions(views), metadata={"near": 0.6, "far": 5.0})
    shifted = [dict(v) for v in views]
    shifted[4]["rgb"] = np.roll(views[4]["rgb"], 3, axis=1)
    save_scene(run / "scenes" / "b_shifted.npz", shifted)  # no conditions stored
    return run


def test_table_and_json_report(run_dir, capsys):
    assert _cli(["--scene_dir", str(run_dir), "--quiet"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:2] == ["scene", "views"]
    rows = {line.split()[0]: line.split() for line in out if line.split() and line.split()[0] in
            ("a_consistent", "b_shifted", "overall")}
    assert set(rows) == {"a_consistent", "b_shifted", "overall"}
    assert rows["a_consistent"][2] == "0.000" and rows["b_shifted"][2] == "n/a"  # cond rgb column
    assert out[-1] == f"wrote {run_dir / 'consistency.json'}"
    report = json.loads((run_dir / "consistency.json").read_text())
    scenes = {s["scene"]: s for s in report["scenes"]}
    assert scenes["a_consistent"]["conditions"] == "stored" and scenes["b_shifted"]["conditions"] == "none"
    assert scenes["a_consistent"]["cond_rgb_rmse"] == 0.0 and scenes["a_consistent"]["cond_depth_rel"] == 0.0
    assert scenes["b_shifted"]["cond_rgb_rmse"] is None  # NaN is written as null (strict JSON)
    assert scenes["a_consistent"]["first_psnr"] > scenes["b_shifted"]["first_psnr"] + 5
    overall = report["overall"]
    assert overall["scenes"] == 2
    assert overall["first_psnr"] == pytest.approx((scenes["a_consistent"]["first_psnr"]
                                                   + scenes["b_shifted"]["first_psnr"]) / 2)
    assert overall["cond_rgb_rmse"] == 0.0  # only the scene that has conditions
    assert report["settings"]["depth_tol"] == 0.05 and len(scenes["a_consistent"]["pairs"]["first"]["psnr"]) == 8


def test_output_option_and_scenes_folder(run_dir, tmp_path, capsys):
    target = tmp_path / "out" / "c.json"
    assert _cli(["--scene_dir", str(run_dir / "scenes"), "--output", str(target), "--quiet",
                 "--depth_tol", "0.1"]) == 0
    report = json.loads(target.read_text())
    assert report["settings"]["depth_tol"] == 0.1 and len(report["scenes"]) == 2
    assert not math.isnan(report["overall"]["neighbour_psnr"])


def test_user_errors_are_one_line(tmp_path, capsys):
    assert _cli(["--scene_dir", str(tmp_path / "missing")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--scene_dir" in err[0] and "missing" in err[0]
    (tmp_path / "scenes").mkdir()
    (tmp_path / "scenes" / "broken.npz").write_text("not a zip")
    assert _cli(["--scene_dir", str(tmp_path), "--quiet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "broken.npz" in err[0]
    with pytest.raises(SystemExit):
        parse_args(["--scene_dir", str(tmp_path), "--depth_tol", "0"])
    assert "--depth_tol must be > 0" in capsys.readouterr().err


@pytest.mark.slow
def test_eval_py_dispatches_consistency(run_dir, repo_root, tmp_path):
    target = tmp_path / "e.json"
    done = subprocess.run([sys.executable, str(repo_root / "eval.py"), "--metrics", "consistency", "--scene_dir",
                           str(run_dir), "--output", str(target), "--quiet"], capture_output=True, text=True,
                          cwd=repo_root, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "overall" in done.stdout and json.loads(target.read_text())["overall"]["scenes"] == 2
