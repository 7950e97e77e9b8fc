"""ivid.models.fp16: which tensors the use_fp16 variant keeps in half; state_dict casting."""

import torch

from ivid.models import AdmUnet2d
from ivid.models.fp16 import cast_state_dict_like, convert_torso, torso_convs


def _meta_model(**overrides):
    args = dict(image_size=128, in_channels=10, model_channels=32, out_channels=4, num_res_blocks=2,
                attention_resolutions=[32, 16, 8], channel_mult=[1, 1, 2, 3, 4], num_classes=10,
                has_null_class=True, num_groups=8, num_heads=None, num_head_channels=32)
    args.update(overrides)
    with torch.device("meta"):
        return AdmUnet2d(**args)


def test_use_fp16_converts_exactly_the_torso_convs():
    model = _meta_model(use_fp16=True)
    half = {k for k, v in model.state_dict().items() if v.dtype == torch.float16}
    assert len(half) == 242  # the released layout: 121 convs x (weight, bias)
    convs = {f"{name}.{p}" for name, m in model.named_modules()
             if isinstance(m, (torch.nn.Conv1d, torch.nn.Conv2d)) and name.split(".")[0] != "out"
             for p in ("weight", "bias")}
    assert half == convs


def test_convert_torso_roundtrip():
    model = _meta_model()
    convert_torso(model, torch.float16)
    assert all(c.weight.dtype == torch.float16 for c in torso_convs(model))
    convert_torso(model, torch.float32)
    assert all(v.dtype == torch.float32 for v in model.state_dict().values())


def test_cast_state_dict_like():
    reference = {"a": torch.zeros(2, dtype=torch.float16), "b": torch.zeros(2), "n": torch.zeros(2, dtype=torch.long)}
    sd = {"a": torch.ones(2), "b": torch.ones(2, dtype=torch.float16), "n": torch.ones(2, dtype=torch.long),
          "extra": torch.ones(1)}
    out = cast_state_dict_like(sd, reference)
    assert out["a"].dtype == torch.float16 and out["b"].dtype == torch.float32
    assert out["n"].dtype == torch.long and out["extra"] is sd["extra"]
