"""Which models the app serves, and its limits.

:func:`resolve_models` follows ``inference/sample.py``: the four model options (defaults:
the released ImageNet-128 files) or ``--preset NAME``. Without either, the app serves the
released models when both checkpoints are present and the bundled demo models otherwise,
so that a fresh install opens a working page offline.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Tuple

from ivid.errors import OptionError
from ivid.render.free_view import RenderRequest
from ivid.sampling.presets import PRESETS, request_defaults
from ivid.sampling.run import SampleRequest, find_file

__all__ = ["ModelSet", "AppSettings", "resolve_models", "MODEL_OPTIONS"]

MODEL_OPTIONS = ("config_uncond", "ckpt_uncond", "config_cond", "ckpt_cond")


@dataclass(frozen=True)
class ModelSet:
    """The models of the app.

    Attributes:
        config_uncond, ckpt_uncond, config_cond, ckpt_cond: files (as found: relative to the
            working folder or to the repository root).
        preset: the ``--preset`` they come from, or None for given/released files.
        sample_defaults: SampleRequest field -> value a field not given takes for these models
            (:func:`ivid.sampling.presets.request_defaults`: the preset's, else the reference's).
        render_defaults: the same for RenderRequest.
        dataset: how their classes are named: ``"toy"`` (demo) or ``"imagenet"``.
        title: a few words naming them (for the page).
        reason: one line saying why these models were picked (printed at start).
    """

    config_uncond: str
    ckpt_uncond: str
    config_cond: str
    ckpt_cond: str
    preset: Optional[str] = None
    sample_defaults: Mapping[str, object] = field(default_factory=dict)
    render_defaults: Mapping[str, object] = field(default_factory=dict)
    dataset: str = "imagenet"
    title: str = ""
    reason: str = ""

    def files(self, uncond: bool = True, cond: bool = True) -> List[Tuple[str, str]]:
        """``(option, path)`` of the files a job needs (G_u's when ``uncond``, G_c's when ``cond``)."""
        names = [n for n in MODEL_OPTIONS if (uncond and n.endswith("uncond")) or (cond and n.endswith("_cond"))]
        return [(n, getattr(self, n)) for n in names]

    def model_info(self) -> Tuple[int, Optional[int]]:
        """``(image_size, num_classes)`` from the configs (num_classes None: unconditional).

        Raises:
            ValueError / FileNotFoundError: a config is missing or malformed (names the option).
        """
        from ivid.config import load_config

        args = []
        for option in ("config_uncond", "config_cond"):
            path = getattr(self, option)
            if not os.path.isfile(path):
                raise FileNotFoundError(f"--{option} {path}: config file not found")
            args.append(load_config(path)["backbone"]["args"])
        return int(args[1]["image_size"]), (args[0].get("num_classes") or None)


@dataclass(frozen=True)
class AppSettings:
    """Everything a job of the app needs besides its inputs.

    Attributes:
        models: the :class:`ModelSet`.
        work_dir: the app's own temporary folder (job folders, uploads' copies).
        device: cpu, cuda, cuda:1, ... (None: a GPU when visible, else the CPU; always one device).
        max_megapixels: largest photo accepted, in millions of pixels.
        max_upload_mb: largest upload accepted (photo or depth), MiB.
        video_frames: frames of the swing video (30 fps).
        keep_jobs: finished job folders kept on disk (older ones are deleted when a job starts).
    """

    models: ModelSet
    work_dir: str
    device: Optional[str] = None
    max_megapixels: float = 40.0
    max_upload_mb: float = 25.0
    video_frames: int = 60
    keep_jobs: int = 8


def _released_present() -> bool:
    defaults = request_defaults(SampleRequest)
    return all(os.path.isfile(find_file(defaults[k])) for k in ("ckpt_uncond", "ckpt_cond"))


def resolve_models(preset: Optional[str] = None, **given: Optional[str]) -> ModelSet:
    """The models to serve.

    Args:
        preset: a :data:`ivid.sampling.presets.PRESETS` name, or None.
        given: any of :data:`MODEL_OPTIONS` given by the user (None = not given); the others
            keep sample.py's defaults (the released files).

    Raises:
        ValueError: a preset together with model files, or an unknown preset or option.
    """
    unknown = sorted(set(given) - set(MODEL_OPTIONS))
    if unknown:
        raise ValueError(f"unknown model option(s) {unknown}; valid: {', '.join(MODEL_OPTIONS)}")
    given = {k: v for k, v in given.items() if v is not None}
    if preset is not None and given:
        raise OptionError(f"--preset {preset} and --{' --'.join(sorted(given))}: "
                          "give a preset or model files, not both")
    if preset is None and not given:
        if _released_present():
            return _files_model_set({}, "the released ImageNet-128 models",
                                    "the released ImageNet-128 models (ckpts/imagenet128_*.pt)")
        return _preset_model_set("demo", "the demo models: the released checkpoints are not in ckpts/ "
                                         "(python scripts/download_ckpts.py fetches them)")
    if preset is not None:
        if preset not in PRESETS:
            raise OptionError(f"--preset {preset!r}: unknown preset; valid: {', '.join(PRESETS)}")
        return _preset_model_set(preset, f"--preset {preset}: {PRESETS[preset].about}")
    return _files_model_set(given, "the given models", "the given model files: " + ", ".join(given.values()))


def _files_model_set(given: Dict[str, str], title: str, reason: str) -> ModelSet:
    defaults = request_defaults(SampleRequest)
    files = {k: find_file(given.get(k, defaults[k])) for k in MODEL_OPTIONS}
    return ModelSet(**files, sample_defaults=defaults, render_defaults=request_defaults(RenderRequest), title=title,
                    reason=reason)


def _preset_model_set(name: str, reason: str) -> ModelSet:
    preset = PRESETS[name]
    files = {k: find_file(v) for k, v in preset.files.items()}
    demo = name == "demo"
    return ModelSet(**files, preset=name, sample_defaults=request_defaults(SampleRequest, name),
                    render_defaults=request_defaults(RenderRequest, name), dataset="toy" if demo else "imagenet",
                    title="the demo models (toy scenes, ckpts/demo)" if demo else f"preset {name}", reason=reason)

