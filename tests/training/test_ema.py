"""EMA update: analytic values."""

import pytest
import torch

from ivid.training.ema import EmaSet, update_ema


def test_update_ema_matches_the_formula():
    target = [torch.zeros(3), torch.full((2, 2), 4.0)]
    source = [torch.ones(3), torch.zeros(2, 2)]
    update_ema(target, source, 0.9)
    assert torch.allclose(target[0], torch.full((3,), 0.1))
    assert torch.allclose(target[1], torch.full((2, 2), 3.6))
    update_ema(target, source, 0.9)
    assert torch.allclose(target[0], torch.full((3,), 0.19))
    update_ema(target, source, 1.0)  # rate 1 freezes the average
    assert torch.allclose(target[0], torch.full((3,), 0.19))


def test_ema_set_keeps_one_copy_per_rate():
    params = [torch.nn.Parameter(torch.ones(2))]
    ema = EmaSet(params, [0.5, 0.9])
    with torch.no_grad():
        params[0].fill_(3.0)
    ema.update(params)
    assert torch.allclose(ema.params[0.5][0], torch.full((2,), 2.0))
    assert torch.allclose(ema.params[0.9][0], torch.full((2,), 1.2))
    assert ema.params[0.5][0].data_ptr() != params[0].data_ptr()


def test_ema_rate_out_of_range_is_an_error():
    with pytest.raises(ValueError, match="ema_rate"):
        EmaSet([torch.zeros(1)], [1.5])


def test_reset_restarts_every_rate_in_place():
    params = [torch.nn.Parameter(torch.ones(2))]
    ema = EmaSet(params, [0.5, 0.9])
    ema.update([torch.full((2,), 3.0)])
    kept = [ema.params[r][0] for r in ema.rates]
    ema.reset([torch.full((2,), -1.0)])
    for rate, tensor in zip(ema.rates, kept):
        assert ema.params[rate][0] is tensor  # the same tensors: holders of the EmaSet see the reset
        assert torch.equal(tensor, torch.full((2,), -1.0))
