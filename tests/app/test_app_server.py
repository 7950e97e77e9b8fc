"""The web app served in-process on a free local port and driven through gradio_client (demo models, CPU)."""

import os
import re
import socket
import time

import numpy as np
import pytest
from PIL import Image

gradio_client = pytest.importorskip("gradio_client", reason="the app extra is not installed")
pytest.importorskip("gradio", reason="the app extra is not installed")
trimesh = pytest.importorskip("trimesh", reason="the app extra is not installed")

from ivid.app import AppSettings, resolve_models  # noqa: E402

FRAMES = 4
MAX_MEGAPIXELS = 0.05
pytestmark = pytest.mark.slow


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(work_dir, models, monkeypatch_env):
    from ivid.app.ui import launch_app

    monkeypatch_env("GRADIO_TEMP_DIR", str(work_dir / "uploads"))
    settings = AppSettings(models=models, work_dir=str(work_dir), device="cpu", video_frames=FRAMES,
                           max_megapixels=MAX_MEGAPIXELS, max_upload_mb=1.0)
    demo, runner, url, _ = launch_app(settings, host="127.0.0.1", port=_free_port())
    client = gradio_client.Client(url, verbose=False, download_files=str(work_dir / "client"),
                                  analytics_enabled=False)
    return demo, runner, client


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    work = tmp_path_factory.mktemp("app")
    demo, runner, client = _serve(work, resolve_models("demo"), mp.setenv)
    yield runner, client, work
    client.close() if hasattr(client, "close") else None
    demo.close()
    mp.undo()


def _generate(client, **changes):
    args = dict(klass=2, seed=1, viewset="random", sampler="ddim", steps_uncond=2, steps_cond=1, guidance=3.0)
    args.update(changes)
    return client.predict(*args.values(), api_name="/generate")


def _video_path(value):
    return value["video"] if isinstance(value, dict) else value


def _expected_geometry(scene_path, models):
    """Vertex / face counts of the scene's mesh, from the scene file itself (not from the GLB): the GLB holds
    the vertices its faces use."""
    from ivid.render.export import scene_geometry
    from ivid.scene import load_scene

    views = load_scene(scene_path)
    atol = models.render_defaults.get("atol", 0.03)
    rtol = models.render_defaults.get("rtol", 0.03)
    geometry = scene_geometry(views, atol, rtol)
    return views, len(np.unique(geometry["faces"])), len(geometry["faces"])


def _check_outputs(outputs, num_views):
    import imageio.v2 as imageio

    grid, depth_grid, video, model, downloads, info = outputs
    for image in (grid, depth_grid):
        with Image.open(image) as im:
            assert im.width >= num_views * 32 and im.height >= 32
    reader = imageio.get_reader(_video_path(video))
    frames = [frame for frame in reader]
    reader.close()
    assert len(frames) == FRAMES and frames[0].ndim == 3
    names = sorted(os.path.splitext(p)[1] for p in downloads)
    assert names == [".glb", ".mp4", ".npz"]
    scene = next(p for p in downloads if p.endswith(".npz"))
    views, vertices, faces = _expected_geometry(scene, resolve_models("demo"))
    assert len(views) == num_views
    loaded = trimesh.load(model, process=False)
    (mesh,) = loaded.geometry.values()
    assert len(mesh.vertices) == vertices
    assert 0 < vertices <= num_views * 32 * 32  # at most one vertex per pixel
    assert len(mesh.faces) == faces
    assert "inference/sample.py --preset demo" in info
    return views


def test_generate_returns_grid_video_and_3d_model(app):
    runner, client, _ = app
    views = _check_outputs(_generate(client), num_views=2)
    assert views[0]["rgb"].shape == (32, 32, 3)
    assert runner.history[-1].outcome == "done" and runner.history[-1].views == 2


