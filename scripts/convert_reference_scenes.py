"""Convert scene files written by the reference release (its ``inference/sample.py``) into ivid scenes.

Examples::

    python scripts/convert_reference_scenes.py old_run/scenes --output_dir converted/scenes
    python scripts/convert_reference_scenes.py scene_class001_seed00001.npz --output_dir converted/scenes
    python inference/render.py --scene_dir converted                  # then render them as usual

The reference's format: an ``.npz`` whose ``data`` entry is a PICKLED object array, one dict
per view: ``color`` (PNG bytes of an H x W x 3 uint8 image), ``depth`` (PNG bytes of an
H x W x 4 uint8 image whose bytes are the H x W float32 linear depth), ``fov`` (degrees) and
``modelview`` (a ``glm.mat4``, pickled as its four columns). ``np.load(allow_pickle=True)``
would run any code such a file carries, so this script never calls it: it reads the array
with a restricted unpickler that knows only what that format needs (dicts, lists, tuples,
bytes, strings, numbers, NumPy's object-array reconstruction and a stand-in for
``glm.mat4``) and refuses everything else with a one-line error, before anything runs.

Output: one ivid scene (``ivid.scene``: plain arrays, no pickle) per input, same file name,
written atomically into ``--output_dir``. Exit status 1 if any input was refused.
"""

from __future__ import annotations

import argparse
import glob
import io
import os
import pickle
import sys
import zipfile
from typing import Any, Dict, List, Sequence

import numpy as np
from PIL import Image

import ivid.threads  # noqa: F401 - first: OpenMP's CPU-thread defaults, read when torch loads
from ivid.cli import add_debug_option, run_cli
from ivid.errors import InputFileError
from ivid.scene import save_scene

#: the entry of the reference's npz that holds the pickled views
DATA_ENTRY = "data.npy"
#: refuse absurd files early (a 128x128 27-view scene is ~1 MB)
MAX_ENTRY_BYTES = 1 << 30


class RefusedFile(InputFileError):
    """The file is not a reference scene, or it holds something the restricted unpickler refuses."""


class GlmMat4:
    """Stand-in for ``glm.mat4`` while unpickling: PyGLM pickles a matrix as its class (no
    arguments) plus a state of four column tuples; we keep the columns and never import glm."""

    def __init__(self, *args: Any) -> None:
        if args:
            raise pickle.UnpicklingError("glm.mat4 pickled with constructor arguments (not the PyGLM layout)")
        self.columns = None

    def __setstate__(self, state: Any) -> None:
        self.columns = state

    def matrix(self) -> np.ndarray:
        """The 4 x 4 row-major matrix (``M @ [x, y, z, 1]``): the columns, transposed."""
        cols = np.asarray(self.columns, dtype=np.float64)
        if cols.shape != (4, 4):
            raise ValueError(f"glm.mat4 state has shape {cols.shape}, expected 4 columns of 4")
        return cols.T


class _NdarrayClass:
    """What the pickle's reference to ``numpy.ndarray`` resolves to: a token that only
    :func:`_reconstruct` accepts (the real class would be callable with any shape)."""


_NDARRAY = _NdarrayClass()


def _reconstruct(cls: Any, shape: Any, typecode: Any) -> np.ndarray:
    """NumPy's array reconstruction as NumPy pickles it (``(ndarray, (0,), b'b')``, then the array's
    ``__setstate__`` sets its real dtype, shape and contents); nothing else."""
    if cls is not _NDARRAY or tuple(shape) != (0,) or typecode != b"b":
        raise pickle.UnpicklingError("array reconstruction with unexpected arguments refused")
    return np.ndarray((0,), dtype=np.int8)


def _scalar(dtype: Any, data: Any = None) -> Any:
    """A NumPy scalar of a numeric dtype from its raw bytes (e.g. a float64 ``fov``)."""
    if not isinstance(dtype, np.dtype) or dtype.kind not in "biuf" or not isinstance(data, bytes):
        raise pickle.UnpicklingError(f"numpy scalar of dtype {dtype!r} refused (only numbers)")
    return np.frombuffer(data, dtype=dtype, count=1)[0]


