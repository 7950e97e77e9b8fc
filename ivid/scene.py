"""Scene files: every view of one generated sample in a single ``.npz`` (no pickle).

A view is a dict ``{"rgb": (H, W, 3) uint8, "depth": (H, W) float32 linear depth
(camera units), "modelview": (4, 4) float64 world -> camera, "fov": float degrees}``
(conventions: :mod:`ivid.geometry.camera`). A scene file holds the N views stacked:

=====================  ===========================  ===========================
key                    shape, dtype                 meaning
=====================  ===========================  ===========================
``ivid_scene_version`` () int64                     format version (1)
``rgb``                (N, H, W, 3) uint8           colour, row 0 = top
``depth``              (N, H, W) float32            linear depth
``modelview``          (N, 4, 4) float64            world -> camera, row-major
``fov``                (N,) float64                 field of view, degrees
``metadata``           () unicode string, optional  JSON object (class, seed, ...)
``cond_rgb``           (N, H, W, 3) uint8, optional condition colour (0 where unknown)
``cond_depth``         (N, H, W) float32, optional  condition linear depth (0 where unknown)
``cond_mask``          (N, H, W) uint8, optional    1 where the condition depth is known
``cond_mask_rgb``      (N, H, W) uint8, optional    1 where the condition colour is known
=====================  ===========================  ===========================

The four ``cond_*`` arrays (all or none) hold the aggregated condition each view
was sampled from (``inference/sample.py`` writes them; view 0, drawn without a
condition, has empty masks). Readers that do not know them ignore them: the
format version stays 1.

Files are written atomically and read with ``allow_pickle=False``: loading a scene
never executes code. Problems raise :class:`SceneError` naming the file.
"""

from __future__ import annotations

import json
import os
import zipfile
import zlib
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from ivid.errors import IvidError
from ivid.utils.io import atomic_save_npz

SCENE_VERSION = 1
VERSION_KEY = "ivid_scene_version"
ARRAY_KEYS = ("rgb", "depth", "modelview", "fov")
COND_KEYS = ("cond_rgb", "cond_depth", "cond_mask", "cond_mask_rgb")
METADATA_KEY = "metadata"

PathLike = Union[str, os.PathLike]


class SceneError(IvidError, ValueError):
    """A scene file (or the views given to save) is not a valid ivid scene."""


def _as_numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # torch tensor, without importing torch
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def _stack_views(path: str, views: Sequence[Mapping[str, Any]]) -> Dict[str, np.ndarray]:
    if isinstance(views, Mapping) or not len(views):
        raise SceneError(f"{path}: views must be a non-empty list of view dicts")
    columns: Dict[str, List[np.ndarray]] = {key: [] for key in ARRAY_KEYS}
    for index, view in enumerate(views):
        missing = [key for key in ARRAY_KEYS if key not in view]
        if missing:
            raise SceneError(f"{path}: view {index} lacks {', '.join(missing)}")
        rgb, depth = _as_numpy(view["rgb"]), _as_numpy(view["depth"])
        modelview, fov = _as_numpy(view["modelview"]), _as_numpy(view["fov"])
        if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[-1] != 3:
            raise SceneError(f"{path}: view {index}: rgb must be (H, W, 3) uint8, got {rgb.shape} {rgb.dtype}")
        if depth.ndim == 3 and depth.shape[-1] == 1:
            depth = depth[..., 0]
        if depth.shape != rgb.shape[:2] or not np.issubdtype(depth.dtype, np.floating):
            raise SceneError(f"{path}: view {index}: depth must be (H, W) float matching rgb {rgb.shape[:2]}, "
                             f"got {depth.shape} {depth.dtype}")
        if modelview.shape != (4, 4) or fov.size != 1:
            raise SceneError(f"{path}: view {index}: modelview must be 4x4 and fov a number, "
                             f"got {modelview.shape} and {fov.shape}")
        for key, value in zip(ARRAY_KEYS, (rgb, depth, modelview, fov.reshape(()))):
            columns[key].append(value)
    shapes = {column.shape for column in columns["rgb"]}
    if len(shapes) > 1:
        raise SceneError(f"{path}: all views must have the same image size, got {sorted(shapes)}")
    arrays = {
        "rgb": np.stack(columns["rgb"]),
        "depth": np.stack(columns["depth"]).astype(np.float32),
        "modelview": np.stack(columns["modelview"]).astype(np.float64),
        "fov": np.stack(columns["fov"]).astype(np.float64),
    }
    if any(view.get("cond") is not None for view in views):
        arrays.update(_stack_conditions(path, views, arrays["rgb"].shape[1:3]))
    return arrays


