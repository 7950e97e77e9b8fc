"""A whole ``inference/sample.py`` run: validate options, plan, split over devices, sample, write.

:class:`SampleRequest` holds every option of the CLI; a field left at None takes the
``preset``'s value or the reference default (docs/design.md#inference), resolved by
:func:`ivid.sampling.presets.resolve_request`. :func:`run_sampling` resolves the request,
checks everything that can be checked before a model is built (seeds, classes, viewset,
configs, checkpoints - downloading the released ones when missing), writes the run record
(``args.json``, ``command.txt``, ``env.txt``), and then samples: in this process on one
device, or in one spawned process per visible GPU when ``device`` is left to auto and several
GPUs are visible (process ``r`` takes samples ``r, r + n, r + 2n, ...``).
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import pathlib
from dataclasses import dataclass
from typing import Callable, ClassVar, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from tqdm.auto import tqdm

from ivid.model_loading import ensure_released_checkpoints, load_framework, resolve_checkpoint
from ivid.config import load_config, registry
from ivid.errors import OptionError
from ivid.geometry.viewsets import ViewsetChoice, parse_viewset, sample_cameras
from ivid.utils.device import resolve_device
from ivid.utils.seeds import MAX_SEEDS, parse_seeds, sample_generators

from .image_to_3d import DEFAULT_MIDAS_CKPT, first_view_tensor, load_midas, photo_rgbd01
from .multiview import MultiviewOptions, sample_multiview
from .outputs import OutputWriter, run_dir_name
from .precision import check_precision, master_weights_fp16, prepare_backbone
from .presets import PRESETS, resolve_request, setting
from .plan import SampleJob, batched, parse_classes, plan_jobs, split_jobs
from .run_folder import check_run_folder, output_settings, record_run
from .sharding import joined, remove_run_temps, run_shard, torchrun_shard
from .validate import check_sampling_options, check_steps

__all__ = ["SampleRequest", "PRESETS", "REPO_ROOT", "MODEL_FILES", "run_sampling", "sampling_devices", "find_file"]

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]


UNCOND_FRAMEWORKS = ("GaussianDiffusion", "ClassifierFreeGuidance")
COND_FRAMEWORKS = ("InpaintCFG",)


#: the four model-file fields of a :class:`SampleRequest` (a preset sets them together)
MODEL_FILES = ("config_uncond", "config_cond", "ckpt_uncond", "ckpt_cond")
_MV = MultiviewOptions()  # the sampler's reference defaults


@dataclass(frozen=True)
class SampleRequest:
    """Options of one sampling run (names of ``inference/sample.py``): files, seeds, outputs and the
    sampler's settings (:class:`MultiviewOptions`).

    A field left at None was not given: :func:`ivid.sampling.presets.resolve_request` (called by
    :func:`run_sampling`) fills it from ``preset`` when that preset sets it, else with the reference
    default shown here as ``setting(...)``. Fields whose default is a plain None keep their meaning:
    ``num_samples`` None = use ``seeds``; ``classes`` None = 'mod', or 'null' for image-to-3D;
    ``device`` None = every visible GPU, else the CPU.
    """

    PRESET_KIND: ClassVar[str] = "sample"

    config_uncond: Optional[str] = setting("configs/rgbd_imagenet_adm_128_large_cfg.json")
    config_cond: Optional[str] = setting("configs/rgbd_imagenet_adm_128_large_cond.json")
    ckpt_uncond: Optional[str] = setting("ckpts/imagenet128_uncond.pt")
    ckpt_cond: Optional[str] = setting("ckpts/imagenet128_cond.pt")
    output_dir: Optional[str] = setting("samples/imagenet128")
    seeds: Optional[str] = setting("0-8")
    num_samples: Optional[int] = None
    classes: Optional[str] = None
    viewset: Optional[str] = setting("3x9")
    batchsize: Optional[int] = setting(10)
    device: Optional[str] = None
    preset: Optional[str] = None
    input_image: Optional[str] = None
    input_depth: Optional[str] = None
    midas_ckpt: Optional[str] = setting(DEFAULT_MIDAS_CKPT)
    progress: bool = True
    # the sampler's settings (MultiviewOptions, same names and reference defaults)
    steps_uncond: Optional[int] = setting(_MV.steps_uncond)
    steps_cond: Optional[int] = setting(_MV.steps_cond)
    guidance: Optional[float] = setting(_MV.guidance)
    fov: Optional[float] = setting(_MV.fov)
    near: Optional[float] = setting(_MV.near)
    far: Optional[float] = setting(_MV.far)
    atol: Optional[float] = setting(_MV.atol)
    rtol: Optional[float] = setting(_MV.rtol)
    erode_rgb: Optional[int] = setting(_MV.erode_rgb)
    replace_rgb: Optional[float] = setting(_MV.replace_rgb)
    replace_depth: Optional[float] = setting(_MV.replace_depth)
    constrain_depth: Optional[float] = setting(_MV.constrain_depth)
    eta: Optional[float] = setting(_MV.eta)
    ssaa: Optional[int] = setting(_MV.ssaa)
    clip_denoised: Optional[bool] = setting(_MV.clip_denoised)
    sampler: Optional[str] = setting(_MV.sampler)
    # UNet arithmetic and compilation (ivid.sampling.precision); fp32 without compile is the reference
    precision: Optional[str] = setting("fp32")
    compile: Optional[bool] = setting(False)

    def options(self) -> MultiviewOptions:
        """The sampler's settings of this (resolved) request, as a plain :class:`MultiviewOptions`."""
        return MultiviewOptions(**{f.name: getattr(self, f.name) for f in dataclasses.fields(MultiviewOptions)})


