"""--precision / --compile: option checks, autocast of the UNet only, compile fallback, run folder records."""

import json
import os
import warnings

import numpy as np
import pytest
import torch

from ivid.errors import OptionError, RunFolderError
from ivid.sampling import precision as P
from ivid.sampling.presets import resolve_request
from ivid.scene import load_scene
from repo_scripts import load_script


def _cli():
    return load_script("inference/sample.py", "sample_cli_precision")


def _inputs():
    g = torch.Generator().manual_seed(0)
    return torch.randn(2, 4, 32, 32, generator=g), torch.tensor([10, 900]), torch.tensor([1, -1])


def test_check_precision():
    P.check_precision("fp32", "cpu")
    P.check_precision("bf16", "cpu")
    P.check_precision("fp16", "cuda")
    fp16_on_cpu = r"^--precision fp16: needs a CUDA GPU, this run is on cpu; use bf16 or fp32$"
    with pytest.raises(OptionError, match=fp16_on_cpu):
        P.check_precision("fp16", "cpu")
    with pytest.raises(OptionError, match="--precision 'fp8'"):
        P.check_precision("fp8", "cpu")
    assert P.master_weights_fp16("fp32") is None and P.master_weights_fp16("bf16") is False


def test_fp32_leaves_the_model_alone(tiny_models):
    from ivid.model_loading import load_framework

    backbone = load_framework(tiny_models["config_uncond"], tiny_models["ckpt_uncond"], "cpu").backbone
    assert P.prepare_backbone(backbone, "fp32") is backbone
    assert "forward" not in vars(backbone)  # the class's forward, untouched


def test_bf16_autocasts_the_forward_and_returns_float32(tiny_models):
    from ivid.model_loading import load_framework

    exact = load_framework(tiny_models["config_uncond"], tiny_models["ckpt_uncond"], "cpu").backbone
    fast = P.prepare_backbone(load_framework(tiny_models["config_uncond"], tiny_models["ckpt_uncond"], "cpu").backbone,
                              "bf16")
    x, t, c = _inputs()
    with torch.no_grad():
        a, b = exact(x, t, c), fast(x, t, c)
        assert not torch.is_autocast_enabled("cpu")  # only inside the model's forward
    assert b.dtype == torch.float32 and torch.isfinite(b).all()
    assert not torch.equal(a, b) and (a - b).abs().max() < 0.1 * a.abs().max()
    assert fast.state_dict().keys() == exact.state_dict().keys()


def test_compile_falls_back_with_one_warning(monkeypatch, tiny_models):
    from ivid.model_loading import load_framework

    backbone = load_framework(tiny_models["config_uncond"], tiny_models["ckpt_uncond"], "cpu").backbone
    x, t, c = _inputs()
    with torch.no_grad():
        expected = backbone(x, t, c)

    def broken_compile(fn, **kwargs):
        def run(*args, **kw):
            raise RuntimeError("InvalidCxxCompiler: No working C++ compiler found\nmore details")
        return run

    monkeypatch.setattr(P.torch, "compile", broken_compile)
    P.prepare_backbone(backbone, "fp32", compile=True, name="G_u")
    with warnings.catch_warnings(record=True) as caught, torch.no_grad():
        warnings.simplefilter("always")
        first, second = backbone(x, t, c), backbone(x, t, c)
    assert torch.equal(first, expected) and torch.equal(second, expected)
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1 and messages[0].startswith("--compile: torch.compile does not work here for G_u")
    assert "\n" not in messages[0]

    def unsupported(fn, **kwargs):
        raise RuntimeError("Python 3.99 is not supported by torch.compile")

    monkeypatch.setattr(P.torch, "compile", unsupported)
    with pytest.warns(RuntimeWarning, match="--compile: torch.compile does not work here"):
        forward = P.compile_forward(lambda v: v + 1)
    assert forward(1) == 2


