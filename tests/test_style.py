"""Project-wide safety habits, checked by reading the source (docs/design.md#code-style)."""

import ast
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]
ENVIRON_READERS = ("ivid/training/distributed.py", "ivid/cli.py", "ivid/threads.py")
SOURCES = sorted(p for d in ("ivid", "inference", "scripts") for p in (ROOT / d).rglob("*.py")) + \
    [ROOT / "train.py", ROOT / "eval.py"]


def _calls(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield node


def _name(func):
    if isinstance(func, ast.Attribute):
        return f"{_name(func.value)}.{func.attr}"
    if isinstance(func, ast.Name):
        return func.id
    return "?"


def test_torch_load_is_always_weights_only():
    offenders = []
    for path in SOURCES:
        if not path.exists():
            continue
        for call in _calls(path):
            if _name(call.func).endswith("torch.load"):
                kw = {k.arg: k.value for k in call.keywords}
                ok = isinstance(kw.get("weights_only"), ast.Constant) and kw["weights_only"].value is True
                if not ok:
                    offenders.append(f"{path.relative_to(ROOT)}:{call.lineno}")
    assert not offenders, f"torch.load without weights_only=True: {offenders}"


def test_numpy_load_never_allows_pickle():
    offenders = []
    for path in SOURCES:
        if not path.exists():
            continue
        for call in _calls(path):
            if _name(call.func) in ("np.load", "numpy.load"):
                kw = {k.arg: k.value for k in call.keywords}
                if isinstance(kw.get("allow_pickle"), ast.Constant) and kw["allow_pickle"].value is True:
                    offenders.append(f"{path.relative_to(ROOT)}:{call.lineno}")
    assert not offenders, f"np.load(allow_pickle=True): {offenders}"


def test_no_prompts_no_pickle_no_hardcoded_cuda_in_library():
    offenders = []
    for path in (ROOT / "ivid").rglob("*.py"):
        text = path.read_text()
        rel = path.relative_to(ROOT)
        if re.search(r"(?<![\w.])input\(", text):
            offenders.append(f"{rel}: input(")
        if re.search(r"^\s*import pickle|^\s*from pickle", text, re.M):
            offenders.append(f"{rel}: pickle")
        is_device_picker = rel.as_posix() == "ivid/utils/device.py"  # the one place that chooses a device
        if not is_device_picker and re.search(r"""torch\.device\(\s*["']cuda["']\s*\)|\.cuda\(\)""", text):
            offenders.append(f"{rel}: hard-coded cuda")
        # the launcher reads torchrun's variables, the CLI wrapper IVID_DEBUG, ivid/threads.py the OpenMP
        # defaults; nothing else reads the environment
        if "os.environ" in text and rel.as_posix() not in ENVIRON_READERS:
            offenders.append(f"{rel}: os.environ outside {', '.join(ENVIRON_READERS)}")
        if re.search(r"torch\.manual_seed\(", text):
            offenders.append(f"{rel}: global torch.manual_seed in library code")
    assert not offenders, offenders
