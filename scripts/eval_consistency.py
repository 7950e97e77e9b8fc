"""3D consistency of sampled scenes (condition adherence, reprojection PSNR); see docs/evaluation.md.

Example::

    python inference/sample.py --preset demo --seeds 0-3 --output_dir samples/demo
    python scripts/eval_consistency.py --scene_dir samples/demo/viewset_3x9_steps_u100_c20_guidance3.0

Prints one line per scene and an overall line, and writes ``consistency.json`` into the run folder
(``--output`` elsewhere). The code is :mod:`ivid.metrics.consistency_run`.
"""

import ivid.threads  # noqa: F401 - first: OpenMP's CPU-thread defaults, read when torch loads
from ivid.cli import run_cli
from ivid.metrics.consistency_run import main, parse_args  # parse_args calls add_debug_option(parser)

if __name__ == "__main__":
    run_cli(main, parse_args)
