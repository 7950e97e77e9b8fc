"""Plot training-loss curves (or another logged value) from run logs (``<run>/log.jsonl``) into a PNG.

Example::

    python scripts/plot_training_log.py --log runs/demo_uncond/log.jsonl runs/demo_cond/log.jsonl \\
        --label "G_u" "G_c" --output ckpts/demo/loss_curves.png
    python scripts/plot_training_log.py --log runs/demo_cond --key condition_usage.gap --linear_y \\
        --title "G_c condition usage" --output ckpts/demo/condition_gap.png

``--key`` picks the plotted value by its dotted path in the log line (default ``loss``).

Reads the trainer's JSON lines (``ivid.training``: one object per ``i_log`` steps
with ``step`` and ``loss`` = mean loss over the steps since the previous line;
event lines such as ``{"event": "resume"}`` carry no loss and are skipped).
When a run was resumed from an earlier checkpoint, the lines it wrote after that
step before the restart are superseded by the new ones. Draws each curve raw
(thin) and smoothed (thick, exponential moving average), on a log-scale loss axis
by default. Needs only Pillow (no matplotlib).
"""

from __future__ import annotations

import argparse
import json
import math
import os
from typing import List, Sequence, Tuple

import numpy as np
from PIL import Image, ImageDraw, ImageFont

import ivid.threads  # noqa: F401 - first: OpenMP's CPU-thread defaults, read when torch loads
from ivid.cli import add_debug_option, run_cli
from ivid.errors import OptionError
from ivid.utils.images import save_png

#: line colours (RGB) of the curves, in order
COLORS = ((31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189), (255, 127, 14))


