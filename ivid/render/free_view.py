"""A whole ``inference/render.py`` run: find scenes, fusion-render trajectories, write videos/images/PLY.

Outputs (under ``output_dir``, default: the folder above ``scene_dir``):

- ``--traj swing``: ``videos/<scene>.mp4`` (colour) and ``videos/<scene>_depth.mp4``
  (colourised depth), ``frames`` frames at 30 fps;
- ``--traj random``: ``results/<scene>.png``, one frame per scene from a random
  camera (yaw ~ clip(0.3 N, +-0.6), pitch ~ clip(0.15 N, +-0.15)), drawn from a
  NumPy generator keyed by ``--seed`` and the scene's position in sorted order;
- ``--traj 360``: like swing, a full turn at pitch 0;
- ``--traj none``: no rendering (e.g. with ``--export ply`` only);
- ``--export ply``: ``meshes/<scene>.ply``; ``--export glb``: ``meshes/<scene>.glb`` (binary glTF,
  needs trimesh) - see :mod:`ivid.render.export`.
"""

from __future__ import annotations

import contextlib
import glob
import math
import importlib.util
import os
from dataclasses import dataclass
from typing import Callable, ClassVar, List, Optional

import numpy as np
from tqdm.auto import tqdm

from ivid.errors import OptionError
from ivid.geometry.viewsets import TRAJECTORIES as NAMED_TRAJECTORIES
from ivid.sampling.presets import resolve_request, setting
from ivid.utils.device import resolve_device
from ivid.utils.images import save_png
from ivid.utils.io import remove_orphan_temps, temp_path
from ivid.utils.video import MAX_VIDEO_SIZE, encode_mp4

from .export import PLY_MODES, export_scene_glb, export_scene_ply
from .fusion import render_frames, scene_meshes

__all__ = ["RenderRequest", "TRAJECTORIES", "find_scenes", "run_render"]

#: ``--traj`` choices: the named trajectories, or ``none`` (no rendering, e.g. export only)
TRAJECTORIES = (*NAMED_TRAJECTORIES, "none")
EXPORTS = ("ply", "glb")


@dataclass
class RenderRequest:
    """Options of ``inference/render.py`` (reference names and defaults plus our extras).

    A field left at None was not given: :func:`ivid.sampling.presets.resolve_request` (called by
    :func:`run_render`) fills it from ``preset`` when that preset sets it, else with the reference
    default shown as ``setting(...)``; ``output_dir`` None = the folder above ``scenes/``,
    ``video_size`` None = the scene's size, ``device`` None = a GPU when visible.
    """

    PRESET_KIND: ClassVar[str] = "render"

    scene_dir: str
    output_dir: Optional[str] = None
    frames: Optional[int] = setting(60)
    traj: Optional[str] = setting("swing")
    atol: Optional[float] = setting(0.03)
    rtol: Optional[float] = setting(0.03)
    erode_rgb: Optional[int] = setting(3)
    device: Optional[str] = None
    seed: Optional[int] = setting(0)
    export: Optional[str] = None
    ply_mode: Optional[str] = setting("mesh")
    video_size: Optional[int] = None       # square videos of this many pixels (bicubic); None: the scene's size
    progress: bool = True
    preset: Optional[str] = None


def find_scenes(scene_dir: str) -> List[str]:
    """Sorted scene files of ``scene_dir`` (or of its ``scenes/`` sub-folder, for a run folder).

    Raises:
        FileNotFoundError: the folder does not exist or holds no ``.npz`` scene.
    """
    if not os.path.isdir(scene_dir):
        raise FileNotFoundError(f"--scene_dir {scene_dir}: no such folder")
    paths = sorted(glob.glob(os.path.join(scene_dir, "*.npz")))
    if not paths and os.path.isdir(os.path.join(scene_dir, "scenes")):
        paths = sorted(glob.glob(os.path.join(scene_dir, "scenes", "*.npz")))
    if not paths:
        raise FileNotFoundError(f"--scene_dir {scene_dir}: no scenes (*.npz) found there or in its scenes/ "
                                "sub-folder; point it at the scenes/ folder written by inference/sample.py")
    return paths


