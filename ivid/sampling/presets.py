"""Named model bundles for ``--preset`` of ``inference/sample.py`` and ``inference/render.py``.

A preset names the four model files (G_u / G_c configs and weights, relative to the
repository root) and the defaults of other options that suit those models. The CLIs
apply the defaults only to options the user did not give, so ``--preset demo
--steps_cond 50`` still samples with 50 G_c steps.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Dict, Mapping, Optional, Sequence

__all__ = ["Preset", "PRESETS", "preset_in_argv"]


@dataclass(frozen=True)
class Preset:
    """One ``--preset``: model files plus option defaults.

    Attributes:
        config_uncond, config_cond, ckpt_uncond, ckpt_cond: files, relative to the repository root.
        sample_defaults: ``inference/sample.py`` option name -> default under this preset.
        render_defaults: ``inference/render.py`` option name -> default under this preset.
        about: one line for ``--help``.
    """

    config_uncond: str
    config_cond: str
    ckpt_uncond: str
    ckpt_cond: str
    sample_defaults: Mapping[str, object] = field(default_factory=dict)
    render_defaults: Mapping[str, object] = field(default_factory=dict)
    about: str = ""

    @property
    def files(self) -> Dict[str, str]:
        """``{option name: path}`` of the four model files."""
        return {"config_uncond": self.config_uncond, "config_cond": self.config_cond,
                "ckpt_uncond": self.ckpt_uncond, "ckpt_cond": self.ckpt_cond}


# The demo models are 32x32. One pixel there spans ~4x the depth change of a 128x128 pixel, so the
# 128x128 discontinuity tolerances (0.03) and colour erosion (3 px) would mark almost every pixel as an
# edge and erode all colour out of the conditions; 0.1 / 1 px keep ~50-70% of a neighbouring view.
# The small G_c follows its condition only loosely, so replace_rgb / replace_depth pull each new view
# harder towards what the earlier views show. 100 DDIM steps of G_u and 20 per G_c view keep a 3x9
# viewset of 4 seeds plus their videos within ~2 minutes on 2 CPU cores (ckpts/demo/README.md).
# The small demo models' x0 predictions overshoot [-1, 1] at guidance 3 and 100 steps (saturated or
# black views without clamping), so the demo clamps them (ADM's default); the released models are
# sampled without clamping, as the reference.
_DEMO_GEOMETRY = {"atol": 0.1, "rtol": 0.1, "erode_rgb": 1}

PRESETS: Dict[str, Preset] = {
    "demo": Preset(
        config_uncond="configs/demo_uncond.json",
        config_cond="configs/demo_cond.json",
        ckpt_uncond="ckpts/demo/uncond.pt",
        ckpt_cond="ckpts/demo/cond.pt",
        sample_defaults={"output_dir": "samples/demo", "seeds": "0-3", "steps_uncond": 100, "steps_cond": 20,
                         "replace_rgb": 0.5, "replace_depth": 0.5, "clip_denoised": True, **_DEMO_GEOMETRY},
        render_defaults={"video_size": 256, **_DEMO_GEOMETRY},
        about="32x32 toy-scene models trained by this project (configs/demo_*.json, ckpts/demo/)",
    ),
}


def preset_in_argv(argv: Optional[Sequence[str]] = None) -> Optional[str]:
    """The ``--preset`` given in ``argv`` (default ``sys.argv[1:]``), None when absent.

    A CLI reads it before building its full parser, because the preset changes the
    defaults of the other options; an unknown name exits with argparse's usual error.
    """
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--preset", default=None, choices=sorted(PRESETS))
    return parser.parse_known_args(argv)[0].preset
