"""Free-view rendering of sampled scenes by fusing their views' meshes (no diffusion).

Examples::

    python inference/render.py --scene_dir samples/imagenet128/viewset_3x9_steps_u1000_c50_guidance3.0/scenes
    python inference/render.py --preset demo --scene_dir samples/demo/viewset_3x9_steps_u100_c20_guidance3.0
    python inference/render.py --scene_dir <run>/scenes --traj random          # one image per scene in results/
    python inference/render.py --scene_dir <run>/scenes --traj none --export ply   # coloured meshes in meshes/
    python inference/render.py --scene_dir <run>/scenes --export glb   # + binary glTF meshes (browsers, Blender)

``swing`` writes ``videos/<scene>.mp4`` and ``videos/<scene>_depth.mp4`` (30 fps)
into ``--output_dir`` (default: the run folder above ``scenes/``).
"""

from __future__ import annotations

import argparse
import dataclasses

import ivid.threads  # noqa: F401 - first: OpenMP's CPU-thread defaults, read when torch loads
from ivid.cli import add_debug_option, help_with_defaults, run_cli
from ivid.render.export import PLY_MODES
from ivid.render.free_view import EXPORTS, TRAJECTORIES, RenderRequest, run_render
from ivid.sampling.presets import PRESETS, preset_in_argv, request_defaults

#: the reference's default: the run folder of ``inference/sample.py`` with its default options
DEFAULT_SCENE_DIR = "samples/imagenet128/viewset_3x9_steps_u1000_c50_guidance3.0"


def parse_args(argv=None) -> argparse.Namespace:
    """The options as given: an option not on the command line is None (the library resolves it against
    ``--preset`` and the reference defaults, which ``--help`` shows)."""
    preset = preset_in_argv(argv)  # first: --help shows the defaults under that preset
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=help_with_defaults(request_defaults(RenderRequest, preset)))
    p.add_argument("--scene_dir", default=DEFAULT_SCENE_DIR,
                   help="folder of scene .npz files (or a run folder with scenes/); default: the reference's, "
                        "where sample.py's defaults write")
    p.add_argument("--output_dir", help="default: the folder above scenes/")
    p.add_argument("--frames", type=int, help="frames of the swing / 360 video")
    p.add_argument("--traj", choices=TRAJECTORIES,
                   help="swing: yaw .6 cos t, pitch .15 sin t; random: one random view; 360: full turn; none")
    p.add_argument("--atol", type=float, help="depth discontinuity tolerance (absolute)")
    p.add_argument("--rtol", type=float, help="depth discontinuity tolerance (on 1/depth)")
    p.add_argument("--erode_rgb", type=int, help="colour erosion radius near discontinuities")
    p.add_argument("--video_size", type=int,
                   help="write square videos of this many pixels (bicubic resize, even); default: the scene's size")
    p.add_argument("--preset", choices=sorted(PRESETS),
                   help="defaults that suit a sample.py --preset's models (shown by --preset NAME --help)")
    p.add_argument("--seed", type=int, help="seed of the random trajectory")
    p.add_argument("--export", choices=EXPORTS,
                   help="also write meshes/<scene>.ply, or .glb (binary glTF; needs trimesh)")
    p.add_argument("--ply_mode", choices=PLY_MODES, help="PLY as triangle mesh or point cloud")
    p.add_argument("--device", help="cpu, cuda, cuda:1, ...; default: a GPU when visible")
    p.add_argument("--no_progress", action="store_true", help="hide progress bars")
    add_debug_option(p)
    return p.parse_args(argv)


def to_request(args: argparse.Namespace) -> RenderRequest:
    """The options as a :class:`RenderRequest` (not resolved: options not given stay None)."""
    fields = {f.name for f in dataclasses.fields(RenderRequest)}
    return RenderRequest(**{k: v for k, v in vars(args).items() if k in fields}, progress=not args.no_progress)


def main(args: argparse.Namespace):
    written = run_render(to_request(args))
    print(f"wrote {len(written)} file(s)" + (f", e.g. {written[0]}" if written else ""))
    return written


if __name__ == "__main__":
    run_cli(main, parse_args)
