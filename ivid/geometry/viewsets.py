"""Which cameras a run uses: named viewsets and trajectories, viewset files, the grid layout.

The camera maths (orbit cameras, ``look_at``, conventions) is in :mod:`ivid.geometry.camera`;
this module is the policy built on it, in one place:

- named viewsets (:func:`viewset_angles`, :func:`viewset`): ``uncond``, ``random``, ``3x9``,
  ``360``, ``360x3`` - the generation order of the multiview sampler;
- viewset files (:func:`viewset_from_file`): a JSON list of ``[yaw, pitch]`` pairs or 4x4
  world-to-camera matrices;
- named trajectories of free-view rendering (:func:`trajectory_angles`, :func:`trajectory`):
  ``swing``, ``random``, ``360``;
- the ``--viewset`` choice of ``inference/sample.py`` (:func:`parse_viewset`), the cameras of one
  sample (:func:`sample_cameras`: ``random`` draws its novel view from a NumPy generator keyed by
  the sample's seed, so a seed always gets the same camera) and the cell order of its grid
  (:func:`grid_layout`).

Grid layout: ``3x9`` uses the reference grid (:func:`grid_order_3x9`: rows pitch -0.15, 0, +0.15;
columns yaw +0.6 .. -0.6). Any other viewset whose cameras form a full pitch x yaw lattice
(``360``, ``360x3``, lattice files) is laid out the same way (rows by increasing pitch, columns by
decreasing yaw); otherwise views go in generation order, 9 per row.

All cameras are unit-radius orbit cameras looking at the origin unless a file gives matrices;
matrices are ``4 x 4`` float64 NumPy world -> camera (row-major), angles in radians.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from typing import Any, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from ivid.errors import OptionError

from .camera import orbit_modelview, yaw_pitch_of_view

__all__ = ["VIEWSETS", "TRAJECTORIES", "viewset_angles", "viewset", "viewset_from_file", "trajectory_angles",
           "trajectory", "grid_yaw_pitch_3x9", "grid_order_3x9", "ViewsetChoice", "parse_viewset",
           "sample_cameras", "grid_layout"]

#: yaw step of the '3x9' viewset (radians)
YAW_STEP_3X9 = 0.15
#: yaw values of the '3x9' viewset in generation order (outer loop): 0, +s, -s, +2s, ...,
#: computed as k * 0.15 like the reference (so 0.45 is 0.44999999999999996)
YAWS_3X9 = (0.0,) + tuple(sign * k * YAW_STEP_3X9 for k in range(1, 5) for sign in (1, -1))
#: pitch values of the '3x9' viewset in generation order (inner loop)
PITCHES_3X9 = (0.0, 0.15, -0.15)
#: default number of views of the '360' viewset (yaw step 2*pi/20 = 0.314 rad = 18 deg)
NUM_VIEWS_360 = 20
#: pitch values of every yaw stop of the '360x3' viewset (inner loop, as in '3x9')
PITCHES_360X3 = (0.0, 0.15, -0.15)
#: standard deviations of the random novel view (yaw, pitch) in radians
RANDOM_VIEW_STD = (0.3, 0.15)
#: clip limits of the 'random' trajectory (yaw, pitch) in radians
RANDOM_TRAJ_LIMIT = (0.6, 0.15)
#: amplitudes of the 'swing' trajectory (yaw, pitch) in radians
SWING_AMPLITUDE = (0.6, 0.15)

#: the built-in viewset names (``--viewset``; anything else is read as a viewset file)
VIEWSETS = ("uncond", "random", "3x9", "360", "360x3")
#: the named trajectories of free-view rendering
TRAJECTORIES = ("swing", "random", "360")
#: tolerance on the singular values of a viewset file's 3x3 camera rotation (1 +- this)
RIGID_ATOL = 1e-3
#: views per row of a multiview grid whose cameras form no pitch x yaw lattice
GRID_COLUMNS = 9

Generator = Union[np.random.Generator, torch.Generator, None]


def _standard_normal(shape: Tuple[int, ...], generator: Generator) -> np.ndarray:
    """float64 N(0, 1) draws from a NumPy or torch generator (None: fresh entropy)."""
    if isinstance(generator, torch.Generator):
        draws = torch.randn(shape, generator=generator, dtype=torch.float64, device=generator.device)
        return draws.cpu().numpy()
    if generator is None:
        generator = np.random.default_rng()
    if not hasattr(generator, "standard_normal"):
        raise TypeError(f"generator must be a numpy Generator or a torch.Generator, got {type(generator).__name__}")
    return np.asarray(generator.standard_normal(shape), dtype=np.float64)


def _alternating_yaws(num: int) -> List[float]:
    """``num`` equally spaced yaws over a full turn, ordered 0, +s, -s, +2s, -2s, ... (s = 2 pi / num)."""
    step = 2 * math.pi / num
    yaws = [0.0]
    k = 1
    while len(yaws) < num:
        yaws.append(k * step)
        if len(yaws) < num:
            yaws.append(-k * step)
        k += 1
    return yaws


def _check_num(name: str, num: Optional[int], default: int, maximum: Optional[int] = None) -> int:
    if num is None:
        return default
    if isinstance(num, bool) or not isinstance(num, (int, np.integer)) or num < 1:
        raise ValueError(f"viewset {name!r}: num must be a positive integer, got {num!r}")
    if maximum is not None and num > maximum:
        raise ValueError(f"viewset {name!r}: num must be at most {maximum}, got {num}")
    return int(num)


def viewset_angles(name: str, num: Optional[int] = None, generator: Generator = None) -> List[Tuple[float, float]]:
    """The (yaw, pitch) list of a named viewset, in generation order (radians).

    Viewsets (view 0 is always the frontal view, sampled unconditionally):

    - ``'uncond'``: the first view only (``num`` must be None or 1).
    - ``'random'``: the first view, then ``num - 1`` (default 1) random views with
      yaw = 0.3 N(0,1), pitch = 0.15 N(0,1). Per view, yaw is drawn before pitch.
      ``generator``: a ``numpy.random.Generator`` (``standard_normal``) or a
      ``torch.Generator`` (``torch.randn(..., dtype=float64)``); None = fresh entropy.
    - ``'3x9'``: yaw (outer loop) over [0, .15, -.15, .3, -.3, .45, -.45, .6, -.6]
      times pitch (inner loop) over [0, .15, -.15]: 27 views; ``num`` <= 27 keeps the
      first ``num``.
    - ``'360'``: ``num`` (default 20) yaws equally spaced over a full turn at pitch 0,
      generated outward from the front alternately to the right and to the left:
      0, +s, -s, +2s, -2s, ... with s = 2 pi / num, so that the last one (pi for an
      even ``num``) closes the ring between the two sides. Each new view is one step
      s (0.31 rad = 18 deg at the default; fov is 45 deg) away from an existing view,
      so most of it overlaps earlier views — the same outward order as '3x9'.
    - ``'360x3'``: the '360' yaw stops (``num`` of them, default 20), each with pitches
      [0, .15, -.15] as inner loop (3 * num views), for free-view rendering above and
      below the equator.

    Returns:
        list of ``(yaw, pitch)`` float pairs (radians), view 0 first.
    """
    if name == "uncond":
        _check_num(name, num, 1, maximum=1)
        return [(0.0, 0.0)]
    if name == "random":
        count = _check_num(name, num, 2)
        draws = _standard_normal((count - 1, 2), generator)
        return [(0.0, 0.0)] + [
            (RANDOM_VIEW_STD[0] * float(a), RANDOM_VIEW_STD[1] * float(b)) for a, b in draws
        ]
    if name == "3x9":
        count = _check_num(name, num, 27, maximum=27)
        return [(yaw, pitch) for yaw in YAWS_3X9 for pitch in PITCHES_3X9][:count]
    if name == "360":
        return [(yaw, 0.0) for yaw in _alternating_yaws(_check_num(name, num, NUM_VIEWS_360))]
    if name == "360x3":
        yaws = _alternating_yaws(_check_num(name, num, NUM_VIEWS_360))
        return [(yaw, pitch) for yaw in yaws for pitch in PITCHES_360X3]
    raise ValueError(f"unknown viewset {name!r}; valid: {', '.join(VIEWSETS)} (or a JSON file, see viewset_from_file)")


def viewset(name: str, num: Optional[int] = None, generator: Generator = None) -> List[np.ndarray]:
    """Modelviews of a named viewset (see :func:`viewset_angles` for names and order).

    Returns:
        list of (4, 4) float64 NumPy world -> camera matrices (unit-radius orbit
        cameras looking at the origin), in generation order.
    """
    return [orbit_modelview(yaw, pitch) for yaw, pitch in viewset_angles(name, num, generator)]


def _parse_view_entry(path: str, index: int, entry: Any) -> np.ndarray:
    where = f"{path}: entry {index}"
    try:
        values = np.asarray(entry, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: expected [yaw, pitch], [yaw, pitch, radius] or a 4x4 matrix, "
                         f"got {entry!r}") from None
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{where}: non-finite value in {entry!r}")
    if values.shape in ((2,), (3,)):
        return orbit_modelview(*values)
    if values.shape == (4, 4):
        if not np.allclose(values[3], [0.0, 0.0, 0.0, 1.0]):
            raise ValueError(f"{where}: not a world->camera matrix (the last row must be 0 0 0 1)")
        rotation = values[:3, :3]
        # a camera is rigid: its 3x3 block must be a rotation (orthonormal, det +1); a scale, shear or
        # mirror would stretch or flip every depth mesh built from the view
        scales = np.linalg.svd(rotation, compute_uv=False)
        if not np.allclose(scales, 1.0, atol=RIGID_ATOL) or np.linalg.det(rotation) <= 0:
            raise ValueError(f"{where}: not a rigid world->camera matrix: its 3x3 block has scales "
                             f"{np.round(scales, 4).tolist()} and determinant {np.linalg.det(rotation):.4g} "
                             "(needs a rotation: scales 1, determinant +1; no scaling, shear or mirroring)")
        return values
    raise ValueError(
        f"{where}: expected [yaw, pitch], [yaw, pitch, radius] or a 4x4 matrix, got shape {values.shape}"
    )


def viewset_from_file(path: Union[str, os.PathLike]) -> List[np.ndarray]:
    """Read a custom viewset from a JSON file.

    The file holds a non-empty list; each entry is either ``[yaw, pitch]`` /
    ``[yaw, pitch, radius]`` (radians; orbit camera looking at the origin) or a
    4x4 row-major world -> camera matrix (list of 4 rows). Entry 0 is the first
    (unconditional) view.

    Returns:
        list of (4, 4) float64 NumPy modelviews.

    Raises:
        ValueError: naming the file and the bad entry.
    """
    path = os.fspath(path)
    try:
        with open(path, "r", encoding="utf-8") as f:
            entries = json.load(f)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"{path}: expected a non-empty JSON list of [yaw, pitch] pairs or 4x4 matrices")
    return [_parse_view_entry(path, i, entry) for i, entry in enumerate(entries)]


def trajectory_angles(name: str, frames: int, generator: Generator = None) -> List[Tuple[float, float]]:
    """(yaw, pitch) per frame of a named camera trajectory (radians).

    - ``'swing'``: t in linspace(0, 2 pi, frames); yaw = 0.6 cos t, pitch = 0.15 sin t.
    - ``'random'``: per frame yaw = clip(0.3 N, -0.6, 0.6), pitch = clip(0.15 N,
      -0.15, 0.15), yaw drawn before pitch (``generator`` as in :func:`viewset_angles`).
    - ``'360'``: a full turn at pitch 0, yaw = 2 pi k / frames, k = 0 .. frames-1.

    Returns:
        list of ``frames`` ``(yaw, pitch)`` float pairs (radians).
    """
    if isinstance(frames, bool) or not isinstance(frames, (int, np.integer)) or frames < 1:
        raise ValueError(f"trajectory {name!r}: frames must be a positive integer, got {frames!r}")
    if name == "swing":
        t = np.linspace(0, 2 * np.pi, frames)
        return [(SWING_AMPLITUDE[0] * math.cos(v), SWING_AMPLITUDE[1] * math.sin(v)) for v in t]
    if name == "random":
        draws = _standard_normal((int(frames), 2), generator)
        yaws = np.clip(RANDOM_VIEW_STD[0] * draws[:, 0], -RANDOM_TRAJ_LIMIT[0], RANDOM_TRAJ_LIMIT[0])
        pitches = np.clip(RANDOM_VIEW_STD[1] * draws[:, 1], -RANDOM_TRAJ_LIMIT[1], RANDOM_TRAJ_LIMIT[1])
        return [(float(a), float(b)) for a, b in zip(yaws, pitches)]
    if name == "360":
        return [(2 * math.pi * k / frames, 0.0) for k in range(int(frames))]
    raise ValueError(f"unknown trajectory {name!r}; valid: {', '.join(TRAJECTORIES)}")


def trajectory(name: str, frames: int, generator: Generator = None) -> List[np.ndarray]:
    """Modelviews of a named trajectory (see :func:`trajectory_angles`).

    Returns:
        list of ``frames`` (4, 4) float64 NumPy world -> camera matrices.
    """
    return [orbit_modelview(yaw, pitch) for yaw, pitch in trajectory_angles(name, frames, generator)]


def grid_yaw_pitch_3x9() -> Tuple[np.ndarray, np.ndarray]:
    """Yaw and pitch shown in each cell of the 3 x 9 result grid.

    Returns:
        ``(yaw, pitch)``, each (3, 9) float64: rows are pitch -0.15, 0, +0.15;
        columns yaw +0.6 down to -0.6.
    """
    yaws = np.array(sorted(YAWS_3X9, reverse=True))
    pitches = np.array(sorted(PITCHES_3X9))
    return np.tile(yaws, (3, 1)), np.tile(pitches[:, None], (1, 9))


def grid_order_3x9(num_images: int) -> List[int]:
    """Which image goes into each cell of the 3 x 9 grid (row-major cells).

    Args:
        num_images: 27 (all views, in '3x9' generation order) or 26 (the condition
            images of views 1..26, which lack view 0).

    Returns:
        list of 27 indices into the image list; -1 marks a blank cell (view 0
        when ``num_images`` is 26).
    """
    if num_images not in (26, 27):
        raise ValueError(f"grid_order_3x9: num_images must be 27 or 26, got {num_images!r}")
    grid_yaw, grid_pitch = grid_yaw_pitch_3x9()
    order = []
    for yaw, pitch in zip(grid_yaw.ravel(), grid_pitch.ravel()):
        view = 3 * YAWS_3X9.index(float(yaw)) + PITCHES_3X9.index(float(pitch))
        order.append(view - (27 - num_images))
    return order


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
    """Resolve ``--viewset``: a built-in name (:data:`VIEWSETS`) or the path of a JSON viewset file.

    Raises:
        OptionError: unknown name that is not a file either, or a malformed file
            (the message names ``--viewset`` and the file / entry).
    """
    if text in VIEWSETS:
        return ViewsetChoice(label=text, name=text)
    if not os.path.isfile(text):
        raise OptionError(f"--viewset {text!r}: neither a built-in viewset ({', '.join(VIEWSETS)}) "
                          "nor an existing JSON file")
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
    generator = np.random.default_rng([int(seed), 0x766965])  # keyed by the seed, apart from the noise
    return [np.asarray(m, np.float64) for m in viewset(choice.name, generator=generator)]


def _lattice_order(cameras: Sequence[np.ndarray]) -> Optional[Tuple[List[int], int]]:
    yaw_pitch = [tuple(round(float(a), 6) for a in yaw_pitch_of_view(np.asarray(c))) for c in cameras]
    yaws = sorted({y for y, _ in yaw_pitch}, reverse=True)
    pitches = sorted({p for _, p in yaw_pitch})
    if len(yaws) * len(pitches) != len(cameras) or len(set(yaw_pitch)) != len(cameras):
        return None
    index = {yp: k for k, yp in enumerate(yaw_pitch)}
    return [index[(y, p)] for p in pitches for y in yaws], len(yaws)


def grid_layout(choice: ViewsetChoice, cameras: Sequence[np.ndarray]) -> Tuple[List[int], int]:
    """Cell order of a sample's multiview grid (see the module docstring).

    Returns:
        ``(order, nrow)``: ``order[k]`` is the view index shown in cell k
        (row-major cells, ``nrow`` cells per row).
    """
    if choice.name == "3x9" and len(cameras) == 27:
        return list(grid_order_3x9(27)), 9
    lattice = _lattice_order(cameras) if len(cameras) > 2 else None
    if lattice is not None:
        return lattice
    return list(range(len(cameras))), min(len(cameras), GRID_COLUMNS)
