"""Reporting files that could not be loaded, across DataLoader workers.

A dataset that meets an unreadable file (corrupt image, missing or truncated
depth) loads another index instead and records ``"<path>: <reason>"`` in the
sample it returns, under the key :data:`FAILURES_KEY`, as ONE string with one
line per failure (``""`` when none). Strings survive ``default_collate`` and
worker processes unchanged, so the failures reach the training loop with the
batch that was affected - no shared state between processes is needed.

Training loop usage::

    log = FailureLog()
    for batch in loader:
        log.add(pop_failures(batch))        # removes the key from the batch
        ...
        if step % i_log == 0:
            record["data_failures"] = log.count
            if log.count:
                print(log.summary())
            log.reset()
"""

from __future__ import annotations

import collections
from typing import Any, Dict, Iterable, List, MutableMapping

from ivid.errors import IvidError

#: key of the failure report in a sample / collated batch
FAILURES_KEY = "failures"


class DataUnreadableError(IvidError, RuntimeError):
    """Too many data files in a row could not be read; the message names the data folder and the count."""


def format_failures(failures: Iterable[str]) -> str:
    """Join failure records (``"path: reason"``) into the sample's report string."""
    return "\n".join(f.replace("\n", " ") for f in failures)


def pop_failures(batch: MutableMapping[str, Any]) -> List[str]:
    """Remove :data:`FAILURES_KEY` from a sample or a collated batch; return its records.

    Accepts the string of one sample, or the list/tuple of strings a collated
    batch holds. Returns a list of ``"path: reason"`` strings (empty when none).
    """
    value = batch.pop(FAILURES_KEY, "")
    parts = [value] if isinstance(value, str) else list(value)
    return [line for part in parts for line in str(part).split("\n") if line]


class FailureLog:
    """Accumulates failure records between two log intervals."""

    def __init__(self) -> None:
        self.records: List[str] = []
        self.total = 0

    def add(self, records: Iterable[str]) -> None:
        records = list(records)
        self.records += records
        self.total += len(records)

    @property
    def count(self) -> int:
        """Failures since the last :meth:`reset`."""
        return len(self.records)

    def by_path(self) -> Dict[str, int]:
        """``{path: number of times}`` since the last reset (path = text before the last ': ')."""
        return dict(collections.Counter(r.split(": ", 1)[0] for r in self.records))

    def summary(self, max_paths: int = 10) -> str:
        """One readable paragraph: count, distinct files, the first ``max_paths`` records."""
        if not self.records:
            return "data failures: 0"
        distinct = list(dict.fromkeys(self.records))
        lines = [f"data failures: {len(self.records)} ({len(self.by_path())} files, {self.total} in total)"]
        lines += [f"  {r}" for r in distinct[:max_paths]]
        if len(distinct) > max_paths:
            lines.append(f"  ... and {len(distinct) - max_paths} more")
        return "\n".join(lines)

    def reset(self) -> None:
        self.records = []