@dataclass
class _Plan:
    """Everything a worker needs (picklable, for spawned processes)."""

    request: SampleRequest
    run_dir: str
    jobs: List[SampleJob]
    viewset: ViewsetChoice
    ckpt_uncond: Optional[str]
    ckpt_cond: Optional[str]
    photo: Optional[Tuple[np.ndarray, np.ndarray]]
    settings: Dict[str, object] = dataclasses.field(default_factory=dict)
    argv: Optional[List[str]] = None


def find_file(path: str) -> str:
    """``path`` as given when it exists, else relative to the repository root when it exists there."""
    if os.path.exists(path) or os.path.isabs(path):
        return path
    candidate = REPO_ROOT / path
    return str(candidate) if candidate.exists() else path


def _model_files(given: SampleRequest, request: SampleRequest) -> Dict[str, str]:
    """The resolved request's model files as found (:func:`find_file`); the preset's must exist.

    ``given`` is the request as the caller made it: the files it left at None came from its preset.
    """
    files = {option: find_file(getattr(request, option)) for option in MODEL_FILES}
    if given.preset is not None:
        missing = [files[option] for option in MODEL_FILES
                   if getattr(given, option) is None and not os.path.isfile(files[option])]
        if missing:
            raise FileNotFoundError(f"--preset {given.preset}: missing {', '.join(missing)}. The demo models are "
                                    "trained by this project (scripts/train_demo.sh, see ckpts/demo/README.md); "
                                    "restore them from git or use the released checkpoints (the default, "
                                    "without --preset)")
    return files


