"""ivid.app without a server: class names, choices, model selection, input checks, job validation."""

import os
import threading

import numpy as np
import pytest
from PIL import Image

from ivid.app import AppInputError, AppSettings, JobCancelled, JobRunner, Scene, resolve_models
from ivid.app import checks, classes, choices, settings as app_settings
from ivid.app.checks import check_depth, check_midas, check_model_files, check_photo
from repo_scripts import load_script


# -- class names ---------------------------------------------------------------------------------

def test_imagenet_classes_are_the_sorted_wnids_of_timm_with_torchvision_names():
    from timm.data import ImageNetInfo
    from torchvision.models._meta import _IMAGENET_CATEGORIES

    rows = classes.imagenet_classes()
    info = ImageNetInfo()
    wnids = [wnid for wnid, _ in rows]
    assert wnids == [info.index_to_label_name(k) for k in range(1000)]
    assert wnids == sorted(wnids) and len(set(wnids)) == 1000
    assert [name for _, name in rows] == list(_IMAGENET_CATEGORIES)
    assert rows[207] == ("n02099601", "golden retriever")


def test_class_names_per_dataset():
    from ivid.toy import KINDS

    assert classes.class_names(10, "toy") == list(KINDS)
    twelve = classes.class_names(12, "toy")
    assert twelve[:10] == list(KINDS) and len(set(twelve)) == 12  # repeated kinds carry their pattern
    imagenet = classes.class_names(1000, "imagenet")
    assert imagenet[207] == "golden retriever" and classes.default_class(imagenet) == 207
    assert classes.class_names(5, "imagenet") == [f"class {k}" for k in range(5)]
    assert classes.class_names(None, "imagenet") == [] and classes.default_class([]) == classes.NO_CLASS
    entries = classes.class_choices(["ball", "crate"])
    assert entries == [("0: ball", 0), ("1: crate", 1), ("no class (unconditional)", classes.NO_CLASS)]


# -- samplers ----------------------------------------------------------------------------------------

def test_sampler_choices_map_to_request_fields():
    assert choices.sampler_fields("ddim", 25) == {"steps_uncond": 25}
    assert choices.sampler_fields("ddpm", 25) == {"steps_uncond": 1000}  # the library's DDPM switch
    assert choices.sampler_fields("dpmpp_2m", 15) == {"steps_uncond": 15, "sampler": "dpmpp_2m"}
    from ivid.sampling.multiview import SAMPLER_CHOICES

    assert {f.get("sampler", "auto") for f in (choices.sampler_fields(n, 10 if n != "ddpm" else 1000)
                                               for n in choices.SAMPLERS)} <= set(SAMPLER_CHOICES)
    with pytest.raises(ValueError, match="ddpm"):
        choices.sampler_fields("ddim", 1000)
    with pytest.raises(ValueError, match="unknown sampler"):
        choices.sampler_fields("euler", 10)
    assert set(choices.VIEWSETS) <= {"uncond", "random", "3x9", "360", "360x3"}


# -- model selection ---------------------------------------------------------------------------------

def test_resolve_models_defaults_to_demo_without_released_checkpoints(monkeypatch):
    monkeypatch.setattr(app_settings, "_released_present", lambda: False)
    models = resolve_models()
    assert models.preset == "demo" and models.dataset == "toy"
    assert models.ckpt_uncond.endswith(os.path.join("ckpts", "demo", "uncond.pt"))
    assert models.sample_defaults["steps_uncond"] == 100
    assert "download_ckpts" in models.reason and "demo" in models.title
    assert models.model_info() == (32, 10)


def test_resolve_models_released_and_given(monkeypatch):
    monkeypatch.setattr(app_settings, "_released_present", lambda: True)
    released = resolve_models()
    assert released.preset is None and released.dataset == "imagenet"
    assert released.ckpt_cond.endswith("imagenet128_cond.pt")
    given = resolve_models(ckpt_uncond="mine.pt")
    assert given.ckpt_uncond == "mine.pt" and given.ckpt_cond.endswith("imagenet128_cond.pt")
    with pytest.raises(ValueError, match="not both"):
        resolve_models("demo", ckpt_uncond="mine.pt")
    with pytest.raises(ValueError, match="unknown preset"):
        resolve_models("huge")


# -- input checks --------------------------------------------------------------------------------------

def _png(path, width, height, value=128):
    Image.fromarray(np.full((height, width, 3), value, np.uint8)).save(path, format="PNG")
    return str(path)


