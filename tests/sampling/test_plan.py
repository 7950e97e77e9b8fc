"""ivid.sampling.plan: classes, names, batches and per-process shares."""

import pytest

from ivid.sampling.plan import (assign_classes, batched, parse_classes, plan_jobs, sample_name, split_jobs)


def test_class_modes():
    seeds = [0, 5, 12, 1003]
    assert assign_classes(parse_classes("mod"), seeds, 10) == [0, 5, 2, 3]
    assert assign_classes(parse_classes("uniform"), seeds, 3) == [0, 1, 2, 0]
    assert assign_classes(parse_classes("null"), seeds, 10) == [None] * 4
    assert assign_classes(parse_classes("7"), seeds, 10) == [7] * 4
    assert assign_classes(parse_classes("1,2"), seeds, 10) == [1, 2, 1, 2]


def test_random_classes_depend_on_the_seed_only():
    a = assign_classes("random", [0, 1, 2, 3, 4, 5, 6, 7], 1000)
    b = assign_classes("random", [4, 5, 6, 7], 1000)
    assert a[4:] == b
    assert all(0 <= c < 1000 for c in a) and len(set(a)) > 1


@pytest.mark.parametrize("text", ["modd", "1,x", "", "1,-2", "3.5"])
def test_malformed_classes(text):
    with pytest.raises(ValueError, match="--classes"):
        parse_classes(text)


def test_class_out_of_range_and_unconditional_models():
    with pytest.raises(ValueError, match="out of range"):
        assign_classes([10], [0], 10)
    assert assign_classes("mod", [0, 1], None) == [None, None]
    with pytest.raises(ValueError, match="unconditional"):
        assign_classes("uniform", [0], None)


def test_names():
    assert sample_name(3, 17, 5, numbered=False) == "class005_seed00017"
    assert sample_name(3, 17, None, numbered=False) == "seed00017"
    assert sample_name(3, 17, 5, numbered=True) == "00003"


def test_plan_with_num_samples_overrides_seeds():
    jobs = plan_jobs([100, 200], "mod", 10, num_samples=3)
    assert [(j.index, j.seed, j.class_label, j.name) for j in jobs] == [
        (0, 0, 0, "00000"), (1, 1, 1, "00001"), (2, 2, 2, "00002")]
    jobs = plan_jobs([12, 3], "mod", 10)
    assert [j.name for j in jobs] == ["class002_seed00012", "class003_seed00003"]
    with pytest.raises(ValueError, match="--num_samples"):
        plan_jobs(None, "mod", 10, num_samples=0)


def test_split_and_batches_cover_every_job_once():
    jobs = plan_jobs(list(range(11)), "mod", 10)
    shares = [split_jobs(jobs, r, 3) for r in range(3)]
    assert sorted(j.index for s in shares for j in s) == list(range(11))
    assert [len(b) for b in batched(shares[0], 2)] == [2, 2]
    with pytest.raises(ValueError, match="--batchsize"):
        list(batched(jobs, 0))
