"""Import the repository's scripts (``train.py``, ``inference/*.py``, ``scripts/*.py``, fixture recipes)
as modules, so tests call their ``parse_args`` / ``main`` in-process. ``tests/conftest.py`` puts this
folder on ``sys.path``: ``from repo_scripts import load_script``."""

from __future__ import annotations

import importlib.util
import pathlib
from types import ModuleType
from typing import Union

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def load_script(path: Union[str, pathlib.Path], name: str) -> ModuleType:
    """Execute the script at ``path`` (relative to the repository root, or absolute) as a new module
    called ``name`` (each call makes a fresh module object; it is not registered in ``sys.modules``)."""
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
