"""The dataset index ``<data_dir>/dataset.json``: build it on first use, read it after.

Folder layouts (docs/design.md#training-data):

- ``imagenet``: ``images/<wnid>/<name>.<ext>`` and ``depths/<wnid>/<name>.npz``;
  one class per sub-folder of ``images/``, indexed in sorted wnid order.
- ``single``: ``images/<name>.<ext>`` and ``depths/<name>.npz``.

``dataset.json`` = ``{"labels": {wnid: index}, "images": [...], "depths": [...]}``
with paths relative to ``data_dir`` in POSIX form (``images/n01/a.JPEG``,
``depths/n01/a.npz``: the depth path is the image path under ``depths/`` with
the extension replaced by ``.npz``); ``labels`` is ``{}`` for the single layout.
It is written atomically, and reused as it is when present (delete it after
adding or removing images). Images whose depth file is missing stay in the
index; loading them fails and is reported as a data failure.
"""

from __future__ import annotations

import dataclasses
import json
import os
import warnings
from typing import Dict, List, Tuple, Union

from ivid.errors import IvidError
from ivid.utils.io import atomic_write

PathLike = Union[str, os.PathLike]

INDEX_NAME = "dataset.json"
LAYOUTS = ("imagenet", "single")
#: file extensions (lower case) recognised as images
IMAGE_EXTENSIONS = (".jpeg", ".jpg", ".png", ".webp", ".bmp", ".tif", ".tiff")

_EXPECTED = {
    "imagenet": "images/<wnid>/<name>.<ext> with depths/<wnid>/<name>.npz",
    "single": "images/<name>.<ext> with depths/<name>.npz",
}


class DataLayoutError(IvidError, ValueError):
    """The data folder is missing, empty or laid out differently than the dataset expects."""


@dataclasses.dataclass(frozen=True)
class DatasetIndex:
    """Parsed ``dataset.json``.

    Attributes:
        labels: ``{wnid: class index}`` (sorted wnids -> 0..K-1); empty for the single layout.
        images: image paths relative to the data folder.
        depths: depth ``.npz`` paths relative to the data folder (same order).
    """

    labels: Dict[str, int]
    images: List[str]
    depths: List[str]

    def class_of(self, i: int) -> int:
        """Class index of image ``i`` (imagenet layout: its parent folder's wnid)."""
        return self.labels[self.images[i].split("/")[-2]]

    def to_json(self) -> Dict[str, object]:
        return {"labels": self.labels, "images": self.images, "depths": self.depths}


def _is_image(name: str) -> bool:
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def depth_path_for(image_rel: str) -> str:
    """``images/a/b.JPEG`` -> ``depths/a/b.npz`` (relative POSIX paths)."""
    parts = image_rel.split("/")
    if parts[0] != "images":
        raise ValueError(f"image path {image_rel!r} is not under images/")
    return "/".join(["depths"] + parts[1:-1] + [os.path.splitext(parts[-1])[0] + ".npz"])


def _scan(folder: str) -> Tuple[List[str], List[str]]:
    """Sorted (image file names, visible sub-folder names) directly inside ``folder``."""
    files, dirs = [], []
    with os.scandir(folder) as it:
        for entry in it:
            if entry.name.startswith("."):
                continue
            if entry.is_dir():
                dirs.append(entry.name)
            elif _is_image(entry.name):
                files.append(entry.name)
    return sorted(files), sorted(dirs)


def _check_folders(data_dir: str, layout: str) -> str:
    if not os.path.isdir(data_dir):
        raise DataLayoutError(f"data folder {data_dir!r} does not exist (expected {_EXPECTED[layout]})")
    images_dir = os.path.join(data_dir, "images")
    if not os.path.isdir(images_dir):
        raise DataLayoutError(f"{data_dir}: no 'images/' folder (expected {_EXPECTED[layout]})")
    if not os.path.isdir(os.path.join(data_dir, "depths")):
        raise DataLayoutError(f"{data_dir}: no 'depths/' folder (expected {_EXPECTED[layout]}; "
                              "compute depth maps with scripts/predict_depth.py)")
    return images_dir


def _list_imagenet(data_dir: str, images_dir: str) -> Tuple[Dict[str, int], List[str]]:
    top_files, wnids = _scan(images_dir)
    images = []
    for wnid in wnids:
        files, _ = _scan(os.path.join(images_dir, wnid))
        images += [f"images/{wnid}/{name}" for name in files]
    if not images:
        hint = (f"; found {len(top_files)} images directly in images/ - that is the single-category "
                "layout (use SingleCategory*)") if top_files else ""
        raise DataLayoutError(f"{data_dir}: no images found in class folders under images/ "
                              f"(expected {_EXPECTED['imagenet']}){hint}")
    if top_files:
        warnings.warn(f"{data_dir}: ignoring {len(top_files)} images lying directly in images/ "
                      f"(imagenet layout expects images/<wnid>/<name>)", stacklevel=3)
    return {wnid: k for k, wnid in enumerate(wnids)}, images