def _latin1(text: str, encoding: str = "latin1") -> bytes:
    """``_codecs.encode`` as pickle protocol 2 uses it for bytes (latin-1 only)."""
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise pickle.UnpicklingError(f"_codecs.encode with {encoding!r} refused")
    return text.encode("latin1")


#: (module, name) -> the object the restricted unpickler hands out; nothing else is ever looked up
ALLOWED_GLOBALS: Dict[tuple, Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,   # NumPy 1.x
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,  # NumPy 2.x
    ("numpy.core.multiarray", "scalar"): _scalar,
    ("numpy._core.multiarray", "scalar"): _scalar,
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): np.dtype,
    ("glm", "mat4x4"): GlmMat4,
    ("glm", "mat4"): GlmMat4,
    ("_codecs", "encode"): _latin1,
}


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only :data:`ALLOWED_GLOBALS` (and no persistent ids)."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"pickled global '{module}.{name}' is not part of the reference scene "
                                         "format") from None

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("persistent ids are not part of the reference scene format")


def read_reference_views(path: str) -> List[Dict[str, Any]]:
    """The raw view dicts of a reference scene file, unpickled safely.

    Raises:
        RefusedFile: not an npz with a ``data`` object array of dicts, or a pickle that asks
            for anything outside :data:`ALLOWED_GLOBALS` (the message says what).
    """
    try:
        with zipfile.ZipFile(path) as archive:
            if DATA_ENTRY not in archive.namelist():
                raise RefusedFile(f"no '{DATA_ENTRY[:-4]}' entry (entries: {archive.namelist()}); "
                                  "not a scene of the reference")
            if archive.getinfo(DATA_ENTRY).file_size > MAX_ENTRY_BYTES:
                raise RefusedFile(f"'{DATA_ENTRY}' is larger than {MAX_ENTRY_BYTES} bytes")
            raw = archive.read(DATA_ENTRY)
    except (zipfile.BadZipFile, OSError) as e:
        raise RefusedFile(f"not a readable .npz ({type(e).__name__}: {e})") from None
    stream = io.BytesIO(raw)
    try:
        version = np.lib.format.read_magic(stream)
        header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = header(stream)
    except ValueError as e:
        raise RefusedFile(f"'{DATA_ENTRY}' is not a NumPy array file ({e})") from None
    if dtype != np.dtype(object) or len(shape) != 1:
        raise RefusedFile(f"'{DATA_ENTRY}' holds a {dtype} array of shape {shape}; the reference's is a "
                          "1-D object array of view dicts")
    try:
        views = RestrictedUnpickler(stream).load()
    except (pickle.UnpicklingError, EOFError, AttributeError, TypeError, ValueError, IndexError) as e:
        raise RefusedFile(f"refused: {e}") from None
    if not isinstance(views, np.ndarray) or views.dtype != object or views.shape != tuple(shape):
        raise RefusedFile(f"'{DATA_ENTRY}' does not unpickle to the object array its header announces")
    return list(views)


def _png(data: Any, what: str) -> np.ndarray:
    if not isinstance(data, bytes) or not data.startswith(b"\x89PNG"):
        raise RefusedFile(f"{what} is not PNG bytes")
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format != "PNG":
                raise RefusedFile(f"{what} is not a PNG image")
            return np.asarray(image)
    except (OSError, Image.DecompressionBombError) as e:
        raise RefusedFile(f"{what}: unreadable PNG ({e})") from None


