"""The Gradio page: a Generate tab and an Image-to-3D tab, wired to :class:`ivid.app.jobs.JobRunner`.

Each tab's button starts a job in Gradio's queue (``concurrency`` at a time); its Stop
button cancels it: the job's asyncio task is cancelled, which sets the job's cancel
event, and the sampler stops after the view it is working on. Bad input gives a
:class:`gradio.Error` with the one-line message of :mod:`ivid.app.checks`, never a
traceback; unexpected failures are logged with their traceback on the server and
reported in one line on the page.

Uploads: Gradio stores an upload in its upload folder (``GRADIO_TEMP_DIR``, which
``inference/app.py`` points into the app's temporary folder) and hands the handler its
path. The handler accepts only paths inside that folder, the job copies the file into
its job folder, and the upload is deleted when the job ends (and the upload boxes are
cleared), whatever the outcome.

API (``gradio_client``): ``/generate`` (class, seed, viewset, sampler, first-view steps,
steps per view, guidance) and ``/image_to_3d`` (photo, depth or None, class, seed, viewset,
steps per view, guidance) both return (grid, depth grid, video, 3D model, downloads, info).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from typing import Callable, List, Optional, Tuple

import gradio as gr

from .checks import AppInputError
from .choices import SAMPLERS, VIEWSETS
from .classes import NO_CLASS, class_choices, class_names, default_class
from .jobs import JobCancelled, JobResult, JobRunner, Scene
from .settings import AppSettings

__all__ = ["build_app", "launch_app"]

log = logging.getLogger("ivid.app")

_ABOUT = """# ivid: 3D-aware image generation with 2D diffusion models
An unconditional RGBD diffusion model draws the first view; a conditional one draws every further
view from what the views before it show, re-projected through their depth. The views are fused
into a video and a 3D model. Models: **{title}** ({size}x{size} pixels per view){hint}.
"""

_NOTES = ("The 3D model is every view's depth mesh (binary glTF); drag to turn it, scroll to zoom. "
          "Uploads and results are kept in a temporary folder and deleted when the app stops.")


def _scene_inputs(names: List[str], defaults, image_mode: bool):
    """The scene controls of a tab; returns them in the handler's argument order."""
    choices = class_choices(names)
    label = "Class (optional)" if image_mode else "Class"
    klass = gr.Dropdown(choices=choices, value=NO_CLASS if image_mode else default_class(names), label=label,
                        info="the null class gives unconditional guidance" if names else None,
                        interactive=bool(names))
    seed = gr.Number(value=0, precision=0, minimum=0, label="Seed")
    viewset = gr.Radio(list(VIEWSETS), value="3x9", label="Viewset",
                       info="3x9: 27 views over yaw ±0.6, pitch ±0.15 · 360: a full turn · random: one novel view")
    sampler = steps_uncond = None
    if not image_mode:
        sampler = gr.Radio(list(SAMPLERS), value=defaults["sampler"], label="First-view sampler",
                           info=" · ".join(f"{k}: {v.about}" for k, v in SAMPLERS.items()))
        steps_uncond = gr.Slider(1, 999, step=1, value=defaults["steps_uncond"], label="First-view steps")
    steps_cond = gr.Slider(1, 200, step=1, value=defaults["steps_cond"], label="Steps per further view")
    guidance = gr.Slider(0.0, 10.0, step=0.5, value=defaults["guidance"], label="Guidance")
    return klass, seed, viewset, sampler, steps_uncond, steps_cond, guidance


def _outputs(height: int):
    with gr.Row():
        grid = gr.Image(label="Views (colour)", type="filepath", interactive=False, height=height)
        depth = gr.Image(label="Views (depth)", type="filepath", interactive=False, height=height)
    with gr.Row():
        video = gr.Video(label="Swing video", interactive=False, autoplay=True, loop=True, height=360)
        model = gr.Model3D(label="3D model", clear_color=(0.12, 0.12, 0.14, 1.0), height=360,
                           camera_position=(90, 80, None))  # from the front, a little above; auto zoom
    downloads = gr.File(label="Downloads: scene (.npz), video (.mp4), 3D model (.glb)", file_count="multiple",
                        interactive=False, height=210)
    info = gr.Markdown()
    return [grid, depth, video, model, downloads, info]


