"""InpaintTrainer / SuperResTrainer: finetune_ckpt zero-pads the input channels; conditional steps run."""

import collections
import json

import pytest
import torch

from ivid.config import build
from ivid.training.variants import pad_input_channels


def test_pad_input_channels_zero_fills_the_new_channels():
    model_state = collections.OrderedDict(emb=torch.zeros(3, 2), conv=torch.zeros(5, 10, 3, 3), bias=torch.zeros(5))
    loaded = {"module.emb": torch.ones(3, 2), "module.conv": torch.randn(5, 4, 3, 3), "module.bias": torch.ones(5)}
    out = pad_input_channels(loaded, model_state, "x.pt")
    assert out["conv"].shape == (5, 10, 3, 3)
    assert torch.equal(out["conv"][:, :4], loaded["module.conv"])
    assert torch.count_nonzero(out["conv"][:, 4:]) == 0
    assert torch.equal(out["emb"], loaded["module.emb"])
    with pytest.raises(ValueError, match=r"x\.pt: conv has shape \(5, 12, 3, 3\)"):
        pad_input_channels({"conv": torch.zeros(5, 12, 3, 3)}, model_state, "x.pt")
    with pytest.raises(ValueError, match="has no 'conv'"):
        pad_input_channels({"other": torch.zeros(1)}, model_state, "x.pt")


def test_finetune_ckpt_turns_the_unconditional_model_into_the_conditional_one(toy_data, tmp_path, helpers):
    """G_c initialised from G_u: same weights, zero input channels, so the condition is ignored at first."""
    cfg = helpers.tiny_config("tiny_cond", max_steps=1)
    uncond_args = {**cfg["backbone"]["args"], "in_channels": 4}
    torch.manual_seed(3)
    uncond = build("backbone", {"name": "AdmUnet2d", "args": uncond_args})
    torch.save(uncond.state_dict(), tmp_path / "uncond.pt")
    cfg["trainer"]["args"]["finetune_ckpt"] = str(tmp_path / "uncond.pt")
    trainer = helpers.make_trainer(cfg, toy_data, tmp_path / "run")
    cond = trainer.backbone
    for name, value in uncond.state_dict().items():
        if name != "input_blocks.0.0.weight":
            assert torch.equal(cond.state_dict()[name], value), name
    first = cond.state_dict()["input_blocks.0.0.weight"]
    assert torch.equal(first[:, :4], uncond.state_dict()["input_blocks.0.0.weight"])
    assert torch.count_nonzero(first[:, 4:]) == 0
    x_t, t = torch.randn(2, 4, 32, 32), torch.tensor([10, 500])
    cond_input = torch.cat([x_t, torch.randn(2, 6, 32, 32)], dim=1)
    with torch.no_grad():
        assert torch.allclose(cond(cond_input, t, torch.tensor([1, 2])), uncond(x_t, t, torch.tensor([1, 2])),
                              atol=1e-5)
    assert all(ema.equal(p) for ema, p in zip(trainer.ema.params[0.999], trainer.mp.master_params))


def test_finetune_ckpt_with_more_channels_is_a_clear_error(toy_data, tmp_path, helpers):
    cfg = helpers.tiny_config("tiny_uncond", max_steps=1)
    bigger = build("backbone", {"name": "AdmUnet2d", "args": {**cfg["backbone"]["args"], "in_channels": 10}})
    torch.save(bigger.state_dict(), tmp_path / "big.pt")
    cfg = helpers.tiny_config("tiny_sr", max_steps=1, finetune_ckpt=str(tmp_path / "big.pt"))
    with pytest.raises(ValueError, match="big.pt"):
        helpers.make_trainer(cfg, toy_data, tmp_path / "run")


@pytest.mark.slow
def test_superres_trainer_steps_and_samples(toy_data, tmp_path, helpers):
    cfg = helpers.tiny_config("tiny_sr", max_steps=2, batch_size_per_gpu=2, i_log=1, i_sample=2,
                              num_sample_images=2, sample_steps=2)
    trainer = helpers.make_trainer(cfg, toy_data, tmp_path)
    batch = trainer.prepare_batch(trainer.stream.next())
    assert set(trainer.loss_inputs(batch)) >= {"x_0", "y"} and batch["y"].shape[-1] == 32
    trainer.run()
    assert (tmp_path / "samples" / "step0000002.png").is_file()


def _has_warp():
    try:
        from ivid.geometry import forward_backward_warp  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.slow
