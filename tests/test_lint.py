"""The repository passes the linter: ruff with the rules of pyproject.toml (docs/design.md#code-style).

ruff is part of the ``test`` extra, so this test always runs; a missing ruff is a failure.
"""

import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_ruff_check_passes():
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "."], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    if "No module named ruff" in result.stderr:
        raise AssertionError('ruff is not installed: pip install -e ".[test]"')
    assert result.returncode == 0, result.stdout + result.stderr