def _result_outputs(result: JobResult) -> Tuple:
    info = (f"Done in {result.seconds:.0f} s. The same with the command-line tools:\n\n"
            f"```\n{result.commands[0]}\n{result.commands[1]}\n```")
    return (result.grid_view, result.depth_grid_view, result.video, result.model,
            [result.scene, result.video, result.model], info)


def _theme() -> gr.themes.Base:
    """Gradio's default look with system fonts (its default web fonts need the internet)."""
    return gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])


def _page_error(message: str) -> gr.Error:
    return gr.Error(message, print_exception=False)


#: share of a job's progress bar per phase (the rest: loading the models)
_PHASES = {"view": (0.02, 0.90), "video frame": (0.90, 1.0)}


async def _run_job(job: Callable, progress: gr.Progress) -> JobResult:
    """Run ``job(report, cancel)`` in a worker thread; cancelling this coroutine sets ``cancel``."""
    cancel = threading.Event()
    fraction = [0.0]

    def report(done: int, total: int, what: str) -> None:
        # one bar for the whole job: views, then video frames; other steps keep the bar where it is
        if what in _PHASES:
            start, end = _PHASES[what]
            fraction[0] = start + (end - start) * done / max(total, 1)
            what = f"{what} {done} of {total}"
        progress(fraction[0], desc=what)

    try:
        return await asyncio.to_thread(job, report, cancel)
    except asyncio.CancelledError:
        cancel.set()  # the worker stops at its next view or frame
        raise
    except AppInputError as err:
        raise _page_error(str(err)) from None
    except JobCancelled:
        raise _page_error("Stopped.") from None
    except Exception as err:  # a bug, not the user's doing: details go to the server's log only
        log.exception("job failed")
        raise _page_error(f"The job failed ({type(err).__name__}); the server's log has the details.") from None


def _scene(klass, seed, viewset, steps_cond, guidance, sampler="ddim", steps_uncond=1) -> Scene:
    try:
        return Scene(class_label=int(NO_CLASS if klass is None else klass), seed=int(seed), viewset=str(viewset),
                     steps_uncond=int(steps_uncond), steps_cond=int(steps_cond), guidance=float(guidance),
                     sampler=str(sampler))
    except (TypeError, ValueError):
        raise _page_error("Fill in every field with a number (seed, steps, guidance).") from None


def _upload(path: Optional[str], what: str) -> Tuple[Optional[str], Optional[str]]:
    """An upload's server path and its user-facing name; refuses anything outside Gradio's upload folder."""
    if path is None:
        return None, None
    if isinstance(path, (list, tuple)):
        raise _page_error(f"Upload one {what}.")
    folder = os.path.realpath(gr.utils.get_upload_folder())
    real = os.path.realpath(str(path))
    if os.path.commonpath([folder, real]) != folder:
        raise _page_error(f"The {what} must be uploaded through the page.")
    return real, os.path.basename(real)


def _delete_upload(path: Optional[str]) -> None:
    if path is None:
        return
    with contextlib.suppress(OSError):
        os.remove(path)
    with contextlib.suppress(OSError):
        os.rmdir(os.path.dirname(path))  # Gradio's per-upload folder, when empty


