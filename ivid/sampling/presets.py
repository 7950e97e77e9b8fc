"""Named model bundles (``--preset``) and how a request is resolved against one.

A preset names the four model files (G_u / G_c configs and weights, relative to the
repository root) and the defaults of other settings that suit those models, for
sampling (:class:`ivid.sampling.SampleRequest`) and for rendering
(:class:`ivid.sampling.RenderRequest`).

A request leaves every setting the caller did not give at None. :func:`resolve_request`
is the one place that turns a request into its final settings: each None field takes
the preset's value when the request names a preset that has one, else the field's
reference default (declared with :func:`setting`). Values given explicitly always win,
so ``SampleRequest(preset="demo", steps_cond=50)`` samples the demo models with 50 G_c
steps, from Python as from ``inference/sample.py --preset demo --steps_cond 50``. The
command lines only parse and pass their options along (an option not given stays None).
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional, Sequence, TypeVar

from ivid.errors import OptionError

__all__ = ["Preset", "PRESETS", "setting", "resolve_request", "request_defaults", "preset_in_argv"]

#: field metadata key of a setting's reference default
DEFAULT_KEY = "reference_default"

R = TypeVar("R")


def setting(default: Any) -> Any:
    """A request field that is None unless given, with ``default`` as its reference default.

    Use as ``atol: Optional[float] = setting(0.03)``; :func:`resolve_request` fills it.
    """
    return field(default=None, metadata={DEFAULT_KEY: default})


@dataclass(frozen=True)
class Preset:
    """One ``--preset``: model files plus setting defaults.

    Attributes:
        config_uncond, config_cond, ckpt_uncond, ckpt_cond: files, relative to the repository root.
        sample_defaults: ``SampleRequest`` field -> value under this preset.
        render_defaults: ``RenderRequest`` field -> value under this preset.
        about: one line for ``--help``.
    """

    config_uncond: str
    config_cond: str
    ckpt_uncond: str
    ckpt_cond: str
    sample_defaults: Mapping[str, object] = field(default_factory=dict)
    render_defaults: Mapping[str, object] = field(default_factory=dict)
    about: str = ""

    @property
    def files(self) -> Dict[str, str]:
        """``{field name: path}`` of the four model files."""
        return {"config_uncond": self.config_uncond, "config_cond": self.config_cond,
                "ckpt_uncond": self.ckpt_uncond, "ckpt_cond": self.ckpt_cond}

    def defaults(self, kind: str) -> Dict[str, object]:
        """The preset's values for a ``kind`` of request: ``"sample"`` (model files + sample defaults)
        or ``"render"``."""
        if kind == "sample":
            return {**self.files, **self.sample_defaults}
        if kind == "render":
            return dict(self.render_defaults)
        raise ValueError(f"unknown request kind {kind!r}; expected 'sample' or 'render'")


# The demo models are 32x32. One pixel there spans ~4x the depth change of a 128x128 pixel, so the
# 128x128 discontinuity tolerances (0.03) and colour erosion (3 px) would mark almost every pixel as an
# edge and erode all colour out of the conditions; 0.1 / 1 px keep ~50-70% of a neighbouring view.
# The small G_c follows its condition only loosely, so replace_rgb / replace_depth pull each new view
# harder towards what the earlier views show. 100 DDIM steps of G_u and 20 per G_c view keep a 3x9
# viewset of 4 seeds plus their videos within ~2 minutes on 2 CPU cores (ckpts/demo/README.md).
# The small demo models' x0 predictions overshoot [-1, 1] at guidance 3 and 100 steps (saturated or
# black views without clamping), so the demo clamps them (ADM's default); the released models are
# sampled without clamping, as the reference.
# eta 1 (ancestral noise at every DDIM / DPM-Solver++ step) lets the demo G_c pull a view back towards its condition at
# the low-noise steps, where it follows the condition closely; with eta 0 the colours fixed at the
# high-noise steps stay (colour error against the condition 0.30 vs 0.10 without replace guidance,
# ckpts/demo/README.md).
_DEMO_GEOMETRY = {"atol": 0.1, "rtol": 0.1, "erode_rgb": 1}

PRESETS: Dict[str, Preset] = {
    "demo": Preset(
        config_uncond="configs/demo_uncond.json",
        config_cond="configs/demo_cond.json",
        ckpt_uncond="ckpts/demo/uncond.pt",
        ckpt_cond="ckpts/demo/cond.pt",
        sample_defaults={"output_dir": "samples/demo", "seeds": "0-3", "steps_uncond": 100, "steps_cond": 20,
                         "replace_rgb": 0.5, "replace_depth": 0.5, "clip_denoised": True, "eta": 1.0,
                         **_DEMO_GEOMETRY},
        render_defaults={"video_size": 256, **_DEMO_GEOMETRY},
        about="32x32 toy-scene models trained by this project (configs/demo_*.json, ckpts/demo/)",
    ),
}


def _preset(name: Optional[str]) -> Optional[Preset]:
    if name is None:
        return None
    if name not in PRESETS:
        raise OptionError(f"--preset {name!r}: unknown preset; valid: {', '.join(PRESETS)}")
    return PRESETS[name]


def request_defaults(request_type: type, preset: Optional[str] = None) -> Dict[str, object]:
    """``{field: value}`` a field of ``request_type`` left at None resolves to under ``preset``.

    ``request_type`` is a request dataclass with a ``PRESET_KIND`` class attribute
    (``"sample"`` or ``"render"``); a field without a reference default resolves to None.
    These are the defaults the command lines show in ``--help``.

    Raises:
        OptionError: unknown preset.
    """
    values = {f.name: f.metadata.get(DEFAULT_KEY) for f in dataclasses.fields(request_type)}
    chosen = _preset(preset)
    if chosen is not None:
        values.update({k: v for k, v in chosen.defaults(request_type.PRESET_KIND).items() if k in values})
    return values


def resolve_request(request: R) -> R:
    """``request`` with every None field replaced by the preset's value, else its reference default.

    The request's ``preset`` (None: no preset) selects the preset; explicitly given fields are
    kept. Idempotent: a resolved request resolves to itself.

    Raises:
        OptionError: unknown preset.
    """
    defaults = request_defaults(type(request), getattr(request, "preset", None))
    missing = {name: value for name, value in defaults.items()
               if getattr(request, name) is None and value is not None}
    return dataclasses.replace(request, **missing) if missing else request


def preset_in_argv(argv: Optional[Sequence[str]] = None) -> Optional[str]:
    """The ``--preset`` given in ``argv`` (default ``sys.argv[1:]``), None when absent.

    A CLI reads it before building its full parser, to show the preset's defaults in
    ``--help``; an unknown name exits with argparse's usual error.
    """
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--preset", default=None, choices=sorted(PRESETS))
    return parser.parse_known_args(argv)[0].preset
