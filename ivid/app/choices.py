"""The app's fixed choices: viewsets and first-view samplers, each listed once here.

A sampler choice maps the page's "sampler" and "first-view steps" to the
:class:`ivid.sampling.SampleRequest` fields that select it (``steps_uncond`` and
``sampler``; see :class:`ivid.sampling.multiview.MultiviewOptions`): ``ddim`` and
``ddpm`` sample G_c with DDIM, as the reference; ``dpmpp_2m`` samples both models
with DPM-Solver++(2M). A new sampler in the library becomes
a choice of the app by adding one :class:`SamplerChoice` to :data:`SAMPLERS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Mapping

__all__ = ["VIEWSETS", "SamplerChoice", "SAMPLERS", "sampler_fields"]

#: viewsets offered by the page (see :mod:`ivid.geometry.viewsets`)
VIEWSETS = ("3x9", "360", "random")
#: the models' diffusion timesteps: DDPM takes all of them
_TIMESTEPS = 1000


@dataclass(frozen=True)
class SamplerChoice:
    """One sampler of the page.

    Attributes:
        about: one line for the page.
        fields: first-view steps -> SampleRequest fields (raises ValueError for steps it cannot take).
    """

    about: str
    fields: Callable[[int], Mapping[str, object]]


def _ddim(steps: int) -> Dict[str, object]:
    if not 1 <= steps < _TIMESTEPS:
        raise ValueError(f"ddim takes 1 to {_TIMESTEPS - 1} first-view steps, got {steps}; "
                         f"pick ddpm for the full {_TIMESTEPS}-step sampler")
    return {"steps_uncond": steps}


def _dpmpp_2m(steps: int) -> Dict[str, object]:
    if not 1 <= steps <= _TIMESTEPS:
        raise ValueError(f"dpmpp_2m takes 1 to {_TIMESTEPS} first-view steps, got {steps}")
    return {"steps_uncond": steps, "sampler": "dpmpp_2m"}


SAMPLERS: Dict[str, SamplerChoice] = {
    "ddim": SamplerChoice("DDIM: deterministic, the first-view steps you set", _ddim),
    "ddpm": SamplerChoice(f"DDPM: {_TIMESTEPS} ancestral steps (the reference default; ignores the step count)",
                          lambda steps: {"steps_uncond": _TIMESTEPS}),
    "dpmpp_2m": SamplerChoice("DPM-Solver++(2M) for every view: as good as DDIM in far fewer steps (10-25)",
                              _dpmpp_2m),
}


def sampler_fields(name: str, steps: int) -> Mapping[str, object]:
    """SampleRequest fields for sampler ``name`` with ``steps`` first-view steps.

    Raises:
        ValueError: unknown sampler, or steps the sampler cannot take.
    """
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; valid: {', '.join(SAMPLERS)}")
    return SAMPLERS[name].fields(int(steps))
