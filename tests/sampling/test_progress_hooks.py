"""on_view of sample_multiview / run_sampling: called after every view, and an exception it raises stops sampling."""

import os

import pytest
import torch

from ivid.geometry import viewset
from ivid.sampling.multiview import MultiviewOptions, sample_multiview
from ivid.sampling.run import SampleRequest, run_sampling
from ivid.utils.seeds import sample_generators

FAST = MultiviewOptions(steps_uncond=2, steps_cond=1)


class Stop(Exception):
    pass


def test_on_view_counts_every_view_in_order(tiny_frameworks):
    g_u, g_c = tiny_frameworks
    cameras = viewset("3x9")[:4]
    calls = []
    views = sample_multiview(g_u, g_c, cameras, sample_generators([0, 1]), torch.tensor([1, 2]), FAST,
                             on_view=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert [len(v) for v in views] == [4, 4]


def test_on_view_exception_stops_sampling(tiny_frameworks):
    g_u, g_c = tiny_frameworks
    calls = []

    def stop_after_two(done, total):
        calls.append(done)
        if done == 2:
            raise Stop()

    with pytest.raises(Stop):
        sample_multiview(g_u, g_c, viewset("3x9")[:5], sample_generators([0]), torch.tensor([1]), FAST,
                         on_view=stop_after_two)
    assert calls == [1, 2]  # no third view was sampled


@pytest.mark.slow
def test_run_sampling_passes_on_view_per_batch(tiny_models, tmp_path):
    calls = []
    request = SampleRequest(**tiny_models, output_dir=str(tmp_path), seeds="0-2", viewset="random", batchsize=2,
                            steps_uncond=2, steps_cond=1, device="cpu", progress=False)
    run_dir = run_sampling(request, argv=["test"], on_view=lambda done, total: calls.append((done, total)))
    # two batches (2 + 1 samples), two views each
    assert calls == [(1, 2), (2, 2), (1, 2), (2, 2)]
    assert len(os.listdir(os.path.join(run_dir, "scenes"))) == 3
