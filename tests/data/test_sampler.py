"""Samplers: orders, lengths, seeded determinism, resumable state."""

import json

import numpy as np
import pytest

import ember
from ember.data import (
    BatchSampler,
    RandomSampler,
    SequentialSampler,
    SubsetRandomSampler,
    WeightedRandomSampler,
)


def _gen(seed):
    return ember.Generator().manual_seed(seed)


def test_sequential_and_batch_sampler():
    assert list(SequentialSampler(range(4))) == [0, 1, 2, 3]
    bs = BatchSampler(SequentialSampler(range(7)), 3, drop_last=False)
    assert list(bs) == [[0, 1, 2], [3, 4, 5], [6]] and len(bs) == 3
    bs = BatchSampler(SequentialSampler(range(7)), 3, drop_last=True)
    assert list(bs) == [[0, 1, 2], [3, 4, 5]] and len(bs) == 2
    with pytest.raises(ValueError):
        BatchSampler(SequentialSampler(range(7)), 0, drop_last=False)


@pytest.mark.oracle
def test_batch_sampler_matches_torch():
    torch = pytest.importorskip("torch")
    tud = torch.utils.data
    for n in (0, 1, 5, 12):
        for bsz in (1, 3, 5, 13):
            for drop in (False, True):
                ours = BatchSampler(SequentialSampler(range(n)), bsz, drop)
                theirs = tud.BatchSampler(tud.SequentialSampler(range(n)), bsz, drop)
                assert list(ours) == list(theirs) and len(ours) == len(theirs)


def test_random_sampler_is_a_seeded_permutation():
    s = RandomSampler(range(50), generator=_gen(1))
    first, second = list(s), list(s)
    assert sorted(first) == list(range(50)) and first != second  # reshuffled per epoch
    again = RandomSampler(range(50), generator=_gen(1))
    assert [list(again), list(again)] == [first, second]


def test_random_sampler_default_generator_follows_manual_seed():
    ember.manual_seed(5)
    a = list(RandomSampler(range(30)))
    ember.manual_seed(5)
    b = list(RandomSampler(range(30)))
    assert a == b


def test_random_sampler_replacement_and_num_samples():
    s = RandomSampler(range(4), replacement=True, num_samples=100, generator=_gen(0))
    out = list(s)
    assert len(out) == len(s) == 100 and set(out) <= {0, 1, 2, 3} and len(set(out)) == 4
    s = RandomSampler(range(4), num_samples=10, generator=_gen(0))
    out = list(s)
    assert len(out) == 10 and sorted(out[:4]) == [0, 1, 2, 3] and sorted(out[4:8]) == [0, 1, 2, 3]
    with pytest.raises(ValueError):
        RandomSampler(range(4), num_samples=0)
    with pytest.raises(TypeError):
        RandomSampler(range(4), replacement=1)


def test_subset_and_weighted_samplers():
    s = SubsetRandomSampler([10, 20, 30], generator=_gen(0))
    assert sorted(s) == [10, 20, 30] and len(s) == 3
    w = WeightedRandomSampler([0.0, 1.0, 3.0], 4000, generator=_gen(0))
    counts = np.bincount(list(w), minlength=3)
    assert counts[0] == 0 and 0.7 < counts[2] / 4000 < 0.8
    w = WeightedRandomSampler([1, 1, 1, 0], 3, replacement=False, generator=_gen(0))
    assert sorted(w) == [0, 1, 2]
    with pytest.raises(ValueError):
        WeightedRandomSampler([-1.0, 1.0], 2)


@pytest.mark.parametrize("make", [
    lambda g: RandomSampler(range(20), generator=g),
    lambda g: RandomSampler(range(6), replacement=True, num_samples=20, generator=g),
    lambda g: SubsetRandomSampler(list(range(0, 40, 2)), generator=g),
    lambda g: WeightedRandomSampler(np.linspace(0.1, 1, 20), 20, generator=g),
])
def test_sampler_state_resumes_mid_epoch(make):
    full = make(_gen(7))
    epochs = [list(full) for _ in range(3)]

    s = make(_gen(7))
    list(s)  # epoch 0
    it = iter(s)
    head = [next(it) for _ in range(8)]
    state = json.loads(json.dumps(s.state_dict()))  # plain JSON data

    fresh = make(_gen(12345))  # another seed: the state must override it
    fresh.load_state_dict(state)
    tail = list(fresh)
    assert head + tail == epochs[1]
    assert list(fresh) == epochs[2]  # and later epochs carry on identically


def test_sampler_state_between_epochs():
    s = RandomSampler(range(10), generator=_gen(3))
    list(s)
    state = s.state_dict()
    expected = list(s)
    t = RandomSampler(range(10), generator=_gen(99))
    t.load_state_dict(state)
    assert list(t) == expected
