"""inference/sample.py end to end on tiny random-weight models (CPU, 32x32, few steps)."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from ivid.sampling.presets import resolve_request
from ivid.scene import load_scene
from repo_scripts import load_script

ROOT = pathlib.Path(__file__).resolve().parents[2]
S = 32
FAST = ["--steps_uncond", "3", "--steps_cond", "2", "--device", "cpu", "--no_progress"]


cli = load_script("inference/sample.py", "sample_cli")


@pytest.fixture(scope="module")
def models(tiny_models):
    """Random-weight checkpoints of configs/tiny_*.json (32x32, ``tiny_models``) as CLI arguments."""
    return [arg for key, value in tiny_models.items() for arg in (f"--{key}", value)]


def run(models, out, *extra):
    return cli.main(cli.parse_args(models + FAST + ["--output_dir", str(out), *extra]))


def _files(run_dir, sub):
    return sorted(os.listdir(os.path.join(run_dir, sub)))


def _size(path):
    with Image.open(path) as im:
        return im.size


def test_clip_denoised_option_reaches_the_samplers(models, tmp_path, monkeypatch):
    """--clip_denoised is off by default (as the reference's sample.py) and clamps every x0 when given."""
    def resolved(argv):
        return resolve_request(cli.to_request(cli.parse_args(argv)))

    assert resolved(models).clip_denoised is False
    assert resolved(models + ["--clip_denoised"]).clip_denoised is True
    assert resolved(["--preset", "demo"]).clip_denoised is True  # the small demo models need it
    assert resolved(["--preset", "demo", "--no-clip_denoised"]).clip_denoised is False
    from ivid.diffusion import DdimSampler

    seen = []
    original = DdimSampler.sample

    def spy(self, *args, **kwargs):
        seen.append(kwargs.get("clip_denoised"))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(DdimSampler, "sample", spy)
    run(models, tmp_path / "off", "--viewset", "uncond", "--seeds", "0")
    run(models, tmp_path / "on", "--viewset", "uncond", "--seeds", "0", "--clip_denoised")
    assert seen == [False, True]


def test_sampler_option_picks_the_samplers_and_names_the_run(models, tmp_path, monkeypatch):
    """--sampler: auto = the reference (DDIM for G_u below 1000 steps, DDIM for G_c); dpmpp_2m for both;
    the folder name and args.json record it; the same seed starts the first view from the same noise."""
    from ivid.diffusion import DdimSampler, Dpmpp2mSampler

    seen = []
    for cls in (DdimSampler, Dpmpp2mSampler):
        def spy(self, *args, _original=cls.sample, **kwargs):
            seen.append((type(self).__name__, kwargs["noise"].clone()))
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(cls, "sample", spy)
    auto = run(models, tmp_path, "--viewset", "random", "--seeds", "0")
    fast = run(models, tmp_path, "--viewset", "random", "--seeds", "0", "--sampler", "dpmpp_2m")
    assert os.path.basename(auto) == "viewset_random_steps_u3_c2_guidance3.0"
    assert os.path.basename(fast) == "viewset_random_steps_u3_c2_guidance3.0_samplerdpmpp_2m"
    assert [name for name, _ in seen] == ["DdimSampler", "DdimSampler", "Dpmpp2mSampler", "Dpmpp2mSampler"]
    assert torch.equal(seen[0][1], seen[2][1])  # same initial noise of the first view
    assert json.load(open(os.path.join(fast, "args.json")))["sampler"] == "dpmpp_2m"
    for bad, message in ((["--sampler", "ddpm"], "--steps_uncond 3"), (["--sampler", "dpmpp_2m", "--eta", "1.5"],
                                                                      r"--eta 1.5: must be in \[0, 1\]")):
        with pytest.raises(ValueError, match=message):
            run(models, tmp_path / "bad", "--viewset", "random", "--seeds", "0", *bad)
    assert not (tmp_path / "bad").exists()


def test_uncond_run(models, tmp_path):
    run_dir = run(models, tmp_path, "--viewset", "uncond", "--seeds", "0-2", "--batchsize", "2")
    assert os.path.basename(run_dir) == "viewset_uncond_steps_u3_c2_guidance3.0"
    names = ["class000_seed00000", "class001_seed00001", "class002_seed00002"]
    assert _files(run_dir, "results") == [n + ".png" for n in names]
    assert _files(run_dir, "grids") == sorted([n + ".png" for n in names] + [n + "_depth.png" for n in names])
    assert _files(run_dir, "conds") == []
    assert _files(run_dir, "scenes") == [n + ".npz" for n in names]
    assert _size(os.path.join(run_dir, "results", names[0] + ".png")) == (S, S)
    views = load_scene(os.path.join(run_dir, "scenes", names[1] + ".npz"))
    assert len(views) == 1 and views[0]["rgb"].shape == (S, S, 3)
    assert views[0]["depth"].min() >= 0.6 - 1e-5 and views[0]["depth"].max() <= 5 + 1e-4
    assert json.load(open(os.path.join(run_dir, "args.json")))["viewset"] == "uncond"


@pytest.mark.slow
def test_random_run_is_deterministic(models, tmp_path):
    a = run(models, tmp_path / "a", "--viewset", "random", "--num_samples", "2", "--classes", "uniform")
    b = run(models, tmp_path / "b", "--viewset", "random", "--num_samples", "2", "--classes", "uniform")
    assert _files(a, "results") == ["00000.png", "00001.png"]
    assert _files(a, "conds") == ["00000.png", "00000_depth.png", "00001.png", "00001_depth.png"]
    assert _size(os.path.join(a, "grids", "00001.png")) == (2 * (S + 2) + 2, S + 4)
    for name in ("00000", "00001"):
        va, vb = (load_scene(os.path.join(d, "scenes", name + ".npz")) for d in (a, b))
        assert len(va) == 2
        for x, y in zip(va, vb):
            assert np.array_equal(x["rgb"], y["rgb"]) and np.array_equal(x["depth"], y["depth"])
            assert np.array_equal(x["modelview"], y["modelview"])
        assert not np.allclose(va[0]["modelview"], va[1]["modelview"])  # a real novel view
        with Image.open(os.path.join(a, "results", name + ".png")) as im:
            assert np.array_equal(np.asarray(im), va[1]["rgb"])  # results = the novel view


@pytest.mark.slow
def test_3x9_run(models, tmp_path):
    run_dir = run(models, tmp_path, "--viewset", "3x9", "--seeds", "5", "--classes", "7", "--steps_cond", "1")
    assert _files(run_dir, "scenes") == ["class007_seed00005.npz"]
    views = load_scene(os.path.join(run_dir, "scenes", "class007_seed00005.npz"))
    assert len(views) == 27
    assert _files(run_dir, "results") == []  # the fusion protocol: render.py --traj random fills it
    grid = (9 * (S + 2) + 2, 3 * (S + 2) + 2)
    for sub in ("grids", "conds"):
        assert _files(run_dir, sub) == ["class007_seed00005.png", "class007_seed00005_depth.png"]
        assert _size(os.path.join(run_dir, sub, "class007_seed00005.png")) == grid


@pytest.mark.slow
def test_custom_viewset_file_and_360(models, tmp_path):
    path = tmp_path / "orbit.json"
    path.write_text(json.dumps([[0, 0], [0.3, 0.1], [-0.3, -0.1]]))
    run_dir = run(models, tmp_path / "file", "--viewset", str(path), "--seeds", "1")
    assert os.path.basename(run_dir).startswith("viewset_orbit_")
    assert len(load_scene(os.path.join(run_dir, "scenes", "class001_seed00001.npz"))) == 3
    run_dir = run(models, tmp_path / "360", "--viewset", "360", "--seeds", "2", "--steps_cond", "1")
    views = load_scene(os.path.join(run_dir, "scenes", "class002_seed00002.npz"))
    assert len(views) == 20
    assert _size(os.path.join(run_dir, "grids", "class002_seed00002.png")) == (20 * (S + 2) + 2, S + 4)


@pytest.mark.slow
def test_image_to_3d_with_given_depth(models, tmp_path):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)).save(tmp_path / "photo.png")
    np.savez(tmp_path / "photo_depth.npz", arr_0=rng.uniform(1000, 9000, (40, 60)).astype(np.float16))
    run_dir = run(models, tmp_path / "out", "--input_image", str(tmp_path / "photo.png"), "--input_depth",
                  str(tmp_path / "photo_depth.npz"), "--viewset", "random", "--seeds", "0,1")
    assert os.path.basename(run_dir) == "image_photo_viewset_random_steps_c2_guidance3.0"
    assert _files(run_dir, "scenes") == ["seed00000.npz", "seed00001.npz"]  # null class without --classes
    views = load_scene(os.path.join(run_dir, "scenes", "seed00000.npz"))
    with Image.open(tmp_path / "photo.png") as im:  # view 0 is the photo: resized to 32x48, centre crop
        expected = np.asarray(im.resize((48, 32), Image.LANCZOS))[:, 8:40]
    assert np.abs(views[0]["rgb"].astype(int) - expected).max() <= 1


