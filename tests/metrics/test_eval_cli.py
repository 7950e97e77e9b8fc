"""``eval.py`` in-process: parse_args + main with a plugged extractor; table printed, JSONL appended."""

import json
import os

import pytest

from ivid.metrics import MetricsError
from repo_scripts import load_script


cli = load_script("eval.py", "ivid_eval_cli")


def _argv(real, fake, tmp_path, *extra):
    return ["--real_images_dir", real, "--fake_images_dir", fake, "--image_size", "32", "--batch_size", "8",
            "--num_workers", "0", "--tmp_dir", str(tmp_path / "cache"), "--metrics_dir", str(tmp_path / "metrics"),
            "--quiet", *extra]


def test_defaults():
    args = cli.parse_args(["--fake_images_dir", "x"])
    assert args.mode == "legacy_tensorflow" and args.image_size == 128
    assert args.num_samples == 10000  # the paper's protocol, as the reference's default
    assert not (args.use_real_images_cache or args.use_fake_images_cache or args.overwrite_cache)
    assert args.tmp_dir == os.path.join("metrics", "cache") and args.metrics_dir == "metrics"


def test_end_to_end_appends_one_json_line_per_run(folders, toy_features, toy_logits, tmp_path, capsys):
    real, fake = folders
    args = cli.parse_args(_argv(real, fake, tmp_path, "--num_samples", "20", "--seed", "3",
                                "--fake_images_cache_name", "my_fakes", "--use_real_images_cache"))
    scores = cli.main(args, feature_extractor=toy_features, logits_extractor=toy_logits)
    out = capsys.readouterr().out
    assert set(scores) == {"fid", "kid_mean", "kid_std", "is_mean", "is_std"}
    for key in scores:
        assert key in out
    calls = toy_features.calls
    again = cli.main(args, feature_extractor=toy_features, logits_extractor=toy_logits)
    assert again == scores and toy_features.calls == calls + 3  # real reused; fakes recomputed (no flag)
    lines = (tmp_path / "metrics" / "my_fakes.jsonl").read_text().splitlines()
    assert len(lines) == 2
    record = json.loads(lines[0])
    assert record["scores"] == scores
    settings = record["settings"]
    assert (settings["mode"], settings["image_size"], settings["seed"]) == ("legacy_tensorflow", 32, 3)
    assert (settings["num_real"], settings["num_fake"], settings["num_samples"]) == (24, 20, 20)
    assert settings["feature_extractor"] == "toy-projection" and "time" in record
    assert json.loads(lines[1])["settings"]["real"]["cache_reused"] is True


def test_a_folder_smaller_than_num_samples_is_used_whole(folders, toy_features, tmp_path, capsys):
    """The default 10000 on a smaller folder: every image, with a note (the reference takes at most N)."""
    real, fake = folders
    argv = _argv(real, fake, tmp_path, "--metrics", "fid").copy()
    argv.remove("--quiet")
    cli.main(cli.parse_args(argv), feature_extractor=toy_features)
    assert "fewer than --num_samples 10000" in capsys.readouterr().err
    record = json.loads(next((tmp_path / "metrics").iterdir()).read_text().splitlines()[0])
    assert record["settings"]["num_fake"] == 30 and record["args"]["num_samples"] == 10000


def test_default_cache_and_jsonl_names_follow_the_folders(folders, toy_features, tmp_path):
    real, fake = folders
    cli.main(cli.parse_args(_argv(real, fake, tmp_path, "--metrics", "fid", "kid")), feature_extractor=toy_features)
    top = tmp_path.name  # names are the last 3 path parts + mode + size
    assert sorted(os.listdir(tmp_path / "cache")) == [f"{top}_data_real_legacy_tensorflow_32.npz",
                                                      f"{top}_samples_fake_legacy_tensorflow_32.npz"]
    assert os.listdir(tmp_path / "metrics") == [f"{top}_samples_fake_legacy_tensorflow_32.jsonl"]


def test_overwrite_flag_recomputes(folders, toy_features, tmp_path):
    real, fake = folders
    argv = _argv(real, fake, tmp_path, "--metrics", "fid", "--use_real_images_cache", "--use_fake_images_cache")
    cli.main(cli.parse_args(argv), feature_extractor=toy_features)
    cli.main(cli.parse_args(argv), feature_extractor=toy_features)
    assert toy_features.calls == 7
    cli.main(cli.parse_args(argv + ["--overwrite_cache"]), feature_extractor=toy_features)
    assert toy_features.calls == 14


def test_errors_surface_as_metrics_errors(folders, toy_features, tmp_path):
    real, _ = folders
    os.makedirs(tmp_path / "nothing")
    with pytest.raises(MetricsError, match="no images"):
        cli.main(cli.parse_args(_argv(real, str(tmp_path / "nothing"), tmp_path, "--metrics", "fid")),
                 feature_extractor=toy_features)
