"""The ``--viewset`` choice: built-in names or a JSON file, per-sample cameras, grid layout.

Built-in viewsets come from :func:`ivid.geometry.viewset` (``uncond``, ``random``,
``3x9``, ``360``, ``360x3``; see :func:`ivid.geometry.camera.viewset_angles` for
the schedules). ``random`` draws its novel view per sample from a NumPy
generator keyed by the sample's seed, so a seed always gets the same camera.
Anything else is read as a custom viewset file (:func:`ivid.geometry.viewset_from_file`:
a JSON list of ``[yaw, pitch]`` pairs or 4x4 world-to-camera matrices).

Grid layout: ``3x9`` uses the reference grid (:func:`ivid.geometry.grid_order_3x9`:
rows pitch -0.15, 0, +0.15; columns yaw +0.6 .. -0.6). Any other viewset whose
cameras form a full pitch x yaw lattice (``360``, ``360x3``, lattice files) is
laid out the same way (rows by increasing pitch, columns by decreasing yaw);
otherwise views go in generation order, 9 per row.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np

from ivid.errors import OptionError

__all__ = ["ViewsetChoice", "BUILTIN_VIEWSETS", "parse_viewset", "sample_cameras", "grid_layout"]

BUILTIN_VIEWSETS = ("uncond", "random", "3x9", "360", "360x3")
GRID_COLUMNS = 9


@dataclass(frozen=True)
class ViewsetChoice:
    """A resolved ``--viewset``.

    Attributes:
        label: the name used in the run folder (``viewset_<label>_...``): the
            built-in name or the file's stem.
        name: the built-in name, or None for a file.
        cameras: the file's cameras (None for built-ins; ``random`` is drawn per sample).
    """

    label: str
    name: Optional[str]
    cameras: Optional[Tuple[np.ndarray, ...]] = None

    @property
    def is_single_view(self) -> bool:
        return self.name == "uncond" or (self.cameras is not None and len(self.cameras) == 1)


def parse_viewset(text: str) -> ViewsetChoice:
    """Resolve ``--viewset``: a built-in name or the path of a JSON viewset file.

    Raises:
        ValueError: unknown name that is not a file either, or a malformed file
            (the message names ``--viewset`` and the file / entry).
    """
    if text in BUILTIN_VIEWSETS:
        return ViewsetChoice(label=text, name=text)
    if not os.path.isfile(text):
        raise OptionError(f"--viewset {text!r}: neither a built-in viewset ({', '.join(BUILTIN_VIEWSETS)}) "
                          "nor an existing JSON file")
    from ivid.geometry import viewset_from_file

    try:
        cameras = viewset_from_file(text)
    except (ValueError, TypeError, OSError) as err:
        raise OptionError(f"--viewset: {err}") from None
    label = os.path.splitext(os.path.basename(text))[0] or "custom"
    return ViewsetChoice(label=label, name=None, cameras=tuple(np.asarray(c, np.float64) for c in cameras))


def sample_cameras(choice: ViewsetChoice, seed: int) -> List[np.ndarray]:
    """The cameras (``4 x 4`` float64 world-to-camera, generation order) of one sample."""
    if choice.cameras is not None:
        return [c.copy() for c in choice.cameras]
    from ivid.geometry import viewset

    generator = np.random.default_rng([int(seed), 0x766965])  # keyed by the seed, apart from the noise
    return [np.asarray(m, np.float64) for m in viewset(choice.name, generator=generator)]


def _lattice_order(cameras: Sequence[np.ndarray]) -> Optional[Tuple[List[int], int]]:
    from ivid.geometry.camera import yaw_pitch_of_view

    yaw_pitch = [tuple(round(float(a), 6) for a in yaw_pitch_of_view(np.asarray(c))) for c in cameras]
    yaws = sorted({y for y, _ in yaw_pitch}, reverse=True)
    pitches = sorted({p for _, p in yaw_pitch})
    if len(yaws) * len(pitches) != len(cameras) or len(set(yaw_pitch)) != len(cameras):
        return None
    index = {yp: k for k, yp in enumerate(yaw_pitch)}
    return [index[(y, p)] for p in pitches for y in yaws], len(yaws)


def grid_layout(choice: ViewsetChoice, cameras: Sequence[np.ndarray]) -> Tuple[List[int], int]:
    """Cell order of a sample's multiview grid.

    Returns:
        ``(order, nrow)``: ``order[k]`` is the view index shown in cell k
        (row-major cells, ``nrow`` cells per row).
    """
    if choice.name == "3x9" and len(cameras) == 27:
        from ivid.geometry import grid_order_3x9

        return list(grid_order_3x9(27)), 9
    lattice = _lattice_order(cameras) if len(cameras) > 2 else None
    if lattice is not None:
        return lattice
    return list(range(len(cameras))), min(len(cameras), GRID_COLUMNS)
