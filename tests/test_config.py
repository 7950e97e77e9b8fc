"""ivid.config: released configs load; every kind of mistake names the file and dotted key."""

import hashlib
import json
import pathlib

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


#: SHA-256 of each reference release config's keys and values (``json.dumps(cfg, sort_keys=True)``)
RELEASED_SHA256 = {
    "rgbd_imagenet_adm_128_large_cfg": "997fd1d17f849e9d5aae741e10ce94585a2dda0cf9fc874d79dcef4381d5f468",
    "rgbd_imagenet_adm_128_large_cond": "e527d37e9cf1fdf0d294eff989492b1921b4989f4a4428ed1ea9aa764d7b0f6f",
    "rgbd_imagenet_adm_256_128_small_sr": "6dd2c714f8630aee1d306c1d743df14d39676773455cefd08cd4bc2969f9fd12",
    "rgbd_singlecategory_adm_128_small": "20142849da3e4dc1af0c3ab098cea6425314ae30093e3b23b64f5f7154718b49",
    "rgbd_singlecategory_adm_128_small_cond": "584ef8fa1b54c62fe5edc6fbc800982a243cca6e6f00411be1f941ecf42d3a47",
    "rgbd_singlecategory_adm_256_128_small_sr": "ceffe598ae1abd880f76ec7f715af7b4b054b792d3ee66d7e9ee89117bdb5ccc",
}


@pytest.mark.parametrize("name", RELEASED)
def test_released_configs_keep_reference_values(configs_dir, name):
    """The committed configs equal the reference release's files (keys and values)."""
    ours = json.loads((configs_dir / f"{name}.json").read_text())
    assert hashlib.sha256(json.dumps(ours, sort_keys=True).encode()).hexdigest() == RELEASED_SHA256[name]


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


def test_trainer_defaults_are_the_references():
    """fp16_mode 'inflat_all' and i_save 10000, as the reference's BasicTrainer (so do its variants)."""
    import inspect

    from ivid.training import TRAINERS

    for cls in TRAINERS.values():
        params = inspect.signature(cls.__init__).parameters
        assert params["fp16_mode"].default == "inflat_all" and params["i_save"].default == 10000, cls.__name__
        assert params["ema_rate"].default == 0.9999 and params["batch_split"].default is None


@pytest.mark.parametrize("path", sorted((pathlib.Path(__file__).resolve().parents[1] / "configs").glob("*.json")),
                         ids=lambda p: p.stem)
def test_every_config_states_the_keys_whose_defaults_are_the_references(path):
    """Every config of configs/ keeps its meaning under the reference's constructor defaults: it states
    normalize, normalize_depth, (pre)processing of depth, fp16_mode and i_save explicitly."""
    raw = json.loads(path.read_text())
    dataset, trainer = raw["dataset"]["args"], raw["trainer"]["args"]
    assert {"normalize", "normalize_depth"} <= set(dataset)
    assert {"prepocess_depth", "preprocess_depth"} & set(dataset)
    assert {"fp16_mode", "i_save"} <= set(trainer)


def test_reference_keys_and_values_are_accepted(configs_dir):
    """What the reference's constructors read: dataset std and every prepocess_depth mode, trainer i_print,
    i_ddpcheck, a bare float ema_rate, batch_split null, backbone num_classes "auto"."""
    cfg = json.loads((configs_dir / "tiny_cond.json").read_text())
    cfg["dataset"]["args"].update(std=0.2)
    cfg["trainer"]["args"].update(i_print=1000, i_ddpcheck=10000, ema_rate=0.9999, batch_split=None)
    cfg["backbone"]["args"]["num_classes"] = "auto"
    out = validate_config(cfg)
    assert out["backbone"]["args"]["num_classes"] == "auto" and out["trainer"]["args"]["ema_rate"] == 0.9999
    for mode in ("none", "to_depth", "disparity_minmax", "depth_minmax", "z_buffer"):
        plain = json.loads((configs_dir / "tiny_uncond.json").read_text())
        plain["dataset"]["args"].update(prepocess_depth=mode, normalize_depth=False)
        assert validate_config(plain)["dataset"]["args"]["preprocess_depth"] == mode
    cfg["trainer"]["args"]["i_prnt"] = 1
    with pytest.raises(ConfigError, match=r"trainer\.args\.i_prnt: unknown key .*'i_print'"):
        validate_config(cfg)
    bad = json.loads((configs_dir / "tiny_uncond.json").read_text())
    bad["backbone"]["args"]["num_classes"] = "many"
    with pytest.raises(ConfigError, match="num_classes"):
        validate_config(bad)


def test_auto_num_classes_must_be_resolved_before_building(configs_dir):
    from ivid.config import resolve_num_classes

    cfg = validate_config({**json.loads((configs_dir / "tiny_uncond.json").read_text())})
    cfg["backbone"]["args"]["num_classes"] = "auto"
    with pytest.raises(ConfigError, match=r"num_classes: \"auto\" is resolved"):
        build("backbone", cfg)
    resolved = resolve_num_classes(cfg, 7)
    assert resolved["backbone"]["args"]["num_classes"] == 7 and cfg["backbone"]["args"]["num_classes"] == "auto"
    assert build("backbone", resolved).label_emb.weight.shape[0] == 7
