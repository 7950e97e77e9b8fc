"""ivid.diffusion.noise: explicit generators, one generator per row."""

import pytest
import torch

from ivid.diffusion.noise import rand, randint, randn


def test_single_generator_reproducible_and_device_independent_of_global_seed():
    a = randn((2, 3), torch.Generator().manual_seed(4))
    torch.manual_seed(123)
    b = randn((2, 3), torch.Generator().manual_seed(4))
    assert torch.equal(a, b)
    assert randn((2, 3), torch.Generator().manual_seed(4), dtype=torch.float64).dtype == torch.float64


def test_generator_list_draws_rows_independently():
    rows = randn((2, 3, 4), [torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)])
    assert torch.equal(rows[1:], randn((1, 3, 4), torch.Generator().manual_seed(2)))
    assert torch.equal(rows[:1], randn((1, 3, 4), torch.Generator().manual_seed(1)))
    u = rand((2,), [torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)])
    assert u[0] == u[1] and 0 <= u[0] < 1
    k = randint(0, 5, (3,), [torch.Generator().manual_seed(s) for s in range(3)])
    assert k.dtype == torch.long and k.min() >= 0 and k.max() < 5
    with pytest.raises(ValueError, match="one generator per row"):
        randn((3, 2), [torch.Generator()])
