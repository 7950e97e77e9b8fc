"""What to sample: seeds, class labels, file names, batches and per-process shares.

A run is a list of :class:`SampleJob` (one per sample, in seed order). The
CLI builds it with :func:`plan_jobs` from ``--seeds`` / ``--num_samples`` and
``--classes``; every process takes ``jobs[rank::world_size]`` and samples it in
batches of ``--batchsize``. Nothing here touches torch devices or files.

Classes (``--classes``):
    ``mod``      seed % num_classes (the reference default)
    ``uniform``  i % num_classes, i = position of the sample in the run
    ``random``   uniform random class, drawn from the sample's seed (so a seed
                 always gets the same class, whatever else is in the run)
    ``null``     no class label (the model's null class; used for image-to-3D)
    ``3,7,207``  an explicit list, cycled over the samples (one label = all samples)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, List, Optional, Sequence, Union

import numpy as np

from ivid.errors import OptionError

__all__ = ["SampleJob", "CLASS_MODES", "parse_classes", "assign_classes", "sample_name",
           "plan_jobs", "split_jobs", "batched"]

CLASS_MODES = ("mod", "uniform", "random", "null")

ClassSpec = Union[str, List[int]]


@dataclass(frozen=True)
class SampleJob:
    """One sample of a run.

    Attributes:
        index: position of the sample in the whole run (0-based).
        seed: the sample's seed (its noise comes from ``manual_seed(seed)``).
        class_label: ImageNet-style class index, or None for the null class /
            an unconditional model.
        name: file stem of every output of this sample (``class%03d_seed%05d``,
            ``seed%05d`` without a class, or ``%05d`` with ``--num_samples``).
    """

    index: int
    seed: int
    class_label: Optional[int]
    name: str


def parse_classes(text: Union[str, Sequence[int]]) -> ClassSpec:
    """Parse ``--classes``: one of :data:`CLASS_MODES` or a comma list of class indices.

    Raises:
        ValueError: neither a mode nor a list of non-negative integers (the
            message names ``--classes`` and the bad part).
    """
    if not isinstance(text, str):
        labels = [int(c) for c in text]
    else:
        word = text.strip().lower()
        if word in CLASS_MODES:
            return word
        labels = []
        for part in text.split(","):
            part = part.strip()
            if not part.isdigit():
                raise OptionError(f"--classes {text!r}: cannot read {part!r}; expected one of "
                                  f"{', '.join(CLASS_MODES)} or comma-separated class indices like '1,207,980'")
            labels.append(int(part))
    if not labels:
        raise OptionError(f"--classes {text!r}: empty class list")
    return labels


def _random_class(seed: int, num_classes: int) -> int:
    # A generator of its own (not the sample's noise generator), keyed by the seed.
    return int(np.random.default_rng([int(seed), 0x636C73]).integers(num_classes))


def assign_classes(spec: ClassSpec, seeds: Sequence[int], num_classes: Optional[int]) -> List[Optional[int]]:
    """Class label per sample (None = null class) for the given seeds.

    Args:
        spec: from :func:`parse_classes`.
        seeds: the samples' seeds in run order.
        num_classes: classes of the models; None or 0 for unconditional models,
            which accept only ``null`` (and ``mod``, the default, meaning "no class").

    Raises:
        ValueError: a label out of range, or labels for an unconditional model.
    """
    if spec == "null" or (not num_classes and spec == "mod"):
        return [None] * len(seeds)
    if not num_classes:
        raise OptionError(f"--classes {spec!r}: the models are unconditional (no num_classes); "
                          "leave --classes at its default or use 'null'")
    if spec == "mod":
        return [seed % num_classes for seed in seeds]
    if spec == "uniform":
        return [i % num_classes for i in range(len(seeds))]
    if spec == "random":
        return [_random_class(seed, num_classes) for seed in seeds]
    bad = [c for c in spec if not 0 <= c < num_classes]
    if bad:
        raise OptionError(f"--classes: class index(es) {bad} out of range for a model with "
                          f"{num_classes} classes (valid 0..{num_classes - 1})")
    return [spec[i % len(spec)] for i in range(len(seeds))]


def sample_name(index: int, seed: int, class_label: Optional[int], numbered: bool) -> str:
    """File stem of a sample (docs/design.md#inference): ``%05d`` when numbered, else ``class%03d_seed%05d``
    (``seed%05d`` without a class label)."""
    if numbered:
        return "%05d" % index
    if class_label is None:
        return "seed%05d" % seed
    return "class%03d_seed%05d" % (class_label, seed)


def plan_jobs(seeds: Optional[Sequence[int]], classes: ClassSpec, num_classes: Optional[int],
              num_samples: Optional[int] = None) -> List[SampleJob]:
    """All samples of a run.

    Args:
        seeds: seeds from :func:`ivid.utils.seeds.parse_seeds` (ignored when
            ``num_samples`` is given).
        classes: class spec from :func:`parse_classes`.
        num_classes: classes of the models (None/0 = unconditional).
        num_samples: when given, samples ``0 .. num_samples-1`` with seed = index,
            named ``%05d`` (overrides ``seeds``).
    """
    if num_samples is not None:
        if num_samples < 1:
            raise OptionError(f"--num_samples {num_samples}: must be >= 1")
        seeds = list(range(num_samples))
    elif not seeds:
        raise OptionError("no seeds given (use --seeds or --num_samples)")
    labels = assign_classes(classes, seeds, num_classes)
    numbered = num_samples is not None
    return [SampleJob(i, int(s), c, sample_name(i, int(s), c, numbered))
            for i, (s, c) in enumerate(zip(seeds, labels))]


def split_jobs(jobs: Sequence[SampleJob], rank: int, world_size: int) -> List[SampleJob]:
    """The share of process ``rank`` out of ``world_size``: ``jobs[rank::world_size]``."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} out of range for world size {world_size}")
    return list(jobs[rank::world_size])


def batched(jobs: Sequence[SampleJob], batchsize: int) -> Iterator[List[SampleJob]]:
    """Consecutive batches of at most ``batchsize`` jobs."""
    if batchsize < 1:
        raise OptionError(f"--batchsize {batchsize}: must be >= 1")
    for start in range(0, len(jobs), batchsize):
        yield list(jobs[start:start + batchsize])
