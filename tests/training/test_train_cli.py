"""train.py end to end: config validation, run folder, auto-resume, SIGTERM, 2-process gloo DDP."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from ivid.config import ConfigError

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _cli_env():
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO_ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"  # see conftest._one_cpu_thread
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        env.pop(key, None)
    return env


def test_bad_config_key_fails_fast_naming_file_and_key(tmp_path, train_cli, helpers):
    cfg = helpers.tiny_config("tiny_uncond")
    cfg["trainer"]["args"]["learning_rat"] = 1e-4
    path = helpers.write_config(tmp_path / "bad.json", cfg)
    start = time.perf_counter()
    with pytest.raises(ConfigError, match=r"bad\.json: trainer\.args\.learning_rat: unknown key .*'learning_rate'"):
        train_cli.main(train_cli.parse_args(["--config", str(path), "--data_dir", str(tmp_path),
                                             "--output_dir", str(tmp_path / "run")]))
    assert time.perf_counter() - start < 5
    assert not (tmp_path / "run").exists()


def test_data_folder_without_images_is_a_clear_error(tmp_path, train_cli):
    from ivid.data import DataLayoutError

    with pytest.raises(DataLayoutError, match="images"):
        train_cli.main(train_cli.parse_args(["--config", os.path.join(REPO_ROOT, "configs", "tiny_uncond.json"),
                                             "--data_dir", str(tmp_path), "--output_dir", str(tmp_path / "run")]))


def test_dry_run_prints_the_resolved_config(tmp_path, train_cli, capsys):
    train_cli.main(train_cli.parse_args(["--config", os.path.join(REPO_ROOT, "configs", "tiny_cond.json"),
                                         "--data_dir", str(tmp_path), "--output_dir", str(tmp_path / "run"),
                                         "--seed", "5", "--dry_run"]))
    cfg = json.loads(capsys.readouterr().out)
    trainer = cfg["trainer"]["args"]
    assert trainer["seed"] == 5 and cfg["dataset"]["args"]["seed"] == 5
    assert trainer["sample_with"] == "ema" and trainer["sample_guidance"] == 3.0  # defaults filled in
    assert trainer["sample_steps"] == 10  # the tiny configs sample their grids with few steps
    assert "preprocess_depth" in cfg["dataset"]["args"] and "output_dir" not in trainer


def test_train_then_resume_in_the_same_folder(toy_data, tmp_path, train_cli, helpers):
    path = helpers.write_config(tmp_path / "c.json", helpers.tiny_config("tiny_uncond", i_save=2))
    argv = ["--config", str(path), "--data_dir", str(toy_data), "--output_dir", str(tmp_path / "run"),
            "--device", "cpu", "--no_progress"]
    train_cli.main(train_cli.parse_args(argv + ["--max_steps", "2"]))
    train_cli.main(train_cli.parse_args(argv + ["--max_steps", "4"]))  # finds run/ckpts: resumes at step 2
    ckpts = sorted(os.listdir(tmp_path / "run" / "ckpts"))
    assert [c for c in ckpts if c.startswith("misc")] == ["misc_step0000002.pt", "misc_step0000004.pt"]
    misc = torch.load(tmp_path / "run" / "ckpts" / "misc_step0000004.pt", map_location="cpu", weights_only=True)
    assert json.loads(misc["config_json"])["trainer"]["args"]["max_steps"] == 4
    records = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r.get("event", r.get("step")) for r in records] == [2, "resume", 4]
    assert len((tmp_path / "run" / "command.txt").read_text().splitlines()) == 2


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_and_exits_0(toy_data, tmp_path, helpers):
    cfg = helpers.tiny_config("tiny_uncond", max_steps=100000, i_log=1)
    path = helpers.write_config(tmp_path / "c.json", cfg)
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, os.path.join(REPO_ROOT, "train.py"), "--config", str(path),
                             "--data_dir", str(toy_data), "--output_dir", str(run), "--device", "cpu",
                             "--no_progress"], env=_cli_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        deadline = time.time() + 120
        while not (run / "log.jsonl").exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.2)
        assert proc.poll() is None, proc.communicate()[0]
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, output
    assert "SIGTERM received" in output
    steps = [int(n[len("misc_step"):-3]) for n in os.listdir(run / "ckpts") if n.startswith("misc_step")]
    assert len(steps) == 1 and 1 <= steps[0] < 100000
    misc = torch.load(run / "ckpts" / f"misc_step{steps[0]:07d}.pt", map_location="cpu", weights_only=True)
    assert misc["step"] == steps[0]
    assert (run / "ckpts" / f"model_step{steps[0]:07d}.pt").is_file()


@pytest.mark.slow
def test_two_process_gloo_ddp_keeps_ranks_in_sync_and_learns(toy_data, tmp_path, helpers):
    cfg = helpers.tiny_config("tiny_uncond", max_steps=24, i_log=4, i_save=12, learning_rate=2e-3,
                              batch_size_per_gpu=4, num_sample_images=2, sample_steps=2, i_sample=24)
    path = helpers.write_config(tmp_path / "c.json", cfg)
    run = tmp_path / "run"
    result = subprocess.run([sys.executable, os.path.join(REPO_ROOT, "train.py"), "--config", str(path),
                             "--data_dir", str(toy_data), "--output_dir", str(run), "--device", "cpu",
                             "--num_gpus", "2", "--master_port", "29533", "--no_progress"],
                            env=_cli_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "world_size=2" in (run / "env.txt").read_text()
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [4, 8, 12, 16, 20, 24]
    for r in records:
        assert len(r["param_checksums"]) == 2 and r["param_checksums"][0] == r["param_checksums"][1]
        assert r["samples_per_s"] > 0
    # 32 images, 2 ranks x 4 per step: 4 steps per epoch
    assert records[-1]["epoch"] == 6.0
    losses = [r["loss"] for r in records]
    assert losses[-1] < 0.7 * losses[0] and min(losses[3:]) < min(losses[:3])
    assert set(os.listdir(run / "samples")) == {"step0000000.png", "step0000024.png"}
    misc = torch.load(run / "ckpts" / "misc_step0000024.pt", map_location="cpu", weights_only=True)
    assert len(misc["rng_states"]) == 2 and misc["world_size"] == 2
    assert not torch.equal(misc["rng_states"][0]["torch_cpu"], misc["rng_states"][1]["torch_cpu"])


def test_reference_cli_defaults_and_forms(train_cli):
    """--data_dir ./data/ by default, --master_port the string '12345', --num_gpus -1 = all GPUs."""
    args = train_cli.parse_args(["--config", "c.json", "--output_dir", "run"])
    assert args.data_dir == "./data/" and args.master_port == "12345" and args.ckpt == "latest"
    assert train_cli.parse_args(["--output_dir", "run", "--master_port", "'29600'"]).master_port == "'29600'"
    with pytest.raises(SystemExit):
        train_cli.parse_args(["--output_dir", "run", "--master_port", "port"])


def test_num_gpus_minus_one_means_every_gpu(monkeypatch):
    from ivid.training.launch import parse_port, plan_layout

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 3)
    assert plan_layout(torch.device("cuda"), -1).procs_per_node == 3
    assert plan_layout(torch.device("cuda"), None).procs_per_node == 3
    assert plan_layout(torch.device("cpu"), -1).procs_per_node == 1
    assert plan_layout(torch.device("cpu"), 1, master_port="12345").master_port == 12345
    assert parse_port("'12345'") == 12345 and parse_port(29500) == 29500
    with pytest.raises(ValueError, match="--master_port"):
        parse_port("70000")


def test_ckpt_none_starts_fresh_where_checkpoints_exist(toy_data, tmp_path, train_cli, helpers):
    path = helpers.write_config(tmp_path / "c.json", helpers.tiny_config("tiny_uncond", i_save=1, i_log=1))
    argv = ["--config", str(path), "--data_dir", str(toy_data), "--output_dir", str(tmp_path / "run"),
            "--device", "cpu", "--no_progress"]
    train_cli.main(train_cli.parse_args(argv + ["--max_steps", "2"]))
    train_cli.main(train_cli.parse_args(argv + ["--max_steps", "1", "--ckpt", "none"]))  # would resume at 2
    records = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r.get("event", r.get("step")) for r in records] == [1, 2, 1]  # a fresh step 1, no "resume"
    misc = torch.load(tmp_path / "run" / "ckpts" / "misc_step0000001.pt", map_location="cpu", weights_only=True)
    assert json.loads(misc["config_json"])["trainer"]["args"]["max_steps"] == 1


def test_num_classes_auto_takes_the_datasets_class_count(toy_data, tmp_path, train_cli, helpers):
    """As the reference's train.py: "auto" becomes the dataset's class count (toy data: 4 classes); the run's
    config.json and checkpoint hold the number, so sampling with the run's config works."""
    cfg = helpers.tiny_config("tiny_uncond", max_steps=1, i_save=1)
    cfg["backbone"]["args"]["num_classes"] = "auto"
    path = helpers.write_config(tmp_path / "c.json", cfg)
    run = tmp_path / "run"
    train_cli.main(train_cli.parse_args(["--config", str(path), "--data_dir", str(toy_data), "--output_dir",
                                         str(run), "--device", "cpu", "--no_progress"]))
    assert json.loads((run / "config.json").read_text())["backbone"]["args"]["num_classes"] == 4
    state = torch.load(run / "ckpts" / "model_step0000001.pt", map_location="cpu", weights_only=True)
    assert state["label_emb.weight"].shape[0] == 4
    from ivid.model_loading import load_framework

    framework = load_framework(path, run / "ckpts" / "model_step0000001.pt", "cpu")  # "auto" from the checkpoint
    assert framework.backbone.num_classes == 4
