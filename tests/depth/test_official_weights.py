"""The official checkpoint layout (fixture schema) maps key for key onto MidasDepth."""

import json

import pytest
import torch

from ivid.depth import MidasCheckpointError, MidasDepth, map_checkpoint_key
from ivid.depth.official_weights import convert_checkpoint


@pytest.fixture(scope="module")
def schema(midas_fixtures):
    with open(midas_fixtures / "schema_dpt_beit_large_512.json") as f:
        return json.load(f)


@pytest.fixture(scope="module")
def meta_state_dict():
    with torch.device("meta"):
        model = MidasDepth()
    return model.state_dict()


def test_schema_maps_key_for_key(schema, meta_state_dict):
    assert len(schema) == 487
    mapped = {}
    dropped = []
    for key, shape, dtype in schema:
        new_key = map_checkpoint_key(key)
        if new_key is None:
            dropped.append(key)
            continue
        assert new_key in meta_state_dict, (key, new_key)
        assert new_key not in mapped, f"{key} and {mapped.get(new_key)} map to the same {new_key}"
        mapped[new_key] = key
        assert tuple(meta_state_dict[new_key].shape) == tuple(shape), key
        assert str(meta_state_dict[new_key].dtype) == f"torch.{dtype}", key
    assert len(dropped) == 24
    assert all(k.endswith(".attn.relative_position_index") for k in dropped)
    assert set(mapped) == set(meta_state_dict)          # nothing missing, nothing extra
    assert len(meta_state_dict) == 463
    n_params = sum(v.numel() for v in meta_state_dict.values())
    assert round(n_params / 1e6, 1) == 345.0             # "345M" (MiDaS)


def test_spot_checks_of_the_mapping():
    assert map_checkpoint_key("pretrained.model.blocks.7.attn.qkv.weight") == "backbone.model.blocks.7.attn.qkv.weight"
    assert map_checkpoint_key("pretrained.act_postprocess1.0.project.0.weight") == "decoder.reassemble.0.readout.weight"
    assert map_checkpoint_key("pretrained.act_postprocess4.4.bias") == "decoder.reassemble.3.resample.bias"
    assert map_checkpoint_key("scratch.refinenet4.resConfUnit1.conv2.bias") == "decoder.fusion.3.rcu1.conv2.bias"
    assert map_checkpoint_key("scratch.output_conv.4.weight") == "decoder.head.conv3.weight"
    assert map_checkpoint_key("pretrained.model.blocks.0.attn.relative_position_index") is None
    assert map_checkpoint_key("scratch.output_conv.1.weight") is None


def test_errors_name_the_problem(schema, meta_state_dict, tmp_path):
    small = {k: v for k, v in ((k, torch.zeros(1)) for k, _, _ in schema[:3])}
    small["module.extra"] = torch.zeros(1)
    with pytest.raises(MidasCheckpointError) as info:
        convert_checkpoint(small, meta_state_dict, source="x.pt")
    message = str(info.value)
    assert "x.pt" in message and "unexpected" in message and "module.extra" in message
    assert "missing" in message and "shape mismatch" in message

    path = tmp_path / "not_a_state_dict.pt"
    torch.save([torch.zeros(1)], path)
    with pytest.raises(MidasCheckpointError, match="not_a_state_dict.pt"):
        MidasDepth.from_checkpoint(path)
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        MidasDepth.from_checkpoint(tmp_path / "missing.pt")
