"""A local web app: generate a scene or lift a photo to 3D, watch it turn, inspect its 3D model.

Examples::

    python inference/app.py                        # http://127.0.0.1:7860: released models if in ckpts/, else demo
    python inference/app.py --preset demo          # the bundled 32x32 demo models (CPU friendly)
    python inference/app.py --ckpt_uncond runs/u/ema_0.9999_step400000.pt --ckpt_cond runs/c/ema_0.9999_step400000.pt
    python inference/app.py --host 0.0.0.0 --port 8080   # reachable from other machines (no login!)
    python inference/app.py --share                # also a public gradio.live link (needs the internet)

Needs the app extra: ``pip install -e ".[app]"``. The model options mean what they mean
for ``inference/sample.py``. Uploads and results live in a temporary folder that is
deleted when the app stops (Ctrl-C).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import signal
import tempfile

import ivid.threads  # noqa: F401 - first: OpenMP's CPU-thread defaults, read when torch loads
from ivid.cli import add_debug_option, run_cli
from ivid.errors import OptionError
from ivid.sampling.presets import PRESETS

_EXTRA = 'the web app needs its extra: pip install -e ".[app]" (gradio, trimesh)'


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every network interface)")
    p.add_argument("--port", type=int, default=None, help="port; default: 7860, or the next free one")
    p.add_argument("--share", action="store_true", help="also serve through a public gradio.live link")
    p.add_argument("--concurrency", type=int, default=1, help="jobs that run at the same time (others wait in line)")
    p.add_argument("--preset", default=None, choices=sorted(PRESETS),
                   help="bundled models; default: the released models when ckpts/imagenet128_*.pt are present, "
                        "else demo")
    p.add_argument("--config_uncond", default=None, help="config of G_u (as for inference/sample.py)")
    p.add_argument("--ckpt_uncond", default=None, help="G_u weights")
    p.add_argument("--config_cond", default=None, help="config of G_c")
    p.add_argument("--ckpt_cond", default=None, help="G_c weights")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ...; default: a GPU when visible, else CPU")
    p.add_argument("--max_megapixels", type=float, default=40.0, help="largest photo accepted (million pixels)")
    p.add_argument("--max_upload_mb", type=float, default=25.0, help="largest upload accepted (MB)")
    p.add_argument("--video_frames", type=int, default=60, help="frames of the swing video (30 fps)")
    add_debug_option(p)
    args = p.parse_args(argv)
    for option in ("concurrency", "video_frames"):
        if getattr(args, option) < 1:
            p.error(f"--{option} {getattr(args, option)}: must be >= 1")
    for option in ("max_megapixels", "max_upload_mb"):
        if getattr(args, option) <= 0:
            p.error(f"--{option} {getattr(args, option)}: must be > 0")
    if args.port is not None and not 0 < args.port < 65536:
        p.error(f"--port {args.port}: must be 1-65535")
    return args


def _interrupt(signum, frame):
    raise KeyboardInterrupt()  # SIGTERM ends the app like Ctrl-C: jobs stop, the temporary folder goes


def main(args: argparse.Namespace) -> None:
    if importlib.util.find_spec("gradio") is None or importlib.util.find_spec("trimesh") is None:
        raise OptionError(_EXTRA)
    signal.signal(signal.SIGTERM, _interrupt)
    work_dir = tempfile.mkdtemp(prefix="ivid-app-")
    # Before gradio is imported (it reads these once): uploads go into the app's folder; no analytics calls.
    os.environ["GRADIO_TEMP_DIR"] = os.path.join(work_dir, "uploads")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    try:
        from ivid.app import AppSettings, resolve_models
        from ivid.app.ui import launch_app
        from ivid.utils.device import resolve_device

        models = resolve_models(args.preset, config_uncond=args.config_uncond, ckpt_uncond=args.ckpt_uncond,
                                config_cond=args.config_cond, ckpt_cond=args.ckpt_cond)
        try:
            resolve_device(args.device)
        except ValueError as err:
            raise OptionError(f"--device {args.device}: {err}") from None
        settings = AppSettings(models=models, work_dir=work_dir, device=args.device,
                               max_megapixels=args.max_megapixels, max_upload_mb=args.max_upload_mb,
                               video_frames=args.video_frames)
        print(f"serving {models.reason}")
        for option, path in models.files():
            if not os.path.isfile(path):
                print(f"warning: --{option} {path} is missing; jobs will say how to get it")
        demo, runner, url, share_url = launch_app(settings, host=args.host, port=args.port, share=args.share,
                                                  concurrency=args.concurrency)
        print(f"open {url} in a browser" + (f" (public link: {share_url})" if share_url else "")
              + "; Ctrl-C stops the app")
        try:
            demo.block_thread()
        finally:
            runner.stop_all()  # a running job stops at its next view, so the process can exit
            demo.close()
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)


if __name__ == "__main__":
    run_cli(main, parse_args)
