"""Procedural toy scenes with exact depth: the RGBD dataset of the tests, benchmarks and demo models.

- :mod:`.generator`: scenes of ten object kinds (one per class) and :func:`generate_dataset`, which
  writes them in the training layout (``scripts/make_toy_dataset.py``).
- :mod:`.raycast`: the analytic NumPy ray caster that renders a scene's colour and linear depth.
"""

from .generator import KINDS, LAYOUTS, class_theme, generate_dataset, image_scene, relative_paths, wnid

__all__ = ["KINDS", "LAYOUTS", "class_theme", "generate_dataset", "image_scene", "relative_paths", "wnid"]
