"""Render a contact sheet of the renderer's outputs on the reference room views, for eyeballing.

Rows (128 x 128 tiles, depth colourised, near = warm):

1. warp: input RGB, input depth, forward warp colour / depth (pass 1 at the
   perturbed camera), backward warp colour before and after masking, depth, mask;
2. the reference's backward warp colour / mask for the same case, |ours - reference|
   x 8, and the identity warp (colour, mask: its 1-pixel frame is always masked);
3-4. aggregated conditions for steps 1-4 of the 3x9 loop: colour, depth, mask, mask_rgb;
5. fusion frames of the 5 room views (padding 32, ssaa 5) along a small swing: colour, depth.

Inputs come from ``tests/fixtures/render/``. Example::

    python scripts/contact_sheet.py --output contact_sheet.png
"""

from __future__ import annotations

import argparse
import math
import pathlib

import numpy as np
import ivid.threads  # noqa: F401 - first: OpenMP's CPU-thread defaults, read when torch loads
import torch
from PIL import Image, ImageDraw

from ivid.cli import add_debug_option, run_cli
from ivid.geometry import (aggregate_conditions, depth_to_mesh, forward_backward_warp, orbit_modelview,
                           project_depth, render_fusion)
from ivid.utils.device import resolve_device
from ivid.utils.images import colorize_depth, make_grid, save_png, to_uint8

FIXTURES = pathlib.Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "render"
TILE = 128


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--output", default="contact_sheet.png")
    p.add_argument("--device", default=None, help="cpu, cuda, ...; default: cuda when present, else cpu")
    p.add_argument("--fixtures", default=str(FIXTURES), help="folder with the render/*.npz fixtures")
    add_debug_option(p)
    return p.parse_args(argv)


def _grey(mask) -> np.ndarray:
    m = np.asarray(mask, np.float32).reshape(TILE, TILE)
    return np.repeat((m * 255).astype(np.uint8)[..., None], 3, -1)


def _depth(z01, mask=None) -> np.ndarray:
    return colorize_depth(np.asarray(z01).reshape(TILE, TILE), None if mask is None else np.asarray(mask)[..., 0])


def _np(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def warp_rows(folder: pathlib.Path, device: torch.device):
    fix = np.load(folder / "warp_room128.npz", allow_pickle=False)
    ident = np.load(folder / "warp_room128_identity.npz", allow_pickle=False)

    def run(case):
        rgbd = np.concatenate([case["input_rgb_u8"] / np.float32(255), case["input_depth_zbuf"]], -1)
        out = forward_backward_warp(torch.from_numpy(rgbd.astype(np.float32)).to(device),
                                    torch.from_numpy(case["modelview1"]).to(device), padding=TILE, return_passes=True)
        return {k: _np(v) for k, v in out.items()}
    out, out_id = run(fix), run(ident)
    row1 = [fix["input_rgb_u8"], _depth(fix["input_depth_zbuf"]), out["pass1_color_down"],
            _depth(project_depth(out["pass1_depth_down"], 0.5, 100.0)), out["pass2_color_down"], to_uint8(out["color"]),
            _depth(out["depth"], out["mask"]), _grey(out["mask"])]
    diff = np.abs(to_uint8(out["color"]).astype(np.int32) - fix["out_color_u8"]) * 8
    row2 = [fix["out_color_u8"], _depth(fix["out_depth"], fix["out_mask"]), _grey(fix["out_mask"]),
            np.clip(diff, 0, 255).astype(np.uint8), ident["input_rgb_u8"], to_uint8(out_id["color"]),
            _depth(out_id["depth"], out_id["mask"]), _grey(out_id["mask"])]
    return [("warp: input, depth, forward colour/depth, backward colour before / after masking, depth, mask", row1),
            ("reference backward colour/depth/mask, |diff|x8; identity warp: input, colour, depth, mask", row2)]


def _room_views(folder: pathlib.Path, padding, device: torch.device):
    fix = np.load(folder / "aggregate_room_first4.npz", allow_pickle=False)
    meshes = [depth_to_mesh(torch.from_numpy(fix["views_depth_linear"][k]).to(device), padding=padding, fov=45,
                            modelview=fix["views_modelview"][k], atol=0.03, rtol=0.03, erode_rgb=3, cal_normal=True)
              for k in range(len(fix["views_modelview"]))]
    colors = [torch.from_numpy(fix["views_rgb_u8"][k] / np.float32(255)).to(device) for k in range(len(meshes))]
    return fix, meshes, colors


def aggregation_rows(folder: pathlib.Path, device: torch.device):
    fix, meshes, colors = _room_views(folder, "frustum", device)
    tiles = []
    for i, step in enumerate(fix["step_index"]):
        cond = aggregate_conditions(meshes[:step], colors[:step], torch.from_numpy(fix["step_modelview"][i]).to(device))
        cond = {k: _np(v) for k, v in cond.items()}
        tiles += [to_uint8(cond["color"]), _depth(cond["depth"], cond["mask"]), _grey(cond["mask"]),
                  _grey(cond["mask_rgb"])]
    return [("aggregated conditions, steps 1 and 2: colour, depth, mask, mask_rgb", tiles[:8]),
            ("aggregated conditions, steps 3 and 4: colour, depth, mask, mask_rgb", tiles[8:])]


def fusion_row(folder: pathlib.Path, device: torch.device):
    _, meshes, colors = _room_views(folder, 32, device)
    cameras = [orbit_modelview(0.075 + 0.12 * math.cos(t), 0.1 * math.sin(t)) for t in np.linspace(0, 2 * np.pi, 5)[:4]]
    frames = render_fusion(meshes, colors, [torch.from_numpy(c).to(device) for c in cameras], ssaa=5)
    tiles = []
    for frame in frames:
        depth = _np(frame["depth"])[2::5, 2::5]
        tiles += [to_uint8(_np(frame["color"])), _depth(project_depth(depth, 0.5, 100.0))]
    return [("fusion frames (5 room views, padding 32, ssaa 5): colour, depth", tiles)]


def _labelled(rows) -> np.ndarray:
    strips = []
    for label, tiles in rows:
        grid = make_grid([np.asarray(t, np.uint8) for t in tiles], nrow=8)
        banner = Image.new("RGB", (grid.shape[1], 16), (255, 255, 255))
        ImageDraw.Draw(banner).text((4, 2), label, fill=(0, 0, 0))
        strips += [np.asarray(banner), grid]
    return np.concatenate(strips, 0)


def main(args: argparse.Namespace) -> None:
    device = resolve_device(args.device)
    folder = pathlib.Path(args.fixtures)
    rows = warp_rows(folder, device) + aggregation_rows(folder, device) + fusion_row(folder, device)
    save_png(args.output, _labelled(rows))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    run_cli(main, parse_args)
