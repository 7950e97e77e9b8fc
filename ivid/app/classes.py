"""Class names for the app's class picker: ImageNet for the released models, toy kinds for the demo.

The released models are trained on ImageNet with classes indexed in sorted-WordNet-id
order (the training index of :mod:`ivid.data.index`). ``imagenet_classes.txt`` (next to
this module) holds those 1000 classes, one ``wnid<TAB>name`` line per class in that
order: the WordNet ids are timm's ``imagenet_synsets.txt`` and the short names
torchvision's ImageNet category list (``torchvision.models._meta``), both installed
dependencies, paired by index. The demo models are trained on the procedural toy data
of :mod:`ivid.toy`, whose class ``k`` is an object kind (:func:`ivid.toy.class_theme`).
"""

from __future__ import annotations

import functools
import pathlib
from typing import List, Optional, Tuple

__all__ = ["IMAGENET_FILE", "NO_CLASS", "imagenet_classes", "toy_class_names", "class_names", "class_choices",
           "default_class"]

IMAGENET_FILE = pathlib.Path(__file__).with_name("imagenet_classes.txt")
#: the picker's value for "no class" (the null class of classifier-free guidance)
NO_CLASS = -1
#: the picker's default for ImageNet models (class 207)
IMAGENET_DEFAULT = "golden retriever"


@functools.lru_cache(maxsize=1)
def imagenet_classes() -> Tuple[Tuple[str, str], ...]:
    """The 1000 ImageNet classes as ``(wnid, name)`` pairs, index = class label."""
    rows = []
    for line in IMAGENET_FILE.read_text(encoding="utf-8").splitlines():
        wnid, name = line.split("\t")
        rows.append((wnid, name))
    return tuple(rows)


def toy_class_names(num_classes: int) -> List[str]:
    """Names of the toy dataset's classes 0..num_classes-1: the object kind, plus its pattern beyond
    the first ``len(KINDS)`` classes (where kinds repeat)."""
    from ivid.toy import KINDS, class_theme

    names = []
    for k in range(num_classes):
        kind, _, pattern = class_theme(k)
        names.append(kind if k < len(KINDS) else f"{kind} ({pattern})")
    return names


def class_names(num_classes: Optional[int], dataset: str) -> List[str]:
    """Names of a model's classes.

    Args:
        num_classes: the models' class count (None or 0: unconditional models, no names).
        dataset: ``"imagenet"`` (the released models), ``"toy"`` (the demo models) or anything
            else (classes are called ``class k``).
    """
    if not num_classes:
        return []
    if dataset == "imagenet" and num_classes == len(imagenet_classes()):
        return [name for _, name in imagenet_classes()]
    if dataset == "toy":
        return toy_class_names(num_classes)
    return [f"class {k}" for k in range(num_classes)]


def class_choices(names: List[str]) -> List[Tuple[str, int]]:
    """Picker entries ``(label shown, class index)``: ``"k: name"`` per class, then "no class"."""
    return [(f"{k}: {name}", k) for k, name in enumerate(names)] + [("no class (unconditional)", NO_CLASS)]


def default_class(names: List[str]) -> int:
    """The picker's initial class: golden retriever for ImageNet, class 0 otherwise, no class without classes."""
    if not names:
        return NO_CLASS
    return names.index(IMAGENET_DEFAULT) if IMAGENET_DEFAULT in names else 0