def test_errors(models, tmp_path):
    with pytest.raises(ValueError, match="--seeds"):
        run(models, tmp_path, "--seeds", "3-1")
    with pytest.raises(ValueError, match="--classes"):
        run(models, tmp_path, "--classes", "dogs")
    with pytest.raises(ValueError, match="--classes"):
        run(models, tmp_path, "--classes", "10")  # tiny models have 10 classes
    bad = tmp_path / "bad.json"
    bad.write_text("[[0, 0], [0.1]]")
    with pytest.raises(ValueError, match="--viewset.*bad.json"):
        run(models, tmp_path, "--viewset", str(bad))
    with pytest.raises(ValueError, match="--input_image"):
        run(models, tmp_path, "--viewset", "uncond", "--input_image", "x.png", "--input_depth", "x.npz")
    with pytest.raises(FileNotFoundError, match="--midas_ckpt"):
        run(models, tmp_path, "--viewset", "random", "--input_image", "x.png", "--midas_ckpt",
            str(tmp_path / "none.pt"))
    with pytest.raises(ValueError, match="are --config_uncond and --config_cond swapped"):
        swapped = models[:]
        swapped[1], swapped[3] = swapped[3], swapped[1]
        run(swapped, tmp_path, "--viewset", "random")
    mismatched = models[:]
    mismatched[5] = mismatched[7]  # the G_c weights given as --ckpt_uncond
    with pytest.raises(RuntimeError, match="--ckpt_uncond"):
        run(mismatched, tmp_path, "--viewset", "uncond")
    missing = models[:]
    missing[5] = str(tmp_path / "nowhere.pt")
    with pytest.raises(FileNotFoundError, match="--ckpt_uncond.*nowhere.pt"):
        run(missing, tmp_path, "--viewset", "uncond")


