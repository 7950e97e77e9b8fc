"""JSON run configs: load, validate against the constructors they name, build.

A config has up to four sections, each ``{"name": ..., "args": {...}}``:

    backbone  -> ivid.models.BACKBONES     (e.g. AdmUnet2d)
    framework -> ivid.diffusion.FRAMEWORKS (GaussianDiffusion, ClassifierFreeGuidance, InpaintCFG, SuperResCFG)
    dataset   -> ivid.data.DATASETS        (ImageNet, ImageNetWarp, ImageNetSR, SingleCategory, ...)
    trainer   -> ivid.training.TRAINERS    (BasicTrainer, InpaintTrainer, SuperResTrainer)

The constructor signature is the schema: ``args`` keys must be keyword
parameters of the named class, required parameters must be present, and values
must match the parameter annotations. Parameters that are supplied at build
time rather than from JSON (the backbone of a framework, the data folder of a
dataset, ...) are listed in the class attribute ``RUNTIME_ARGS``.

Deferred values (the reference's): ``backbone.args.num_classes: "auto"`` takes the
training dataset's class count; ``train.py`` resolves it (:func:`resolve_num_classes`)
before building the backbone and stores the number in the run's ``config.json``;
:func:`ivid.model_loading.load_framework` resolves it from a checkpoint's ``label_emb``.

Every error is a :class:`ConfigError` whose message starts with the file and
the dotted key, e.g. ``configs/x.json: backbone.args.num_head_channel: unknown
key (did you mean 'num_head_channels'?)``.
"""

from __future__ import annotations

import copy
import difflib
import importlib
import inspect
import json
import os
import typing
from typing import Any, Dict, Mapping, Optional, Tuple, Union

from ivid.errors import IvidError

__all__ = ["ConfigError", "load_config", "validate_config", "build", "registry", "SECTIONS", "KEY_ALIASES",
           "AUTO", "resolve_num_classes"]

#: section name -> (module, registry attribute)
SECTIONS: Dict[str, Tuple[str, str]] = {
    "backbone": ("ivid.models", "BACKBONES"),
    "framework": ("ivid.diffusion", "FRAMEWORKS"),
    "dataset": ("ivid.data", "DATASETS"),
    "trainer": ("ivid.training", "TRAINERS"),
}

#: Misspellings of the reference release that we accept: alias -> our key name.
KEY_ALIASES: Dict[str, str] = {
    "prepocess_depth": "preprocess_depth",
}

#: the reference's placeholder value, and the (section, key) pairs that accept it
AUTO = "auto"
_AUTO_KEYS = {("backbone", "num_classes")}


class ConfigError(IvidError, ValueError):
    """A config file is malformed; the message names the file and the dotted key."""


def registry(section: str) -> Mapping[str, type]:
    """Return the ``{name: class}`` registry for a config section (imported lazily)."""
    if section not in SECTIONS:
        raise KeyError(f"unknown config section {section!r}; valid: {sorted(SECTIONS)}")
    module, attr = SECTIONS[section]
    return getattr(importlib.import_module(module), attr)


def _suggest(word: str, choices) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _type_ok(value: Any, annotation: Any) -> bool:
    """Loose JSON-level check of ``value`` against a type annotation (unknown annotations pass)."""
    if annotation is inspect.Parameter.empty or annotation is Any:
        return True
    if isinstance(annotation, str):  # postponed annotations that could not be resolved
        return True
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is Union:
        return any(_type_ok(value, a) for a in args)
    if origin is typing.Literal:
        return value in args
    if annotation is type(None):
        return value is None
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is str:
        return isinstance(value, str)
    seq_origins = (list, tuple, typing.Sequence, __import__("collections.abc").abc.Sequence)
    if annotation in (list, tuple) or origin in seq_origins:
        if not isinstance(value, (list, tuple)):
            return False
        if args and origin is not tuple:
            return all(_type_ok(v, args[0]) for v in value)
        if args and origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            return len(value) == len(args) and all(_type_ok(v, a) for v, a in zip(value, args))
        if args and origin is tuple:
            return all(_type_ok(v, args[0]) for v in value)
        return True
    if annotation is dict or origin in (dict, typing.Mapping):
        return isinstance(value, dict)
    return True


def _type_name(annotation: Any) -> str:
    text = getattr(annotation, "__name__", None) if typing.get_origin(annotation) is None else None
    return text or str(annotation).replace("typing.", "")


