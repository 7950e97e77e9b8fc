"""Writing sampled views to disk: run folder, grids, conditions, results, scenes.

Layout of one run (docs/design.md#inference)::

    <output_dir>/viewset_<v>_steps_u<su>_c<sc>_guidance<g>/
        args.json                      the resolved options and output settings (ivid.utils.run_record)
        command.txt, env.txt           one line per run: its command; time, versions and device
        grids/<name>.png               RGB of every view (grid, see ivid.geometry.viewsets.grid_layout)
        grids/<name>_depth.png         colourised depth code of every view
        conds/<name>.png               condition colour of views 1.. (view 0 blank)
        conds/<name>_depth.png         colourised condition depth (masked pixels black)
        results/<name>.png             exactly what the paper's FID protocol scores: 'uncond': view 0;
                                       'random': the novel view 1; nothing for other viewsets (3x9:
                                       ``render.py --traj random`` writes one fusion render per scene here)
        scenes/<name>.npz              ivid.scene file: every view's rgb, depth, modelview, fov
                                       and the condition it was sampled from (cond_* arrays)

8-bit conversion (docs/fidelity.md): ``results/`` and scene colours truncate as the
reference (``uint8(clip(x, 0, 1) * 255)``, :func:`ivid.utils.images.to_uint8`) - the
images FID is computed on; grids and condition images, pictures for people, round
to nearest (:func:`ivid.utils.images.pm1_to_uint8`; the reference's torchvision grids
round too).

``<name>`` is the sample's :attr:`SampleJob.name`. Image-to-3D runs are
``image_<stem>_viewset_<v>_steps_c<sc>_guidance<g>``. Files are written by a small
thread pool (:class:`OutputWriter`); every write is atomic, and closing the
writer (also on an exception or Ctrl-C) waits for all pending files.
"""

from __future__ import annotations

import concurrent.futures
import os
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from ivid.geometry import linearize_depth
from ivid.geometry.viewsets import ViewsetChoice, grid_layout
from ivid.scene import save_scene
from ivid.utils.images import colorize_depth, make_grid, pm1_to_uint8, save_png, to_uint8

from .multiview import View
from .plan import SampleJob

__all__ = ["run_dir_name", "scene_views", "result_view", "OutputWriter", "SUBDIRS"]

SUBDIRS = ("grids", "conds", "results", "scenes")


def run_dir_name(viewset_label: str, steps_uncond: int, steps_cond: int, guidance: float,
                 input_image: Optional[str] = None, sampler: str = "auto", precision: str = "fp32") -> str:
    """Folder name of a run (the reference's), e.g. ``viewset_3x9_steps_u1000_c50_guidance3.0``;
    ``_sampler<name>`` is appended for a sampler other than ``auto``, then ``_precision<name>`` for a
    precision other than ``fp32`` (``ivid.sampling.precision``)."""
    tail = f"viewset_{viewset_label}_steps_u{steps_uncond}_c{steps_cond}_guidance{float(guidance)}"
    if input_image is not None:
        stem = os.path.splitext(os.path.basename(input_image))[0]
        tail = f"image_{stem}_viewset_{viewset_label}_steps_c{steps_cond}_guidance{float(guidance)}"
    if sampler != "auto":
        tail = f"{tail}_sampler{sampler}"
    return tail if precision == "fp32" else f"{tail}_precision{precision}"


def _rgb_u8(rgb01) -> np.ndarray:
    """A picture for people (grids, conditions): rounded to the nearest 8-bit level."""
    return pm1_to_uint8(np.asarray(rgb01, dtype=np.float32) * 2.0 - 1.0)


def _rgb_u8_reference(rgb01) -> np.ndarray:
    """A result or scene colour: truncated as the reference (``uint8(clip(x, 0, 1) * 255)``)."""
    return to_uint8(np.asarray(rgb01, dtype=np.float32))


def result_view(viewset_name: str, num_views: int) -> Optional[int]:
    """Index of the view ``results/`` gets for a viewset (the paper's FID protocol), or None.

    ``uncond``: the first view (G_u's sample); ``random``: the novel view (index 1); every other
    viewset: none (the fusion protocol scores ``render.py --traj random`` renders instead).
    """
    if viewset_name == "uncond":
        return 0
    if viewset_name == "random" and num_views > 1:
        return 1
    return None


def scene_views(views: Sequence[View], near: float, far: float, fov: float) -> List[Dict[str, object]]:
    """Views in the :mod:`ivid.scene` format: rgb uint8 H x W x 3 (truncated as the reference),
    depth linear float32 H x W, modelview 4 x 4 float64, fov (degrees), and the condition ``cond``
    each view was sampled from (None for the first view)."""
    out = []
    for view in views:
        depth = linearize_depth(view.z.numpy().astype(np.float32), near, far)
        out.append({"rgb": _rgb_u8_reference(view.rgb.numpy()),
                    "depth": np.asarray(depth, np.float32).reshape(view.z.shape),
                    "modelview": np.asarray(view.modelview, np.float64), "fov": float(fov),
                    "cond": None if view.cond is None else _scene_condition(view.cond, near, far)})
    return out