def test_released_checkpoint_offline(models, tmp_path, monkeypatch):
    import huggingface_hub

    def offline(*args, **kwargs):
        raise OSError("We couldn't connect to 'https://huggingface.co' (offline)")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", offline)
    args = models[:]
    args[5] = str(tmp_path / "ckpts" / "imagenet128_uncond.pt")
    with pytest.raises(RuntimeError, match="--ckpt_uncond.*imagenet128_uncond.pt.*download"):
        run(args, tmp_path, "--viewset", "uncond")


def _tiny_preset(models, tmp_path, **defaults):
    from ivid.sampling.presets import Preset

    files = dict(zip(models[0::2], models[1::2]))
    return Preset(files["--config_uncond"], files["--config_cond"], files["--ckpt_uncond"], files["--ckpt_cond"],
                  sample_defaults={"output_dir": str(tmp_path / "preset_out"), **defaults})


def test_missing_preset(tmp_path, monkeypatch):
    import ivid.sampling.run as sampling_run
    from ivid.sampling.presets import Preset

    monkeypatch.setitem(sampling_run.PRESETS, "demo", Preset(*(str(tmp_path / n) for n in
                                                               ("u.json", "c.json", "u.pt", "c.pt"))))
    with pytest.raises(FileNotFoundError, match="--preset demo: missing .*u.json.*c.pt"):
        cli.main(cli.parse_args(["--preset", "demo", "--output_dir", str(tmp_path), "--device", "cpu"]))