def convert_view(view: Any, index: int) -> Dict[str, Any]:
    """One reference view dict -> an ivid view (rgb uint8, linear float32 depth, modelview, fov)."""
    if not isinstance(view, dict) or not {"color", "depth", "fov", "modelview"} <= set(view):
        keys = sorted(view) if isinstance(view, dict) else type(view).__name__
        raise RefusedFile(f"view {index}: expected a dict with color, depth, fov, modelview, got {keys}")
    rgb = _png(view["color"], f"view {index} color")
    if rgb.ndim == 3 and rgb.shape[-1] == 4:
        rgb = rgb[..., :3]
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[-1] != 3:
        raise RefusedFile(f"view {index}: color must be an H x W x 3 8-bit image, got {rgb.shape} {rgb.dtype}")
    packed = _png(view["depth"], f"view {index} depth")
    if packed.dtype != np.uint8 or packed.shape != rgb.shape[:2] + (4,):
        raise RefusedFile(f"view {index}: depth must be an H x W x 4 8-bit image of float32 bytes matching "
                          f"the color's size, got {packed.shape} {packed.dtype}")
    depth = np.frombuffer(np.ascontiguousarray(packed).tobytes(), dtype="<f4").reshape(rgb.shape[:2])
    if not np.all(np.isfinite(depth)) or float(depth.min()) <= 0:
        raise RefusedFile(f"view {index}: depth holds non-positive or non-finite values (not linear depth)")
    modelview = view["modelview"]
    try:
        matrix = modelview.matrix() if isinstance(modelview, GlmMat4) else np.asarray(modelview, np.float64)
    except (TypeError, ValueError) as e:
        raise RefusedFile(f"view {index}: modelview is not a 4 x 4 matrix ({e})") from None
    if matrix.shape != (4, 4) or not np.allclose(matrix[3], [0, 0, 0, 1], atol=1e-5):
        raise RefusedFile(f"view {index}: modelview is not a 4 x 4 rigid transform")
    fov = view["fov"]
    if isinstance(fov, bool) or not isinstance(fov, (int, float, np.number)) or not 0 < float(fov) < 180:
        raise RefusedFile(f"view {index}: fov must be a number of degrees in (0, 180), got {fov!r}")
    return {"rgb": rgb.copy(), "depth": depth.astype(np.float32), "modelview": matrix, "fov": float(fov)}


def convert_file(source: str, target: str) -> int:
    """Convert one reference scene file; returns its number of views. Raises RefusedFile."""
    raw_views = read_reference_views(source)
    if not raw_views:
        raise RefusedFile("the scene holds no view")
    views = [convert_view(view, i) for i, view in enumerate(raw_views)]
    save_scene(target, views, metadata={"converted_from": os.path.basename(source), "format": "reference"})
    return len(views)


def find_inputs(paths: Sequence[str]) -> List[str]:
    """Scene files named on the command line: files, or the ``*.npz`` of folders (or of their scenes/)."""
    found: List[str] = []
    for path in paths:
        if os.path.isdir(path):
            inner = sorted(glob.glob(os.path.join(path, "*.npz")))
            if not inner and os.path.isdir(os.path.join(path, "scenes")):
                inner = sorted(glob.glob(os.path.join(path, "scenes", "*.npz")))
            if not inner:
                raise InputFileError(f"{path}: no *.npz scene files there or in its scenes/ folder")
            found += inner
        elif os.path.isfile(path):
            found.append(path)
        else:
            raise InputFileError(f"{path}: no such file or folder")
    return found


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("inputs", nargs="+", help="reference scene files, or folders of them (a run folder's scenes/)")
    p.add_argument("--output_dir", required=True, help="folder for the converted ivid scenes (created)")
    p.add_argument("--overwrite", action="store_true", help="replace converted files that already exist")
    add_debug_option(p)
    return p.parse_args(argv)


def main(args: argparse.Namespace) -> int:
    """Convert every input; print one line per file; return the exit status (1 if any was refused)."""
    sources = find_inputs(args.inputs)
    os.makedirs(args.output_dir, exist_ok=True)
    refused = 0
    for source in sources:
        target = os.path.join(args.output_dir, os.path.basename(source))
        if os.path.exists(target) and os.path.samefile(target, source):
            print(f"error: {source}: --output_dir would overwrite the input; choose another folder", file=sys.stderr)
            refused += 1
            continue
        if os.path.exists(target) and not args.overwrite:
            print(f"{target}: exists, skipped (--overwrite to replace it)")
            continue
        try:
            count = convert_file(source, target)
        except RefusedFile as e:
            print(f"error: {source}: {e}", file=sys.stderr)
            refused += 1
            continue
        print(f"{target}: {count} views")
    return 1 if refused else 0


if __name__ == "__main__":
    run_cli(main, parse_args)
