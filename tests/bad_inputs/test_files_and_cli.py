"""Kept files get the usual permissions, killed writes leave nothing behind, every tool reports in one line."""

from __future__ import annotations

import ast
import json
import os
import socket
import stat
import sys

import pytest

from ivid.errors import IvidError, OptionError, unwrap_worker_error

H = sys.modules["bad_inputs_helpers"]  # loaded by conftest.py


@pytest.fixture
def umask_022():
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def test_atomic_writes_respect_the_umask(tmp_path, umask_022):
    from ivid.utils.images import save_png
    from ivid.utils.io import atomic_save_npz, atomic_torch_save, atomic_write

    import numpy as np

    with atomic_write(tmp_path / "a.json", "w") as f:
        f.write("{}")
    atomic_save_npz(tmp_path / "b.npz", {"x": np.zeros(2)})
    atomic_torch_save({"w": __import__("torch").zeros(1)}, tmp_path / "c.pt")
    save_png(tmp_path / "d.png", np.zeros((4, 4, 3), np.uint8))
    for name in ("a.json", "b.npz", "c.pt", "d.png"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o644, name  # was 0600 (mkstemp)
    os.umask(0o077)
    with atomic_write(tmp_path / "private.json", "w") as f:
        f.write("{}")
    assert stat.S_IMODE(os.stat(tmp_path / "private.json").st_mode) == 0o600


def test_videos_respect_the_umask(tmp_path, umask_022):
    import numpy as np

    from ivid.utils.video import write_mp4

    write_mp4(tmp_path / "v.mp4", [np.zeros((8, 8, 3), np.uint8)] * 2)
    assert stat.S_IMODE(os.stat(tmp_path / "v.mp4").st_mode) == 0o644


def test_orphan_temporaries_are_swept_only_when_their_writer_is_gone(tmp_path):
    from ivid.utils.io import HOST_TAG, remove_orphan_temps, temp_path

    dead = H.dead_pid()
    orphan = tmp_path / f".model_step0000010.pt.{HOST_TAG}-{dead}-12345678.tmp"
    live = tmp_path / f".log.json.{HOST_TAG}-{os.getpid()}-12345678.tmp"
    other_host = tmp_path / f".x.pt.{(int(HOST_TAG, 16) ^ 1):08x}-{dead}-12345678.tmp"
    download = tmp_path / f".download.{HOST_TAG}-{dead}-abcdef01.tmp"
    user_file = tmp_path / ".hidden.tmp"
    for path in (orphan, live, other_host, user_file):
        path.write_text("x")
    download.mkdir()
    (download / "part").write_text("x")
    removed = remove_orphan_temps(tmp_path)
    assert sorted(removed) == sorted([str(orphan), str(download)])
    assert live.exists() and other_host.exists() and user_file.exists()
    name = os.path.basename(temp_path(tmp_path / "out.pt"))
    assert name.startswith(".out.pt.") and f"-{os.getpid()}-" in name  # what the sweep recognises


def test_a_training_sweeps_its_run_folder(train_tool, capsys, toy_data, tmp_path):
    from ivid.utils.io import HOST_TAG

    out = tmp_path / "run"
    (out / "ckpts").mkdir(parents=True)
    orphan = out / "ckpts" / f".misc_step0000005.pt.{HOST_TAG}-{H.dead_pid()}-12345678.tmp"
    orphan.write_bytes(b"killed half way")
    outcome = H.run_tool(train_tool, ["--config", H.tiny_train_config(tmp_path), "--data_dir", str(toy_data),
                                      "--output_dir", str(out), "--device", "cpu", "--no_progress"], capsys)
    assert outcome.code == 0, outcome.err
    assert not orphan.exists()


def test_run_lock_states(tmp_path):
    from ivid.utils.lock import RunLock

    folder = tmp_path / "run"
    with RunLock(str(folder)) as lock:
        assert lock.held and json.loads((folder / ".lock").read_text())["pid"] == os.getpid()
        with pytest.raises(IvidError, match=f"pid {os.getpid()}"):
            RunLock(str(folder)).acquire()  # flock: even this process's second lock is refused
    assert not folder.exists()  # created for the run and left empty: removed again
    folder.mkdir()
    (folder / ".lock").write_text(json.dumps({"pid": H.dead_pid(), "host": socket.gethostname()}))
    with pytest.warns(UserWarning, match="stale lock"):  # nobody holds the flock: stale
        with RunLock(str(folder)):
            pass
    assert os.listdir(folder) == []
    (folder / ".lock").write_text(json.dumps({"pid": 1, "host": "other-node"}))
    with pytest.raises(IvidError, match="other-node.*delete .*\\.lock"):  # another host's lock: never broken
        RunLock(str(folder)).acquire()


def test_the_wrapper_prints_one_line_or_the_traceback_on_request(capsys, monkeypatch):
    from ivid.cli import run_cli

    def bad(args):
        raise OptionError("--near -1: must be > 0\n(second line)")

    def bug(args):
        return {}["missing"]

    for main, code in ((bad, 1), (bug, 1), (lambda a: 3, 3), (lambda a: None, 0)):
        with pytest.raises(SystemExit) as info:
            run_cli(main, argv=[])
        assert info.value.code == code
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "error: --near -1: must be > 0; (second line)",
        "error: internal error (KeyError: 'missing'); rerun with --debug (or IVID_DEBUG=1) for the traceback and "
        "please report it"]
    with pytest.raises(OptionError):  # --debug: the real exception and its traceback
        run_cli(bad, argv=["--debug"])
    monkeypatch.setenv("IVID_DEBUG", "1")
    with pytest.raises(KeyError):
        run_cli(bug, argv=[])


