"""DPT neck and head of MiDaS ``dpt_beit_large_512`` (our own modules, docs/design.md#monocular-depth).

Data flow for a network input of ``H x W`` (token grid ``gh x gw = H/16 x W/16``):

- ``Reassemble`` (one per hooked block): tokens ``B x (1+N) x C`` (cls first) ->
  readout "project" (``[patch, cls]`` -> Linear(2C -> C) -> exact GELU) -> map
  ``B x C x gh x gw`` (row-major) -> 1x1 conv -> resample: ConvTranspose k=s=4
  (H/4), k=s=2 (H/8), none (H/16), Conv 3x3 stride 2 (ceil(H/32)).
- ``FusionBlock``: ``out = x (+ rcu1(skip))``, ``rcu2``, bilinear resize with
  align_corners=True to the next level's size (or x2), 1x1 ``out_conv``.
- ``DepthHead``: 3x3 conv (F -> F/2), x2 bilinear (align_corners=True), 3x3 conv
  (-> 32), ReLU, 1x1 conv (-> 1), ReLU (non-negative output).
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F


class Reassemble(nn.Module):
    """Tokens of one hooked block -> a feature map at ``scale`` x the token grid.

    Args:
        embed_dim: token width C.
        out_channels: channels of the map.
        scale: 4, 2 (transposed conv), 1 (none) or 0.5 (3x3 conv, stride 2).
    """

    def __init__(self, embed_dim: int, out_channels: int, scale: float):
        super().__init__()
        self.readout = nn.Linear(2 * embed_dim, embed_dim)
        self.project = nn.Conv2d(embed_dim, out_channels, kernel_size=1)
        if scale > 1:
            k = int(scale)
            self.resample = nn.ConvTranspose2d(out_channels, out_channels, kernel_size=k, stride=k)
        elif scale == 1:
            self.resample = nn.Identity()
        elif scale == 0.5:
            self.resample = nn.Conv2d(out_channels, out_channels, kernel_size=3, stride=2, padding=1)
        else:
            raise ValueError(f"Reassemble: unsupported scale {scale} (use 4, 2, 1 or 0.5)")

    def forward(self, tokens: torch.Tensor, grid: Tuple[int, int]) -> torch.Tensor:
        """``tokens`` B x (1+gh*gw) x C, cls first -> B x out_channels x (scale*gh) x (scale*gw)."""
        patches = tokens[:, 1:]
        cls = tokens[:, :1].expand_as(patches)
        x = F.gelu(self.readout(torch.cat([patches, cls], dim=-1)))
        x = x.transpose(1, 2).reshape(x.shape[0], x.shape[2], grid[0], grid[1])
        return self.resample(self.project(x))


class ResidualConvUnit(nn.Module):
    """``x + conv2(relu(conv1(relu(x))))`` with biased 3x3 convs, no normalisation."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(F.relu(x))))


class FusionBlock(nn.Module):
    """RefineNet-style fusion: ``out_conv(resize(rcu2(x + rcu1(skip))))``."""

    def __init__(self, channels: int):
        super().__init__()
        self.rcu1 = ResidualConvUnit(channels)
        self.rcu2 = ResidualConvUnit(channels)
        self.out_conv = nn.Conv2d(channels, channels, kernel_size=1)

    def forward(self, x: torch.Tensor, skip: Optional[torch.Tensor] = None,
                size: Optional[Sequence[int]] = None) -> torch.Tensor:
        """``x``/``skip`` B x C x h x w -> B x C x ``size`` (default 2h x 2w)."""
        out = x if skip is None else x + self.rcu1(skip)
        out = self.rcu2(out)
        if size is None:
            size = (2 * out.shape[-2], 2 * out.shape[-1])
        out = F.interpolate(out, size=tuple(int(s) for s in size), mode="bilinear", align_corners=True)
        return self.out_conv(out)


class DepthHead(nn.Module):
    """B x F x h x w fused features -> B x 1 x 2h x 2w non-negative prediction."""

    def __init__(self, features: int, hidden_channels: int = 32):
        super().__init__()
        self.conv1 = nn.Conv2d(features, features // 2, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(features // 2, hidden_channels, kernel_size=3, padding=1)
        self.conv3 = nn.Conv2d(hidden_channels, 1, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        x = F.interpolate(x, size=(2 * x.shape[-2], 2 * x.shape[-1]), mode="bilinear", align_corners=True)
        x = F.relu(self.conv2(x))
        return F.relu(self.conv3(x))


class DptDecoder(nn.Module):
    """Reassemble + ``*_rn`` convs + four fusion blocks + head.

    Args:
        embed_dim: backbone token width.
        neck_channels: channels of the four reassembled maps (256, 512, 1024, 1024).
        features: decoder width (256).
        head_channels: hidden width of the head's last 3x3 conv (32).
    """

    SCALES = (4, 2, 1, 0.5)

    def __init__(self, embed_dim: int, neck_channels: Sequence[int], features: int, head_channels: int):
        super().__init__()
        if len(neck_channels) != 4:
            raise ValueError(f"neck_channels must have 4 entries, got {tuple(neck_channels)}")
        self.reassemble = nn.ModuleList(
            Reassemble(embed_dim, c, s) for c, s in zip(neck_channels, self.SCALES))
        self.layer_rn = nn.ModuleList(
            nn.Conv2d(c, features, kernel_size=3, padding=1, bias=False) for c in neck_channels)
        self.fusion = nn.ModuleList(FusionBlock(features) for _ in range(4))
        self.head = DepthHead(features, head_channels)

    def forward(self, hooked_tokens: Sequence[torch.Tensor], grid: Tuple[int, int]) -> torch.Tensor:
        """Four B x (1+N) x C token tensors on a ``grid`` -> B x 1 x 16gh x 16gw prediction."""
        layers = [rn(reassemble(tokens, grid)) for rn, reassemble, tokens
                  in zip(self.layer_rn, self.reassemble, hooked_tokens)]
        path = self.fusion[3](layers[3], size=layers[2].shape[-2:])
        path = self.fusion[2](path, layers[2], size=layers[1].shape[-2:])
        path = self.fusion[1](path, layers[1], size=layers[0].shape[-2:])
        path = self.fusion[0](path, layers[0])
        return self.head(path)
