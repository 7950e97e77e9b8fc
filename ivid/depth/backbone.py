"""BEiT backbone from timm, run the MiDaS way on any input size (docs/design.md#monocular-depth).

timm's ``Beit`` keeps one relative position bias table per block for the
32 x 32 token grid it was built for (63*63 + 3 rows). MiDaS runs it on other
grids ``(gh, gw)`` by deriving, on every call, a bias from that unchanged table:

1. rows ``[:63*63]`` viewed as a 63 x 63 (row offset, column offset) grid per head;
2. bilinear resize (align_corners=False, no antialias) to ``(2gh-1) x (2gw-1)``
   (the identity for 32 x 32);
3. the 3 cls rows appended untouched;
4. gathered with ``gen_relative_position_index((gh, gw))`` into
   ``1 x heads x (1+N) x (1+N)``.

We install this by switching each block's attention to a subclass whose
``_get_rel_pos_bias`` reads the grid of the current forward from a small state
object owned by the backbone (no global state, no reference cycles, the stored
table is never resized in place; one forward at a time per model instance).
Everything else (fused attention, LayerScale, MLP) is timm's own code.
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.models.beit import Attention as _TimmBeitAttention
from timm.models.beit import Beit, gen_relative_position_index


class _TokenGrid:
    """The token grid of the forward in progress and its relative position index."""

    __slots__ = ("size", "index")

    def __init__(self):
        self.size: Optional[Tuple[int, int]] = None
        self.index: Optional[torch.Tensor] = None


def grid_relative_position_bias(table: torch.Tensor, window_size: Sequence[int],
                                grid: Sequence[int], index: torch.Tensor) -> torch.Tensor:
    """Relative position bias of a ``grid`` from a table trained for ``window_size``.

    Args:
        table: ``(2Wh-1)(2Ww-1) + 3 x heads`` bias table (row-offset major).
        window_size: ``(Wh, Ww)`` token grid the table was trained for.
        grid: ``(gh, gw)`` token grid of the input.
        index: ``(1+gh*gw) x (1+gh*gw)`` int64 from ``gen_relative_position_index(grid)``.

    Returns:
        ``1 x heads x (1+gh*gw) x (1+gh*gw)`` bias, dtype of ``table``.
    """
    old_h, old_w = 2 * window_size[0] - 1, 2 * window_size[1] - 1
    new_h, new_w = 2 * grid[0] - 1, 2 * grid[1] - 1
    num_old = old_h * old_w
    offsets = table[:num_old]
    if (new_h, new_w) != (old_h, old_w):
        offsets = offsets.reshape(1, old_h, old_w, -1).permute(0, 3, 1, 2)
        offsets = F.interpolate(offsets, size=(new_h, new_w), mode="bilinear", align_corners=False)
        offsets = offsets.permute(0, 2, 3, 1).reshape(new_h * new_w, -1)
    full = torch.cat([offsets, table[num_old:]], dim=0)
    n = grid[0] * grid[1] + 1
    bias = full[index.reshape(-1)].reshape(n, n, -1)
    return bias.permute(2, 0, 1).contiguous().unsqueeze(0)


class _GridAttention(_TimmBeitAttention):
    """timm BEiT attention whose relative position bias follows the current token grid."""

    token_grid: _TokenGrid

    def _get_rel_pos_bias(self) -> torch.Tensor:
        grid = self.token_grid
        if grid.size is None:
            raise RuntimeError("BEiT attention called outside MidasBeitBackbone.forward "
                               "(the token grid is unknown)")
        return grid_relative_position_bias(self.relative_position_bias_table, self.window_size,
                                           grid.size, grid.index)


class MidasBeitBackbone(nn.Module):
    """timm ``Beit`` (no absolute position embedding, per-block rel-pos bias) on any grid.

    ``model`` holds the timm module, so its state_dict keys are timm's
    (``model.blocks.0.attn.qkv.weight``, ...), including the unused ``fc_norm``
    and ``head`` that the MiDaS checkpoint carries.

    Args:
        embed_dim, depth, num_heads: transformer size (1024, 24, 16 for BEiT-L).
        hook_blocks: 0-based blocks whose raw outputs are returned.
        window: token grid side of the stored bias tables (32 for the 512 model).
        patch_size: 16.
    """

    def __init__(self, embed_dim: int = 1024, depth: int = 24, num_heads: int = 16,
                 hook_blocks: Sequence[int] = (5, 11, 17, 23), window: int = 32,
                 patch_size: int = 16):
        super().__init__()
        if sorted(set(hook_blocks)) != list(hook_blocks) or not 0 <= hook_blocks[0] <= hook_blocks[-1] < depth:
            raise ValueError(f"hook_blocks {tuple(hook_blocks)} must be increasing indices below depth {depth}")
        self.hook_blocks = tuple(int(i) for i in hook_blocks)
        self.patch_size = patch_size
        # Same arguments as timm's registered 'beit_large_patch16_512' (pretrained=False: no download).
        self.model = Beit(img_size=window * patch_size, patch_size=patch_size, embed_dim=embed_dim,
                          depth=depth, num_heads=num_heads, mlp_ratio=4.0, qkv_bias=True,
                          use_abs_pos_emb=False, use_rel_pos_bias=True, init_values=1e-5,
                          num_classes=1000, global_pool="avg")
        self.model.patch_embed.strict_img_size = False
        self._grid = _TokenGrid()
        for block in self.model.blocks:
            block.attn.__class__ = _GridAttention
            block.attn.token_grid = self._grid
            block.attn.relative_position_index = None  # timm's fixed 32x32 index is never used

    def init_buffers(self) -> None:
        """(Re)create the non-persistent zero ``k_bias`` buffers next to ``q_bias`` (after a meta build)."""
        for block in self.model.blocks:
            block.attn.k_bias = torch.zeros_like(block.attn.q_bias).detach()

    def forward(self, x: torch.Tensor) -> Tuple[List[torch.Tensor], Tuple[int, int]]:
        """``x`` B x 3 x H x W (H, W multiples of 16) -> (hooked outputs, (gh, gw)).

        Each hooked output is the raw block output B x (1+gh*gw) x C, cls token first.
        """
        height, width = x.shape[-2:]
        if height % self.patch_size or width % self.patch_size:
            raise ValueError(f"input size {height}x{width} is not a multiple of {self.patch_size}")
        grid = (height // self.patch_size, width // self.patch_size)
        tokens = self.model.patch_embed(x)
        cls = self.model.cls_token.expand(tokens.shape[0], -1, -1)
        tokens = torch.cat([cls, tokens], dim=1)
        hooked = []
        self._grid.size = grid
        self._grid.index = gen_relative_position_index(grid, device=x.device)
        try:
            for i, block in enumerate(self.model.blocks[: self.hook_blocks[-1] + 1]):
                tokens = block(tokens)
                if i in self.hook_blocks:
                    hooked.append(tokens)
        finally:
            self._grid.size = None
            self._grid.index = None
        return hooked, grid