def test_worker_tracebacks_are_unwrapped():
    from ivid.data import DataUnreadableError

    text = ("Caught DataUnreadableError in DataLoader worker process 1.\nOriginal Traceback (most recent call last):\n"
            '  File "x.py", line 3, in f\n    raise DataUnreadableError(msg)\n'
            "ivid.data.failures.DataUnreadableError: data: 50 samples in a row could not be loaded\n")
    err = unwrap_worker_error(DataUnreadableError(text))
    assert type(err) is DataUnreadableError and str(err) == "data: 50 samples in a row could not be loaded"
    plain = RuntimeError("no traceback here")
    assert unwrap_worker_error(plain) is plain


def _main_block_calls(path):
    tree = ast.parse(path.read_text())
    for node in tree.body:
        if isinstance(node, ast.If) and "__main__" in ast.dump(node.test):
            return [ast.unparse(n) for n in node.body]
    return []


def test_every_entry_point_runs_in_the_wrapper():
    root = H.REPO_ROOT
    tools = [root / "train.py", root / "eval.py", *sorted((root / "inference").glob("*.py")),
             *sorted((root / "scripts").glob("*.py"))]
    for path in tools:
        assert _main_block_calls(path) == ["run_cli(main, parse_args)"], path
        assert "add_debug_option(" in path.read_text(), path


def test_install_docs_gitignore_and_tiny_configs():
    root = H.REPO_ROOT
    readme = (root / "README.md").read_text()
    assert "https://download.pytorch.org/whl/cpu" in readme  # the CPU-only install route
    assert "no 2 GB download" not in readme
    ignored = (root / ".gitignore").read_text().split()
    for folder in ("/data/", "/runs/", "/samples/", "/metrics/"):
        assert folder in ignored  # the folders the README's commands create
    for name in ("tiny_uncond", "tiny_cond", "tiny_sr"):
        trainer = json.loads((root / "configs" / f"{name}.json").read_text())["trainer"]["args"]
        assert trainer["sample_steps"] <= 20 < 250  # grids in proportion to a 20-step smoke run


def test_toy_dataset_options_are_one_line(capsys, tmp_path):
    tool = H.load_tool("scripts/make_toy_dataset.py")
    for option, value in (("--num_images", "0"), ("--image_size", "4"), ("--num_classes", "0")):
        argv = ["--output_dir", str(tmp_path / "toy"), "--num_images", "2", "--num_workers", "1", option, value]
        outcome = H.run_tool(tool, argv, capsys)
        assert outcome.code != 0 and f"{option} {value}" in outcome.error_line()
