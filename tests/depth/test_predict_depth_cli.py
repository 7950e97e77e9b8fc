"""scripts/predict_depth.py on small generated folders with a tiny random-weight model."""

import os
import urllib.error
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ivid.depth import download
from repo_scripts import load_script

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "predict_depth.py"


@pytest.fixture(scope="module")
def script():
    return load_script(SCRIPT, "predict_depth_script")


def _write_image(path, height, width, seed):
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, format="PNG" if path.suffix.lower() == ".png" else "JPEG")
    return np.asarray(Image.open(path).convert("RGB"))


@pytest.fixture()
def imagenet_dir(tmp_path):
    root = tmp_path / "data"
    images = {
        "n01/a.JPEG": _write_image(root / "images/n01/a.JPEG", 40, 60, 0),
        "n01/b.jpeg": _write_image(root / "images/n01/b.jpeg", 60, 40, 1),
        "n02/c.JPG": _write_image(root / "images/n02/c.JPG", 48, 72, 2),     # same input size as a
        "n02/d.png": _write_image(root / "images/n02/d.png", 33, 50, 3),
    }
    (root / "images/n02/bad.JPEG").write_bytes(b"\xff\xd8 this is not a jpeg")
    (root / "images/n01/notes.txt").write_text("ignored")
    return root, images


def test_writes_one_npz_per_image_then_resumes(script, imagenet_dir, tiny_midas, capsys):
    root, images = imagenet_dir
    args = script.parse_args(["--data_dir", str(root), "--batch_size", "2", "--num_workers", "1",
                              "--device", "cpu", "--preview"])
    summary = script.main(args, model=tiny_midas)
    assert (summary.done, summary.skipped, len(summary.failed)) == (4, 0, 1)
    assert summary.failed[0][0] == "n02/bad.JPEG"
    err = capsys.readouterr().err
    assert os.path.join(str(root), "images", "n02/bad.JPEG") in err

    written = sorted(str(p.relative_to(root / "depths")) for p in (root / "depths").rglob("*.npz"))
    assert written == ["n01/a.npz", "n01/b.npz", "n02/c.npz", "n02/d.npz"]
    for rel, image in images.items():
        out = root / "depths" / (os.path.splitext(rel)[0] + ".npz")
        with np.load(out, allow_pickle=False) as data:
            assert list(data.keys()) == ["arr_0"]
            depth = data["arr_0"]
        assert depth.dtype == np.float16 and depth.shape == image.shape[:2]
        np.testing.assert_allclose(depth.astype(np.float32), tiny_midas.predict(image), rtol=2e-3, atol=1e-3)
        preview = np.asarray(Image.open(out.with_suffix(".png")))
        assert preview.shape == image.shape[:2] + (3,) and preview.dtype == np.uint8

    mtimes = {p: p.stat().st_mtime_ns for p in (root / "depths").rglob("*.npz")}
    summary = script.main(script.parse_args(["--data_dir", str(root), "--num_workers", "0"]), model=tiny_midas)
    assert (summary.done, summary.skipped, len(summary.failed)) == (0, 4, 1)
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes

    summary = script.main(script.parse_args(["--data_dir", str(root), "--num_workers", "0", "--overwrite"]),
                          model=tiny_midas)
    assert (summary.done, summary.skipped, len(summary.failed)) == (4, 0, 1)


def test_single_category_layout(script, tmp_path, tiny_midas):
    root = tmp_path / "cats"
    _write_image(root / "images/x.png", 32, 32, 4)
    _write_image(root / "images/y.JPG", 50, 20, 5)
    summary = script.main(script.parse_args(["--data_dir", str(root), "--num_workers", "0"]), model=tiny_midas)
    assert summary.done == 2
    assert sorted(p.name for p in (root / "depths").iterdir()) == ["x.npz", "y.npz"]


def test_nothing_to_do_needs_no_weights(script, tmp_path, tiny_midas, monkeypatch):
    root = tmp_path / "done"
    _write_image(root / "images/x.png", 32, 32, 4)
    script.main(script.parse_args(["--data_dir", str(root), "--num_workers", "0"]), model=tiny_midas)
    monkeypatch.setattr(download, "urlopen", None)                 # any download attempt would fail
    args = script.parse_args(["--data_dir", str(root), "--ckpt", str(tmp_path / "dpt_beit_large_512.pt")])
    assert script.main(args).skipped == 1


def test_missing_weights_offline(script, tmp_path, monkeypatch):
    root = tmp_path / "data"
    _write_image(root / "images/x.png", 32, 32, 4)

    def offline(url, timeout=None):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(download, "urlopen", offline)
    ckpt = tmp_path / "ckpts" / "dpt_beit_large_512.pt"
    args = script.parse_args(["--data_dir", str(root), "--ckpt", str(ckpt), "--device", "cpu"])
    with pytest.raises(download.MidasDownloadError, match="put it at"):
        script.main(args)


def test_bad_folders(script, tmp_path, tiny_midas):
    with pytest.raises(FileNotFoundError, match="images/"):
        script.main(script.parse_args(["--data_dir", str(tmp_path)]), model=tiny_midas)
    _write_image(tmp_path / "images/x.png", 32, 32, 0)
    _write_image(tmp_path / "images/x.jpg", 32, 32, 1)
    with pytest.raises(ValueError, match="depths/x.npz"):
        script.main(script.parse_args(["--data_dir", str(tmp_path)]), model=tiny_midas)


def test_parse_args_defaults(script):
    args = script.parse_args(["--data_dir", "d"])
    assert args.ckpt == os.path.join("ckpts", "dpt_beit_large_512.pt")
    assert (args.batch_size, args.overwrite, args.preview, args.device, args.random_weights) == (4, False, False,
                                                                                               None, False)
    assert script.parse_args(["--data_dir", "d", "--random_weights"]).random_weights


def test_same_image_extensions_as_the_training_index():
    index = pytest.importorskip("ivid.data.index")
    from ivid.depth.folder import IMAGE_EXTENSIONS

    assert set(IMAGE_EXTENSIONS) == set(index.IMAGE_EXTENSIONS)
    assert index.depth_path_for("images/n01/a.b.JPEG") == "depths/n01/a.b.npz"
    from ivid.depth.folder import depth_relpath

    assert depth_relpath("n01/a.b.JPEG") == "n01/a.b.npz"
