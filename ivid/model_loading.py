"""Models from weight files: safe reading, strict matching with clear errors, download of the released files.

:func:`load_framework` turns a config and a checkpoint into a framework ready to sample (sampling,
the app, the benchmarks); the trainer reads its own run files with :func:`safe_torch_load`.

A checkpoint is a bare state_dict of the backbone (a dict of tensors, no
wrapper keys), as the reference releases (``imagenet128_uncond.pt``,
``imagenet128_cond.pt``, Hugging Face repo ``JeffreyXiang/ivid``) and as our
trainer writes (``model_step*.pt``, ``ema_*_step*.pt``). Files are always read
with ``torch.load(path, map_location="cpu", weights_only=True)``: no pickled
code is ever executed.

Unambiguous wrappers are unwrapped (documented in :func:`load_state_dict_file`).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from ivid.errors import IvidError
from ivid.utils.io import remove_orphan_temps, temp_dir_prefix

__all__ = ["CheckpointError", "CheckpointNotFoundError", "RELEASED_CHECKPOINTS", "HF_REPO_ID",
           "load_state_dict_file", "load_backbone_weights", "resolve_checkpoint", "download_checkpoint",
           "load_framework", "safe_torch_load", "torch_load_failure", "hub_reachable",
           "ensure_released_checkpoints"]

PathLike = Union[str, os.PathLike]

#: Hugging Face repository of the released checkpoints
HF_REPO_ID = "JeffreyXiang/ivid"
#: released file name -> the config it belongs to
RELEASED_CHECKPOINTS: Dict[str, str] = {
    "imagenet128_uncond.pt": "configs/rgbd_imagenet_adm_128_large_cfg.json",
    "imagenet128_cond.pt": "configs/rgbd_imagenet_adm_128_large_cond.json",
}
#: keys under which a wrapped state_dict is accepted (only when it is the sole tensor dict)
WRAPPER_KEYS = ("state_dict", "model")
#: prefixes stripped when EVERY key carries them (DDP / torch.compile wrappers)
WRAPPER_PREFIXES = ("module.", "_orig_mod.")
#: how many offending keys an error message lists per kind
MAX_LISTED = 5


class CheckpointError(IvidError, RuntimeError):
    """A checkpoint file is missing, unreadable or does not match the model; the message names the file."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """The checkpoint file does not exist (and is not a released file that could be downloaded)."""


def _hf_url(filename: str) -> str:
    return f"https://huggingface.co/{HF_REPO_ID}/resolve/main/{filename}"


def _is_tensor_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and len(obj) > 0 and all(
        isinstance(k, str) and torch.is_tensor(v) for k, v in obj.items())


def _strip_prefixes(state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    for prefix in WRAPPER_PREFIXES:
        if all(k.startswith(prefix) for k in state_dict):
            state_dict = {k[len(prefix):]: v for k, v in state_dict.items()}
    return state_dict


#: file signatures of formats people mistake for checkpoints
_MAGIC = ((b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"GIF8", "a GIF image"),
          (b"\x93NUMPY", "a NumPy .npy array"), (b"{", "a JSON/text file"), (b"<", "an HTML/XML page"),
          (b"version https://git-lfs", "a Git LFS pointer (run git lfs pull)"),
          (b"\x1f\x8b", "a gzip archive"), (b"PK\x03\x04", "a zip archive"))


def torch_load_failure(path: PathLike, err: BaseException) -> str:
    """Why ``torch.load(path, weights_only=True)`` failed, in words a user can act on.

    PyTorch's own message is not relayed: for files it refuses to unpickle it
    recommends ``weights_only=False``, which would run arbitrary code from the file.
    """
    path = os.fspath(path)
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(64)
    except OSError as e:
        return f"cannot be read ({e.strerror or e})"
    if size == 0:
        return "the file is empty (0 bytes): an interrupted download or copy; fetch or copy it again"
    text = str(err)
    refused = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
    if refused or "Weights only load failed" in text:
        if head.startswith(b"PK\x03\x04") or head.startswith(b"\x80"):
            what = f" ({refused.group(1)})" if refused else ""
            return (f"it holds pickled Python objects{what} besides tensors; for safety they are never "
                    "unpickled - only files of tensors (state_dicts, as torch.save(model.state_dict())) load")
    if head.startswith(b"PK\x03\x04"):
        return "the file is damaged or truncated (its zip archive cannot be read); fetch or copy it again"
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return f"not a PyTorch checkpoint: it looks like {kind}"
    if head.startswith(b"\x80"):
        return "the file is damaged or truncated (its pickle data cannot be read); fetch or copy it again"
    return "not a PyTorch checkpoint file (neither a torch.save zip archive nor a legacy torch file)"


def safe_torch_load(path: PathLike, what: str = "checkpoint") -> Any:
    """``torch.load(path, map_location="cpu", weights_only=True)`` with a clear :class:`CheckpointError`.

    Raises:
        CheckpointNotFoundError: no such file.
        CheckpointError: unreadable; the one-line message names the file and the reason
            (:func:`torch_load_failure`).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointNotFoundError(f"{path}: {what} file not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # corrupt, truncated, empty, foreign or pickled-object files
        raise CheckpointError(f"{path}: cannot read {what}: {torch_load_failure(path, e)}") from None


def load_state_dict_file(path: PathLike) -> Dict[str, torch.Tensor]:
    """Read a state_dict file safely (``weights_only=True``, on CPU).

    Accepted layouts:
        * a bare dict ``{key: tensor}`` (the released and our own format);
        * a dict wrapping one under ``"state_dict"`` or ``"model"``, accepted only
          when exactly one of those keys holds a dict of tensors and no top-level
          value is itself a tensor (otherwise it is ambiguous and rejected);
        * keys all prefixed by ``module.`` or ``_orig_mod.`` are stripped.

    Raises:
        CheckpointNotFoundError: no such file.
        CheckpointError: unreadable, not a torch file, pickled objects other than
            tensors, or not a dict of tensors.
    """
    path = os.fspath(path)
    obj = safe_torch_load(path)
    if _is_tensor_dict(obj):
        return _strip_prefixes(dict(obj))
    if isinstance(obj, Mapping) and not any(torch.is_tensor(v) for v in obj.values()):
        wrapped = [k for k in WRAPPER_KEYS if _is_tensor_dict(obj.get(k))]
        if len(wrapped) == 1:
            return _strip_prefixes(dict(obj[wrapped[0]]))
    kind = type(obj).__name__
    keys = f" with keys {sorted(map(str, obj))[:8]}" if isinstance(obj, Mapping) else ""
    raise CheckpointError(f"{path}: expected a state_dict (a dict of tensors), got a {kind}{keys}")


def _describe_mismatch(model_sd: Mapping[str, torch.Tensor], state_dict: Mapping[str, torch.Tensor]):
    missing = [k for k in model_sd if k not in state_dict]
    unexpected = [k for k in state_dict if k not in model_sd]
    shapes = [f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(v.shape)}"
              for k, v in model_sd.items() if k in state_dict and tuple(state_dict[k].shape) != tuple(v.shape)]
    lines = []
    for title, items in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", shapes)):
        if items:
            more = f" (+{len(items) - MAX_LISTED} more)" if len(items) > MAX_LISTED else ""
            lines.append(f"{len(items)} {title}: {', '.join(items[:MAX_LISTED])}{more}")
    return lines


