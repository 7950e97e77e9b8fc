"""Multiview sampling (G_u then G_c view after view), outputs, image-to-3D (free-view rendering and
export of the scenes: :mod:`ivid.render`).

- :mod:`.multiview`   the sequential sampler (no file I/O): :func:`sample_multiview`
- :mod:`.plan`        seeds/classes -> :class:`SampleJob` list, batches, per-process shares
- :mod:`.presets`     ``--preset`` model bundles; :func:`resolve_request` fills what a request leaves None
- :mod:`.outputs`     run folder, grids / conds / results / scenes, background writer
- :mod:`.image_to_3d` a photo (+ depth) as the first view
- :mod:`.run`         a whole ``inference/sample.py`` run (devices, processes)
"""

from .image_to_3d import disparity_to_code, photo_rgbd01
from .multiview import MultiviewOptions, Timings, View, batch_conditions, sample_multiview, view_mesh
from .outputs import OutputWriter, run_dir_name, scene_views
from .plan import SampleJob, assign_classes, batched, parse_classes, plan_jobs, sample_name, split_jobs
from .presets import PRESETS, Preset, resolve_request
from .run import SampleRequest, run_sampling, sampling_devices

__all__ = [
    "sample_multiview", "MultiviewOptions", "View", "Timings", "batch_conditions", "view_mesh",
    "SampleJob", "parse_classes", "assign_classes", "sample_name", "plan_jobs", "split_jobs", "batched",
    "OutputWriter", "run_dir_name", "scene_views",
    "photo_rgbd01", "disparity_to_code",
    "Preset", "PRESETS", "resolve_request", "SampleRequest", "run_sampling", "sampling_devices",
]