def test_check_photo_accepts_an_image_and_names_the_limits(tmp_path):
    info = check_photo(_png(tmp_path / "a", 40, 30), "a.png", max_megapixels=1, max_mb=1)
    assert (info.format, info.extension, info.height, info.width) == ("PNG", ".png", 30, 40)
    with pytest.raises(AppInputError, match=r"1200x1000 pixels \(1.2 megapixels\); the limit is 1 megapixels"):
        check_photo(_png(tmp_path / "big", 1200, 1000), "big.png", max_megapixels=1, max_mb=10)
    noise = np.random.default_rng(0).integers(0, 255, (600, 600, 3), np.uint8)
    Image.fromarray(noise).save(tmp_path / "noisy.png")  # ~1 MB of incompressible pixels
    with pytest.raises(AppInputError, match=r"the limit is 0.5 MB"):
        check_photo(str(tmp_path / "noisy.png"), "noisy.png", max_megapixels=10, max_mb=0.5)


def test_check_photo_rejects_non_images_and_broken_files(tmp_path):
    (tmp_path / "notes.png").write_text("not a picture\n")
    with pytest.raises(AppInputError, match="notes.png is not an image"):
        check_photo(str(tmp_path / "notes.png"), "notes.png", 10, 10)
    data = open(_png(tmp_path / "whole.png", 64, 64), "rb").read()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(AppInputError, match="cut.png is (a broken image|not an image)"):
        check_photo(str(tmp_path / "cut.png"), "cut.png", 10, 10)
    with pytest.raises(AppInputError, match="upload it again"):
        check_photo(str(tmp_path / "gone.png"), "gone.png", 10, 10)


def test_check_depth_must_fit_the_photo(tmp_path):
    photo = checks.PhotoInfo("PNG", ".png", 48, 64)
    np.savez(tmp_path / "good.npz", np.full((48, 64), 3000, np.float16))
    check_depth(str(tmp_path / "good.npz"), "good.npz", photo, max_mb=1)
    np.savez(tmp_path / "square.npz", np.full((40, 40), 3000, np.float16))
    with pytest.raises(AppInputError, match=r"square.npz does not fit the 64x48 photo: depth is 40x40") as err:
        check_depth(str(tmp_path / "square.npz"), "square.npz", photo, max_mb=1)
    assert str(tmp_path) not in str(err.value)  # the server's folders stay private
    (tmp_path / "junk.npz").write_text("junk")
    with pytest.raises(AppInputError, match="junk.npz does not fit"):
        check_depth(str(tmp_path / "junk.npz"), "junk.npz", photo, max_mb=1)


def test_check_model_files_and_midas_name_the_file_and_the_fix(tmp_path):
    config = tmp_path / "g.json"
    config.write_text("{}")
    check_model_files([("config_uncond", str(config))])
    with pytest.raises(AppInputError) as err:
        check_model_files([("config_uncond", str(config)), ("ckpt_cond", "ckpts/imagenet128_cond.pt")])
    assert "ckpts/imagenet128_cond.pt" in str(err.value) and "python scripts/download_ckpts.py" in str(err.value)
    assert check_midas(str(tmp_path / "midas.pt"), depth_given=True) is None
    with pytest.raises(AppInputError, match="upload the photo's depth"):
        check_midas(str(tmp_path / "midas.pt"), depth_given=False)


# -- the runner's checks, before any model work --------------------------------------------------------

@pytest.fixture
def runner(tmp_path, monkeypatch):
    monkeypatch.setattr(app_settings, "_released_present", lambda: False)
    return JobRunner(AppSettings(models=resolve_models(), work_dir=str(tmp_path)), num_classes=10)


@pytest.mark.parametrize("scene,message", [
    (Scene(viewset="360x3"), "Viewset '360x3' is not offered"),
    (Scene(seed=-1), "Seed -1"),
    (Scene(class_label=10), "Class 10: these models take 0 to 9"),
    (Scene(steps_cond=0), "Steps per view 0"),
    (Scene(guidance=-1), "Guidance -1"),
    (Scene(sampler="euler"), "Sampler 'euler'"),
    (Scene(sampler="ddim", steps_uncond=1000), "First-view steps: ddim takes 1 to 999"),
])
def test_runner_rejects_bad_values(runner, scene, message):
    with pytest.raises(AppInputError, match=message.replace("(", r"\(")):
        runner.generate(scene)