@pytest.mark.skipif(not _has_warp(), reason="ivid.geometry.forward_backward_warp not available yet")
@pytest.mark.parametrize("warp_on_device", [False, True])
def test_inpaint_trainer_steps_on_warp_pairs(toy_data, tmp_path, helpers, warp_on_device):
    cfg = helpers.tiny_config("tiny_cond", max_steps=2, batch_size_per_gpu=2, i_log=1, i_sample=2,
                              num_sample_images=2, sample_steps=2)
    cfg["dataset"]["args"]["warp_on_device"] = warp_on_device
    trainer = helpers.make_trainer(cfg, toy_data, tmp_path)
    batch = trainer.prepare_batch(trainer.stream.next())
    inputs = trainer.loss_inputs(batch)
    assert set(inputs) == {"x_0", "classes", "y", "mask", "mask_rgb"}
    assert inputs["y"].shape == (2, 4, 32, 32) and inputs["mask"].shape == (2, 1, 32, 32)
    trainer.run()
    assert (tmp_path / "samples" / "step0000002.png").is_file()
    # every log line carries the condition-usage probe (true vs shuffled conditions, known pixels)
    records = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    usage = [r["condition_usage"] for r in records if "step" in r and "loss" in r]
    assert len(usage) == 2
    for u in usage:
        assert set(u) == {"loss_true", "loss_shuffled", "gap", "known_depth", "known_rgb"}
        assert 0.0 <= u["known_rgb"] <= u["known_depth"] <= 1.0
        assert u["loss_true"] > 0 and u["loss_shuffled"] > 0 and -10 < u["gap"] < 1


def test_inpaint_trainer_warns_when_the_condition_is_ignored(capsys):
    """The warning rule on a stub: a gap below the threshold after the check step warns and is logged."""
    from ivid.training import InpaintTrainer
    from ivid.training import variants

    stub = InpaintTrainer.__new__(InpaintTrainer)
    stub.seed, stub.max_steps, stub.step = 0, 100, 5000
    stub._last_batch = {"mask": None}
    stub.mp = type("MP", (), {"autocast": lambda self: None})()
    stub.framework = None
    fake = {"loss_true": 1.0, "loss_shuffled": 1.01, "gap": 0.0099, "known_depth": 0.2, "known_rgb": 0.1}
    original = variants.condition_usage
    variants.condition_usage = lambda *a, **k: dict(fake)
    try:
        fields = stub.extra_log_fields()
        assert "condition_warning" in fields and "warp_atol" in fields["condition_warning"]
        assert "hardly uses its condition" in capsys.readouterr().out
        stub.step, stub._recent_gaps = 10, []  # before the check step: no warning
        assert "condition_warning" not in stub.extra_log_fields()
        fake["gap"] = 0.5  # a used condition: no warning
        stub.step, stub._recent_gaps = 5000, []
        assert "condition_warning" not in stub.extra_log_fields()
    finally:
        variants.condition_usage = original


@pytest.mark.parametrize("p_uncond_img,augments", [(0.2, ["prewarp_noise", "blur", "erode_rgb"]),
                                                   (0.0, ["prewarp_noise", "blur"])])
def test_nine_channel_conditional_model_trains(toy_data, tmp_path, helpers, p_uncond_img, augments):
    """A G_c without the mask_rgb channel (in_channels 9) trains, samples its grid and logs the condition probe:
    as the reference, mask_rgb exists only with the erode_rgb augment and is never fed when p_uncond_img > 0."""
    cfg = helpers.tiny_config("tiny_cond", max_steps=2, i_log=1, num_sample_images=2, i_sample=2, sample_steps=2)
    cfg["backbone"]["args"]["in_channels"] = 9
    cfg["framework"]["args"]["p_uncond_img"] = p_uncond_img
    cfg["dataset"]["args"]["augments"] = augments
    trainer = helpers.make_trainer(cfg, toy_data, tmp_path / "run")
    summary = trainer.run()
    assert summary["step"] == 2 and summary["skipped_steps"] == 0
    records = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "loss" in r] == [1, 2]
    assert all("condition_usage" in r for r in records if "loss" in r)
    assert any(p.name.endswith(".png") for p in (tmp_path / "run" / "samples").iterdir())


def test_ten_channel_model_is_fed_mask_rgb(toy_data, tmp_path, helpers):
    """The released G_c (10 channels, p_uncond_img 0, erode_rgb): the step's input has the mask_rgb channel."""
    cfg = helpers.tiny_config("tiny_cond", max_steps=1)
    trainer = helpers.make_trainer(cfg, toy_data, tmp_path / "run")
    batch = trainer.prepare_batch(trainer.stream.next())
    assert "mask_rgb" in batch and "mask_rgb" in trainer.loss_inputs(batch)
    seen = []
    trainer.backbone.register_forward_pre_hook(lambda module, inputs: seen.append(inputs[0].shape[1]))
    trainer.run_step(batch)
    assert seen == [10]
