"""Procedural RGBD toy dataset with exact depth (tests, benchmarks, the demo models).

Each image is a small scene - a main object of a class-specific kind, a few
props, a textured ground plane and a backdrop wall - ray-cast analytically
(:mod:`ivid.toy.raycast`) by an IVID orbit camera on the unit sphere (fov 45)
looking at the origin from a small pitch (``CAMERA_PITCH_RANGE``, so tops of
objects show); the image is what the canonical view of that scene looks like.
The main object sits near the origin, i.e. at depth ~1, so the unit-sphere
orbit of IVID's cameras keeps it centred; visible depths lie in ~[0.6, 3.6].

Layouts (the training layout of docs/design.md#training-data, PNG images):

- ``imagenet``: ``images/n0000000k/n0000000k_<i>.png``, ``depths/n0000000k/n0000000k_<i>.npz``;
  image i belongs to class ``k = i % num_classes``; class k has object kind
  ``KINDS[k % len(KINDS)]``, its own hue and (beyond ``len(KINDS)`` classes) its own pattern.
- ``single``: ``images/<i>.png``, ``depths/<i>.npz``; one category ("figure").

Depth files are stored exactly like MiDaS outputs: ``arr_0`` = float16
**disparity scaled by 6250**, ``arr_0 = float16(6250 / depth)`` with ``depth`` the
linear z-depth in scene units. The training preprocessing (``disp = arr_0 / 6250``;
no rescaling since every depth is > near = 0.5; z-buffer with near 0.5, far 100)
therefore recovers the scene's inverse depth up to float16 rounding (relative
error <= 2^-11). Image ``i`` depends only on (seed, i, layout, classes, size):
the output is deterministic and independent of the number of workers.
"""

from __future__ import annotations

import colorsys
import json
import math
import multiprocessing
import os
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from ivid.data.index import INDEX_NAME, build_index, write_index
from ivid.data.preprocess import DISPARITY_SCALE
from ivid.utils.images import save_png
from ivid.utils.io import atomic_save_npz, atomic_write

from .raycast import Box, Cylinder, Ellipsoid, Material, Plane, Scene, render_scene

KINDS = ("ball", "crate", "snowman", "pillar", "tower", "table", "mushroom", "cluster", "figure", "pair")
#: main pattern of each kind (classes beyond len(KINDS) cycle through PATTERN_VARIANTS)
KIND_PATTERN = {"ball": "checker", "crate": "stripes", "snowman": "dots", "pillar": "stripes",
                "tower": "checker", "table": "stripes", "mushroom": "dots", "cluster": "noise",
                "figure": "solid", "pair": "diagonal"}
PATTERN_VARIANTS = ("checker", "stripes", "dots", "diagonal", "noise", "rings")
LAYOUTS = ("imagenet", "single")
#: the camera looks down at the scene from this pitch range (radians) ...
CAMERA_PITCH_RANGE = (0.3, 0.5)
#: ... and the ground lies this far below the origin, so that the camera height above
#: the ground (>= 0.6) keeps the ground's depth gradient below the warp's discontinuity
#: thresholds (atol = rtol = 0.02) down to 64 x 64 images
GROUND_HEIGHT_RANGE = (0.3, 0.36)

Rng = np.random.Generator


def wnid(k: int) -> str:
    """Folder name of class k: ``n`` + 8 digits (``n00000003``)."""
    return f"n{k:08d}"


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(h % 1.0, min(max(s, 0), 1), min(max(v, 0), 1)), np.float32)


