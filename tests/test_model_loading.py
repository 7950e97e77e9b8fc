"""ivid.model_loading: safe loading, strict matching with clear errors, download fallback messages."""

import json
import os

import numpy as np
import pytest
import torch

from ivid import model_loading
from ivid.diffusion import InpaintCFG
from ivid.model_loading import (CheckpointError, CheckpointNotFoundError, load_backbone_weights, load_framework,
                                load_state_dict_file, resolve_checkpoint)
from ivid.models import AdmUnet2d

TINY = dict(image_size=16, in_channels=4, model_channels=8, out_channels=4, num_res_blocks=1,
            attention_resolutions=[8], channel_mult=[1, 2], num_classes=3, has_null_class=True,
            num_groups=4, num_heads=None, num_head_channels=8)


@pytest.fixture
def tiny_ckpt(tmp_path):
    model = AdmUnet2d(**TINY)
    path = tmp_path / "tiny.pt"
    torch.save(model.state_dict(), path)
    return model, path


def test_load_state_dict_file_and_wrappers(tmp_path, tiny_ckpt):
    model, path = tiny_ckpt
    sd = load_state_dict_file(path)
    assert list(sd) == list(model.state_dict())
    wrapped = tmp_path / "wrapped.pt"
    torch.save({"state_dict": {"module." + k: v for k, v in model.state_dict().items()}, "step": 3}, wrapped)
    assert list(load_state_dict_file(wrapped)) == list(model.state_dict())
    ambiguous = tmp_path / "ambiguous.pt"
    torch.save({"state_dict": model.state_dict(), "model": model.state_dict()}, ambiguous)
    with pytest.raises(CheckpointError, match="ambiguous.pt: expected a state_dict"):
        load_state_dict_file(ambiguous)
    not_dict = tmp_path / "list.pt"
    torch.save([torch.zeros(1)], not_dict)
    with pytest.raises(CheckpointError, match="list.pt: expected a state_dict"):
        load_state_dict_file(not_dict)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="garbage.pt: cannot read"):
        load_state_dict_file(garbage)
    with pytest.raises(CheckpointNotFoundError, match="nothing.pt"):
        load_state_dict_file(tmp_path / "nothing.pt")


def test_wrong_shape_and_missing_key_name_the_file(tmp_path, tiny_ckpt):
    _, path = tiny_ckpt
    sd = torch.load(path, weights_only=True)
    sd["input_blocks.0.0.weight"] = torch.zeros(8, 10, 3, 3)  # a 10-channel (InpaintCFG) first conv
    del sd["label_emb.weight"]
    sd["extra.weight"] = torch.zeros(1)
    bad = tmp_path / "bad_ckpt.pt"
    torch.save(sd, bad)
    with pytest.raises(CheckpointError) as err:
        load_backbone_weights(AdmUnet2d(**TINY), bad, config="configs/tiny.json")
    message = str(err.value)
    assert str(bad) in message
    assert "1 missing keys: label_emb.weight" in message
    assert "1 unexpected keys: extra.weight" in message
    assert "input_blocks.0.0.weight: checkpoint (8, 10, 3, 3) vs model (8, 4, 3, 3)" in message
    assert "config configs/tiny.json does not match checkpoint" in message


def test_many_missing_keys_are_counted(tiny_ckpt):
    model, _ = tiny_ckpt
    with pytest.raises(CheckpointError, match=r"missing keys: .*\(\+\d+ more\)"):
        load_backbone_weights(model, {"time_embed.0.freqs": torch.zeros(4)})


def test_fp16_file_into_either_variant(tmp_path, tiny_ckpt):
    model, _ = tiny_ckpt
    half = tmp_path / "half.pt"
    torch.save({k: v.half() for k, v in model.state_dict().items()}, half)
    fp32_model = load_backbone_weights(AdmUnet2d(**TINY), half)
    assert all(v.dtype == torch.float32 for v in fp32_model.state_dict().values())
    fp16_model = load_backbone_weights(AdmUnet2d(**TINY, use_fp16=True), half)
    assert fp16_model.dtype == torch.float16 and fp16_model.time_embed[1].weight.dtype == torch.float32


def test_resolve_existing_and_unknown(tmp_path, tiny_ckpt):
    _, path = tiny_ckpt
    assert resolve_checkpoint(path) == str(path)
    with pytest.raises(CheckpointNotFoundError, match="other.pt: checkpoint file not found"):
        resolve_checkpoint(tmp_path / "other.pt")


def test_offline_download_error_says_what_to_fetch(tmp_path, monkeypatch):
    import huggingface_hub

    monkeypatch.setattr(model_loading, "hub_reachable", lambda timeout=None: (True, ""))
    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", offline)
    target = tmp_path / "ckpts" / "imagenet128_cond.pt"
    with pytest.raises(CheckpointError) as err:
        resolve_checkpoint(target)
    message = str(err.value)
    assert "https://huggingface.co/JeffreyXiang/ivid/resolve/main/imagenet128_cond.pt" in message
    assert str(target) in message and "network is unreachable" in message
    assert not target.exists() and os.listdir(target.parent) == []  # no partial files left


def test_download_moves_file_into_place(tmp_path, monkeypatch):
    import huggingface_hub

    monkeypatch.setattr(model_loading, "hub_reachable", lambda timeout=None: (True, ""))
    def fake_download(repo_id, filename, local_dir):
        assert repo_id == "JeffreyXiang/ivid"
        path = os.path.join(local_dir, filename)
        torch.save({"w": torch.zeros(1)}, path)
        return path

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    target = tmp_path / "imagenet128_uncond.pt"
    assert resolve_checkpoint(target) == str(target)
    assert os.listdir(tmp_path) == ["imagenet128_uncond.pt"]


def test_load_framework_fixture(fixtures_dir):
    unet = fixtures_dir / "unet"
    cfg = json.loads((unet / "small_cond10_config.json").read_text())
    fw = load_framework(cfg, unet / "small_cond10_state_dict.pt", device="cpu")
    assert isinstance(fw, InpaintCFG) and not fw.backbone.training
    assert fw.backbone.dtype == torch.float32  # use_fp16 defaults to False off CUDA
    io = np.load(unet / "small_cond10_io.npz", allow_pickle=False)
    with torch.no_grad():
        out = fw.backbone(torch.from_numpy(io["x"]), torch.from_numpy(io["t"]), torch.from_numpy(io["classes"]))
    np.testing.assert_allclose(out.numpy(), io["out_cls_f32"], atol=1e-4, rtol=1e-4)
    fw16 = load_framework(cfg, unet / "small_cond10_state_dict.pt", device="cpu", use_fp16=True)
    assert fw16.backbone.dtype == torch.float16


def test_load_framework_config_mismatch_names_both(configs_dir, fixtures_dir):
    with pytest.raises(CheckpointError, match="tiny_cond.json does not match checkpoint .*small_cond10_state_dict.pt"):
        load_framework(configs_dir / "tiny_cond.json", fixtures_dir / "unet" / "small_cond10_state_dict.pt",
                       device="cpu")


def test_released_table():
    assert set(model_loading.RELEASED_CHECKPOINTS) == {"imagenet128_uncond.pt", "imagenet128_cond.pt"}
