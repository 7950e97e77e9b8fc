"""Seed lists and per-sample random generators.

``parse_seeds("0-8,12")`` turns the ``--seeds`` syntax of ``inference/sample.py``
into a list of ints; :func:`sample_generator` builds the per-sample
``torch.Generator`` every noise draw of that sample comes from (docs/design.md#inference: the
first-view noise of a sample is ``manual_seed(seed)`` then one
``randn(1, 4, S, S)`` on the sampling device).
"""

from __future__ import annotations

import collections
import re
from typing import List, Sequence, Union

import torch

from ivid.errors import OptionError

__all__ = ["parse_seeds", "sample_generator", "sample_generators", "MAX_SEEDS"]

#: most samples one run may ask for (--seeds / --num_samples); more is surely a typo (and would
#: not fit in memory as a list); split bigger jobs over several runs into one --output_dir
MAX_SEEDS = 1_000_000

_RANGE = re.compile(r"^\s*(\d+)\s*-\s*(\d+)\s*$")
_SINGLE = re.compile(r"^\s*(\d+)\s*$")


def parse_seeds(text: Union[str, int, Sequence[int]]) -> List[int]:
    """Parse a seed list such as ``"0-8,12"`` (ranges inclusive, comma separated).

    Args:
        text: the ``--seeds`` string; an int or a sequence of ints is accepted as is.

    Returns:
        the seeds in the given order (non-negative ints, < 2**63).

    Raises:
        OptionError (a ValueError): empty list, a part that is neither ``N`` nor ``A-B``, a
            decreasing range, more than :data:`MAX_SEEDS` seeds, or a seed given twice (it
            would overwrite the other sample's files). The message quotes the offending part.
    """
    if isinstance(text, int):
        seeds = [text]
    elif not isinstance(text, str):
        seeds = [int(s) for s in text]
    else:
        seeds = []
        for part in text.split(","):
            single, span = _SINGLE.match(part), _RANGE.match(part)
            if single:
                seeds.append(int(single.group(1)))
            elif span:
                first, last = int(span.group(1)), int(span.group(2))
                if last < first:
                    raise OptionError(f"--seeds {text!r}: range {part.strip()!r} is decreasing "
                                      f"(write {last}-{first})")
                if len(seeds) + last - first + 1 > MAX_SEEDS:  # checked before the list is built
                    raise OptionError(f"--seeds {text!r}: {len(seeds) + last - first + 1} seeds is more than "
                                      f"{MAX_SEEDS} per run; split the job into several runs")
                seeds.extend(range(first, last + 1))
            else:
                raise OptionError(f"--seeds {text!r}: cannot read {part.strip()!r}; expected "
                                  "non-negative integers and inclusive ranges, e.g. '0-8,12'")
            if len(seeds) > MAX_SEEDS:
                raise OptionError(f"--seeds {text!r}: more than {MAX_SEEDS} seeds per run; split the job "
                                  "into several runs")
    if not seeds:
        raise OptionError(f"--seeds {text!r}: no seeds given")
    for seed in seeds:
        if seed < 0 or seed >= 2 ** 63:
            raise OptionError(f"--seeds {text!r}: seed {seed} is out of range [0, 2**63)")
    repeated = sorted(s for s, n in collections.Counter(seeds).items() if n > 1)
    if repeated:
        raise OptionError(f"--seeds {text!r}: seed(s) {repeated[:10]} given more than once")
    return seeds


def sample_generator(seed: int, device: Union[str, torch.device] = "cpu") -> torch.Generator:
    """A ``torch.Generator`` on ``device`` seeded with ``seed`` (one per sample).

    CUDA and CPU generators produce different streams for the same seed, so a
    sample drawn on a GPU differs from the same seed drawn on the CPU (as in the
    reference, which draws on the GPU).
    """
    generator = torch.Generator(device=torch.device(device))
    generator.manual_seed(int(seed))
    return generator


def sample_generators(seeds: Sequence[int], device: Union[str, torch.device] = "cpu") -> List[torch.Generator]:
    """One :func:`sample_generator` per seed."""
    return [sample_generator(seed, device) for seed in seeds]
