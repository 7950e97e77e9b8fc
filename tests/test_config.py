"""ivid.config: released configs load; every kind of mistake names the file and dotted key."""

import json

import pytest

from ivid.config import ConfigError, build, load_config, validate_config

RELEASED = [
    "rgbd_imagenet_adm_128_large_cfg",
    "rgbd_imagenet_adm_128_large_cond",
    "rgbd_imagenet_adm_256_128_small_sr",
    "rgbd_singlecategory_adm_128_small",
    "rgbd_singlecategory_adm_128_small_cond",
    "rgbd_singlecategory_adm_256_128_small_sr",
]


@pytest.mark.parametrize("name", RELEASED + ["tiny_uncond", "tiny_cond", "tiny_sr"])
def test_configs_load(configs_dir, name):
    cfg = load_config(configs_dir / f"{name}.json")
    assert set(cfg) == {"backbone", "framework", "dataset", "trainer"}
    # the reference's misspelling is accepted and renamed
    assert "preprocess_depth" in cfg["dataset"]["args"]
    assert "prepocess_depth" not in cfg["dataset"]["args"]


@pytest.mark.parametrize("name", RELEASED)
def test_released_configs_keep_reference_values(configs_dir, fixtures_dir, name):
    """The committed configs equal the reference release's files (keys and values)."""
    ours = json.loads((configs_dir / f"{name}.json").read_text())
    reference = json.loads((fixtures_dir / "configs" / f"{name}.json").read_text())
    assert ours == reference


def _write(tmp_path, cfg, name="bad.json"):
    path = tmp_path / name
    path.write_text(json.dumps(cfg))
    return path


def _base(configs_dir):
    return json.loads((configs_dir / "tiny_cond.json").read_text())


def test_unknown_key_suggests(configs_dir, tmp_path):
    cfg = _base(configs_dir)
    cfg["backbone"]["args"]["num_head_channel"] = cfg["backbone"]["args"].pop("num_head_channels")
    path = _write(tmp_path, cfg)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    msg = str(err.value)
    assert str(path) in msg
    assert "backbone.args.num_head_channel" in msg
    assert "num_head_channels" in msg  # the suggestion


def test_unknown_name_lists_valid(configs_dir, tmp_path):
    cfg = _base(configs_dir)
    cfg["backbone"]["name"] = "AdmUNet2d"
    path = _write(tmp_path, cfg)
    with pytest.raises(ConfigError, match=r"backbone\.name.*AdmUnet2d"):
        load_config(path)


def test_unknown_section(configs_dir, tmp_path):
    cfg = _base(configs_dir)
    cfg["trainr"] = cfg.pop("trainer")
    with pytest.raises(ConfigError, match=r"bad\.json: trainr: unknown section \(did you mean 'trainer'\?\)"):
        load_config(_write(tmp_path, cfg))


def test_missing_required_key(configs_dir, tmp_path):
    cfg = _base(configs_dir)
    del cfg["backbone"]["args"]["image_size"]
    with pytest.raises(ConfigError, match=r"backbone\.args\.image_size: missing required key"):
        load_config(_write(tmp_path, cfg))


@pytest.mark.parametrize("key,value", [("image_size", "32"), ("use_fp16", 1), ("channel_mult", 2)])
def test_wrong_type(configs_dir, tmp_path, key, value):
    cfg = _base(configs_dir)
    cfg["backbone"]["args"][key] = value
    with pytest.raises(ConfigError, match=rf"backbone\.args\.{key}: expected"):
        load_config(_write(tmp_path, cfg))


def test_invalid_json_names_line(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"backbone": {"name": "AdmUnet2d",,}}')
    with pytest.raises(ConfigError, match=r"broken\.json: invalid JSON at line 1"):
        load_config(path)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "nope.json")


def test_section_shape(tmp_path):
    with pytest.raises(ConfigError, match=r"backbone\.arg: unknown key"):
        validate_config({"backbone": {"name": "AdmUnet2d", "arg": {}}}, source="x.json")


def test_build_backbone_and_framework(configs_dir):
    cfg = load_config(configs_dir / "tiny_uncond.json")
    backbone = build("backbone", cfg)
    framework = build("framework", cfg, backbone)
    assert framework.backbone is backbone
    assert backbone.image_size == 32