class _Style:
    """Colours and pattern of one image's main object (class theme + per-image jitter)."""

    def __init__(self, rng: Rng, hue: float, pattern: str) -> None:
        self.rng = rng
        self.hue = hue + rng.uniform(-0.03, 0.03)
        self.pattern = pattern
        self.noise = rng.random((64, 64), dtype=np.float32)

    def main(self, pattern: Optional[str] = None, scale=(8.0, 4.0), gloss: float = 0.25) -> Material:
        c1 = _hsv(self.hue, self.rng.uniform(0.65, 0.85), self.rng.uniform(0.8, 0.95))
        c2 = _hsv(self.hue + 0.5, 0.1, 0.97) if self.rng.random() < 0.6 else _hsv(self.hue + 0.08, 0.9, 0.45)
        return Material(c1, c2, pattern or self.pattern, scale, gloss, self.noise)

    def accent(self, value: float = 0.25) -> Material:
        return Material(_hsv(self.hue + 0.5, 0.6, value), pattern="solid", gloss=0.4)

    def prop(self) -> Material:
        hue = self.rng.random()
        pattern = str(self.rng.choice(["solid", "checker", "stripes", "dots"]))
        return Material(_hsv(hue, 0.6, 0.85), _hsv(hue, 0.2, 0.98), pattern, (6.0, 3.0), 0.3, self.noise)


# ---- main objects: each returns shapes resting on the ground plane y = y0, centred at (x, z) ------
def _ball(rng, s, y0, x, z):
    r = rng.uniform(0.17, 0.24)
    return [Ellipsoid((x, y0 + r, z), s.main(scale=(8.0, 4.0)), rng.uniform(0, 6.3), (r, r, r))]


def _crate(rng, s, y0, x, z):
    e = rng.uniform(0.12, 0.17)
    half = (e * rng.uniform(0.9, 1.3), e * rng.uniform(0.8, 1.2), e * rng.uniform(0.9, 1.2))
    return [Box((x, y0 + half[1], z), s.main(scale=(10.0, 10.0)), rng.uniform(-0.9, 0.9), half)]


def _snowman(rng, s, y0, x, z):
    r1 = rng.uniform(0.12, 0.15)
    r2, r3 = 0.72 * r1, 0.5 * r1
    c1, c2 = y0 + r1, y0 + 2 * r1 + 0.75 * r2
    c3 = c2 + r2 + 0.7 * r3
    body = s.main(scale=(10.0, 5.0))
    return [Ellipsoid((x, c1, z), body, 0.0, (r1, r1, r1)), Ellipsoid((x, c2, z), body, 0.0, (r2, r2, r2)),
            Ellipsoid((x, c3, z), s.main("solid"), 0.0, (r3, r3, r3)),
            Ellipsoid((x, c3, z + r3), s.accent(0.9), 0.0, (0.012, 0.012, 0.05)),
            Cylinder((x, c3 + 0.9 * r3, z), s.accent(0.15), 0.0, 0.6 * r3, 0.35 * r3)]


def _pillar(rng, s, y0, x, z):
    r, h = rng.uniform(0.09, 0.13), rng.uniform(0.2, 0.27)
    return [Cylinder((x, y0 + h, z), s.main(scale=(1.0, 14.0)), rng.uniform(0, 6.3), r, h),
            Box((x, y0 + 2 * h + 0.02, z), s.accent(0.85), rng.uniform(0, 1.6), (r * 1.2, 0.02, r * 1.2))]


def _tower(rng, s, y0, x, z):
    shapes, y = [], y0
    for level in range(3):
        e = 0.13 * (0.75 ** level) * rng.uniform(0.9, 1.1)
        shapes.append(Box((x, y + e * 0.8, z), s.main(scale=(8.0, 8.0)), rng.uniform(-0.8, 0.8), (e, e * 0.8, e)))
        y += 1.6 * e
    return shapes


def _table(rng, s, y0, x, z):
    hx, hz, h = rng.uniform(0.17, 0.22), rng.uniform(0.11, 0.15), rng.uniform(0.17, 0.22)
    yaw = rng.uniform(-0.7, 0.7)
    top = Box((x, y0 + h, z), s.main(scale=(20.0, 20.0)), yaw, (hx, 0.018, hz))
    c, sn = math.cos(yaw), math.sin(yaw)
    legs = []
    for lx, lz in ((hx - 0.02, hz - 0.02), (-hx + 0.02, hz - 0.02), (hx - 0.02, -hz + 0.02), (-hx + 0.02, -hz + 0.02)):
        wx, wz = x + c * lx + sn * lz, z - sn * lx + c * lz
        legs.append(Box((wx, y0 + h / 2, wz), s.accent(0.3), yaw, (0.014, h / 2, 0.014)))
    r = rng.uniform(0.04, 0.06)
    item = Ellipsoid((x, y0 + h + 0.018 + r, z), s.prop(), 0.0, (r, r, r))
    return [top, item] + legs