def _stack_conditions(path: str, views: Sequence[Mapping[str, Any]], size: Tuple[int, int]) -> Dict[str, np.ndarray]:
    """The ``cond_*`` arrays of the views' optional ``cond`` dicts (a view without one: empty masks)."""
    height, width = size
    rgb = np.zeros((len(views), height, width, 3), np.uint8)
    depth = np.zeros((len(views), height, width), np.float32)
    mask = np.zeros((len(views), height, width), np.uint8)
    mask_rgb = np.zeros((len(views), height, width), np.uint8)
    for index, view in enumerate(views):
        cond = view.get("cond")
        if cond is None:
            continue
        try:
            rgb[index] = _as_numpy(cond["rgb"]).reshape(height, width, 3)
            depth[index] = _as_numpy(cond["depth"]).reshape(height, width)
            mask[index] = _as_numpy(cond["mask"]).reshape(height, width) > 0.5
            mask_rgb[index] = _as_numpy(cond["mask_rgb"]).reshape(height, width) > 0.5
        except (KeyError, ValueError, TypeError) as err:
            raise SceneError(f"{path}: view {index}: cond must hold rgb (H, W, 3) uint8, depth, mask and "
                             f"mask_rgb (H, W) of the view's size ({type(err).__name__}: {err})") from None
        if _as_numpy(cond["rgb"]).dtype != np.uint8:
            raise SceneError(f"{path}: view {index}: cond rgb must be uint8")
    return {"cond_rgb": rgb, "cond_depth": depth, "cond_mask": mask, "cond_mask_rgb": mask_rgb}


def save_scene(path: PathLike, views: Sequence[Mapping[str, Any]],
               metadata: Optional[Mapping[str, Any]] = None) -> None:
    """Write ``views`` (and optional JSON-serialisable ``metadata``) to ``path`` atomically.

    Args:
        path: destination ``.npz`` file (folders are created).
        views: list of N view dicts with keys rgb (H, W, 3) uint8, depth (H, W) or
            (H, W, 1) linear float, modelview (4, 4), fov (degrees); NumPy arrays or
            tensors. Optional ``cond``: the view's condition ``{"rgb": (H, W, 3) uint8,
            "depth": (H, W) linear float (0 where unknown), "mask", "mask_rgb": (H, W)
            {0, 1}}`` or None (stored as ``cond_*`` arrays when any view has one).
            Other keys are ignored.
        metadata: optional dict of JSON types, e.g. ``{"class": 3, "seed": 0}``.

    Returns:
        None; the file holds rgb (N, H, W, 3) uint8, depth (N, H, W) float32,
        modelview (N, 4, 4) float64, fov (N,) float64 (see the module docstring).

    Raises:
        SceneError: invalid views or metadata (message names ``path``).
    """
    path_str = os.fspath(path)
    arrays = _stack_views(path_str, views)
    arrays[VERSION_KEY] = np.array(SCENE_VERSION, dtype=np.int64)
    if metadata is not None:
        try:
            arrays[METADATA_KEY] = np.array(json.dumps(dict(metadata), sort_keys=True))
        except (TypeError, ValueError) as err:
            raise SceneError(f"{path_str}: metadata must be a JSON-serialisable dict ({err})") from None
    atomic_save_npz(path_str, arrays)


def _read_arrays(path: str) -> Dict[str, np.ndarray]:
    """Every array of the npz at ``path``, refusing pickled content."""
    try:
        archive = np.load(path, allow_pickle=False)
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise SceneError(f"{path}: not a scene file (a single .npy array, expected an .npz archive)")
        with archive:
            return {key: archive[key] for key in archive.files}
    except FileNotFoundError:
        raise FileNotFoundError(f"scene file not found: {path}") from None
    except SceneError:
        raise
    except ValueError as err:
        if "object arrays" in str(err).lower():
            raise SceneError(f"{path}: refusing to load object (pickled) arrays ({err})") from None
        if "pickle" in str(err).lower():
            raise SceneError(f"{path}: not an .npz scene file (unknown format or pickled data; "
                             f"pickles are never loaded)") from None
        raise SceneError(f"{path}: not a readable .npz scene file ({err})") from None
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error, KeyError) as err:
        raise SceneError(f"{path}: not a readable .npz scene file ({type(err).__name__}: {err})") from None


