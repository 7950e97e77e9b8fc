"""ivid: 3D-aware image generation using 2D diffusion models (IVID, ICCV 2023).

Importing ``ivid`` is cheap: subpackages (``ivid.models``, ``ivid.diffusion``,
``ivid.geometry``, ``ivid.data``, ``ivid.training``, ``ivid.sampling``,
``ivid.depth``, ``ivid.metrics``) are imported on demand.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
