"""AdmUnet2d: state_dict layout of every released config, numerics vs the reference fixtures."""

import json
import math

import numpy as np
import pytest
import torch

from ivid.models import BACKBONES, AdmUnet2d
from ivid.models.adm import _AttentionBlock

RELEASED = [
    "rgbd_imagenet_adm_128_large_cfg",
    "rgbd_imagenet_adm_128_large_cond",
    "rgbd_imagenet_adm_256_128_small_sr",
    "rgbd_singlecategory_adm_128_small",
    "rgbd_singlecategory_adm_128_small_cond",
    "rgbd_singlecategory_adm_256_128_small_sr",
]

F32 = dict(atol=1e-4, rtol=1e-4)
F64 = dict(atol=1e-5, rtol=1e-5)


def _schema(fixtures_dir, name):
    return json.loads((fixtures_dir / "schemas" / f"{name}.json").read_text())


@pytest.mark.parametrize("fp32", [False, True], ids=["as_released", "fp32"])
@pytest.mark.parametrize("name", RELEASED)
def test_state_dict_matches_schema(fixtures_dir, configs_dir, name, fp32):
    schema = _schema(fixtures_dir, name + ("_fp32" if fp32 else ""))
    args = json.loads((configs_dir / f"{name}.json").read_text())["backbone"]["args"]
    if fp32:
        args = dict(args, use_fp16=False)
    assert args == schema["backbone_args"]
    with torch.device("meta"):
        model = AdmUnet2d(**args)
    ours = [[k, list(v.shape), str(v.dtype).replace("torch.", "")] for k, v in model.state_dict().items()]
    assert ours == schema["state_dict"]
    assert sum(p.numel() for p in model.parameters()) == schema["num_parameters"]
    assert [name for name, _ in model.named_buffers()] == schema["buffers"]
    assert model.dtype == (torch.float16 if schema["use_fp16_effective"] else torch.float32)


def test_registry():
    assert BACKBONES == {"AdmUnet2d": AdmUnet2d}


def _model(args, state_dict, **overrides):
    model = AdmUnet2d(**dict(args, **overrides)).eval()
    model.load_state_dict(state_dict)
    return model


def _inputs(io, dtype=torch.float32):
    return torch.from_numpy(io["x"]).to(dtype), torch.from_numpy(io["t"])


def test_fixture_outputs_float32(ref):
    io, args, state_dict = ref
    model = _model(args, state_dict)
    x, t = _inputs(io)
    middle = []
    model.middle_block.register_forward_hook(lambda module, args, out: middle.append(out))  # returns None
    with torch.no_grad():
        out_cls = model(x, t, torch.from_numpy(io["classes"]))
        out_none = model(x, t, None)
        out_null = model(x, t, torch.from_numpy(io["classes_allnull"]))
        np.testing.assert_allclose(model.time_embed[0](t).numpy(), io["pos_enc_f32"], **F32)
        np.testing.assert_allclose(model.embed(t, torch.from_numpy(io["classes"])).numpy(), io["emb_f32"], **F32)
    assert out_cls.dtype == torch.float32 and out_cls.shape == (4, 4, 32, 32)
    np.testing.assert_allclose(out_cls.numpy(), io["out_cls_f32"], **F32)
    np.testing.assert_allclose(out_none.numpy(), io["out_none_f32"], **F32)
    np.testing.assert_allclose(out_null.numpy(), io["out_allnull_f32"], **F32)
    assert torch.equal(out_none, out_null)  # null label == no label, bit for bit
    np.testing.assert_allclose(middle[0].numpy(), io["middle_out_f32"], **F32)


def test_fixture_outputs_float64(ref):
    io, args, state_dict = ref
    model = _model(args, state_dict).double()
    assert model.dtype == torch.float64
    x, t = _inputs(io, torch.float64)
    with torch.no_grad():
        out_cls = model(x, t, torch.from_numpy(io["classes"]))
        out_none = model(x, t)
        emb = model.embed(t, torch.from_numpy(io["classes"]))
    assert out_cls.dtype == torch.float64
    np.testing.assert_allclose(out_cls.numpy(), io["out_cls_f64"], **F64)
    np.testing.assert_allclose(out_none.numpy(), io["out_none_f64"], **F64)
    np.testing.assert_allclose(emb.numpy(), io["emb_f64"], **F64)


def test_fp16_model_from_fp32_file(ref):
    """use_fp16=True model loads the float32 file (torso convs rounded to half) and matches loosely."""
    io, args, state_dict = ref
    model = _model(args, state_dict, use_fp16=True)
    assert model.dtype == torch.float16
    assert model.input_blocks[1][0].in_layers[2].weight.dtype == torch.float16
    assert model.input_blocks[1][0].emb_layers[1].weight.dtype == torch.float32
    assert model.out[2].weight.dtype == torch.float32
    half_keys = [k for k, v in model.state_dict().items() if v.dtype == torch.float16]
    assert all(k.startswith(("input_blocks", "middle_block", "output_blocks")) for k in half_keys)
    x, t = _inputs(io)
    with torch.no_grad():
        out = model(x, t, torch.from_numpy(io["classes"]))
    assert out.dtype == torch.float32
    np.testing.assert_allclose(out.numpy(), io["out_cls_fp16model"], atol=3e-2, rtol=0)


