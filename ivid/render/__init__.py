"""Free-view rendering of saved scenes and their export (``inference/render.py``; no diffusion).

- :mod:`.fusion`     a scene's views as meshes, fusion-rendered into any camera
  (:func:`ivid.geometry.render_fusion`)
- :mod:`.free_view`  a whole ``inference/render.py`` run: trajectories, videos, images
- :mod:`.export`     PLY and glTF (GLB) export of a scene's meshes
"""

from .export import export_scene_glb, export_scene_ply, scene_geometry, write_ply
from .free_view import RenderRequest, find_scenes, run_render
from .fusion import render_frames, scene_meshes

__all__ = ["scene_meshes", "render_frames", "RenderRequest", "run_render", "find_scenes",
           "export_scene_ply", "export_scene_glb", "scene_geometry", "write_ply"]
