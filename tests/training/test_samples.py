"""Sample-grid rows: layout per trainer kind and the tile values."""

import numpy as np
import pytest
import torch

from ivid.training.samples import grid_from_rows, mask_tiles, rgb_tiles, sample_rows


def test_rgb_tiles_map_pm1_to_uint8_and_black_out_masked_pixels():
    x = torch.ones(1, 4, 2, 2)
    mask = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]]])
    tile = rgb_tiles(x, mask)[0]
    assert tile.dtype == np.uint8 and tile.shape == (2, 2, 3)
    assert (tile[0, 0] == 255).all() and (tile[0, 1] == 0).all()
    assert (mask_tiles(mask)[0][..., 0] == np.array([[255, 0], [0, 255]])).all()


@pytest.mark.parametrize("kind,rows", [("basic", 4), ("inpaint", 7), ("superres", 6)])
def test_rows_per_kind(kind, rows):
    n, size = 3, 8
    samples = torch.zeros(n, 4, size, size)
    batch = {"x_0": torch.zeros(n, 4, size, size), "y": torch.zeros(n, 4, size // 2 if kind == "superres" else size,
                                                                    size // 2 if kind == "superres" else size),
             "mask": torch.ones(n, 1, size, size), "mask_rgb": torch.ones(n, 1, size, size)}
    named = sample_rows(samples, batch, kind)
    assert len(named) == rows and all(len(tiles) == n for _, tiles in named)
    assert all(t.shape == (size, size, 3) for _, tiles in named for t in tiles)
    grid = grid_from_rows(named)
    assert grid.shape == (rows * (size + 2) + 2, n * (size + 2) + 2, 3)
