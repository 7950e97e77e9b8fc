"""train.py: broken data never hangs, one training per run folder, resume problems are one clear line."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import pytest

H = sys.modules["bad_inputs_helpers"]  # loaded by conftest.py


def _train(train_tool, capsys, config, data, out, *extra):
    return H.run_tool(train_tool, ["--config", str(config), "--data_dir", str(data), "--output_dir", str(out),
                                   "--device", "cpu", "--no_progress", *extra], capsys)


@pytest.fixture
def broken_data(toy_data, tmp_path):
    """The toy dataset with every image overwritten by text."""
    data = tmp_path / "broken"
    shutil.copytree(toy_data, data)
    for folder, _, files in os.walk(data / "images"):
        for name in files:
            with open(os.path.join(folder, name), "w") as f:
                f.write("this is not an image\n")
    return data


@pytest.mark.slow
def test_all_images_corrupt_exits_at_once_naming_the_folder(broken_data, tmp_path):
    start = time.monotonic()
    outcome = H.run_subprocess(["train.py", "--config", "configs/tiny_uncond.json", "--data_dir", str(broken_data),
                                "--output_dir", str(tmp_path / "run"), "--no_progress"], timeout=240)
    line = outcome.error_line()
    assert outcome.code != 0 and str(broken_data) in line and "8 failures" in line and "n0000" in line
    assert time.monotonic() - start < 200
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_a_failing_dataloader_worker_never_blocks_the_exit(broken_data):
    # past the up-front probe, the failure happens in DataLoader worker processes, which ignore
    # SIGTERM: the process must still end, with the dataset's one-line message
    code = ("import sys\n"
            "from ivid.cli import run_cli\n"
            "from ivid.data import ImageNet\n"
            "from ivid.training.data_loop import BatchStream\n"
            f"ds = ImageNet({str(broken_data)!r}, image_size=32, max_consecutive_failures=3)\n"
            "stream = BatchStream(ds, 4, num_workers=2)\n"
            "run_cli(lambda args: stream.next(), argv=[])\n")
    outcome = H.run_subprocess(["-c", code], timeout=120)  # used to hang forever after the traceback
    line = outcome.error_line()
    assert outcome.code != 0 and str(broken_data) in line and "3 samples in a row could not be loaded" in line


@pytest.mark.slow
def test_a_second_training_into_a_locked_folder_is_refused(train_tool, capsys, toy_data, tmp_path):
    out = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c",
                               "import sys, time\nfrom ivid.utils.lock import RunLock\n"
                               f"lock = RunLock({str(out)!r}).acquire()\nprint('locked', flush=True)\n"
                               "time.sleep(120)\n"], env=H.cli_env(), stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        config = H.tiny_train_config(tmp_path)
        line = _train(train_tool, capsys, config, toy_data, out).error_line()
        assert f"pid {holder.pid}" in line and "--output_dir" in line and str(out) in line
        assert os.listdir(out) == [".lock"]  # the refused run wrote nothing
    finally:
        holder.kill()
        holder.wait()
    # the holder died without releasing: its lock is stale and taken over with a warning
    outcome = _train(train_tool, capsys, config, toy_data, out)
    assert outcome.code == 0, outcome.err
    assert "stale lock" in outcome.err and f"pid {holder.pid}" in outcome.err
    assert not (out / ".lock").exists() and (out / "ckpts" / "misc_step0000002.pt").is_file()


def test_resume_with_changed_hyper_parameters_is_recorded(train_tool, capsys, toy_data, tmp_path):
    out = tmp_path / "run"
    assert _train(train_tool, capsys, H.tiny_train_config(tmp_path), toy_data, out).code == 0
    changed = H.tiny_train_config(tmp_path, learning_rate=3e-4, batch_size_per_gpu=2, max_steps=3)
    outcome = _train(train_tool, capsys, changed, toy_data, out)
    assert outcome.code == 0, outcome.err
    warning = [line for line in outcome.err.splitlines() if line.startswith("warning: resuming")]
    assert len(warning) == 1 and "learning_rate 0.0001 -> 0.0003" in warning[0]
    assert "batch_size_per_gpu 4 -> 2" in warning[0] and "max_steps" not in warning[0]
    resume = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()
              if '"resume"' in line][0]
    assert resume["config_changes"]["trainer.args.learning_rate"] == [1e-4, 3e-4]
    assert resume["config_changes"]["trainer.args.max_steps"] == [2, 3]


def test_a_truncated_latest_checkpoint_falls_back_to_the_previous_one(train_tool, capsys, toy_data, tmp_path):
    out = tmp_path / "run"
    assert _train(train_tool, capsys, H.tiny_train_config(tmp_path), toy_data, out).code == 0
    misc = out / "ckpts" / "misc_step0000002.pt"
    misc.write_bytes(misc.read_bytes()[:100])  # a crash / full disk while writing
    explicit = _train(train_tool, capsys, H.tiny_train_config(tmp_path, max_steps=3), toy_data, out, "--ckpt", "2")
    line = explicit.error_line()
    assert str(misc) in line and "truncated" in line and "--ckpt 1" in line
    latest = _train(train_tool, capsys, H.tiny_train_config(tmp_path, max_steps=3), toy_data, out)
    assert latest.code == 0, latest.err
    assert "misc_step0000002.pt" in latest.err and "previous complete checkpoint, step 1" in latest.err
    resume = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines() if '"resume"' in line]
    assert resume[-1]["step"] == 1 and (out / "ckpts" / "misc_step0000003.pt").is_file()


def test_resuming_with_another_architecture_is_one_line(train_tool, capsys, toy_data, tmp_path):
    out = tmp_path / "run"
    assert _train(train_tool, capsys, H.tiny_train_config(tmp_path), toy_data, out).code == 0
    cfg = json.loads(open(H.tiny_train_config(tmp_path, max_steps=3)).read())
    cfg["backbone"]["args"]["model_channels"] = 24
    wider = tmp_path / "wider.json"
    wider.write_text(json.dumps(cfg))
    line = _train(train_tool, capsys, wider, toy_data, out).error_line()
    assert "model_step0000002.pt" in line and "another model" in line and "config.json" in line


@pytest.mark.parametrize("extra, named", [(["--device", "banana"], "--device banana"),
                                          (["--ckpt", "abc"], "--ckpt"),
                                          (["--num_gpus", "0"], "--num_gpus")])
def test_bad_train_options_are_one_line(train_tool, capsys, toy_data, tmp_path, extra, named):
    out = tmp_path / "run"
    if extra[0] == "--ckpt":
        assert _train(train_tool, capsys, H.tiny_train_config(tmp_path), toy_data, out).code == 0
    outcome = _train(train_tool, capsys, H.tiny_train_config(tmp_path), toy_data, out, *extra)
    assert outcome.code != 0 and named in outcome.error_line()


@pytest.mark.parametrize("key, value, named", [("batch_split", 3, "batch_split"),
                                               ("learning_rate", -1.0, "learning_rate"),
                                               ("i_log", 0, "i_log")])
def test_bad_trainer_settings_are_one_line(train_tool, capsys, toy_data, tmp_path, key, value, named):
    config = H.tiny_train_config(tmp_path, **{key: value})
    line = _train(train_tool, capsys, config, toy_data, tmp_path / "run").error_line()
    assert f"trainer.args.{named}" in line and "internal error" not in line
