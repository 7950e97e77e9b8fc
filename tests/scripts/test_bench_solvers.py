"""scripts/bench_solvers.py runs end to end on the demo models with tiny settings (so it cannot rot)."""

import json
import pathlib

import pytest
from PIL import Image
from repo_scripts import load_script

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _bench():
    return load_script("scripts/bench_solvers.py", "bench_solvers")


@pytest.mark.skipif(not (ROOT / "ckpts" / "demo" / "cond.pt").is_file(), reason="demo checkpoints absent")
def test_bench_solvers_tiny_run(tmp_path, capsys):
    bench = _bench()
    args = bench.parse_args(["--seeds", "0-1", "--steps", "2,4", "--ref_steps", "4",
                             "--samplers", "ddim,dpmpp_2m", "--output", str(tmp_path / "b.json"),
                             "--image", str(tmp_path / "b.png")])
    bench.main(args)
    info = json.loads((tmp_path / "b.json").read_text())
    for kind in ("G_u", "G_c"):
        rows = {(r["sampler"], r["steps"]): r for r in info["results"][kind]["rows"]}
        assert set(rows) == {("ddim", 2), ("ddim", 4), ("dpmpp_2m", 2), ("dpmpp_2m", 4)}
        # DDIM at the reference's step count from the same noise (and in-loop seeds) is the reference
        assert rows[("ddim", 4)]["rmse_rgb"] == 0 and rows[("ddim", 4)]["rmse_depth"] == 0
        assert rows[("dpmpp_2m", 4)]["rmse_rgb"] > 0  # another grid and update
    out = capsys.readouterr().out
    assert "| G_c | dpmpp_2m |" in out and "2 steps" in out
    width, height = Image.open(tmp_path / "b.png").size
    assert width > 0 and height > 0


def test_bench_solvers_bad_options_are_one_line_errors(tmp_path):
    bench = _bench()
    with pytest.raises(ValueError, match="--samplers"):
        bench.parse_args(["--samplers", "euler"])
    with pytest.raises(ValueError, match="--steps"):
        bench.parse_args(["--steps", "5,x"])
    with pytest.raises(FileNotFoundError, match="--ckpt_cond"):
        bench.load_models(bench.parse_args(["--ckpt_cond", str(tmp_path / "missing.pt")]), "cpu")