def _check(request: RenderRequest) -> None:
    """Every option, before anything is read or written (raises :class:`OptionError` naming the option)."""
    if request.traj not in TRAJECTORIES:
        raise OptionError(f"--traj {request.traj!r}: use one of {', '.join(TRAJECTORIES)}")
    if request.export is not None and request.export not in EXPORTS:
        raise OptionError(f"--export {request.export!r}: use one of {', '.join(EXPORTS)}")
    if request.export == "glb" and importlib.util.find_spec("trimesh") is None:
        raise OptionError("--export glb: writing glTF needs trimesh; "
                          "pip install trimesh (or pip install -e \".[app]\")")
    if request.ply_mode not in PLY_MODES:
        raise OptionError(f"--ply_mode {request.ply_mode!r}: use one of {', '.join(PLY_MODES)}")
    if request.frames < 1:
        raise OptionError(f"--frames {request.frames}: must be >= 1")
    if request.video_size is not None and not (2 <= request.video_size <= MAX_VIDEO_SIZE
                                               and request.video_size % 2 == 0):
        raise OptionError(f"--video_size {request.video_size}: must be an even number in [2, {MAX_VIDEO_SIZE}] "
                          "(yuv420p video)")
    for name in ("atol", "rtol"):
        value = getattr(request, name)
        if not (math.isfinite(value) and value >= 0):
            raise OptionError(f"--{name} {value}: must be a finite number >= 0 (depth discontinuity tolerance)")
    if request.erode_rgb < 0:
        raise OptionError(f"--erode_rgb {request.erode_rgb}: must be >= 0 (pixels; 0 = no erosion)")
    if request.seed < 0:
        raise OptionError(f"--seed {request.seed}: must be >= 0")
    if request.traj == "none" and request.export is None:
        raise OptionError("--traj none renders nothing; add --export ply or pick a trajectory")


def _default_output_dir(scene_dir: str) -> str:
    folder = os.path.abspath(scene_dir)
    return os.path.dirname(folder) if os.path.basename(folder) == "scenes" else folder


def _cameras(request: RenderRequest, index: int) -> List[np.ndarray]:
    from ivid.geometry import trajectory

    if request.traj == "random":
        return trajectory("random", 1, generator=np.random.default_rng([int(request.seed), index]))
    return trajectory(request.traj, request.frames)


def _render_scene(request: RenderRequest, path: str, index: int, output_dir: str, device,
                  on_frame: Optional[Callable[[int, int], None]] = None) -> List[str]:
    from ivid.scene import load_scene

    name = os.path.splitext(os.path.basename(path))[0]
    views = load_scene(path)
    written = []
    if request.export == "ply":
        target = os.path.join(output_dir, "meshes", f"{name}.ply")
        export_scene_ply(target, views, request.ply_mode, request.atol, request.rtol)
        written.append(target)
    if request.export == "glb":
        target = os.path.join(output_dir, "meshes", f"{name}.glb")
        export_scene_glb(target, views, request.atol, request.rtol)
        written.append(target)
    if request.traj == "none":
        return written
    meshes, colors, fov = scene_meshes(views, request.atol, request.rtol, request.erode_rgb, device)
    cameras = _cameras(request, index)
    frames = render_frames(meshes, colors, cameras, fov)
    if request.traj == "random":
        color, _ = next(frames)
        target = os.path.join(output_dir, "results", f"{name}.png")
        save_png(target, color)
        return written + [target]
    frames = tqdm(frames, total=len(cameras), desc=name, leave=False, disable=not request.progress)
    depth_frames = []
    color_path = os.path.join(output_dir, "videos", f"{name}.mp4")
    depth_path = os.path.join(output_dir, "videos", f"{name}_depth.mp4")

    def colors_only():
        for done, (color, depth) in enumerate(frames, 1):
            depth_frames.append(depth)
            if on_frame is not None:
                on_frame(done, len(cameras))
            yield color

    size = None if request.video_size is None else (request.video_size, request.video_size)
    os.makedirs(os.path.dirname(color_path), exist_ok=True)
    # both videos are encoded into temporary files first and replace the old pair only when both
    # encodes succeeded: a failed encode leaves the existing videos as they were
    tmp_color, tmp_depth = temp_path(color_path, ".mp4"), temp_path(depth_path, ".mp4")
    try:
        encode_mp4(tmp_color, colors_only(), size=size, name=color_path)
        encode_mp4(tmp_depth, depth_frames, size=size, name=depth_path)
        os.replace(tmp_color, color_path)
        os.replace(tmp_depth, depth_path)
    finally:
        for tmp in (tmp_color, tmp_depth):
            with contextlib.suppress(FileNotFoundError):
                os.remove(tmp)
    return written + [color_path, depth_path]


def run_render(request: RenderRequest, on_frame: Optional[Callable[[int, int], None]] = None) -> List[str]:
    """Render every scene of ``request.scene_dir``; returns the files written.

    Fields of ``request`` left at None are resolved against its preset first
    (:func:`ivid.sampling.presets.resolve_request`).

    ``on_frame(done, total)``, when given, is called after each rendered video frame of each
    scene (``done`` counts from 1 per scene); an exception it raises stops the render (a UI's cancel).
    """
    request = resolve_request(request)
    _check(request)
    paths = find_scenes(request.scene_dir)
    device = resolve_device(request.device)
    output_dir = request.output_dir or _default_output_dir(request.scene_dir)
    for sub in ("videos", "results", "meshes"):  # temporaries of an earlier, killed run
        remove_orphan_temps(os.path.join(output_dir, sub))
    written: List[str] = []
    for index, path in enumerate(tqdm(paths, desc="scenes", disable=not request.progress)):
        written += _render_scene(request, path, index, output_dir, device, on_frame)
    return written