@pytest.fixture(scope="module")
def cli_models(tiny_models):
    return [a for key, value in tiny_models.items() for a in (f"--{key}", value)]


FAST = ["--steps_uncond", "3", "--steps_cond", "2", "--device", "cpu", "--no_progress", "--viewset", "random",
        "--seeds", "0-1"]


def test_cli_precision_and_compile_are_recorded(cli_models, tmp_path, monkeypatch):
    cli = _cli()
    given = cli.parse_args(cli_models)
    assert given.precision is None and given.compile is None  # not given: the library fills the defaults
    resolved = resolve_request(cli.to_request(given))
    assert resolved.precision == "fp32" and resolved.compile is False  # the reference: fp32, not compiled

    def run(*extra):
        return cli.main(cli.parse_args(cli_models + FAST + ["--output_dir", str(tmp_path), *extra]))

    with pytest.raises(OptionError, match="^--precision fp16: needs a CUDA GPU"):
        run("--precision", "fp16")
    assert not tmp_path.exists() or not os.listdir(tmp_path)
    exact = run()
    fast = run("--precision", "bf16")
    assert os.path.basename(exact) == "viewset_random_steps_u3_c2_guidance3.0"
    assert os.path.basename(fast) == "viewset_random_steps_u3_c2_guidance3.0_precisionbf16"
    record = json.load(open(os.path.join(fast, "args.json")))
    assert record["precision"] == "bf16" and record["output_settings"]["precision"] == "bf16"
    assert record["compile"] is False and "compile" not in record["output_settings"]
    a = load_scene(os.path.join(exact, "scenes", "class000_seed00000.npz"))
    b = load_scene(os.path.join(fast, "scenes", "class000_seed00000.npz"))
    assert not np.array_equal(a[0]["rgb"], b[0]["rgb"])  # bf16 changes the samples (slightly)

    # --compile adds seeds to the same folder (it changes float rounding only); where torch.compile
    # fails the run goes on uncompiled with one warning and gives the same files
    monkeypatch.setattr(P.torch, "compile", lambda fn, **kw: (_ for _ in ()).throw(RuntimeError("no compiler")))
    with pytest.warns(RuntimeWarning, match="--compile"):
        again = cli.main(cli.parse_args(cli_models + FAST[:-1] + ["0-2", "--output_dir", str(tmp_path), "--compile"]))
    assert again == exact and json.load(open(os.path.join(exact, "args.json")))["compile"] is True
    c = load_scene(os.path.join(exact, "scenes", "class000_seed00000.npz"))
    assert all(np.array_equal(x["rgb"], y["rgb"]) for x, y in zip(a, c))


def test_a_precision_change_is_refused_in_one_folder(cli_models, tmp_path):
    """Folders of other precisions have other names; a record naming another precision is refused."""
    cli = _cli()
    run_dir = cli.main(cli.parse_args(cli_models + FAST + ["--output_dir", str(tmp_path)]))
    path = os.path.join(run_dir, "args.json")
    record = json.load(open(path))
    record["output_settings"]["precision"] = "bf16"
    json.dump(record, open(path, "w"))
    with pytest.raises(RunFolderError, match="precision 'bf16' there, 'fp32' now"):
        cli.main(cli.parse_args(cli_models + FAST + ["--output_dir", str(tmp_path)]))


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_cli_reduced_precision_on_cuda(cli_models, tmp_path, precision):
    cli = _cli()
    args = cli_models + ["--steps_uncond", "3", "--steps_cond", "2", "--device", "cuda", "--no_progress",
                         "--viewset", "random", "--seeds", "0", "--output_dir", str(tmp_path), "--precision", precision]
    run_dir = cli.main(cli.parse_args(args))
    assert run_dir.endswith(f"_precision{precision}")
    views = load_scene(os.path.join(run_dir, "scenes", "class000_seed00000.npz"))
    assert len(views) == 2 and np.isfinite(views[1]["depth"]).all()
