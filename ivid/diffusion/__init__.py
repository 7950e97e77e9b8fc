"""Diffusion frameworks, samplers and sampling-time guidance.

``FRAMEWORKS`` maps a config's ``framework.name`` to its class; frameworks are
built as ``Cls(backbone, **framework.args)``. ``SAMPLERS`` maps a sampler name
(``ddpm``, ``ddim``, ``dpmpp_2m``) to its class, built as ``Cls(framework)``.
"""

from .frameworks import ClassifierFreeGuidance, GaussianDiffusion, InpaintCFG, SuperResCFG
from .guidance import constrain_depth, replace_depth, replace_rgb
from .dpm_solver import Dpmpp2mSampler
from .samplers import DdimSampler, DdpmSampler, SampleResult

__all__ = ["GaussianDiffusion", "ClassifierFreeGuidance", "InpaintCFG", "SuperResCFG", "FRAMEWORKS",
           "DdpmSampler", "DdimSampler", "Dpmpp2mSampler", "SAMPLERS", "SampleResult",
           "replace_rgb", "replace_depth", "constrain_depth"]

#: config ``framework.name`` -> class
FRAMEWORKS = {
    "GaussianDiffusion": GaussianDiffusion,
    "ClassifierFreeGuidance": ClassifierFreeGuidance,
    "InpaintCFG": InpaintCFG,
    "SuperResCFG": SuperResCFG,
}

#: sampler name -> class, built as ``Cls(framework)``
SAMPLERS = {
    "ddpm": DdpmSampler,
    "ddim": DdimSampler,
    "dpmpp_2m": Dpmpp2mSampler,
}
