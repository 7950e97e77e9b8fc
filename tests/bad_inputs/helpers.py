"""Helpers of the bad-input suite (loaded by its conftest and test modules).

The suite: every command-line tool, fed what a new user might feed it, must end in ONE
line ``error: ...`` naming the culprit, exit non-zero, never hang, and leave no file lost or mixed.

Tools run in this process through :func:`ivid.cli.run_cli` (what their ``__main__`` runs), or as
subprocesses where a hang or a second process is the point. Models: the bundled demo models
(``--preset demo``) with 1-3 diffusion steps; data: generated here.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import warnings
from typing import List, NamedTuple, Optional, Sequence

import pytest
from repo_scripts import load_script

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
#: fast sampling settings for the demo models
FAST_SAMPLE = ["--preset", "demo", "--steps_uncond", "2", "--steps_cond", "1", "--device", "cpu", "--no_progress"]


class Outcome(NamedTuple):
    code: int
    out: str
    err: str

    def error_line(self) -> str:
        """The single ``error:`` line of stderr (asserting there is exactly one and no traceback)."""
        assert "Traceback" not in self.err, self.err
        errors = [line for line in self.err.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1, self.err
        return errors[0]


def load_tool(relative: str):
    """Import a CLI script (``inference/sample.py``, ``train.py``, ...) as a module."""
    name = "bad_inputs_" + relative.replace("/", "_").replace(".py", "")
    return load_script(relative, name)


def run_tool(module, argv: Sequence[str], capsys, main=None) -> Outcome:
    """Run a tool as its ``__main__`` does (``run_cli``) in this process; returns exit code and output."""
    from ivid.cli import run_cli

    saved = warnings.showwarning
    try:
        with pytest.raises(SystemExit) as exit_info:
            run_cli(main or module.main, module.parse_args, list(argv))
    finally:
        warnings.showwarning = saved
    captured = capsys.readouterr()
    code = exit_info.value.code
    return Outcome(0 if code is None else int(code), captured.out, captured.err)


def cli_env(**extra: str) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update({"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", **extra})
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "IVID_DEBUG"):
        env.pop(key, None)
    return env


def run_subprocess(args: List[str], timeout: float = 240, cwd: Optional[str] = None, **env: str) -> Outcome:
    """Run ``python <args>`` (paths relative to the repository); a hang fails the test at ``timeout``."""
    proc = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout,
                          env=cli_env(**env), cwd=cwd or str(REPO_ROOT))
    return Outcome(proc.returncode, proc.stdout, proc.stderr)


def tiny_train_config(tmp_path: pathlib.Path, name: str = "tiny_uncond", **trainer_args) -> str:
    """``configs/<name>.json`` with fast trainer settings, written to ``tmp_path``; returns its path."""
    import json

    from ivid.config import load_config

    cfg = load_config(REPO_ROOT / "configs" / f"{name}.json")
    cfg["trainer"]["args"].update({"num_workers": 0, "num_sample_images": 0, "i_log": 1, "i_save": 1,
                                   "i_sample": 1000, "max_steps": 2, **trainer_args})
    path = tmp_path / f"{name}_{len(list(tmp_path.glob('*.json')))}.json"
    path.write_text(json.dumps(cfg))
    return str(path)


def dead_pid() -> int:
    """The pid of a process that has ended (for stale locks and orphan temporaries)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid
