"""ivid.utils.seeds: the --seeds syntax and per-sample generators."""

import pytest
import torch

from ivid.utils.seeds import parse_seeds, sample_generator, sample_generators


def test_ranges_and_lists():
    assert parse_seeds("0-8,12") == [0, 1, 2, 3, 4, 5, 6, 7, 8, 12]
    assert parse_seeds(" 3 , 10-11 ") == [3, 10, 11]
    assert parse_seeds("7") == [7]
    assert parse_seeds("4-4") == [4]
    assert parse_seeds([2, 5]) == [2, 5]


@pytest.mark.parametrize("text", ["", "a", "1-", "-3", "5-3", "1,,2", "1.5", "0-2,2", "1;2"])
def test_malformed_seeds_name_the_option(text):
    with pytest.raises(ValueError, match="--seeds"):
        parse_seeds(text)


def test_generator_matches_manual_seed():
    expected = torch.Generator().manual_seed(123)
    got = sample_generator(123, "cpu")
    assert torch.equal(torch.randn(1, 4, 8, 8, generator=got), torch.randn(1, 4, 8, 8, generator=expected))


def test_generators_are_independent_per_seed():
    a, b = sample_generators([1, 2])
    assert not torch.equal(torch.randn(5, generator=a), torch.randn(5, generator=b))