def _validate_section(where: str, section: str, body: Any) -> Dict[str, Any]:
    if not isinstance(body, dict):
        raise ConfigError(f"{where}{section}: expected an object {{\"name\": ..., \"args\": {{...}}}}, "
                          f"got {type(body).__name__}")
    for key in body:
        if key not in ("name", "args"):
            raise ConfigError(f"{where}{section}.{key}: unknown key; a section holds only 'name' and 'args'"
                              + _suggest(key, ("name", "args")))
    if "name" not in body:
        raise ConfigError(f"{where}{section}.name: missing")
    name = body["name"]
    args = body.get("args", {})
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise ConfigError(f"{where}{section}.args: expected an object, got {type(args).__name__}")
    reg = registry(section)
    if name not in reg:
        raise ConfigError(f"{where}{section}.name: unknown {section} {name!r}{_suggest(str(name), reg)}; "
                          f"valid: {', '.join(sorted(reg))}")
    cls = reg[name]
    args = {KEY_ALIASES.get(k, k): v for k, v in args.items()}
    sig = inspect.signature(cls.__init__)
    try:
        hints = typing.get_type_hints(cls.__init__)
    except Exception:  # unresolvable forward references: fall back to raw annotations
        hints = {}
    runtime = set(getattr(cls, "RUNTIME_ARGS", ()))
    params = {p.name: p for p in list(sig.parameters.values())[1:]
              if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    accepts_kwargs = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
    for key, value in args.items():
        if key not in params or key in runtime:
            if accepts_kwargs and key not in runtime:
                continue
            raise ConfigError(f"{where}{section}.args.{key}: unknown key for {name}"
                              + _suggest(key, [p for p in params if p not in runtime]))
        annotation = hints.get(key, params[key].annotation)
        if value == AUTO and (section, key) in _AUTO_KEYS:
            continue  # resolved before building (resolve_num_classes)
        if not _type_ok(value, annotation):
            raise ConfigError(f"{where}{section}.args.{key}: expected {_type_name(annotation)}, "
                              f"got {json.dumps(value)} ({type(value).__name__})")
    for pname, p in params.items():
        if p.default is inspect.Parameter.empty and pname not in runtime and pname not in args:
            raise ConfigError(f"{where}{section}.args.{pname}: missing required key for {name}")
    return {"name": name, "args": args}


def validate_config(cfg: Any, source: str = "<config>") -> Dict[str, Any]:
    """Validate a config dict; return a normalised deep copy (aliases resolved)."""
    where = f"{source}: "
    if not isinstance(cfg, dict):
        raise ConfigError(f"{where}the top level must be a JSON object with sections {sorted(SECTIONS)}")
    out: Dict[str, Any] = {}
    for section, body in cfg.items():
        if section not in SECTIONS:
            raise ConfigError(f"{where}{section}: unknown section{_suggest(section, SECTIONS)}; "
                              f"valid: {', '.join(SECTIONS)}")
        out[section] = _validate_section(where, section, copy.deepcopy(body))
    return out


def load_config(path: Union[str, os.PathLike]) -> Dict[str, Any]:
    """Read a JSON config file and validate it (see module docstring).

    Returns:
        A plain dict (JSON types only) with aliases such as ``prepocess_depth``
        renamed to our parameter names.

    Raises:
        ConfigError: unreadable file, invalid JSON, unknown section/name/key,
            missing required key or wrong value type; the message names the
            file and the dotted key.
    """
    path = os.fspath(path)
    try:
        with open(path, "r", encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config file ({e.strerror or e})") from None
    try:
        cfg = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path}: invalid JSON at line {e.lineno} column {e.colno}: {e.msg}") from None
    return validate_config(cfg, source=path)


def build(section: str, cfg: Mapping[str, Any], *args: Any, **kwargs: Any) -> Any:
    """Instantiate the class a config section names.

    Args:
        section: ``"backbone"``, ``"framework"``, ``"dataset"`` or ``"trainer"``.
        cfg: either a whole config (the section is looked up) or the section itself.
        *args, **kwargs: runtime arguments (e.g. the backbone for a framework),
            passed before / besides the JSON ``args``.
    """
    body = cfg[section] if section in cfg else cfg
    if "name" not in body:
        raise ConfigError(f"<config>: {section}: missing")
    body = _validate_section("", section, body) if "args" in body else body
    for key, value in body.get("args", {}).items():
        if value == AUTO and (section, key) in _AUTO_KEYS and key not in kwargs:
            raise ConfigError(f"<config>: {section}.args.{key}: \"auto\" is resolved from the training data "
                              "(train.py) or a checkpoint; give the number here")
    cls = registry(section)[body["name"]]
    return cls(*args, **{**body.get("args", {}), **kwargs})


def resolve_num_classes(cfg: Mapping[str, Any], num_classes: Optional[int]) -> Dict[str, Any]:
    """A copy of ``cfg`` with ``backbone.args.num_classes: "auto"`` replaced by ``num_classes``
    (the training dataset's class count, None for unlabelled data), as the reference's train.py.
    A config without "auto" is returned unchanged (copied)."""
    out = copy.deepcopy(dict(cfg))
    args = (out.get("backbone") or {}).get("args") or {}
    if args.get("num_classes") == AUTO:
        args["num_classes"] = None if num_classes is None else int(num_classes)
    return out