def _scene_condition(cond, near: float, far: float) -> Dict[str, np.ndarray]:
    """A view's aggregated condition as an :mod:`ivid.scene` ``cond`` (linear depth, 0 where unknown)."""
    mask = cond["mask"].numpy()[..., 0] > 0.5
    depth = np.asarray(linearize_depth(cond["depth"].numpy()[..., 0].astype(np.float32), near, far), np.float32)
    return {"rgb": (cond["color"].numpy().clip(0, 1) * 255 + 0.5).astype(np.uint8), "depth": depth * mask,
            "mask": mask, "mask_rgb": cond["mask_rgb"].numpy()[..., 0] > 0.5}


def _grid(images: Sequence[Optional[np.ndarray]], order: Sequence[int], nrow: int) -> np.ndarray:
    cells = [images[k] if 0 <= k < len(images) else None for k in order]
    if all(c is None for c in cells):
        raise ValueError("nothing to put into the grid")
    return make_grid(cells, nrow=nrow)


class OutputWriter:
    """Writes each sample's files in background threads; use as a context manager.

    Args:
        run_dir: the run folder (created with its sub-folders).
        viewset: the run's :class:`ViewsetChoice` (grid layout, which results to write).
        near, far, fov: depth planes and field of view of the run (for scenes).
        max_workers: writer threads.

    Exiting the ``with`` block (normally, on an error or on KeyboardInterrupt)
    waits until every submitted file is on disk; the first write error is
    raised then (or by :meth:`check`).
    """

    def __init__(self, run_dir: str, viewset: ViewsetChoice, near: float, far: float, fov: float,
                 max_workers: int = 4):
        self.run_dir = run_dir
        self.viewset = viewset
        self.near, self.far, self.fov = near, far, fov
        for sub in SUBDIRS:
            os.makedirs(os.path.join(run_dir, sub), exist_ok=True)
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="ivid-write")
        self._futures: List[concurrent.futures.Future] = []
        self.written: List[str] = []

    def path(self, sub: str, filename: str) -> str:
        return os.path.join(self.run_dir, sub, filename)

    def _submit(self, path: str, write: Callable[[str], None]) -> None:
        self._futures.append(self._pool.submit(write, path))
        self.written.append(path)

    def _png(self, sub: str, filename: str, image: np.ndarray) -> None:
        self._submit(self.path(sub, filename), lambda p: save_png(p, image))

    def submit(self, job: SampleJob, views: Sequence[View]) -> None:
        """Queue every file of one sample (the arrays are prepared here, encoding runs in the pool)."""
        self.check()
        name = job.name
        cams = [v.modelview for v in views]
        order, nrow = grid_layout(self.viewset, cams)
        rgbs = [_rgb_u8(v.rgb.numpy()) for v in views]
        self._png("grids", f"{name}.png", _grid(rgbs, order, nrow))
        self._png("grids", f"{name}_depth.png", _grid([colorize_depth(v.z.numpy()) for v in views], order, nrow))
        if len(views) > 1:
            cond_rgb = [None] + [_rgb_u8(v.cond["color"].numpy()) for v in views[1:]]
            cond_z = [None] + [colorize_depth(v.cond["depth"].numpy(), v.cond["mask"].numpy()) for v in views[1:]]
            self._png("conds", f"{name}.png", _grid(cond_rgb, order, nrow))
            self._png("conds", f"{name}_depth.png", _grid(cond_z, order, nrow))
        index = result_view(self.viewset.name, len(views))
        if index is not None:
            self._png("results", f"{name}.png", _rgb_u8_reference(views[index].rgb.numpy()))
        scene = scene_views(views, self.near, self.far, self.fov)
        metadata = {"name": name, "seed": job.seed, "class": job.class_label, "viewset": self.viewset.label,
                    "near": self.near, "far": self.far}
        self._submit(self.path("scenes", f"{name}.npz"), lambda p: save_scene(p, scene, metadata=metadata))

    def check(self) -> None:
        """Raise the first error of a finished write, if any."""
        for future in self._futures:
            if future.done() and future.exception() is not None:
                raise future.exception()

    def close(self) -> None:
        """Wait for every pending write; raise the first write error."""
        self._pool.shutdown(wait=True)
        errors = [f.exception() for f in self._futures if f.exception() is not None]
        if errors:
            raise errors[0]

    def __enter__(self) -> "OutputWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
            return
        self._pool.shutdown(wait=True)  # keep what was already queued; the original error propagates

