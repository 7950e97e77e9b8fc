"""CPU-thread defaults of the command-line tools (ivid.threads): set before torch loads, a user's choice kept."""

import ast
import os
import pathlib
import subprocess
import sys

import ivid.threads as threads

ROOT = pathlib.Path(__file__).resolve().parents[1]
ENTRY_POINTS = [ROOT / "train.py", ROOT / "eval.py", *sorted((ROOT / "inference").glob("*.py")),
                *sorted((ROOT / "scripts").glob("*.py"))]


def test_defaults_fill_only_what_the_user_left_unset():
    env = {}
    assert threads.apply_env_defaults(env, torch_loaded=False) == {"OMP_WAIT_POLICY": "PASSIVE"}
    assert env == {"OMP_WAIT_POLICY": "PASSIVE"}
    mine = {"OMP_WAIT_POLICY": "ACTIVE", "OMP_NUM_THREADS": "3"}
    assert threads.apply_env_defaults(mine, torch_loaded=False) == {} and mine["OMP_WAIT_POLICY"] == "ACTIVE"
    late = {}
    assert threads.apply_env_defaults(late, torch_loaded=True) == {} and late == {}  # OpenMP read its settings already


def _imports(path):
    """Top-level imported module names of ``path``, in order."""
    names = []
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def test_every_entry_point_imports_the_defaults_before_torch():
    for path in ENTRY_POINTS:
        names = [n for n in _imports(path) if n.split(".")[0] in ("torch", "ivid")]
        if not names:
            continue
        assert names[0] == "ivid.threads", f"{path.relative_to(ROOT)}: import ivid.threads before {names[0]}"


def _child(code, **env):
    clean = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY",)}
    clean.update(PYTHONPATH=str(ROOT), **env)
    return subprocess.run([sys.executable, "-c", code], env=clean, capture_output=True, text=True, timeout=120,
                          check=True).stdout.split()


def test_a_tool_process_and_its_children_get_the_defaults():
    code = ("import ivid.threads, os, subprocess, sys; import torch; print(os.environ.get('OMP_WAIT_POLICY')); "
            "print(subprocess.run([sys.executable, '-c', 'import os; print(os.environ.get(\"OMP_WAIT_POLICY\"))'], "
            "capture_output=True, text=True).stdout.strip())")
    assert _child(code) == ["PASSIVE", "PASSIVE"]
    assert _child(code, OMP_WAIT_POLICY="ACTIVE") == ["ACTIVE", "ACTIVE"]
    assert _child("import torch, ivid.threads, os; print(os.environ.get('OMP_WAIT_POLICY'))") == ["None"]
