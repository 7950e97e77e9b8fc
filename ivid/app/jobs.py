"""The app's jobs: sample a scene (or lift a photo), render its swing video and export its 3D model.

A job is the library's two runs, nothing else: :func:`ivid.sampling.run_sampling`
(``inference/sample.py``) for one seed into a fresh job folder of the app, then
:func:`ivid.render.run_render` (``inference/render.py``) with ``--traj swing
--export glb`` on its scene. The page shows the files they write:

=================  ==========================================
grid / depth grid  ``grids/<name>.png``, ``grids/<name>_depth.png``
video              ``videos/<name>.mp4`` (and ``_depth.mp4``)
3D model           ``meshes/<name>.glb`` (binary glTF)
scene              ``scenes/<name>.npz`` (:mod:`ivid.scene`)
=================  ==========================================

Progress is reported per view and per video frame through ``progress(done, total,
what)``; setting the ``cancel`` event stops a job at the next view or frame
(:class:`JobCancelled`). At most ``concurrency`` jobs run at once, counted here, so a
cancelled job that is still finishing its current view holds its slot until it stops.
Nothing here knows about Gradio (:mod:`ivid.app.ui` wires it to the page).
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import shlex
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
from ivid.errors import IvidError, OptionError
from ivid.render.free_view import RenderRequest, run_render
from ivid.sampling.image_to_3d import DEFAULT_MIDAS_CKPT
from ivid.sampling.presets import resolve_request
from ivid.sampling.run import SampleRequest, find_file, run_sampling
from ivid.utils.seeds import parse_seeds

from .checks import AppInputError, check_depth, check_midas, check_model_files, check_photo
from .choices import SAMPLERS, VIEWSETS, sampler_fields
from .classes import NO_CLASS
from .settings import MODEL_OPTIONS, AppSettings

__all__ = ["JobCancelled", "Scene", "JobResult", "JobRecord", "JobRunner", "ProgressFn"]

log = logging.getLogger("ivid.app")

#: progress(done, total, what): ``done`` of ``total`` units of ``what`` ("view", "frame", ...) finished
ProgressFn = Callable[[int, int, str], None]

_MAX_STEPS = 999
#: width the page's grids are enlarged to (32x32 views would be specks otherwise)
VIEW_WIDTH = 900
_MAX_GUIDANCE = 20.0


class JobCancelled(Exception):
    """The job was stopped by its user."""


@dataclass(frozen=True)
class Scene:
    """What a job asks for (the page's inputs).

    Attributes:
        class_label: class index, or :data:`ivid.app.classes.NO_CLASS` for the null class.
        seed: the sample's seed (>= 0).
        viewset: one of :data:`ivid.app.choices.VIEWSETS`.
        steps_uncond: first-view steps (for the DDIM sampler; see :data:`ivid.app.choices.SAMPLERS`).
        steps_cond: DDIM steps of every further view.
        guidance: classifier-free guidance strength.
        sampler: a :data:`ivid.app.choices.SAMPLERS` name (the first view's sampler).
    """

    class_label: int = NO_CLASS
    seed: int = 0
    viewset: str = "3x9"
    steps_uncond: int = 100
    steps_cond: int = 20
    guidance: float = 3.0
    sampler: str = "ddim"


@dataclass(frozen=True)
class JobResult:
    """Files of a finished job (all inside its job folder) and how long it took.

    ``grid_view`` / ``depth_grid_view`` are the grids enlarged for the page (nearest neighbour,
    whole factors, to about :data:`VIEW_WIDTH` pixels; the grids themselves when already that wide).
    """

    run_dir: str
    grid: str
    depth_grid: str
    grid_view: str
    depth_grid_view: str
    video: str
    depth_video: str
    model: str
    scene: str
    seconds: float
    commands: Tuple[str, ...]


@dataclass(frozen=True)
class JobRecord:
    """How a job ended: ``kind`` (generate / image_to_3d), ``outcome`` (``done``, ``cancelled``,
    ``invalid`` = a user error, ``failed``), views sampled, and start/end times (``time.monotonic``)
    of the time it held a job slot."""

    kind: str
    outcome: str
    views: int
    started: float
    ended: float


class JobRunner:
    """Runs the app's jobs with the models and limits of ``settings``.

    Args:
        settings: :class:`ivid.app.settings.AppSettings`.
        concurrency: jobs that may run at the same time.
        num_classes: the models' class count (None: unconditional), checked against class labels.

    Attributes:
        history: a :class:`JobRecord` of every job that got a slot, in the order they ended.
    """

    def __init__(self, settings: AppSettings, concurrency: int = 1, num_classes: Optional[int] = None):
        if concurrency < 1:
            raise OptionError(f"--concurrency {concurrency}: must be >= 1")
        self.settings = settings
        self.num_classes = num_classes
        self.history: List[JobRecord] = []
        self._slots = threading.BoundedSemaphore(concurrency)
        self._lock = threading.Lock()
        self._active: set = set()
        self._cancels: set = set()
        self._jobs_root = os.path.join(settings.work_dir, "jobs")

    # -- the two jobs --------------------------------------------------------------------------

    def generate(self, scene: Scene, progress: Optional[ProgressFn] = None,
                 cancel: Optional[threading.Event] = None) -> JobResult:
        """Sample a scene with G_u and G_c, render its video and 3D model.

        Raises:
            AppInputError: an input or model file the job cannot use (one line for the page).
            JobCancelled: ``cancel`` was set.
        """
        self._check_scene(scene, image_mode=False)
        return self._run("generate", scene, dict(sampler_fields(scene.sampler, scene.steps_uncond)), progress, cancel)

    def image_to_3d(self, photo: str, photo_name: str, depth: Optional[str], depth_name: Optional[str],
                    scene: Scene, progress: Optional[ProgressFn] = None,
                    cancel: Optional[threading.Event] = None) -> JobResult:
        """Lift a photo (and its optional MiDaS disparity ``.npz``) to a scene: the photo is the first view.

        ``photo`` / ``depth`` are read once, to copy them into the job folder (the job only
        opens its copies); ``*_name`` are the user's file names, for messages.

        Raises:
            AppInputError: unusable photo or depth, missing model files (one line for the page).
            JobCancelled: ``cancel`` was set.
        """
        self._check_scene(scene, image_mode=True)
        uploads = {"photo": (photo, photo_name), "depth": (depth, depth_name)}
        return self._run("image_to_3d", scene, {}, progress, cancel, uploads)

    # -- checks ----------------------------------------------------------------------------------

    def _check_scene(self, scene: Scene, image_mode: bool) -> None:
        if scene.viewset not in VIEWSETS:
            raise AppInputError(f"Viewset {scene.viewset!r} is not offered; pick one of {', '.join(VIEWSETS)}.")
        try:
            parse_seeds(int(scene.seed))
        except (TypeError, ValueError):
            raise AppInputError(f"Seed {scene.seed!r}: use a whole number from 0 to {2 ** 63 - 1}.") from None
        if not 1 <= int(scene.steps_cond) <= _MAX_STEPS:
            raise AppInputError(f"Steps per view {scene.steps_cond}: use 1 to {_MAX_STEPS}.")
        if not 0 <= float(scene.guidance) <= _MAX_GUIDANCE:
            raise AppInputError(f"Guidance {scene.guidance}: use 0 to {_MAX_GUIDANCE:g}.")
        label = int(scene.class_label)
        if label != NO_CLASS and not (self.num_classes and 0 <= label < self.num_classes):
            valid = f"0 to {self.num_classes - 1} or {NO_CLASS} (no class)" if self.num_classes else f"{NO_CLASS}"
            raise AppInputError(f"Class {label}: these models take {valid}.")
        if not image_mode:
            if scene.sampler not in SAMPLERS:
                raise AppInputError(f"Sampler {scene.sampler!r}: pick one of {', '.join(SAMPLERS)}.")
            try:
                sampler_fields(scene.sampler, scene.steps_uncond)
            except ValueError as err:
                raise AppInputError(f"First-view steps: {err}.") from None

    # -- running ---------------------------------------------------------------------------------

    def _run(self, kind: str, scene: Scene, extra: Dict[str, object], progress: Optional[ProgressFn],
             cancel: Optional[threading.Event], uploads: Optional[Dict[str, Tuple[Optional[str], Optional[str]]]] = None
             ) -> JobResult:
        cancel = cancel or threading.Event()
        report = progress or (lambda done, total, what: None)
        counter = {"views": 0}
        outcome = "failed"
        with self._lock:
            self._cancels.add(cancel)
        with _discard_after(self._cancels, cancel, self._lock), self._slot(cancel, report):
            started = time.monotonic()
            job_dir = self._new_job_dir()
            try:
                image_mode = uploads is not None
                check_model_files(self.settings.models.files(uncond=not image_mode, cond=True))
                if image_mode:
                    extra.update(self._prepare_uploads(uploads, os.path.join(job_dir, "inputs")))
                result = self._sample_and_render(scene, extra, job_dir, report, cancel, counter)
                outcome = "done"
                return result
            except AppInputError:
                outcome = "invalid"
                raise
            except JobCancelled:
                outcome = "cancelled"
                raise
            finally:
                with self._lock:
                    self._active.discard(job_dir)
                    self.history.append(JobRecord(kind, outcome, counter["views"], started, time.monotonic()))
                if outcome != "done":
                    shutil.rmtree(job_dir, ignore_errors=True)
                log.info("%s job %s after %d view(s)", kind, outcome, counter["views"])

    def stop_all(self) -> None:
        """Cancel every waiting and running job (e.g. when the app shuts down); each stops at its next view
        or frame."""
        with self._lock:
            for cancel in self._cancels:
                cancel.set()

    @contextlib.contextmanager
    def _slot(self, cancel: threading.Event, report: ProgressFn):
        """Wait for a free job slot (stopping early when cancelled), hold it for the job."""
        waited = False
        while not self._slots.acquire(timeout=0.2):
            if cancel.is_set():
                raise JobCancelled()
            if not waited:
                report(0, 1, "waiting for the running job")
                waited = True
        try:
            yield
        finally:
            self._slots.release()

    def _new_job_dir(self) -> str:
        os.makedirs(self._jobs_root, exist_ok=True)
        with self._lock:
            self._prune()
            job_dir = tempfile.mkdtemp(prefix=time.strftime("%Y%m%d-%H%M%S-"), dir=self._jobs_root)
            self._active.add(job_dir)
        return job_dir

    def _prune(self) -> None:
        """Delete the oldest finished job folders beyond ``keep_jobs`` (the page has its own copies)."""
        done = [d for d in glob.glob(os.path.join(self._jobs_root, "*")) if d not in self._active]
        done.sort(key=os.path.getmtime)
        for folder in done[:max(0, len(done) - self.settings.keep_jobs + 1)]:
            shutil.rmtree(folder, ignore_errors=True)

    def _prepare_uploads(self, uploads, inputs_dir: str) -> Dict[str, object]:
        """Copy the uploads into the job folder, check the copies; returns the SampleRequest fields."""
        settings = self.settings
        photo, photo_name = uploads["photo"]
        depth, depth_name = uploads["depth"]
        if photo is None:
            raise AppInputError("Upload a photo first.")
        os.makedirs(inputs_dir, exist_ok=True)
        photo_copy = _copy_upload(photo, os.path.join(inputs_dir, "photo"), f"photo {photo_name}",
                                  settings.max_upload_mb)
        info = check_photo(photo_copy, photo_name, settings.max_megapixels, settings.max_upload_mb)
        final = photo_copy + info.extension
        os.replace(photo_copy, final)
        fields_: Dict[str, object] = {"input_image": final}
        if depth is not None:
            depth_copy = _copy_upload(depth, os.path.join(inputs_dir, "depth.npz"), f"depth file {depth_name}",
                                      settings.max_upload_mb)
            check_depth(depth_copy, depth_name, info, settings.max_upload_mb)
            fields_["input_depth"] = depth_copy
        midas = check_midas(find_file(DEFAULT_MIDAS_CKPT), depth_given=depth is not None)
        if midas is not None:
            fields_["midas_ckpt"] = midas
        return fields_

    def _request(self, scene: Scene, extra: Dict[str, object], job_dir: str, device: str) -> SampleRequest:
        """The job's sampling request, resolved (the models' preset fills what the job does not set)."""
        models = self.settings.models
        options: Dict[str, object] = {k: getattr(models, k) for k in MODEL_OPTIONS}
        label = int(scene.class_label)
        options.update(output_dir=job_dir, seeds=str(int(scene.seed)), viewset=scene.viewset,
                       classes="null" if label == NO_CLASS else str(label), steps_cond=int(scene.steps_cond),
                       guidance=float(scene.guidance), batchsize=1, device=device, progress=False,
                       preset=models.preset)
        options.update(extra)
        return resolve_request(SampleRequest(**options))

    def _render_request(self, run_dir: str, device: str) -> RenderRequest:
        return RenderRequest(scene_dir=os.path.join(run_dir, "scenes"), output_dir=run_dir, traj="swing",
                             frames=self.settings.video_frames, export="glb", device=device, progress=False,
                             preset=self.settings.models.preset)

    def _sample_and_render(self, scene: Scene, extra: Dict[str, object], job_dir: str, report: ProgressFn,
                           cancel: threading.Event, counter: Dict[str, int]) -> JobResult:
        from ivid.utils.device import resolve_device

        start = time.perf_counter()
        try:
            device = str(resolve_device(self.settings.device))
        except ValueError as err:
            raise AppInputError(f"--device {self.settings.device}: {err}") from None
        request = self._request(scene, extra, job_dir, device)
        commands = _commands(self.settings, request)

        def on_view(done: int, total: int) -> None:
            counter["views"] = done
            report(done, total, "view")
            if cancel.is_set():
                raise JobCancelled()

        def on_frame(done: int, total: int) -> None:
            report(done, total, "video frame")
            if cancel.is_set():
                raise JobCancelled()

        if cancel.is_set():
            raise JobCancelled()
        report(0, 1, "loading the models, sampling the first view")
        try:
            run_dir = run_sampling(request, argv=shlex.split(commands[0]), on_view=on_view)
            report(0, 1, "writing the 3D model")
            run_render(self._render_request(run_dir, device), on_frame=on_frame)
        except (IvidError, OSError, ValueError) as err:
            # the library's user errors (config/checkpoint mismatch, unreadable photo, missing file, ...): one
            # line for the page
            log.warning("job input error: %s", err)
            raise AppInputError(str(err).splitlines()[0]) from None
        return _collect(run_dir, time.perf_counter() - start, commands)


@contextlib.contextmanager
def _discard_after(items: set, item, lock: threading.Lock):
    try:
        yield
    finally:
        with lock:
            items.discard(item)


def _copy_upload(source: str, target: str, what: str, max_mb: float) -> str:
    """Copy an upload (at most ``max_mb`` MiB) to ``target``; returns ``target``."""
    from .checks import check_upload_size

    check_upload_size(source, max_mb, what)
    shutil.copyfile(source, target)
    return target


def _commands(settings: AppSettings, request: SampleRequest) -> Tuple[str, str]:
    """The ``inference/sample.py`` and ``inference/render.py`` command lines that do what the job does."""
    models = settings.models
    if models.preset is not None:
        model_args = ["--preset", models.preset]
    else:
        model_args = [a for k in MODEL_OPTIONS for a in (f"--{k}", getattr(models, k))]
    sample = ["python", "inference/sample.py", *model_args, "--seeds", request.seeds, "--classes",
              str(request.classes), "--viewset", request.viewset, "--steps_cond", str(request.steps_cond),
              "--guidance", str(request.guidance)]
    if request.input_image is None:
        sample += ["--steps_uncond", str(request.steps_uncond)]
    else:
        sample += ["--input_image", "photo" + os.path.splitext(request.input_image)[1]]
        if request.input_depth is not None:
            sample += ["--input_depth", "depth.npz"]
    if request.sampler != "auto":
        sample += ["--sampler", request.sampler]
    sample += ["--output_dir", "samples/app"]
    render = ["python", "inference/render.py", *(["--preset", models.preset] if models.preset else []),
              "--scene_dir", "<run folder>/scenes", "--frames", str(settings.video_frames), "--export", "glb"]
    return shlex.join(sample), shlex.join(render)


def _collect(run_dir: str, seconds: float, commands: Sequence[str]) -> JobResult:
    scenes = sorted(glob.glob(os.path.join(run_dir, "scenes", "*.npz")))
    if len(scenes) != 1:
        raise RuntimeError(f"{run_dir}: expected one scene, found {len(scenes)}")
    name = os.path.splitext(os.path.basename(scenes[0]))[0]
    paths = {"grid": ("grids", ".png"), "depth_grid": ("grids", "_depth.png"), "video": ("videos", ".mp4"),
             "depth_video": ("videos", "_depth.mp4"), "model": ("meshes", ".glb")}
    found = {key: os.path.join(run_dir, sub, name + suffix) for key, (sub, suffix) in paths.items()}
    missing = [p for p in found.values() if not os.path.isfile(p)]
    if missing:
        raise RuntimeError(f"{run_dir}: the job did not write {', '.join(missing)}")
    views = {key + "_view": _enlarged(found[key], os.path.join(run_dir, "page")) for key in ("grid", "depth_grid")}
    return JobResult(run_dir=run_dir, scene=scenes[0], seconds=seconds, commands=tuple(commands), **found, **views)


def _enlarged(path: str, folder: str) -> str:
    """``path`` enlarged by a whole factor to about :data:`VIEW_WIDTH` pixels wide (nearest neighbour, so
    pixels stay sharp), written into ``folder``; ``path`` itself when it is wide enough."""
    from PIL import Image

    from ivid.utils.images import save_png

    with Image.open(path) as image:
        factor = max(1, round(VIEW_WIDTH / image.width))
        if factor == 1:
            return path
        big = image.convert("RGB").resize((image.width * factor, image.height * factor), Image.NEAREST)
    target = os.path.join(folder, os.path.basename(path))
    save_png(target, np.asarray(big))
    return target
