"""Sample 3D-aware multiview images: G_u draws the first view, G_c every further one.

Examples::

    python inference/sample.py                                  # released ImageNet-128 models, 3x9 views, seeds 0-8
    python inference/sample.py --viewset random --num_samples 10000 --output_dir samples/fid
    python inference/sample.py --preset demo                    # the small demo models of this project (CPU: ~1 min)
    python inference/sample.py --preset demo --viewset 360 --seeds 0
    python inference/sample.py --input_image photo.jpg --viewset 3x9   # image to 3D (depth from MiDaS)
    python inference/sample.py --viewset my_views.json          # JSON list of [yaw, pitch] or 4x4 modelviews

Outputs go to ``<output_dir>/viewset_<v>_steps_u<su>_c<sc>_guidance<g>/`` with
``grids/``, ``conds/``, ``results/`` and ``scenes/`` (see ``ivid.sampling.outputs``);
render the scenes with ``inference/render.py --scene_dir <run>/scenes``.

Viewsets: ``uncond`` (first view only), ``random`` (one random novel view: yaw
0.3 N(0,1), pitch 0.15 N(0,1), per sample from its seed), ``3x9`` (yaws 0, +-.15,
+-.3, +-.45, +-.6 times pitches 0, +-.15), ``360`` (20 yaws over a full turn at
pitch 0, generated outward from the front alternately right and left: 0, +s, -s,
+2s, ... with s = 18 deg, each new view one step from an existing one so most of
it is conditioned), ``360x3`` (those yaws times pitches 0, +-.15), or a JSON file.
"""

from __future__ import annotations

import argparse
import dataclasses

import ivid.threads  # noqa: F401 - first: OpenMP's CPU-thread defaults, read when torch loads
from ivid.cli import add_debug_option, help_with_defaults, run_cli
from ivid.sampling.multiview import SAMPLER_CHOICES
from ivid.sampling.precision import PRECISIONS
from ivid.sampling.presets import PRESETS, preset_in_argv, request_defaults
from ivid.sampling.run import SampleRequest, run_sampling
from ivid.sampling.sharding import is_main_process


def parse_args(argv=None) -> argparse.Namespace:
    """The options as given: an option not on the command line is None (the library resolves it against
    ``--preset`` and the reference defaults, which ``--help`` shows)."""
    preset = preset_in_argv(argv)  # first: --help shows the defaults under that preset
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=help_with_defaults(request_defaults(SampleRequest, preset)))
    p.add_argument("--config_uncond", help="config of G_u (unconditional RGBD)")
    p.add_argument("--config_cond", help="config of G_c (conditional RGBD)")
    p.add_argument("--ckpt_uncond", help="G_u weights (released files download when missing)")
    p.add_argument("--ckpt_cond", help="G_c weights (released files download when missing)")
    p.add_argument("--preset", choices=sorted(PRESETS),
                   help="bundled models as the defaults of the four model options (a --config_*/--ckpt_* given "
                        "explicitly replaces its model), with defaults of other options that suit them (shown "
                        "by --preset NAME --help); " + "; ".join(f"{k}: {v.about}" for k, v in PRESETS.items()))
    p.add_argument("--output_dir", help="root folder; each run writes a subfolder named after its settings")
    p.add_argument("--seeds", help="seeds, e.g. '0-8,12' (inclusive ranges)")
    p.add_argument("--num_samples", type=int, help="sample seeds 0..N-1, files named %%05d (overrides --seeds)")
    p.add_argument("--classes",
                   help="mod (seed %% num_classes), uniform (i %% num_classes), random, null, or a list '1,207'; "
                        "default mod, or null with --input_image")
    p.add_argument("--viewset", help="uncond, random, 3x9, 360, 360x3 or a JSON viewset file")
    p.add_argument("--steps_uncond", type=int, help=">= 1000: DDPM, else DDIM steps")
    p.add_argument("--steps_cond", type=int, help="DDIM steps of G_c")
    p.add_argument("--guidance", type=float, help="classifier-free guidance strength")
    p.add_argument("--batchsize", type=int, help="samples per batch (per device)")
    p.add_argument("--fov", type=float, help="field of view, degrees")
    p.add_argument("--near", type=float, help="near plane of the depth code")
    p.add_argument("--far", type=float, help="far plane of the depth code")
    p.add_argument("--atol", type=float, help="depth discontinuity tolerance (absolute)")
    p.add_argument("--rtol", type=float, help="depth discontinuity tolerance (on 1/depth)")
    p.add_argument("--erode_rgb", type=int, help="colour erosion radius near discontinuities")
    p.add_argument("--replace_rgb", type=float, help="DDIM replace_rgb weight (0 = off)")
    p.add_argument("--replace_depth", type=float, help="DDIM replace_depth weight (0 = off)")
    p.add_argument("--constrain_depth", type=float, help="DDIM constrain_depth weight (0 = off; needs replace_depth)")
    p.add_argument("--eta", type=float,
                   help="sampler noise in [0, 1]: DDIM's eta; for dpmpp_2m the SDE variant's noise fraction "
                        "(0 = deterministic)")
    p.add_argument("--clip_denoised", action=argparse.BooleanOptionalAction,
                   help="clamp each step's predicted x0 to [-1, 1] (off, as the reference; on with --preset demo)")
    p.add_argument("--sampler", choices=SAMPLER_CHOICES,
                   help="auto (the reference: DDPM for G_u when --steps_uncond >= 1000, else DDIM; DDIM for G_c), "
                        "ddpm, ddim, or dpmpp_2m (DPM-Solver++(2M) for both models: good views in 10-25 steps)")
    p.add_argument("--input_image", help="image to 3D: this photo replaces G_u's first view")
    p.add_argument("--input_depth", help="the photo's MiDaS disparity (.npz, arr_0); else MiDaS runs")
    p.add_argument("--midas_ckpt", help="MiDaS dpt_beit_large_512 weights (image to 3D)")
    p.add_argument("--device", help="cpu, cuda, cuda:1, ...; default: every visible GPU, else CPU")
    p.add_argument("--precision", choices=PRECISIONS,
                   help="UNet arithmetic: fp32 (the models as configured, the reference), bf16 (autocast, CPU or "
                        "CUDA) or fp16 (autocast, CUDA only); bf16/fp16 change the samples slightly")
    p.add_argument("--compile", action="store_true", default=None,
                   help="torch.compile the UNets (slow first step; falls back with a warning where unsupported)")
    p.add_argument("--no_progress", action="store_true", help="hide progress bars")
    add_debug_option(p)
    return p.parse_args(argv)


def to_request(args: argparse.Namespace) -> SampleRequest:
    """The options as a :class:`SampleRequest` (not resolved: options not given stay None)."""
    fields = {f.name for f in dataclasses.fields(SampleRequest)}
    return SampleRequest(**{k: v for k, v in vars(args).items() if k in fields}, progress=not args.no_progress)


def main(args: argparse.Namespace) -> str:
    run_dir = run_sampling(to_request(args))
    if is_main_process():  # under torchrun: once
        print(f"samples written to {run_dir}")
    return run_dir


if __name__ == "__main__":
    run_cli(main, parse_args)