def load_backbone_weights(model: nn.Module, path_or_state_dict: Union[PathLike, Mapping[str, torch.Tensor]],
                          config: Optional[PathLike] = None, assign: bool = False) -> nn.Module:
    """Load a checkpoint strictly into ``model``, casting each tensor to the parameter's dtype.

    Args:
        model: the backbone (e.g. ``AdmUnet2d``).
        path_or_state_dict: a checkpoint file or an already loaded state_dict.
        config: optional config path, only used to name it in error messages.
        assign: assign the (cast) checkpoint tensors instead of copying (for
            models built on the ``meta`` device).

    Returns:
        ``model``.

    Raises:
        CheckpointError: keys or shapes differ; the message names the file, lists
            the first missing / unexpected keys and shape mismatches with counts,
            and hints that the config does not match the checkpoint.
    """
    if isinstance(path_or_state_dict, Mapping):
        source, state_dict = "<state_dict>", dict(path_or_state_dict)
    else:
        source = os.fspath(path_or_state_dict)
        state_dict = load_state_dict_file(source)
    _load_checked(model, state_dict, source, config, assign)
    return model


def _load_checked(model: nn.Module, state_dict: Dict[str, torch.Tensor], source: str,
                  config: Optional[PathLike], assign: bool) -> None:
    """Strict load of ``state_dict`` (named ``source`` in errors) with dtype casting."""
    model_sd = model.state_dict()
    problems = _describe_mismatch(model_sd, state_dict)
    if problems:
        what = f"config {os.fspath(config)}" if config is not None else f"the model ({type(model).__name__})"
        raise CheckpointError(f"{source}: checkpoint does not match the model: " + "; ".join(problems)
                              + f". Hint: {what} does not match checkpoint {source}; "
                                "check the config / checkpoint pair.")
    state_dict = {k: v.to(model_sd[k].dtype) if v.is_floating_point() and model_sd[k].is_floating_point() else v
                  for k, v in state_dict.items()}
    model.load_state_dict(state_dict, strict=True, assign=assign)