def build_app(settings: AppSettings, concurrency: int = 1) -> Tuple[gr.Blocks, JobRunner]:
    """The page and the runner of its jobs.

    Raises:
        ValueError / FileNotFoundError: the models' configs are missing or malformed.
    """
    models = settings.models
    image_size, num_classes = models.model_info()
    names = class_names(num_classes, models.dataset)
    runner = JobRunner(settings, concurrency=concurrency, num_classes=num_classes)
    sample = models.sample_defaults
    steps_uncond = int(sample.get("steps_uncond", 1000))
    defaults = {"sampler": "ddpm" if steps_uncond >= 1000 else "ddim", "steps_uncond": min(steps_uncond, 999),
                "steps_cond": int(sample.get("steps_cond", 50)), "guidance": float(sample.get("guidance", 3.0))}
    height = 260 if image_size <= 64 else 420

    async def generate(klass, seed, viewset, sampler, steps_uncond, steps_cond, guidance,
                       progress=gr.Progress()):
        scene = _scene(klass, seed, viewset, steps_cond, guidance, sampler, steps_uncond)
        result = await _run_job(lambda report, cancel: runner.generate(scene, report, cancel), progress)
        return _result_outputs(result)

    async def image_to_3d(photo, depth, klass, seed, viewset, steps_cond, guidance, progress=gr.Progress()):
        photo_path = depth_path = None
        try:
            photo_path, photo_name = _upload(photo, "photo")
            depth_path, depth_name = _upload(depth, "depth file")
            if photo_path is None:
                raise _page_error("Upload a photo first.")
            scene = _scene(klass, seed, viewset, steps_cond, guidance)
            result = await _run_job(lambda report, cancel: runner.image_to_3d(
                photo_path, photo_name, depth_path, depth_name, scene, report, cancel), progress)
            return _result_outputs(result)
        finally:
            _delete_upload(photo_path)
            _delete_upload(depth_path)

    with gr.Blocks(title="ivid", analytics_enabled=False, delete_cache=(600, 3600)) as demo:
        hint = "; the released ImageNet-128 models: `python scripts/download_ckpts.py`, then restart" \
            if models.preset == "demo" else ""
        gr.Markdown(_ABOUT.format(title=models.title, size=image_size, hint=hint))
        with gr.Tabs():
            with gr.Tab("Generate"):
                with gr.Row():
                    with gr.Column(scale=1, min_width=300):
                        klass, seed, viewset, sampler, steps_u, steps_c, guidance = _scene_inputs(names, defaults,
                                                                                                  False)
                        with gr.Row():
                            run = gr.Button("Generate", variant="primary")
                            stop = gr.Button("Stop", variant="stop")
                    with gr.Column(scale=3):
                        outputs = _outputs(height)
                event = run.click(generate, [klass, seed, viewset, sampler, steps_u, steps_c, guidance], outputs,
                                  api_name="generate", show_progress_on=outputs[0])
                stop.click(None, None, None, cancels=[event], api_visibility="private")
            with gr.Tab("Image to 3D"):
                with gr.Row():
                    with gr.Column(scale=1, min_width=300):
                        photo = gr.File(label="Photo (PNG, JPEG, WebP, ...; at most "
                                              f"{settings.max_megapixels:g} megapixels, {settings.max_upload_mb:g} MB)",
                                        file_types=["image"], type="filepath")
                        depth = gr.File(label="Its depth (optional): .npz with arr_0 = MiDaS disparity at the "
                                              "photo's size; without it MiDaS predicts it", file_types=[".npz"],
                                        type="filepath")
                        klass2, seed2, viewset2, _, _, steps_c2, guidance2 = _scene_inputs(names, defaults, True)
                        with gr.Row():
                            run2 = gr.Button("Lift to 3D", variant="primary")
                            stop2 = gr.Button("Stop", variant="stop")
                    with gr.Column(scale=3):
                        outputs2 = _outputs(height)
                event2 = run2.click(image_to_3d, [photo, depth, klass2, seed2, viewset2, steps_c2, guidance2],
                                    outputs2, api_name="image_to_3d", show_progress_on=outputs2[0])
                # the uploads are deleted after each run: clear their boxes so the page says so
                event2.then(lambda: (None, None), None, [photo, depth], api_visibility="private")
                stop2.click(None, None, None, cancels=[event2], api_visibility="private")
        gr.Markdown(_NOTES)
    demo.queue(default_concurrency_limit=concurrency)
    return demo, runner


def launch_app(settings: AppSettings, host: str = "127.0.0.1", port: Optional[int] = None, share: bool = False,
               concurrency: int = 1) -> Tuple[gr.Blocks, JobRunner, str, Optional[str]]:
    """Build the page and start serving it; returns ``(blocks, runner, local URL, share URL or None)``.

    Returns once the server runs; ``blocks.block_thread()`` waits for Ctrl-C, ``blocks.close()`` stops it.
    """
    demo, runner = build_app(settings, concurrency)
    _, url, share_url = demo.launch(server_name=host, server_port=port, share=share, prevent_thread_lock=True,
                                    max_file_size=f"{settings.max_upload_mb:g}mb", allowed_paths=[settings.work_dir],
                                    theme=_theme(), quiet=True, footer_links=["api", "gradio"])
    return demo, runner, url, share_url