def _lookup(record: dict, key: str):
    """``record["a"]["b"]`` for ``key`` ``"a.b"``; None where a part is missing."""
    value = record
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def read_log(path: str, key: str = "loss") -> Tuple[np.ndarray, np.ndarray]:
    """``(steps int64 (K,), values float64 (K,))`` of the lines of a ``log.jsonl`` that hold ``key``
    (a dotted path, e.g. ``condition_usage.gap``), in step order.

    Raises:
        FileNotFoundError: the file is missing.
        ValueError: a line is not JSON, or the file holds no line with ``key``.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"--log {path}: file not found")
    records: List[Tuple[int, float]] = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise OptionError(f"--log {path}: line {number} is not JSON ({err})") from err
            value = _lookup(record, key)
            if value is None or "step" not in record:
                continue
            step = int(record["step"])
            records = [r for r in records if r[0] < step]  # a resumed run supersedes later lines
            records.append((step, float(value)))
    if not records:
        raise OptionError(f"--log {path}: no line with 'step' and {key!r}")
    steps, losses = zip(*records)
    return np.asarray(steps, np.int64), np.asarray(losses, np.float64)


def smooth(values: np.ndarray, weight: float) -> np.ndarray:
    """Debiased exponential moving average (weight 0 = no smoothing, < 1)."""
    out, avg, norm = np.empty_like(values, dtype=np.float64), 0.0, 0.0
    for i, v in enumerate(values):
        avg = weight * avg + (1 - weight) * v
        norm = weight * norm + (1 - weight)
        out[i] = avg / norm
    return out


def nice_ticks(lo: float, hi: float, count: int = 6) -> List[float]:
    """Round tick values covering [lo, hi] on a linear axis (1, 2, 5 x 10^k spacing)."""
    span = max(hi - lo, 1e-12)
    raw = span / max(count - 1, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


def log_ticks(lo: float, hi: float) -> List[float]:
    """Tick values m x 10^k inside [lo, hi] (lo > 0): m in (1, 2, 5), or 1..9 for short ranges."""
    for mantissas in ((1, 2, 5), (1, 2, 3, 5), tuple(range(1, 10))):
        ticks = [m * 10.0 ** k for k in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
                 for m in mantissas]
        inside = [t for t in ticks if lo <= t <= hi]
        if len(inside) >= 3:
            return inside
    return inside if len(inside) >= 2 else [lo, hi]


def _label(value: float) -> str:
    if value == round(value):
        return f"{value:.0f}"
    return f"{value:.3g}" if abs(value) >= 1e-3 else f"{value:.0e}"


class _Axes:
    """Maps data coordinates to pixels inside a plot box ``(left, top, right, bottom)``."""

    def __init__(self, box: Tuple[int, int, int, int], x_range: Tuple[float, float],
                 y_range: Tuple[float, float], log_y: bool):
        self.box, self.x_range, self.log_y = box, x_range, log_y
        self.y_range = tuple(math.log10(v) for v in y_range) if log_y else y_range

    def x(self, value: float) -> float:
        left, _, right, _ = self.box
        lo, hi = self.x_range
        return left + (value - lo) / max(hi - lo, 1e-12) * (right - left)

    def y(self, value: float) -> float:
        _, top, _, bottom = self.box
        lo, hi = self.y_range
        v = math.log10(max(value, 1e-12)) if self.log_y else value
        return bottom - (v - lo) / max(hi - lo, 1e-12) * (bottom - top)


def _draw_frame(draw: ImageDraw.ImageDraw, axes: _Axes, y_lo: float, y_hi: float, font, title: str,
                y_name: str = "loss") -> None:
    left, top, right, bottom = axes.box
    grid, ink = (225, 225, 225), (40, 40, 40)
    for tick in nice_ticks(*axes.x_range):
        px = axes.x(tick)
        draw.line([(px, top), (px, bottom)], fill=grid)
        draw.text((px, bottom + 6), _label(tick), fill=ink, font=font, anchor="mt")
    for tick in (log_ticks(y_lo, y_hi) if axes.log_y else nice_ticks(y_lo, y_hi)):
        py = axes.y(tick)
        draw.line([(left, py), (right, py)], fill=grid)
        draw.text((left - 6, py), _label(tick), fill=ink, font=font, anchor="rm")
    draw.rectangle([left, top, right, bottom], outline=ink)
    draw.text(((left + right) / 2, bottom + 26), "step", fill=ink, font=font, anchor="mt")
    draw.text((left, top - 8), y_name + (" (log scale)" if axes.log_y else ""), fill=ink, font=font, anchor="ld")
    draw.text(((left + right) / 2, 8), title, fill=ink, font=font, anchor="mt")


def draw_curves(series: Sequence[Tuple[str, np.ndarray, np.ndarray]], title: str = "training loss",
                width: int = 800, height: int = 450, log_y: bool = True, smoothing: float = 0.6,
                y_name: str = "loss") -> np.ndarray:
    """Render curves ``(label, steps, values)`` to an ``height x width x 3`` uint8 image."""
    font = ImageFont.load_default(size=14)
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    all_steps = np.concatenate([s for _, s, _ in series]).astype(np.float64)
    all_losses = np.concatenate([v for _, _, v in series])
    positive = all_losses[all_losses > 0]
    y_lo, y_hi = (positive.min(), positive.max()) if positive.size else (1e-3, 1.0)
    if log_y:
        y_lo, y_hi = y_lo / 1.15, y_hi * 1.15
    else:
        pad = 0.05 * max(y_hi - y_lo, 1e-12)
        y_lo, y_hi = (y_lo - pad if y_lo < 0 else max(0.0, y_lo - pad)), y_hi + pad
    axes = _Axes((70, 40, width - 20, height - 50), (0.0, max(all_steps.max(), 1.0)), (y_lo, y_hi), log_y)
    _draw_frame(draw, axes, y_lo, y_hi, font, title, y_name)
    for i, (label, steps, losses) in enumerate(series):
        color = COLORS[i % len(COLORS)]
        light = tuple(int(c + (255 - c) * 0.65) for c in color)
        for values, line_color, line_width in ((losses, light, 1), (smooth(losses, smoothing), color, 2)):
            points = [(axes.x(s), axes.y(v)) for s, v in zip(steps, values)]
            if len(points) > 1:
                draw.line(points, fill=line_color, width=line_width, joint="curve")
        final = f"{label}: {losses[-1]:.4f} at step {int(steps[-1])}"
        draw.line([(axes.box[2] - 300, 52 + 20 * i), (axes.box[2] - 280, 52 + 20 * i)], fill=color, width=3)
        draw.text((axes.box[2] - 274, 52 + 20 * i), final, fill=(40, 40, 40), font=font, anchor="lm")
    return np.asarray(image)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--log", nargs="+", required=True, help="log.jsonl files (or run folders holding one)")
    p.add_argument("--label", nargs="*", default=None, help="one legend label per log (default: run folder name)")
    p.add_argument("--output", required=True, help="PNG to write")
    p.add_argument("--title", default="training loss")
    p.add_argument("--key", default="loss", help="logged value to plot, as a dotted path (e.g. condition_usage.gap)")
    p.add_argument("--smoothing", type=float, default=0.6, help="EMA weight of the thick curve, in [0, 1)")
    p.add_argument("--linear_y", action="store_true", help="linear loss axis (default: log scale)")
    p.add_argument("--width", type=int, default=800)
    p.add_argument("--height", type=int, default=450)
    add_debug_option(p)
    return p.parse_args(argv)


def main(args: argparse.Namespace) -> str:
    logs = [os.path.join(p, "log.jsonl") if os.path.isdir(p) else p for p in args.log]
    labels = args.label or [os.path.basename(os.path.dirname(os.path.abspath(p))) for p in logs]
    if len(labels) != len(logs):
        raise OptionError(f"--label: {len(labels)} labels for {len(logs)} logs")
    if not 0.0 <= args.smoothing < 1.0:
        raise OptionError(f"--smoothing: must be in [0, 1), got {args.smoothing}")
    series = [(label, *read_log(path, args.key)) for label, path in zip(labels, logs)]
    image = draw_curves(series, args.title, args.width, args.height, not args.linear_y, args.smoothing, args.key)
    save_png(args.output, image)
    for label, steps, losses in series:
        print(f"{label}: {len(steps)} points, last step {int(steps[-1])}, last {args.key} {losses[-1]:.5f}")
    print(f"wrote {args.output}")
    return args.output


if __name__ == "__main__":
    run_cli(main, parse_args)
