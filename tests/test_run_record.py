"""ivid.utils.run_record: one record format for training, sampling and evaluation runs."""

import json
import shlex
import sys

from ivid.sampling.run_folder import SETTINGS_KEY, check_run_folder, record_run
from ivid.utils.run_record import (RECORD_KEYS, append_json_line, command_line, environment, run_record,
                                   write_run_folder)


def test_record_has_time_command_environment_settings():
    record = run_record({"a": 1}, ["python", "x.py", "--name", "two words"], "cpu", 2, scores={"fid": 1.5})
    assert tuple(record)[:4] == RECORD_KEYS and record["scores"] == {"fid": 1.5}
    assert record["time"].endswith("+00:00") and record["settings"] == {"a": 1}
    assert shlex.split(record["command"]) == ["python", "x.py", "--name", "two words"]
    env = record["environment"]
    assert (env["device"], env["world_size"], env["gpu"]) == ("cpu", 2, None)
    assert {"python", "torch", "numpy", "cuda", "host"} <= set(env)
    assert command_line("python train.py --test") == "python train.py --test"  # a line is kept as it is
    assert shlex.split(command_line())[0] == sys.executable
    assert environment()["device"] is None


def test_run_folder_keeps_settings_and_appends_command_and_environment(tmp_path):
    for n in range(2):
        write_run_folder(str(tmp_path / "run"), run_record({"n": n}, ["prog", str(n)], "cpu"), "settings.json")
    assert json.loads((tmp_path / "run" / "settings.json").read_text()) == {"n": 1}
    assert (tmp_path / "run" / "command.txt").read_text().splitlines() == ["prog 0", "prog 1"]
    env = (tmp_path / "run" / "env.txt").read_text().splitlines()
    assert len(env) == 2 and all("device=cpu" in line and "world_size=1" in line for line in env)
    assert not [p.name for p in (tmp_path / "run").iterdir() if p.name.startswith(".")]  # no temporaries left


def test_json_lines_append(tmp_path):
    path = tmp_path / "m" / "runs.jsonl"
    path.parent.mkdir()
    path.write_text('{"old": true}')  # an older file without its final newline
    append_json_line(str(path), {"new": 1})
    assert [json.loads(line) for line in path.read_text().splitlines()] == [{"old": True}, {"new": 1}]


def test_sampling_record_keeps_args_json_readable_by_the_settings_check(tmp_path):
    run_dir = str(tmp_path / "run")
    record_run(run_dir, {"seeds": "0-1", "fov": 45.0}, {"fov": 45.0}, ["sample.py"], "cpu")
    args = json.loads((tmp_path / "run" / "args.json").read_text())
    assert args["seeds"] == "0-1" and args[SETTINGS_KEY] == {"fov": 45.0}
    check_run_folder(run_dir, {"fov": 45.0})  # the same settings may add seeds
    assert "world_size=1" in (tmp_path / "run" / "env.txt").read_text()