def test_preset_defaults_apply_unless_given(models, tmp_path, monkeypatch):
    """--preset picks the models and the defaults that suit them; options given on the command line win."""
    import ivid.sampling.run as sampling_run

    preset = _tiny_preset(models, tmp_path, steps_uncond=2, steps_cond=1, atol=0.25, erode_rgb=0, seeds="5")
    monkeypatch.setitem(sampling_run.PRESETS, "demo", preset)
    args = cli.parse_args(["--preset", "demo", "--atol", "0.5", "--viewset", "uncond", "--device", "cpu"])
    assert args.steps_uncond is None and args.atol == 0.5  # the CLI passes what was given; the library resolves
    request = resolve_request(cli.to_request(args))
    assert (request.steps_uncond, request.steps_cond, request.erode_rgb, request.seeds) == (2, 1, 0, "5")
    assert request.atol == 0.5 and request.rtol == resolve_request(cli.SampleRequest()).rtol == 0.03
    run_dir = cli.main(args)
    assert run_dir == os.path.join(preset.sample_defaults["output_dir"], "viewset_uncond_steps_u2_c1_guidance3.0")
    saved = json.load(open(os.path.join(run_dir, "args.json")))
    assert saved["ckpt_uncond"] == preset.ckpt_uncond and saved["config_cond"] == preset.config_cond
    assert _files(run_dir, "scenes") == ["class005_seed00005.npz"]
    # without --preset the reference defaults stay
    assert resolve_request(cli.to_request(cli.parse_args([]))).steps_uncond == 1000


def test_help_shows_the_defaults_of_the_preset(capsys):
    with pytest.raises(SystemExit):
        cli.parse_args(["--help"])
    plain = " ".join(capsys.readouterr().out.split())
    with pytest.raises(SystemExit):
        cli.parse_args(["--preset", "demo", "--help"])
    demo = " ".join(capsys.readouterr().out.split())
    assert "(on 1/depth) (default: 0.03)" in plain and "(on 1/depth) (default: 0.1)" in demo
    assert "(default: configs/demo_uncond.json)" in demo and "(default: 100)" in demo


@pytest.mark.slow
def test_subprocess_run(models, tmp_path):
    cmd = [sys.executable, str(ROOT / "inference" / "sample.py"), *models, *FAST,
           "--viewset", "uncond", "--seeds", "4", "--output_dir", str(tmp_path)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    run_dir = tmp_path / "viewset_uncond_steps_u3_c2_guidance3.0"
    assert _files(run_dir, "scenes") == ["class004_seed00004.npz"]
    bad = subprocess.run(cmd + ["--seeds", "x"], capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0 and "--seeds" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.slow
def test_two_processes_split_the_samples(models, tmp_path, monkeypatch):
    """The multi-GPU path (one spawned process per device), exercised with two CPU 'devices'."""
    import ivid.sampling.run as sampling_run

    single = run(models, tmp_path / "one", "--viewset", "uncond", "--seeds", "0-2", "--batchsize", "2")
    monkeypatch.setattr(sampling_run, "sampling_devices", lambda device: [torch.device("cpu")] * 2)
    double = run(models, tmp_path / "two", "--viewset", "uncond", "--seeds", "0-2", "--batchsize", "2")
    assert _files(double, "scenes") == _files(single, "scenes") == [f"class{s:03d}_seed{s:05d}.npz" for s in range(3)]
    for name in _files(single, "scenes"):
        a, b = (load_scene(os.path.join(d, "scenes", name))[0] for d in (single, double))
        assert np.abs(a["rgb"].astype(int) - b["rgb"].astype(int)).max() <= 1  # other batch mates, same sample