def _mushroom(rng, s, y0, x, z):
    h, r = rng.uniform(0.08, 0.11), rng.uniform(0.04, 0.055)
    cap = (rng.uniform(0.15, 0.19), rng.uniform(0.07, 0.09), rng.uniform(0.15, 0.19))
    stem = Material(_hsv(0.12, 0.15, 0.95), pattern="solid")
    return [Cylinder((x, y0 + h, z), stem, 0.0, r, h),
            Ellipsoid((x, y0 + 2 * h, z), s.main(scale=(14.0, 7.0)), rng.uniform(0, 6.3), cap)]


def _cluster(rng, s, y0, x, z):
    shapes = []
    for _ in range(int(rng.integers(4, 7))):
        r = rng.uniform(0.05, 0.1)
        a, dist = rng.uniform(0, 2 * math.pi), rng.uniform(0.0, 0.16)
        style = s.main(scale=(6.0, 3.0)) if rng.random() < 0.7 else s.prop()
        shapes.append(Ellipsoid((x + dist * math.cos(a), y0 + r + rng.uniform(0, 0.12) * (dist < 0.05),
                                 z + dist * math.sin(a)), style, 0.0, (r, r, r)))
    return shapes


def _figure(rng, s, y0, x, z):
    body = (rng.uniform(0.1, 0.13), rng.uniform(0.13, 0.17), rng.uniform(0.08, 0.1))
    head = rng.uniform(0.075, 0.095)
    yaw = rng.uniform(-0.5, 0.5)
    hy = y0 + 2 * body[1] + 0.8 * head
    fx, fz = math.sin(yaw), math.cos(yaw)
    eyes = []
    for side in (-1, 1):
        ex, ez = x + fx * 0.85 * head + side * 0.35 * head * fz, z + fz * 0.85 * head - side * 0.35 * head * fx
        eyes.append(Ellipsoid((ex, hy + 0.2 * head, ez), Material((0.05, 0.05, 0.08), gloss=0.6), 0.0,
                              (0.18 * head,) * 3))
    return [Ellipsoid((x, y0 + body[1], z), s.main(scale=(8.0, 6.0)), yaw, body),
            Ellipsoid((x, hy, z), s.main("solid"), yaw, (head, head, head)),
            Cylinder((x, hy + 0.9 * head, z), s.accent(0.2), yaw, 0.75 * head, 0.25 * head)] + eyes


def _pair(rng, s, y0, x, z):
    r, e = rng.uniform(0.09, 0.12), rng.uniform(0.08, 0.1)
    side = 1 if rng.random() < 0.5 else -1
    return [Ellipsoid((x + side * 0.12, y0 + r, z + 0.03), s.main(scale=(8.0, 4.0)), 0.0, (r, r, r)),
            Box((x - side * 0.12, y0 + e, z - 0.04), s.main("checker", scale=(12.0, 12.0)),
                rng.uniform(-0.8, 0.8), (e, e, e))]


_BUILDERS: Dict[str, Callable] = {"ball": _ball, "crate": _crate, "snowman": _snowman, "pillar": _pillar,
                                  "tower": _tower, "table": _table, "mushroom": _mushroom,
                                  "cluster": _cluster, "figure": _figure, "pair": _pair}


