"""Diffusion frameworks, samplers and sampling-time guidance.

``FRAMEWORKS`` maps a config's ``framework.name`` to its class; frameworks are
built as ``Cls(backbone, **framework.args)``.
"""

from .frameworks import ClassifierFreeGuidance, GaussianDiffusion, InpaintCFG, SuperResCFG
from .guidance import constrain_depth, replace_depth, replace_rgb
from .samplers import DdimSampler, DdpmSampler, SampleResult

__all__ = ["GaussianDiffusion", "ClassifierFreeGuidance", "InpaintCFG", "SuperResCFG", "FRAMEWORKS",
           "DdpmSampler", "DdimSampler", "SampleResult", "replace_rgb", "replace_depth", "constrain_depth"]

#: config ``framework.name`` -> class
FRAMEWORKS = {
    "GaussianDiffusion": GaussianDiffusion,
    "ClassifierFreeGuidance": ClassifierFreeGuidance,
    "InpaintCFG": InpaintCFG,
    "SuperResCFG": SuperResCFG,
}
