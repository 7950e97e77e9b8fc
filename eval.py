"""FID / KID / IS of generated images against real images (clean-fid Inception; see docs/evaluation.md).

Example (the paper's protocol, after `inference/sample.py --num_samples 10000 --classes uniform
--viewset random --steps_uncond 1000 --steps_cond 50 --guidance 0.5`; docs/evaluation.md):
    python eval.py --real_images_dir data/imagenet/train \
        --fake_images_dir samples/imagenet128/viewset_random_steps_u1000_c50_guidance0.5/results

Caches (`<tmp_dir>/<name>.npz`): with --use_real_images_cache / --use_fake_images_cache an
existing cache is reused (it must match mode, size, extractor and image list), a missing one
is computed and saved; without the flag the features are recomputed, a missing cache is
saved and an existing one is left unchanged; --overwrite_cache recomputes and replaces.
Results: a table on stdout and one JSON line appended to `<metrics_dir>/<fake cache name>.jsonl`.

3D consistency of sampled scenes (same as scripts/eval_consistency.py, whose options it takes):
    python eval.py --metrics consistency --scene_dir samples/demo/viewset_3x9_steps_u100_c20_guidance3.0
"""

from __future__ import annotations

import argparse
import os
import sys

import ivid.threads  # noqa: F401 - first: OpenMP's CPU-thread defaults, read when torch loads
from ivid.cli import add_debug_option, run_cli
from ivid.metrics import (
    DEFAULT_MODE,
    METRIC_CHOICES,
    MODES,
    EvaluationRequest,
    MetricsError,
    default_cache_name,
    list_images,
    run_evaluation,
)
from ivid.metrics import consistency_run
from ivid.utils.io import remove_orphan_temps
from ivid.utils.run_record import append_json_line, run_record


#: the paper's protocol scores 10,000 generated images (the reference's default)
DEFAULT_NUM_SAMPLES = 10000


def parse_args(argv=None) -> argparse.Namespace:
    argv = sys.argv[1:] if argv is None else list(argv)
    if any(a.split("=")[0] == "--scene_dir" for a in argv):  # --metrics consistency: docs/evaluation.md
        return consistency_run.parse_args(argv)
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--real_images_dir", help="real images, searched recursively (not needed for --metrics is)")
    p.add_argument("--fake_images_dir", required=True, help="generated images, each image_size x image_size")
    p.add_argument("--tmp_dir", default=os.path.join("metrics", "cache"), help="folder of the feature caches")
    p.add_argument("--image_size", type=int, default=128, help="real images are centre-cropped and resized to this")
    p.add_argument("--num_samples", type=int, default=DEFAULT_NUM_SAMPLES,
                   help="seeded choice of this many fake images (the paper's protocol: 10000, the default); "
                        "a folder with fewer is used whole, with a note")
    p.add_argument("--real_images_cache_name", default=None, help="default: <real dir tail>_<mode>_<size>")
    p.add_argument("--fake_images_cache_name", default=None, help="default: <fake dir tail>_<mode>_<size>")
    p.add_argument("--use_real_images_cache", action="store_true", help="reuse the real cache if it exists")
    p.add_argument("--use_fake_images_cache", action="store_true", help="reuse the fake cache if it exists")
    p.add_argument("--overwrite_cache", action="store_true", help="recompute and replace the caches")
    p.add_argument("--metrics", nargs="+", choices=METRIC_CHOICES, default=None,
                   help="default: fid kid is (fid kid in legacy_pytorch mode)")
    p.add_argument("--mode", choices=MODES, default=DEFAULT_MODE, help="clean-fid mode")
    p.add_argument("--inception_weights", default=None, help="local inception-2015-12-05.pt (offline use)")
    p.add_argument("--metrics_dir", default="metrics", help="where <fake cache name>.jsonl is appended")
    p.add_argument("--device", default=None, help="cuda, cpu, ... (default: cuda when available)")
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--num_workers", type=int, default=min(8, os.cpu_count() or 1), help="image loader processes")
    p.add_argument("--seed", type=int, default=0, help="fake sub-sample, KID subsets, IS shuffle")
    p.add_argument("--quiet", action="store_true", help="no progress bars or notes")
    p.add_argument("--skip_bad_images", action="store_true",
                   help="leave out unreadable or wrongly sized images (counted in the report) instead of stopping")
    add_debug_option(p)
    return p.parse_args(argv)


def format_table(scores: dict) -> str:
    """Two-column text table of the scores."""
    lines = [f"{'metric':<10} {'value':>14}", f"{'-' * 10} {'-' * 14}"]
    lines += [f"{key:<10} {value:>14.6g}" for key, value in scores.items()]
    return "\n".join(lines)


def _available_samples(fake_dir: str, num_samples, quiet: bool):
    """As the reference: at most ``num_samples`` fake images; a folder holding fewer is used whole (None)."""
    if num_samples is None or not os.path.isdir(fake_dir):
        return num_samples
    try:
        count = len(list_images(fake_dir, "fake"))
    except MetricsError:
        return num_samples  # run_evaluation reports the empty folder
    if count >= num_samples:
        return num_samples
    if not quiet:
        print(f"note: {fake_dir} holds {count} images, fewer than --num_samples {num_samples}: using all {count} "
              "(the paper's protocol scores 10,000)", file=sys.stderr)
    return None


def to_request(args: argparse.Namespace) -> EvaluationRequest:
    """The options as an :class:`EvaluationRequest` (default metrics and cache names filled in; a folder with
    fewer fake images than ``--num_samples`` is used whole, as the reference)."""
    metrics = args.metrics or (["fid", "kid"] if args.mode == "legacy_pytorch" else ["fid", "kid", "is"])
    real_name = args.real_images_cache_name
    if real_name is None and args.real_images_dir:
        real_name = default_cache_name(args.real_images_dir, args.mode, args.image_size)
    fake_name = args.fake_images_cache_name or default_cache_name(args.fake_images_dir, args.mode, args.image_size)
    return EvaluationRequest(
        args.real_images_dir, args.fake_images_dir, metrics, args.image_size,
        _available_samples(args.fake_images_dir, args.num_samples, args.quiet), cache_dir=args.tmp_dir,
        real_cache_name=real_name, fake_cache_name=fake_name, use_real_cache=args.use_real_images_cache,
        use_fake_cache=args.use_fake_images_cache, overwrite_cache=args.overwrite_cache, mode=args.mode,
        inception_weights=args.inception_weights, device=args.device, batch_size=args.batch_size,
        num_workers=args.num_workers, seed=args.seed, verbose=not args.quiet, skip_bad_images=args.skip_bad_images)


def main(args: argparse.Namespace, feature_extractor=None, logits_extractor=None) -> dict:
    """Run the evaluation; ``feature_extractor`` / ``logits_extractor`` replace clean-fid's Inception (tests)."""
    if getattr(args, "scene_dir", None) is not None:  # --metrics consistency --scene_dir DIR
        return consistency_run.main(args)
    for folder in (args.tmp_dir, args.metrics_dir):  # temporaries of a killed earlier run
        remove_orphan_temps(folder)
    request = to_request(args)
    report = run_evaluation(request, feature_extractor, logits_extractor)
    print(format_table(report.scores))
    record = run_record(report.settings, device=report.settings["device"], scores=report.scores, args=vars(args))
    out = os.path.join(args.metrics_dir, f"{request.fake_cache_name}.jsonl")
    append_json_line(out, record)
    print(f"appended to {out}")
    return report.scores


if __name__ == "__main__":
    run_cli(main, parse_args)