def _props(rng: Rng, style: _Style, y0: float) -> list:
    """0-2 small objects around the main one (behind or beside it)."""
    shapes = []
    for _ in range(int(rng.integers(0, 3))):
        a = rng.uniform(-math.pi, 0.3) if rng.random() < 0.5 else rng.uniform(math.pi - 0.3, 2 * math.pi)
        dist = rng.uniform(0.32, 0.55)
        px, pz = dist * math.cos(a), min(dist * math.sin(a), 0.15)
        size = rng.uniform(0.035, 0.06)
        if rng.random() < 0.5:
            shapes.append(Ellipsoid((px, y0 + size, pz), style.prop(), 0.0, (size,) * 3))
        else:
            shapes.append(Box((px, y0 + size, pz), style.prop(), rng.uniform(0, 1.6), (size,) * 3))
    return shapes


def _ground_and_backdrop(rng: Rng, y0: float, noise: np.ndarray) -> List[Plane]:
    hue = rng.random()
    ground_kind = int(rng.integers(4))
    ground = [Material(_hsv(hue, 0.15, 0.85), _hsv(hue, 0.25, 0.55), "checker", (6.0, 6.0)),
              Material(_hsv(0.3 + 0.1 * rng.random(), 0.55, 0.45), _hsv(0.25, 0.6, 0.7), "noise", (9.0, 9.0)),
              Material(_hsv(0.08, 0.5, 0.6), _hsv(0.07, 0.55, 0.42), "stripes", (14.0, 1.0)),
              Material(_hsv(hue, 0.35, 0.9), _hsv(hue, 0.1, 0.98), "checker", (12.0, 12.0))][ground_kind]
    back_hue = rng.random()
    back_kind = int(rng.integers(4))
    back = [Material(_hsv(0.58, 0.35, 0.98), _hsv(0.6, 0.55, 0.7), "gradient", (1.0, 0.45)),
            Material(_hsv(back_hue, 0.3, 0.85), _hsv(back_hue, 0.35, 0.7), "stripes", (5.0, 1.0)),
            Material(_hsv(0.03, 0.55, 0.65), _hsv(0.1, 0.1, 0.85), "bricks", (4.0, 8.0)),
            Material(_hsv(back_hue, 0.25, 0.9), _hsv(back_hue + 0.1, 0.45, 0.6), "noise", (3.0, 3.0))][back_kind]
    ground.noise = back.noise = noise
    wall_z, wall_yaw = -rng.uniform(1.6, 2.4), rng.uniform(-0.3, 0.3)
    normal = (math.sin(wall_yaw), 0.0, math.cos(wall_yaw))
    return [Plane((0.0, y0, 0.0), (0.0, 1.0, 0.0), (1.0, 0.0, 0.0), (0.0, 0.0, 1.0), ground),
            Plane((0.0, 0.0, wall_z), normal, (normal[2], 0.0, -normal[0]), (0.0, -1.0, 0.0), back)]


