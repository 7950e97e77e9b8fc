"""Up-front checks of the sampling options (``inference/sample.py``), before anything is loaded or written.

Each check raises :class:`ivid.errors.OptionError` naming the option, its value and the valid range,
so a bad value never reaches the sampler (where ``--near 0`` divides by zero, ``--guidance nan``
yields blank images and a negative tolerance silently disables every depth edge).
"""

from __future__ import annotations

import math
from typing import Any, Optional

from ivid.errors import OptionError

from .multiview import SAMPLER_CHOICES

__all__ = ["check_sampling_options", "check_steps"]


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise OptionError(f"--{name} {value!r}: expected a number")
    if not math.isfinite(float(value)):
        raise OptionError(f"--{name} {value}: must be a finite number")
    return float(value)


def _at_least(name: str, value: Any, low: float, what: str) -> None:
    if _number(name, value) < low:
        raise OptionError(f"--{name} {value}: must be >= {low:g} ({what})")


def _integer(name: str, value: Any, low: int, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise OptionError(f"--{name} {value!r}: must be an integer >= {low} ({what})")


def check_sampling_options(options: Any) -> None:
    """Check every sampler setting of ``options`` (a ``SampleRequest`` / ``MultiviewOptions``).

    Valid ranges: ``steps_uncond``, ``steps_cond`` >= 1; ``guidance`` finite >= 0; ``fov`` in
    (0, 180) degrees; ``0 < near < far``; ``atol``, ``rtol`` >= 0; ``erode_rgb`` >= 0;
    ``replace_rgb``, ``replace_depth``, ``constrain_depth`` in [0, 1]; ``eta`` in [0, 1];
    ``ssaa`` >= 1; and, when present, ``batchsize`` >= 1 and ``num_samples`` >= 1.

    Raises:
        OptionError: the first invalid option, named.
    """
    _integer("steps_uncond", options.steps_uncond, 1, ">= 1000 means DDPM, fewer DDIM steps")
    _integer("steps_cond", options.steps_cond, 1, "DDIM steps of G_c")
    _at_least("guidance", options.guidance, 0.0, "classifier-free guidance strength; 0 = no guidance")
    fov = _number("fov", options.fov)
    if not 0.0 < fov < 180.0:
        raise OptionError(f"--fov {options.fov}: must be in (0, 180) degrees")
    near, far = _number("near", options.near), _number("far", options.far)
    if near <= 0.0:
        raise OptionError(f"--near {options.near}: must be > 0 (distance of the near plane of the depth code)")
    if far <= near:
        raise OptionError(f"--far {options.far}: must be larger than --near {options.near}")
    _at_least("atol", options.atol, 0.0, "depth discontinuity tolerance, absolute")
    _at_least("rtol", options.rtol, 0.0, "depth discontinuity tolerance, relative")
    _integer("erode_rgb", options.erode_rgb, 0, "colour erosion radius in pixels; 0 = none")
    for name in ("replace_rgb", "replace_depth", "constrain_depth", "eta"):
        value = _number(name, getattr(options, name))
        if not 0.0 <= value <= 1.0:
            what = "sampler noise, 0 = deterministic" if name == "eta" else "a guidance weight; 0 = off"
            raise OptionError(f"--{name} {getattr(options, name)}: must be in [0, 1] ({what})")
    _integer("ssaa", options.ssaa, 1, "super-sampling factor")
    sampler = getattr(options, "sampler", "auto")
    if sampler not in SAMPLER_CHOICES:
        raise OptionError(f"--sampler {sampler!r}: choose one of {', '.join(SAMPLER_CHOICES)}")
    if sampler == "ddpm" and options.steps_uncond < 1000:
        raise OptionError(f"--sampler ddpm runs all 1000 diffusion steps of G_u; --steps_uncond {options.steps_uncond} "
                          "needs --sampler ddim or dpmpp_2m")
    if getattr(options, "batchsize", 1) is not None:
        _integer("batchsize", getattr(options, "batchsize", 1), 1, "samples per batch")
    if getattr(options, "num_samples", None) is not None:
        _integer("num_samples", options.num_samples, 1, "number of samples")


def check_steps(option: str, steps: int, timesteps: Optional[int], ddpm_allowed: bool) -> None:
    """``steps`` of a model with ``timesteps`` diffusion steps: DDIM needs ``steps <= timesteps``.

    G_u (``ddpm_allowed``) runs DDPM for ``steps >= timesteps``; G_c always runs DDIM.
    """
    if timesteps is not None and not ddpm_allowed and steps > timesteps:
        raise OptionError(f"{option} {steps}: at most {timesteps} (the model's diffusion steps) for DDIM")