def _read_config(path: str, option: str) -> Dict:
    path = find_file(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{option} {path}: config file not found")
    cfg = load_config(path)
    for section in ("backbone", "framework"):
        if section not in cfg:
            raise OptionError(f"{option} {path}: the config has no '{section}' section; sampling needs a model "
                              "config with 'backbone' and 'framework' (e.g. configs/demo_uncond.json)")
    return cfg


def _check_configs(cfg_u: Optional[Dict], cfg_c: Optional[Dict], request: SampleRequest) -> Optional[int]:
    """Model kinds and sizes fit together; returns the class count (None = unconditional)."""
    def kind(cfg, option, valid, expect_in):
        name = cfg["framework"]["name"]
        in_ch = cfg["backbone"]["args"].get("in_channels")
        if name not in valid or in_ch not in expect_in:
            raise OptionError(f"{option} {getattr(request, option[2:])}: framework {name} with in_channels {in_ch} "
                              f"does not fit (expected {' or '.join(valid)} with in_channels "
                              f"{' or '.join(map(str, expect_in))}); "
                              "are --config_uncond and --config_cond swapped?")
        return cfg["backbone"]["args"]

    args_u = kind(cfg_u, "--config_uncond", UNCOND_FRAMEWORKS, (4,)) if cfg_u is not None else None
    # 10 input channels as released; 9 for a G_c trained without mask_rgb (p_uncond_img > 0 or no erode_rgb)
    args_c = kind(cfg_c, "--config_cond", COND_FRAMEWORKS, (10, 9)) if cfg_c is not None else None
    for option, args in (("--config_uncond", args_u), ("--config_cond", args_c)):
        if args is not None and args.get("num_classes") == "auto":
            raise OptionError(f"{option} {getattr(request, option[2:])}: backbone.args.num_classes is \"auto\"; "
                             "give the class count the model was trained with (the run's config.json holds it)")
    if args_u is not None and args_c is not None:
        for key in ("image_size", "num_classes"):
            if args_u.get(key) != args_c.get(key):
                raise OptionError(f"--config_uncond and --config_cond disagree on {key}: "
                                  f"{args_u.get(key)} vs {args_c.get(key)}")
    return (args_u or args_c).get("num_classes") or None


def _with_option(err: Exception, prefix: str) -> Exception:
    """The same kind of error with ``prefix`` in front of its message (the error itself if that fails)."""
    try:
        return type(err)(f"{prefix}: {err}")
    except Exception:
        return err


def _resolve_ckpt(path: str, option: str) -> str:
    try:
        return os.fspath(resolve_checkpoint(find_file(path)))
    except Exception as err:  # offline download failures, unknown files: name the option
        raise _with_option(err, option) from err


def _check_viewset(request: SampleRequest, viewset: ViewsetChoice) -> None:
    if request.input_image is not None and viewset.is_single_view:
        raise OptionError(f"--viewset {request.viewset}: image to 3D (--input_image) needs views to generate "
                          "besides the photo; use random, 3x9, 360, 360x3 or a file with 2+ views")
    if request.input_depth is not None and request.input_image is None:
        raise OptionError("--input_depth needs --input_image")
    if request.constrain_depth > 0 and request.replace_depth <= 0:
        raise OptionError("--constrain_depth needs --replace_depth > 0 (it is applied together with it)")


def _photo(request: SampleRequest, image_size: int, device: torch.device):
    midas = load_midas(find_file(request.midas_ckpt), device) if request.input_depth is None else None
    return photo_rgbd01(request.input_image, image_size, request.input_depth, midas)


def _timesteps(cfg: Optional[Dict]) -> Optional[int]:
    """The diffusion steps T of a model config (its framework's ``timesteps``, or the class default)."""
    if cfg is None:
        return None
    value = cfg["framework"].get("args", {}).get("timesteps")
    if value is None:
        default = inspect.signature(registry("framework")[cfg["framework"]["name"]].__init__).parameters.get(
            "timesteps")
        value = None if default is None or default.default is inspect.Parameter.empty else default.default
    return None if value is None else int(value)


def _prepare(given: SampleRequest, device: torch.device) -> _Plan:
    """Resolve the request against its preset, check every option and file (nothing is written), plan the run."""
    request = resolve_request(given)
    check_sampling_options(request)
    check_precision(request.precision, device.type)
    request = dataclasses.replace(request, **_model_files(given, request))
    if request.num_samples is not None and request.num_samples > MAX_SEEDS:
        raise OptionError(f"--num_samples {request.num_samples}: more than {MAX_SEEDS} per run; split the job "
                          f"over several runs into one --output_dir (--seeds 0-{MAX_SEEDS - 1}, then the next range)")
    seeds = parse_seeds(request.seeds) if request.num_samples is None else None
    image_mode = request.input_image is not None
    classes_text = request.classes or ("null" if image_mode else "mod")
    classes = parse_classes(classes_text)
    viewset = parse_viewset(request.viewset)
    _check_viewset(request, viewset)
    need_u, need_c = not image_mode, not viewset.is_single_view
    cfg_u = _read_config(request.config_uncond, "--config_uncond") if need_u else None
    cfg_c = _read_config(request.config_cond, "--config_cond") if need_c else None
    num_classes = _check_configs(cfg_u, cfg_c, request)
    if need_u:
        check_steps("--steps_uncond", request.steps_uncond, _timesteps(cfg_u), ddpm_allowed=True)
    if need_c:
        check_steps("--steps_cond", request.steps_cond, _timesteps(cfg_c), ddpm_allowed=False)
    jobs = plan_jobs(seeds, classes, num_classes, request.num_samples)
    wanted = {"--ckpt_uncond": request.ckpt_uncond} if need_u else {}
    if need_c:
        wanted["--ckpt_cond"] = request.ckpt_cond
    ensure_released_checkpoints(wanted)  # offline: one error naming every missing released file
    ckpt_u = _resolve_ckpt(request.ckpt_uncond, "--ckpt_uncond") if need_u else None
    ckpt_c = _resolve_ckpt(request.ckpt_cond, "--ckpt_cond") if need_c else None
    photo = _photo(request, cfg_c["backbone"]["args"]["image_size"], device) if image_mode else None
    name = run_dir_name(viewset.label, request.steps_uncond, request.steps_cond, request.guidance,
                        request.input_image, request.sampler, request.precision)
    run_dir = os.path.join(request.output_dir, name)
    settings = output_settings(request, classes_text, cfg_u, cfg_c, ckpt_u, ckpt_c, device.type)
    check_run_folder(run_dir, settings)
    return _Plan(request, run_dir, jobs, viewset, ckpt_u, ckpt_c, photo, settings)


def sampling_devices(device: Optional[str]) -> List[torch.device]:
    """All visible GPUs when ``device`` is None/'auto' and there are several, else the one resolved device."""
    if (device is None or device == "auto") and torch.cuda.is_available() and torch.cuda.device_count() > 1:
        return [torch.device("cuda", i) for i in range(torch.cuda.device_count())]
    return [resolve_device(device)]


def _load(config: str, ckpt: str, device: torch.device, option: str, precision: str = "fp32",
          compile: bool = False):
    try:
        framework = load_framework(config, ckpt, device, use_fp16=master_weights_fp16(precision))
    except (KeyError, RuntimeError, ValueError) as err:
        raise _with_option(err, option) from err
    prepare_backbone(framework.backbone, precision, compile, "G_u" if option == "--ckpt_uncond" else "G_c")
    return framework


def _class_tensor(jobs: Sequence[SampleJob], framework, device: torch.device) -> Optional[torch.Tensor]:
    if not getattr(framework.backbone, "num_classes", None):
        return None
    labels = [-1 if job.class_label is None else job.class_label for job in jobs]
    return torch.tensor(labels, dtype=torch.long, device=device)


def _worker(rank: int, devices: Sequence[torch.device], plan: _Plan,
            on_view: Optional[Callable[[int, int], None]] = None) -> None:
    device, request = devices[rank], plan.request
    jobs = split_jobs(plan.jobs, rank, len(devices))
    if not jobs:
        return
    fast = (request.precision, request.compile)
    g_u = _load(request.config_uncond, plan.ckpt_uncond, device, "--ckpt_uncond", *fast) if plan.ckpt_uncond else None
    g_c = _load(request.config_cond, plan.ckpt_cond, device, "--ckpt_cond", *fast) if plan.ckpt_cond else None
    if rank == 0:  # the models loaded: every input is valid, the run folder may be written now
        record_run(plan.run_dir, dataclasses.asdict(request), plan.settings, plan.argv, device, len(devices))
    options = request.options()
    where = f" [{device}]" if len(devices) > 1 else ""
    with OutputWriter(plan.run_dir, plan.viewset, options.near, options.far, options.fov) as writer, \
            tqdm(total=len(jobs), desc="samples" + where, disable=not request.progress, position=2 * rank,
                 dynamic_ncols=True) as bar:
        for batch in batched(jobs, request.batchsize):
            generators = sample_generators([job.seed for job in batch], device)
            first = None if plan.photo is None else first_view_tensor(*plan.photo, len(batch), device)
            views = sample_multiview(g_u, g_c, [sample_cameras(plan.viewset, job.seed) for job in batch],
                                     generators, _class_tensor(batch, g_u or g_c, device), options,
                                     first_view=first, progress=request.progress, position=2 * rank + 1,
                                     on_view=on_view)
            for job, sample in zip(batch, views):
                writer.submit(job, sample)
            bar.update(len(batch))


def _run_shard(shard, request: SampleRequest, argv: Optional[Sequence[str]],
               on_view: Optional[Callable[[int, int], None]]) -> str:
    """One torchrun rank's part of :func:`run_sampling` (see :mod:`ivid.sampling.sharding`)."""
    request = dataclasses.replace(request, progress=request.progress and shard.is_main)

    def prepare() -> _Plan:
        plan = _prepare(request, shard.device)
        plan.argv = list(argv) if argv is not None else None
        return plan

    def work(plan: _Plan) -> None:
        _worker(shard.rank, [shard.device] * shard.world_size, plan, on_view)

    with joined(shard):
        return run_shard(shard, prepare, work).run_dir


def run_sampling(request: SampleRequest, argv: Optional[Sequence[str]] = None,
                 on_view: Optional[Callable[[int, int], None]] = None) -> str:
    """Run a whole sampling job; returns the run folder.

    ``request`` may leave fields at None: they are resolved against its preset first
    (:func:`ivid.sampling.presets.resolve_request`). ``argv`` is what ``command.txt`` records
    (default: this process's command line). ``on_view(done, total)``,
    when given, is called after each finished view of each batch (``done`` = 1 .. V, again
    from 1 for every batch; see :func:`sample_multiview`); an exception it raises stops the
    run, files already queued are still written. It is only called when sampling runs in this
    process (one device); processes spawned for several GPUs report through tqdm only.

    Raises:
        ValueError / FileNotFoundError / ConfigError / CheckpointError with a
        message naming the option or file at fault.
    """
    shard = torchrun_shard(request.device)
    if shard is not None:  # started by torchrun: this rank samples its share (ivid.sampling.sharding)
        return _run_shard(shard, request, argv, on_view)
    devices = sampling_devices(request.device)
    plan = _prepare(request, devices[0])
    plan.argv = list(argv) if argv is not None else None
    remove_run_temps(plan.run_dir)  # temporaries of an earlier, killed run
    if len(devices) == 1:
        _worker(0, devices, plan, on_view)
    else:
        torch.multiprocessing.spawn(_worker, args=(devices, plan), nprocs=len(devices), join=True)
    return plan.run_dir