def test_fp16_file_into_fp32_model(ref):
    io, args, state_dict = ref
    half_file = {k: v.half() for k, v in state_dict.items()}
    model = _model(args, half_file)
    assert all(v.dtype == torch.float32 for v in model.state_dict().values())
    for key in ("input_blocks.1.0.in_layers.2.weight", "label_emb.weight", "out.2.bias"):
        assert torch.equal(model.state_dict()[key], state_dict[key].half().float())
    x, t = _inputs(io)
    with torch.no_grad():
        out = model(x, t, torch.from_numpy(io["classes"]))
    # every tensor (embeddings and norms too) was rounded to half: a sanity bound only
    np.testing.assert_allclose(out.numpy(), io["out_cls_f32"], atol=0.1, rtol=0)


def test_load_with_assign_casts(ref):
    io, args, state_dict = ref
    with torch.device("meta"):
        model = AdmUnet2d(**dict(args, use_fp16=True))
    model.load_state_dict(state_dict, assign=True)
    sd = model.state_dict()
    assert sd["input_blocks.0.0.weight"].dtype == torch.float16 and sd["input_blocks.0.0.weight"].device.type == "cpu"
    assert sd["time_embed.1.weight"].dtype == torch.float32


def _legacy_attention(qkv: torch.Tensor, num_heads: int) -> torch.Tensor:
    """The reference formula: legacy head layout, ch^-1/4 on q and k, softmax in float32."""
    bs, width, length = qkv.shape
    ch = width // (3 * num_heads)
    q, k, v = qkv.reshape(bs * num_heads, ch * 3, length).split(ch, dim=1)
    scale = 1 / math.sqrt(math.sqrt(ch))
    weight = torch.einsum("bct,bcs->bts", q * scale, k * scale)
    weight = torch.softmax(weight.float(), dim=-1).type(weight.dtype)
    return torch.einsum("bts,bcs->bct", weight, v).reshape(bs, -1, length)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_sdpa_attention_equals_legacy_formula(dtype):
    torch.manual_seed(0)
    block = _AttentionBlock(64, num_heads=4, num_groups=8).to(dtype)
    torch.nn.init.normal_(block.proj_out.weight, std=0.2)
    torch.nn.init.normal_(block.qkv.weight, std=0.3)
    x = torch.randn(2, 64, 6, 5, dtype=dtype)
    with torch.no_grad():
        flat = x.reshape(2, 64, -1)
        expected = (flat + block.proj_out(_legacy_attention(block.qkv(block.norm(flat)), 4))).reshape(x.shape)
        out = block(x)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(out, x)  # attention actually contributes


def _tiny(**overrides):
    args = dict(image_size=16, in_channels=4, model_channels=16, out_channels=4, num_res_blocks=1,
                attention_resolutions=[8], channel_mult=[1, 2], num_groups=4, num_heads=None,
                num_head_channels=8, num_classes=3, has_null_class=True)
    args.update(overrides)
    return AdmUnet2d(**args).eval()


def test_tiny_forward_shapes_and_attributes():
    model = _tiny(in_channels=6, out_channels=4)
    assert (model.image_size, model.in_channels, model.out_channels, model.num_classes) == (16, 6, 4, 3)
    x = torch.randn(2, 6, 16, 16)
    with torch.no_grad():
        out = model(x, torch.tensor([0, 999]), torch.tensor([2, -1]))
        scalar_t = model(x, 5)
    assert out.shape == (2, 4, 16, 16) and scalar_t.shape == (2, 4, 16, 16)


def test_null_class_requires_has_null_class():
    model = _tiny(has_null_class=False)
    with pytest.raises(ValueError, match="has_null_class"):
        model(torch.randn(1, 4, 16, 16), torch.tensor([3]), torch.tensor([-1]))


def test_dtype_follows_module_and_setter():
    model = _tiny()
    assert model.dtype == torch.float32
    model.dtype = torch.float16
    assert model.input_blocks[0][0].weight.dtype == torch.float16
    assert model.label_emb.weight.dtype == torch.float32
    model.double()
    assert model.dtype == torch.float64


def test_resblock_updown_false_variant_runs():
    model = _tiny(resblock_updown=False, use_scale_shift_norm=False)
    keys = model.state_dict().keys()
    assert any(k.endswith(".op.weight") for k in keys) and any(k.endswith(".conv.weight") for k in keys)
    with torch.no_grad():
        assert model(torch.randn(1, 4, 16, 16), torch.tensor([1])).shape == (1, 4, 16, 16)