def _photo(path, width=48, height=36):
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([x * 255 // width, y * 255 // height, np.full_like(x, 90)], -1).astype(np.uint8)
    Image.fromarray(rgb).save(path, format="PNG")
    return str(path)


def _depth(path, height=36, width=48):
    np.savez(path, np.linspace(2000, 6000, height * width, dtype=np.float32).reshape(height, width).astype(np.float16))
    return str(path)


def _uploaded_files(work):
    folder = work / "uploads"
    found = []
    for root, _, files in os.walk(folder):
        found += [f for f in files if f.startswith(("photo_in", "depth_in"))]
    return found


def test_image_to_3d_with_given_depth(app, tmp_path):
    from gradio_client import handle_file

    runner, client, work = app
    photo = _photo(tmp_path / "photo_in.png")
    outputs = client.predict(handle_file(photo), handle_file(_depth(tmp_path / "depth_in.npz")), -1, 3, "random", 1,
                             3.0, api_name="/image_to_3d")
    views = _check_outputs(outputs, num_views=2)
    # the first view is the photo, centre-cropped and resized to 32x32 as in training
    from ivid.data.preprocess import read_image01

    expected = np.round(read_image01(photo, 32)[0] * 255)
    assert np.abs(views[0]["rgb"].astype(np.float32) - expected).max() <= 1
    assert _uploaded_files(work) == []  # the uploads were deleted after use


def _error_of(call):
    with pytest.raises(Exception) as err:
        call()
    return str(err.value)


def test_bad_uploads_get_clear_messages(app, tmp_path):
    from gradio_client import handle_file

    runner, client, work = app

    def lift(photo, depth=None):
        return client.predict(handle_file(photo), handle_file(depth) if depth else None, -1, 0, "random", 1, 3.0,
                              api_name="/image_to_3d")

    # a non-image extension: Gradio's own type check answers (the handler never sees the file)
    (tmp_path / "rejected_notes.txt").write_text("this is not a picture\n")
    assert "Invalid file type" in _error_of(lambda: lift(str(tmp_path / "rejected_notes.txt")))
    (tmp_path / "photo_in_text.png").write_text("this is not a picture\n")
    assert "photo_in_text.png is not an image" in _error_of(lambda: lift(str(tmp_path / "photo_in_text.png")))
    big = _photo(tmp_path / "photo_in_big.png", width=300, height=200)
    message = _error_of(lambda: lift(big))
    assert "300x200 pixels" in message and f"the limit is {MAX_MEGAPIXELS:g} megapixels" in message
    square = _depth(tmp_path / "depth_in_square.npz", height=30, width=30)
    message = _error_of(lambda: lift(_photo(tmp_path / "photo_in_ok.png"), square))
    assert "depth_in_square.npz does not fit the 48x36 photo" in message
    for text in (message,):
        assert "Traceback" not in text and str(work) not in text
    assert _uploaded_files(work) == []
    assert all(record.outcome == "invalid" for record in runner.history[-3:])


def test_missing_checkpoint_names_the_file_and_the_download_command(tmp_path):
    import dataclasses

    mp = pytest.MonkeyPatch()
    missing = str(tmp_path / "ckpts" / "imagenet128_uncond.pt")
    models = dataclasses.replace(resolve_models("demo"), ckpt_uncond=missing)
    demo, runner, client = _serve(tmp_path, models, mp.setenv)
    try:
        message = _error_of(lambda: _generate(client))
        assert missing in message and "python scripts/download_ckpts.py" in message
    finally:
        demo.close()
        mp.undo()


def test_two_queued_jobs_both_finish_one_at_a_time(app):
    runner, client, _ = app
    before = len(runner.history)
    jobs = [client.submit(2, seed, "random", "ddim", 2, 1, 3.0, api_name="/generate") for seed in (5, 6)]
    results = [job.result(timeout=600) for job in jobs]
    for outputs in results:
        _check_outputs(outputs, num_views=2)
    records = runner.history[before:]
    assert [r.outcome for r in records] == ["done", "done"]
    first, second = sorted(records, key=lambda r: r.started)
    assert first.ended <= second.started  # --concurrency 1: the second waited in the queue


def test_cancelling_a_job_stops_it(app):
    runner, client, _ = app
    before = len(runner.history)
    job = client.submit(2, 7, "360", "ddim", 2, 4, 3.0, api_name="/generate")
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:  # wait until it samples views
        status = job.status()
        progress = getattr(status, "progress_data", None) or []
        views = [int(m.group(1)) for unit in progress for m in [re.match(r"view (\d+) of", unit.desc or "")] if m]
        if views and max(views) >= 2:
            break
        time.sleep(0.05)
    else:
        pytest.fail("the job reported no view progress")
    job.cancel()
    deadline = time.monotonic() + 300
    while len(runner.history) == before and time.monotonic() < deadline:
        time.sleep(0.1)
    (record,) = runner.history[before:]
    assert record.outcome == "cancelled" and 2 <= record.views < 20
