"""Deterministic rank shards and resumable batch streams."""

import pytest
import torch

from ivid.training.data_loop import BatchStream, ShardSampler, epoch_permutation


class _Indices(torch.utils.data.Dataset):
    def __init__(self, n):
        self.n, self.epochs = n, []

    def __len__(self):
        return self.n

    def set_epoch(self, epoch):
        self.epochs.append(epoch)

    def __getitem__(self, i):
        return {"x_0": torch.tensor([float(i)]), "failures": ""}


def test_shards_are_disjoint_and_deterministic():
    n, world = 23, 3
    shards = [list(ShardSampler(n, r, world, seed=5, epoch=2)) for r in range(world)]
    flat = [i for s in shards for i in s]
    assert all(len(s) == n // world for s in shards)
    assert len(set(flat)) == len(flat)
    assert set(flat) == set(epoch_permutation(n, 5, 2)[: (n // world) * world].tolist())
    assert shards[0] == list(ShardSampler(n, 0, world, seed=5, epoch=2))
    assert shards[0] != list(ShardSampler(n, 0, world, seed=5, epoch=3))
    assert list(ShardSampler(n, 1, world, seed=5, epoch=2, start=3)) == shards[1][3:]


def test_stream_resumes_at_its_position_across_epochs():
    data = _Indices(10)
    a = BatchStream(data, batch_size=2, rank=1, world_size=2, seed=3)
    assert a.batches_per_epoch == 2
    seen = [a.next()["x_0"].flatten().tolist() for _ in range(5)]
    state = a.state_dict()
    assert (state["epoch"], state["batch_in_epoch"]) == (2, 1)
    following = a.next()["x_0"].flatten().tolist()
    b = BatchStream(_Indices(10), batch_size=2, rank=1, world_size=2, seed=3, epoch=2, batch_in_epoch=1)
    assert b.next()["x_0"].flatten().tolist() == following
    assert seen[0] + seen[1] != seen[2] + seen[3]  # a new order each epoch
    assert sorted(seen[0] + seen[1]) != sorted(range(10))  # one rank sees only its shard
    assert data.epochs == [0, 1, 2]


def test_stream_rejects_a_dataset_smaller_than_a_batch():
    with pytest.raises(ValueError, match="fewer than one batch"):
        BatchStream(_Indices(3), batch_size=2, world_size=2)