def class_theme(k: int) -> Tuple[str, float, str]:
    """(kind, hue, pattern) of class ``k``."""
    kind = KINDS[k % len(KINDS)]
    hue = (0.03 + 0.618034 * k) % 1.0
    pattern = KIND_PATTERN[kind] if k < len(KINDS) else PATTERN_VARIANTS[(k // len(KINDS) + k) % len(PATTERN_VARIANTS)]
    return kind, hue, pattern


def make_scene(rng: Rng, kind: str, hue: float, pattern: str) -> Scene:
    """A random scene whose main object is a ``kind`` with the given hue and pattern."""
    if kind not in _BUILDERS:
        raise ValueError(f"unknown toy object kind {kind!r}; valid: {KINDS}")
    style = _Style(rng, hue, pattern)
    y0 = -rng.uniform(*GROUND_HEIGHT_RANGE)
    x, z = rng.uniform(-0.06, 0.06), rng.uniform(-0.1, 0.05)
    objects = _BUILDERS[kind](rng, style, y0, x, z) + _props(rng, style, y0)
    light = (rng.uniform(-0.9, 0.9), 1.0, rng.uniform(0.3, 1.0))
    pitch = rng.uniform(*CAMERA_PITCH_RANGE)
    return Scene(objects, _ground_and_backdrop(rng, y0, style.noise), light, rng.uniform(0.28, 0.36), pitch)


def image_scene(seed: int, i: int, layout: str, num_classes: int) -> Tuple[Scene, Optional[int]]:
    """Scene of image ``i`` (and its class for the imagenet layout)."""
    rng = np.random.default_rng([int(seed), int(i), 7])
    if layout == "single":
        return make_scene(rng, "figure", rng.random(), str(rng.choice(["solid", "stripes", "dots", "noise"]))), None
    k = i % num_classes
    return make_scene(rng, *class_theme(k)), k


def disparity_from_depth(depth: np.ndarray) -> np.ndarray:
    """Linear depth -> MiDaS-style stored disparity ``float16(6250 / depth)``."""
    return (DISPARITY_SCALE / depth.astype(np.float64)).astype(np.float16)


def relative_paths(i: int, layout: str, num_classes: int) -> Tuple[str, str]:
    """(image path, depth path) of image ``i`` relative to the output folder."""
    stem = f"{i:06d}" if layout == "single" else f"{wnid(i % num_classes)}/{wnid(i % num_classes)}_{i:06d}"
    return f"images/{stem}.png", f"depths/{stem}.npz"


def _write_one(job: Tuple[str, int, int, str, int, int, int]) -> int:
    output_dir, i, image_size, layout, num_classes, seed, ssaa = job
    scene, _ = image_scene(seed, i, layout, num_classes)
    rgb, depth = render_scene(scene, image_size, ssaa)
    if not np.isfinite(depth).all() or depth.min() <= 0.5:
        raise RuntimeError(f"toy image {i}: depth out of range [{depth.min()}, {depth.max()}]")
    image_rel, depth_rel = relative_paths(i, layout, num_classes)
    save_png(os.path.join(output_dir, image_rel), rgb)
    atomic_save_npz(os.path.join(output_dir, depth_rel), {"arr_0": disparity_from_depth(depth)})
    return i


def generate_dataset(output_dir: str, num_images: int, image_size: int, layout: str = "imagenet",
                     num_classes: int = 10, seed: int = 0, num_workers: int = 1, ssaa: int = 3,
                     verbose: bool = True) -> Dict[str, object]:
    """Write a toy dataset (images, depths, ``dataset.json``, ``toy_info.json``) to ``output_dir``.

    Returns:
        the ``toy_info.json`` content (settings and class names).
    """
    from ivid.errors import OptionError

    if layout not in LAYOUTS:
        raise OptionError(f"--layout must be one of {LAYOUTS}, got {layout!r}")
    for option, value, low in (("--num_images", num_images, 1), ("--image_size", image_size, 8),
                               ("--num_classes", num_classes, 1)):
        if value < low:
            raise OptionError(f"{option} {value}: must be >= {low}")
    from tqdm import tqdm

    jobs = [(output_dir, i, image_size, layout, num_classes, seed, ssaa) for i in range(num_images)]
    bar = tqdm(total=num_images, desc="toy images", disable=not verbose)
    if num_workers > 1:
        with multiprocessing.Pool(num_workers) as pool:
            for _ in pool.imap_unordered(_write_one, jobs, chunksize=8):
                bar.update()
    else:
        for job in jobs:
            _write_one(job)
            bar.update()
    bar.close()
    classes = ({wnid(k): "%s (hue %.2f, %s)" % class_theme(k) for k in range(num_classes)}
               if layout == "imagenet" else {})
    info = {"generator": "ivid.toy", "seed": seed, "num_images": num_images, "image_size": image_size,
            "layout": layout, "ssaa": ssaa, "classes": classes,
            "depth_format": "arr_0 = float16(6250 / linear_depth)"}
    with atomic_write(os.path.join(output_dir, "toy_info.json"), "w") as f:
        json.dump(info, f, indent=1)
    write_index(os.path.join(output_dir, INDEX_NAME), build_index(output_dir, layout))
    return info
