"""CPU threading defaults of the command-line tools (``train.py``, ``eval.py``, ``inference/*.py``, ``scripts/*.py``).

Every entry point imports this module first, before ``torch``::

    import ivid.threads  # noqa: F401  (first: OpenMP reads its settings when torch loads)

Importing it sets the defaults below in the environment of the process (and so of
its DataLoader workers, spawned ranks and subprocesses), each only where the user has
not set the variable already:

- ``OMP_WAIT_POLICY=PASSIVE``: an OpenMP thread that waits for work sleeps at once
  instead of spinning on its core. PyTorch's CPU operators run on OpenMP (libgomp on
  Linux), whose default lets idle threads spin for a while after every parallel region.
  On a machine shared with other jobs the spinning threads of each process take the
  cores the working threads of the others need, and a run slows down far more than in
  proportion to the load (a warp pair under load: 6.2 s spinning, 0.10 s passive);
  see docs/performance.md#cpu-threads for the measurements.

The thread count is left to PyTorch (one per core it may use; ``OMP_NUM_THREADS`` /
``torch.set_num_threads`` change it): the numbers a CPU run produces can depend on
the thread count (parallel reductions split their sums by thread), so a default
that followed the machine's load would make the same command give different samples
from run to run.

The variables are only read by OpenMP when the library loads, i.e. at ``import torch``;
when torch is already imported (a test importing a CLI module, the web app's worker)
this module changes nothing, so a process never ends up with settings that differ
from those its children get.
"""

from __future__ import annotations

import os
import sys
from typing import Dict, MutableMapping, Optional

__all__ = ["ENV_DEFAULTS", "APPLIED", "apply_env_defaults", "thread_settings"]

#: variable -> value set when the user has not set the variable
ENV_DEFAULTS: Dict[str, str] = {"OMP_WAIT_POLICY": "PASSIVE"}


def apply_env_defaults(environ: Optional[MutableMapping[str, str]] = None,
                       torch_loaded: Optional[bool] = None) -> Dict[str, str]:
    """Set every :data:`ENV_DEFAULTS` variable that ``environ`` lacks; returns those it set.

    ``environ`` defaults to ``os.environ``, ``torch_loaded`` to whether torch is imported.
    Nothing is set when torch is loaded (OpenMP has read its settings already; setting them
    now would only reach child processes). A variable the user set, even to an empty
    string, is kept as it is.
    """
    environ = os.environ if environ is None else environ
    if ("torch" in sys.modules) if torch_loaded is None else torch_loaded:
        return {}
    added = {name: value for name, value in ENV_DEFAULTS.items() if name not in environ}
    environ.update(added)
    return added


def thread_settings() -> Dict[str, object]:
    """The threading settings in effect, for benchmark reports: wait policy, thread counts, CPUs usable."""
    import torch

    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY"), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
            "torch_threads": torch.get_num_threads(), "usable_cpus": usable}


#: the variables this import set (empty when torch was loaded first or the user set them all)
APPLIED: Dict[str, str] = apply_env_defaults()