def test_runner_missing_checkpoint_names_it(tmp_path, runner):
    import dataclasses

    missing = str(tmp_path / "nowhere" / "imagenet128_cond.pt")
    runner.settings = dataclasses.replace(runner.settings,
                                          models=dataclasses.replace(runner.settings.models, ckpt_cond=missing))
    with pytest.raises(AppInputError) as err:
        runner.generate(Scene(class_label=1))
    assert missing in str(err.value) and "python scripts/download_ckpts.py" in str(err.value)
    assert runner.history[-1].outcome == "invalid"
    assert os.listdir(tmp_path / "jobs") == []  # the failed job's folder is gone


def test_runner_cancelled_before_start(runner, tmp_path):
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(JobCancelled):
        runner.generate(Scene(class_label=1, steps_uncond=2, steps_cond=1, viewset="random"), cancel=cancel)
    assert runner.history[-1].outcome == "cancelled" and runner.history[-1].views == 0
    assert os.listdir(tmp_path / "jobs") == []


def test_runner_keeps_only_the_newest_job_folders(runner, tmp_path):
    import dataclasses
    import time

    runner.settings = dataclasses.replace(runner.settings, keep_jobs=2)
    folders = []
    for k in range(4):
        folders.append(runner._new_job_dir())
        runner._active.discard(folders[-1])
        os.utime(folders[-1], (time.time() + k, time.time() + k))
    assert sorted(os.listdir(tmp_path / "jobs")) == sorted(os.path.basename(f) for f in folders[-2:])


def test_stop_all_cancels_a_running_job(runner, monkeypatch):
    started = threading.Event()

    def fake_job(scene, extra, job_dir, report, cancel, counter):
        started.set()
        assert cancel.wait(timeout=60), "stop_all did not reach the job"
        raise JobCancelled()

    monkeypatch.setattr(runner, "_sample_and_render", fake_job)
    errors = []
    worker = threading.Thread(target=lambda: errors.append(_raises(runner.generate, Scene(class_label=1))))
    worker.start()
    assert started.wait(timeout=60)
    runner.stop_all()
    worker.join(timeout=60)
    assert errors == [JobCancelled] and runner.history[-1].outcome == "cancelled"


def _raises(fn, *args):
    try:
        fn(*args)
    except Exception as err:  # noqa: BLE001 - the test inspects the type
        return type(err)
    return None


def _load_cli():
    return load_script("inference/app.py", "app_cli")


def test_cli_defaults_bind_locally_and_reject_bad_values(capsys):
    cli = _load_cli()
    args = cli.parse_args([])
    assert (args.host, args.port, args.share, args.concurrency, args.preset) == ("127.0.0.1", None, False, 1, None)
    for bad in (["--concurrency", "0"], ["--port", "70000"], ["--max_megapixels", "0"], ["--preset", "huge"]):
        with pytest.raises(SystemExit):
            cli.parse_args(bad)
        assert bad[0] in capsys.readouterr().err


def test_page_grids_are_enlarged_by_whole_factors(tmp_path):
    from ivid.app.jobs import VIEW_WIDTH, _enlarged

    small = np.random.default_rng(1).integers(0, 255, (104, 302, 3), np.uint8)
    Image.fromarray(small).save(tmp_path / "g.png")
    view = _enlarged(str(tmp_path / "g.png"), str(tmp_path / "page"))
    factor = round(VIEW_WIDTH / 302)
    big = np.asarray(Image.open(view))
    assert big.shape == (104 * factor, 302 * factor, 3)
    np.testing.assert_array_equal(big[::factor, ::factor], small)  # every pixel a sharp factor x factor block
    np.testing.assert_array_equal(big[factor - 1::factor, factor - 1::factor], small)
    Image.fromarray(np.zeros((10, VIEW_WIDTH, 3), np.uint8)).save(tmp_path / "wide.png")
    assert _enlarged(str(tmp_path / "wide.png"), str(tmp_path / "page")) == str(tmp_path / "wide.png")


def test_handlers_take_only_files_from_the_upload_folder(tmp_path, monkeypatch):
    gr = pytest.importorskip("gradio")
    from ivid.app import ui

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "uploads"))
    upload = tmp_path / "uploads" / "abc123" / "photo.png"
    upload.parent.mkdir(parents=True)
    _png(upload, 8, 8)
    assert ui._upload(str(upload), "photo") == (os.path.realpath(upload), "photo.png")
    assert ui._upload(None, "photo") == (None, None)
    for outside in ("/etc/passwd", str(tmp_path / "uploads" / ".." / "elsewhere.png")):
        with pytest.raises(gr.Error, match="must be uploaded through the page"):
            ui._upload(outside, "photo")
    ui._delete_upload(os.path.realpath(upload))
    assert not upload.parent.exists()  # the upload and its folder are gone
