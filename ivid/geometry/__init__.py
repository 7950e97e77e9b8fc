"""Geometry: cameras, viewsets and trajectories, depth encodings, depth -> mesh, the pure-PyTorch renderer
(:mod:`ivid.geometry.renderer`, docs/renderer.md) and the renders built on it
(:mod:`ivid.geometry.warp`): forward-backward warping, aggregated conditioning, fusion.


Conventions (OpenGL camera looking down -z, row-major world -> camera ``modelview``,
pixel centres, fov in degrees) are stated in :mod:`ivid.geometry.camera` and
``docs/conventions.md``. Every function accepts NumPy arrays or torch tensors and
returns the same kind (tensors stay on their device).
"""

from .camera import look_at, orbit_eye, orbit_modelview, perspective
from .depth import depth_edge, erode_mask, linearize_depth, project_depth
from .mesh import Mesh, Vertices, depth_to_mesh
from .viewsets import grid_order_3x9, trajectory, viewset, viewset_from_file
from .warp import aggregate_conditions, forward_backward_warp, render_fusion

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
    "forward_backward_warp",
    "aggregate_conditions",
    "render_fusion",
]
