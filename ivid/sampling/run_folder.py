"""One run folder = one set of output-changing settings.

The run folder's name (``viewset_<v>_steps_u<su>_c<sc>_guidance<g>``) encodes only a few
settings, so two runs that differ in, say, ``--fov`` would land in the same folder and leave
samples of both side by side. :func:`output_settings` lists everything that changes what a
seed produces (models, sampler settings, viewset, input photo, device type); the first run
stores it in ``args.json`` under ``"output_settings"``, and a later run into the same folder
must have the same settings (:func:`check_run_folder`), though it may add seeds. Each run
appends its command line to ``command.txt`` and its environment to ``env.txt``
(:func:`record_run`: the run record of :mod:`ivid.utils.run_record`).

Settings that do not change a sample (seeds, batch size, progress bars, output folder) are
not compared. Files are compared by content (configs, viewset file, photo and depth) or by
name and size (checkpoints, too large to hash on every run).
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any, Dict, Mapping, Optional, Sequence, Union

import torch

from ivid.errors import RunFolderError
from ivid.utils.run_record import run_record, write_run_folder

__all__ = ["SETTINGS_KEY", "output_settings", "check_run_folder", "record_run"]

#: key of the output settings in ``args.json``
SETTINGS_KEY = "output_settings"
#: sampler settings (MultiviewOptions fields) that change the samples
_SAMPLER_FIELDS = ("steps_uncond", "steps_cond", "guidance", "fov", "near", "far", "atol", "rtol", "erode_rgb",
                   "replace_rgb", "replace_depth", "constrain_depth", "eta", "ssaa", "clip_denoised", "sampler",
                   "precision")  # not --compile: it changes float rounding only, like the thread count


def _sha1(path: Optional[str]) -> Optional[str]:
    if path is None or not os.path.isfile(path):
        return None
    digest = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _config_digest(config: Optional[Mapping[str, Any]]) -> Optional[str]:
    if config is None:
        return None
    return hashlib.sha1(json.dumps(config, sort_keys=True).encode("utf-8")).hexdigest()


def _ckpt_identity(path: Optional[str]) -> Optional[str]:
    if path is None:
        return None
    size = os.path.getsize(path) if os.path.isfile(path) else None
    return f"{os.path.basename(path)} ({size} bytes)"


def output_settings(request: Any, classes: str, cfg_u: Optional[Mapping[str, Any]],
                    cfg_c: Optional[Mapping[str, Any]], ckpt_u: Optional[str], ckpt_c: Optional[str],
                    device_type: str) -> Dict[str, Any]:
    """The settings of a run that change what a seed produces (JSON values).

    Args:
        request: the resolved ``SampleRequest``.
        classes: the effective ``--classes`` value.
        cfg_u, cfg_c: the loaded configs of the models used (None when unused).
        ckpt_u, ckpt_c: the checkpoint files used (None when unused).
        device_type: ``cpu``, ``cuda``, ... (CPU and GPU draw different noise for one seed).
    """
    settings: Dict[str, Any] = {name: getattr(request, name) for name in _SAMPLER_FIELDS}
    viewset_file = request.viewset if os.path.isfile(request.viewset) else None
    midas = request.midas_ckpt if request.input_image is not None and request.input_depth is None else None
    settings.update({
        "classes": classes, "viewset": request.viewset if viewset_file is None else os.path.basename(viewset_file),
        "viewset_file_sha1": _sha1(viewset_file),
        "config_uncond_sha1": _config_digest(cfg_u), "config_cond_sha1": _config_digest(cfg_c),
        "ckpt_uncond": _ckpt_identity(ckpt_u), "ckpt_cond": _ckpt_identity(ckpt_c),
        "input_image_sha1": _sha1(request.input_image), "input_depth_sha1": _sha1(request.input_depth),
        "midas_ckpt": _ckpt_identity(midas), "device_type": device_type,
    })
    return settings


def _stored_settings(run_dir: str) -> Optional[Dict[str, Any]]:
    path = os.path.join(run_dir, "args.json")
    if not os.path.isfile(path):
        return None
    try:
        with open(path, "r", encoding="utf-8") as f:
            stored = json.load(f)
    except (OSError, ValueError):
        raise RunFolderError(f"{run_dir}: its args.json is unreadable, so the settings of the samples there "
                             "are unknown; use another --output_dir or remove that folder") from None
    if not isinstance(stored, dict):
        return None
    if isinstance(stored.get(SETTINGS_KEY), dict):
        return stored[SETTINGS_KEY]
    # a folder written before settings were recorded: compare the sampler options it lists
    return {k: stored[k] for k in _SAMPLER_FIELDS + ("classes", "viewset") if k in stored}


def _has_samples(run_dir: str) -> bool:
    scenes = os.path.join(run_dir, "scenes")
    return os.path.isdir(scenes) and any(name.endswith(".npz") for name in os.listdir(scenes))


def check_run_folder(run_dir: str, settings: Mapping[str, Any]) -> None:
    """Refuse to add samples made with other output-changing settings to an existing run folder.

    Raises:
        RunFolderError: the folder holds samples (or a record) of other settings; the message
            lists the differences.
    """
    stored = _stored_settings(run_dir)
    if stored is None:
        if _has_samples(run_dir):
            raise RunFolderError(f"{run_dir}: holds samples but no args.json, so their settings are unknown; "
                                 "use another --output_dir or remove that folder")
        return
    differ = [f"{key} {stored[key]!r} there, {settings[key]!r} now"
              for key in sorted(set(stored) & set(settings))
              if stored[key] != settings[key] and not (stored[key] is None and key == "classes")]
    if differ:
        raise RunFolderError(
            f"{run_dir}: already holds samples made with other settings ({'; '.join(differ)}); "
            "use another --output_dir (or remove that folder) - only runs with the same settings may add "
            "seeds to a run folder")


def record_run(run_dir: str, options: Mapping[str, Any], settings: Mapping[str, Any],
               argv: Optional[Sequence[str]] = None, device: Union[str, torch.device, None] = None,
               world_size: int = 1) -> None:
    """Write the run record: ``args.json`` (the run's resolved options + :data:`SETTINGS_KEY`), one more
    line in ``command.txt`` (``argv``, default this process's) and in ``env.txt``."""
    record = run_record({**dict(options), SETTINGS_KEY: dict(settings)}, argv, device, world_size)
    write_run_folder(run_dir, record, "args.json")
