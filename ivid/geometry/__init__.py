"""Geometry: cameras, viewsets and trajectories, depth encodings, depth -> mesh, and (in raster/shading/resample/warp)
the pure-PyTorch renderer used for warping, aggregated conditioning and fusion.

Conventions (OpenGL camera looking down -z, row-major world -> camera ``modelview``,
pixel centres, fov in degrees) are stated in :mod:`ivid.geometry.camera` and
``docs/conventions.md``. Every function accepts NumPy arrays or torch tensors and
returns the same kind (tensors stay on their device).
"""

from .camera import look_at, orbit_eye, orbit_modelview, perspective
from .depth import depth_edge, erode_mask, linearize_depth, project_depth
from .mesh import Mesh, Vertices, depth_to_mesh
from .viewsets import grid_order_3x9, trajectory, viewset, viewset_from_file

# --- rendering (GEOMETRY-2: raster.py / shading.py / resample.py / warp.py) ---------------
# GEOMETRY-2 adds its single import line right below this comment:
#   from .warp import aggregate_conditions, forward_backward_warp, render_fusion
from .warp import aggregate_conditions, forward_backward_warp, render_fusion  # noqa: E402
# ---------------------------------------------------------------------------------------------

__all__ = [
    "look_at",
    "perspective",
    "orbit_eye",
    "orbit_modelview",
    "viewset",
    "viewset_from_file",
    "trajectory",
    "grid_order_3x9",
    "linearize_depth",
    "project_depth",
    "depth_edge",
    "erode_mask",
    "Mesh",
    "Vertices",
    "depth_to_mesh",
]
# GEOMETRY-2: with the import above, also extend __all__ (kept here so the names stay listed):
_RENDER_NAMES = ["forward_backward_warp", "aggregate_conditions", "render_fusion"]
__all__ += [name for name in _RENDER_NAMES if name in globals()]