def _list_single(data_dir: str, images_dir: str) -> List[str]:
    files, dirs = _scan(images_dir)
    if not files:
        hint = (f"; found {len(dirs)} sub-folders - that is the ImageNet layout (use ImageNet*)"
                if dirs else "")
        raise DataLayoutError(f"{data_dir}: no images found directly in images/ "
                              f"(expected {_EXPECTED['single']}){hint}")
    return [f"images/{name}" for name in files]


def build_index(data_dir: PathLike, layout: str) -> DatasetIndex:
    """List the data folder (does not write anything).

    Raises:
        DataLayoutError: missing folders, no images, or no depth file at all.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    data_dir = os.fspath(data_dir)
    images_dir = _check_folders(data_dir, layout)
    if layout == "imagenet":
        labels, images = _list_imagenet(data_dir, images_dir)
    else:
        labels, images = {}, _list_single(data_dir, images_dir)
    depths = [depth_path_for(p) for p in images]
    missing = [p for p in depths if not os.path.isfile(os.path.join(data_dir, p))]
    if len(missing) == len(depths):
        raise DataLayoutError(f"{data_dir}: none of the {len(images)} images has a depth file "
                              f"(looked for e.g. {depths[0]}; expected {_EXPECTED[layout]})")
    if missing:
        warnings.warn(f"{data_dir}: {len(missing)} of {len(images)} images have no depth file "
                      f"(e.g. {missing[0]}); they will be skipped and reported as data failures",
                      stacklevel=2)
    return DatasetIndex(labels, images, depths)


def _parse(path: str, data: object, layout: str) -> DatasetIndex:
    def bad(why: str) -> DataLayoutError:
        return DataLayoutError(f"{path}: {why} (delete the file to rebuild the index)")

    if not isinstance(data, dict) or not {"labels", "images", "depths"} <= set(data):
        raise bad("expected an object with keys 'labels', 'images', 'depths'")
    labels, images, depths = data["labels"], data["images"], data["depths"]
    if not isinstance(labels, dict) or not all(isinstance(v, int) for v in labels.values()):
        raise bad("'labels' must map wnid -> int")
    if not isinstance(images, list) or not isinstance(depths, list) or len(images) != len(depths):
        raise bad("'images' and 'depths' must be lists of the same length")
    if not images:
        raise bad("the index lists no images")
    if not all(isinstance(p, str) for p in images + depths):
        raise bad("'images' and 'depths' must hold path strings")
    index = DatasetIndex(dict(labels), list(images), list(depths))
    if layout == "imagenet":
        if not labels:
            raise bad("'labels' is empty but the ImageNet layout needs class folders "
                      f"({_EXPECTED['imagenet']}); use SingleCategory* for a folder without classes")
        unknown = next((p for p in images if len(p.split("/")) < 3 or p.split("/")[-2] not in labels), None)
        if unknown is not None:
            raise bad(f"image {unknown!r} is not inside a labelled class folder")
    return index


def read_index(path: PathLike, layout: str) -> DatasetIndex:
    """Read and validate an existing ``dataset.json``."""
    path = os.fspath(path)
    try:
        with open(path, "r", encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise DataLayoutError(f"{path}: cannot read dataset index ({e}); delete it to rebuild") from None
    return _parse(path, data, layout)


def write_index(path: PathLike, index: DatasetIndex) -> None:
    """Write ``dataset.json`` atomically (labels in sorted key order)."""
    data = index.to_json()
    data["labels"] = dict(sorted(data["labels"].items()))
    with atomic_write(path, "w") as f:
        json.dump(data, f, indent=1)
        f.write("\n")


def load_or_build_index(data_dir: PathLike, layout: str) -> DatasetIndex:
    """Return the index of ``data_dir``: read ``dataset.json`` or build and write it.

    A data folder that cannot be written to still works (the index is kept in
    memory and a warning says so).

    Raises:
        DataLayoutError: the folder is missing, empty or laid out for the other layout.
    """
    data_dir = os.fspath(data_dir)
    _check_folders(data_dir, layout)
    path = os.path.join(data_dir, INDEX_NAME)
    if os.path.isfile(path):
        return read_index(path, layout)
    index = build_index(data_dir, layout)
    try:
        write_index(path, index)
    except OSError as e:
        warnings.warn(f"{path}: cannot write the dataset index ({e}); it will be rebuilt next time",
                      stacklevel=2)
    return index