def _check_scene_arrays(path: str, arrays: Mapping[str, np.ndarray]) -> int:
    """Validate the stacked arrays; return the number of views."""
    if VERSION_KEY not in arrays:
        raise SceneError(f"{path}: not an ivid scene file (no {VERSION_KEY!r}; keys: {sorted(arrays)})")
    version = arrays[VERSION_KEY]
    if version.shape != () or not np.issubdtype(version.dtype, np.integer) or int(version) != SCENE_VERSION:
        shown = version.item() if version.size == 1 else version.shape
        raise SceneError(f"{path}: unsupported scene version {shown!r} (this ivid reads version {SCENE_VERSION})")
    missing = [key for key in ARRAY_KEYS if key not in arrays]
    if missing:
        raise SceneError(f"{path}: scene file lacks {', '.join(missing)}")
    rgb, depth, modelview, fov = (arrays[key] for key in ARRAY_KEYS)
    if rgb.dtype != np.uint8 or rgb.ndim != 4 or rgb.shape[-1] != 3:
        raise SceneError(f"{path}: 'rgb' must be (N, H, W, 3) uint8, got {rgb.shape} {rgb.dtype}")
    count = rgb.shape[0]
    expected = {"depth": (rgb.shape[:3], np.floating), "modelview": ((count, 4, 4), np.floating),
                "fov": ((count,), np.floating)}
    for key, (shape, kind) in expected.items():
        if arrays[key].shape != shape or not np.issubdtype(arrays[key].dtype, kind):
            raise SceneError(f"{path}: {key!r} must be {shape} float (matching rgb), "
                             f"got {arrays[key].shape} {arrays[key].dtype}")
    if METADATA_KEY in arrays and (arrays[METADATA_KEY].shape != () or arrays[METADATA_KEY].dtype.kind != "U"):
        raise SceneError(f"{path}: 'metadata' must be a JSON string")
    present = [key for key in COND_KEYS if key in arrays]
    if present:
        if len(present) != len(COND_KEYS):
            raise SceneError(f"{path}: scene file holds {', '.join(present)} but not all of {', '.join(COND_KEYS)}")
        expected_cond = {"cond_rgb": (rgb.shape, np.uint8), "cond_depth": (rgb.shape[:3], np.float32),
                         "cond_mask": (rgb.shape[:3], np.uint8), "cond_mask_rgb": (rgb.shape[:3], np.uint8)}
        for key, (shape, dtype) in expected_cond.items():
            if arrays[key].shape != shape or arrays[key].dtype != dtype:
                raise SceneError(f"{path}: {key!r} must be {shape} {np.dtype(dtype).name} (matching rgb), "
                                 f"got {arrays[key].shape} {arrays[key].dtype}")
    return count


def load_scene(path: PathLike, return_metadata: bool = False
               ) -> Union[List[Dict[str, Any]], Tuple[List[Dict[str, Any]], Dict[str, Any]]]:
    """Read the views of a scene file written by :func:`save_scene`.

    Args:
        path: the ``.npz`` scene file.
        return_metadata: also return the metadata dict ({} when none was saved).

    Returns:
        list of view dicts ``{"rgb": (H, W, 3) uint8, "depth": (H, W) float32,
        "modelview": (4, 4) float64, "fov": float}``, or ``(views, metadata)``. When
        the file holds conditions, every view also has ``"cond": {"rgb": (H, W, 3)
        uint8, "depth": (H, W) float32 linear (0 where unknown), "mask", "mask_rgb":
        (H, W) bool}`` (empty masks for a view sampled without a condition).

    Raises:
        FileNotFoundError: no such file.
        SceneError: not an npz / corrupted, pickled or object arrays, not a scene
            (missing keys), unknown version, inconsistent shapes (names the file).
    """
    path_str = os.fspath(path)
    arrays = _read_arrays(path_str)
    count = _check_scene_arrays(path_str, arrays)
    views = [
        {
            "rgb": arrays["rgb"][i],
            "depth": arrays["depth"][i].astype(np.float32),
            "modelview": arrays["modelview"][i].astype(np.float64),
            "fov": float(arrays["fov"][i]),
        }
        for i in range(count)
    ]
    if COND_KEYS[0] in arrays:
        for i, view in enumerate(views):
            view["cond"] = {"rgb": arrays["cond_rgb"][i], "depth": arrays["cond_depth"][i],
                            "mask": arrays["cond_mask"][i].astype(bool),
                            "mask_rgb": arrays["cond_mask_rgb"][i].astype(bool)}
    if not return_metadata:
        return views
    metadata: Dict[str, Any] = {}
    if METADATA_KEY in arrays:
        try:
            metadata = json.loads(str(arrays[METADATA_KEY]))
        except json.JSONDecodeError as err:
            raise SceneError(f"{path_str}: 'metadata' is not valid JSON ({err})") from None
    return views, metadata