#: seconds the reachability probe of the Hugging Face Hub may take before we call it offline
HUB_PROBE_TIMEOUT_S = 5.0


def _download_command(targets: Sequence[str]) -> str:
    """``python scripts/download_ckpts.py ...`` command(s) that fetch ``targets`` (released file paths)."""
    by_dir: Dict[str, List[str]] = {}
    for target in targets:
        by_dir.setdefault(os.path.dirname(target) or ".", []).append(os.path.basename(target))
    return " && ".join(f"python scripts/download_ckpts.py --ckpt_dir {folder} --files {' '.join(names)}"
                       for folder, names in by_dir.items())


def hub_reachable(timeout: float = HUB_PROBE_TIMEOUT_S) -> Tuple[bool, str]:
    """Whether the Hugging Face Hub can be reached, decided within ``timeout`` seconds.

    Returns ``(False, why)`` in huggingface_hub's offline mode (``HF_HUB_OFFLINE=1``) or when
    no TCP connection to the Hub's host opens in time, so that an offline machine learns at
    once which files are missing instead of waiting for the Hub client's retries.
    """
    import socket
    import threading
    from urllib.parse import urlparse

    try:
        from huggingface_hub import constants
    except ImportError:
        return False, "huggingface_hub is not installed"
    if getattr(constants, "HF_HUB_OFFLINE", False):
        return False, "huggingface_hub offline mode (HF_HUB_OFFLINE) is on"
    url = urlparse(getattr(constants, "ENDPOINT", "https://huggingface.co") or "https://huggingface.co")
    host, port = url.hostname or "huggingface.co", url.port or (443 if url.scheme != "http" else 80)
    result: Dict[str, Any] = {}

    def probe() -> None:  # DNS lookups ignore socket timeouts: run it in a thread we can stop waiting for
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            result["ok"] = True
        except OSError as e:
            result["error"] = e.strerror or str(e) or type(e).__name__

    thread = threading.Thread(target=probe, daemon=True, name="ivid-hub-probe")
    thread.start()
    thread.join(timeout)
    if result.get("ok"):
        return True, ""
    return False, f"{host} cannot be reached ({result.get('error', f'no answer within {timeout:g} s')})"


def download_checkpoint(filename: str, ckpt_dir: PathLike) -> str:
    """Download a released checkpoint from Hugging Face into ``ckpt_dir/filename`` (atomic).

    The file is fetched into a temporary folder inside ``ckpt_dir`` (HF shows its
    progress bar) and moved into place only when complete.

    Raises:
        CheckpointError: unknown file name, or the download failed (offline, ...);
            the message says which URL to fetch and where to put the file.
    """
    if filename not in RELEASED_CHECKPOINTS:
        raise CheckpointError(f"{filename}: not a released checkpoint; released: {', '.join(RELEASED_CHECKPOINTS)}")
    ckpt_dir = os.fspath(ckpt_dir) or "."
    target = os.path.join(ckpt_dir, filename)
    how = (f"Download it by hand from {_hf_url(filename)} (Hugging Face repo {HF_REPO_ID}, file {filename}) "
           f"and put it at {target}, or run: python scripts/download_ckpts.py --ckpt_dir {ckpt_dir}")
    try:
        from huggingface_hub import hf_hub_download
    except ImportError as e:
        raise CheckpointError(f"{target}: checkpoint missing and huggingface_hub is not installed. {how}") from e
    os.makedirs(ckpt_dir, exist_ok=True)
    remove_orphan_temps(ckpt_dir)  # folders of an interrupted download
    tmp_dir = tempfile.mkdtemp(prefix=temp_dir_prefix("download"), dir=ckpt_dir)
    try:
        fetched = hf_hub_download(repo_id=HF_REPO_ID, filename=filename, local_dir=tmp_dir)
        os.replace(fetched, target)
    except Exception as e:
        raise CheckpointError(f"{target}: checkpoint missing and the download failed "
                              f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}). {how}") from e
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    return target


def ensure_released_checkpoints(paths: Mapping[str, PathLike]) -> None:
    """Download every missing released checkpoint of ``paths`` ({option: path}), or name them all.

    Files that exist, and missing files that are not released checkpoints, are left to
    :func:`resolve_checkpoint`. Before any download the Hub is probed (:func:`hub_reachable`):
    offline, ONE error lists every missing file with the command that fetches them.

    Raises:
        CheckpointError: offline, or a download failed.
    """
    missing = {option: os.fspath(path) for option, path in paths.items()
               if not os.path.isfile(path) and os.path.basename(os.fspath(path)) in RELEASED_CHECKPOINTS}
    if not missing:
        return
    ok, why = hub_reachable()
    if not ok:
        listed = ", ".join(f"{path} ({option})" if option else path for option, path in missing.items())
        urls = ", ".join(_hf_url(os.path.basename(path)) for path in missing.values())
        raise CheckpointError(
            f"released checkpoint(s) missing and the Hugging Face Hub is unreachable ({why}): {listed}. "
            f"Fetch them with `{_download_command(list(missing.values()))}` on a machine with network access "
            f"and copy them there, or download {urls} by hand (see ckpts/README.md)")
    for path in missing.values():
        download_checkpoint(os.path.basename(path), os.path.dirname(path))


def resolve_checkpoint(path: PathLike) -> str:
    """Return ``path`` if it exists; download it if its basename is a released checkpoint.

    Raises:
        CheckpointNotFoundError: the file is missing and is not a released file.
        CheckpointError: a released file is missing and could not be downloaded.
    """
    path = os.fspath(path)
    if os.path.isfile(path):
        return path
    name = os.path.basename(path)
    if name in RELEASED_CHECKPOINTS:
        ensure_released_checkpoints({"": path})
        return path
    raise CheckpointNotFoundError(
        f"{path}: checkpoint file not found (released files that download automatically: "
        f"{', '.join(RELEASED_CHECKPOINTS)}; see ckpts/README.md)")


def _default_use_fp16(cfg: Mapping[str, Any], device: torch.device) -> bool:
    """The config's ``use_fp16`` on CUDA; float32 elsewhere (half convolutions are slow on CPU)."""
    return bool(cfg["backbone"]["args"].get("use_fp16", False)) and device.type == "cuda"


def load_framework(config: Union[PathLike, Mapping[str, Any]], ckpt: Optional[PathLike] = None,
                   device: Union[str, torch.device, None] = None, use_fp16: Optional[bool] = None):
    """Build the backbone and framework of a config, load weights, move to ``device``, eval mode.

    Args:
        config: config file path or an already loaded config dict (needs
            ``backbone`` and ``framework`` sections).
        ckpt: optional backbone checkpoint; released file names download when missing
            (:func:`resolve_checkpoint`). Without it the backbone has random weights.
        device: where to run (``ivid.utils.resolve_device``; None = best available).
        use_fp16: override the config's ``use_fp16``. None = the config's value on
            CUDA and False on other devices.

    Returns:
        The framework (``framework.backbone`` is the module, in eval mode).
    """
    from ivid.config import build, load_config, resolve_num_classes, validate_config
    from ivid.utils import resolve_device

    source = os.fspath(config) if not isinstance(config, Mapping) else None
    if source is not None:
        cfg = load_config(source)
    else:  # only the two sections used here are validated (a dict may carry other metadata)
        cfg = validate_config({k: config[k] for k in ("backbone", "framework") if k in config})
    for section in ("backbone", "framework"):
        if section not in cfg:
            raise CheckpointError(f"{source or '<config>'}: config has no '{section}' section")
    device = resolve_device(device)
    fp16 = _default_use_fp16(cfg, device) if use_fp16 is None else bool(use_fp16)
    if ckpt is not None:
        ckpt_path = resolve_checkpoint(ckpt)
        state_dict = load_state_dict_file(ckpt_path)
        label_emb = state_dict.get("label_emb.weight")  # num_classes "auto": the checkpoint's class count
        cfg = resolve_num_classes(cfg, None if label_emb is None else int(label_emb.shape[0]))
        with torch.device("meta"):  # no random init: every tensor comes from the checkpoint
            backbone = build("backbone", cfg, use_fp16=fp16)
        _load_checked(backbone, state_dict, ckpt_path, source, assign=True)
    else:
        with torch.device(device):
            backbone = build("backbone", cfg, use_fp16=fp16)
    backbone = backbone.to(device).eval()
    return build("framework", cfg, backbone)

