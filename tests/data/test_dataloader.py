"""DataLoader: batching, collate, shuffling, resume mid-epoch, the prefetch thread."""

import collections
import json
import threading
import time

import numpy as np
import pytest

import ember
from ember.data import (
    BatchSampler,
    DataLoader,
    Dataset,
    IterableDataset,
    SequentialSampler,
    Subset,
    TensorDataset,
    default_collate,
)


class Items(Dataset):
    """Item i is a dict of several kinds, to exercise collate on nested structures."""

    def __init__(self, n=10):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return {"x": np.full((2, 3), i, np.float32), "y": i, "w": float(i) / 2,
                "name": f"item{i}", "pair": (ember.tensor([i, -i]), np.int64(i))}


def _np(t):
    return t.numpy() if isinstance(t, ember.Tensor) else np.asarray(t)


def test_batches_and_len():
    ds = TensorDataset(np.arange(20, dtype=np.float32).reshape(10, 2), np.arange(10))
    loader = DataLoader(ds, batch_size=4)
    batches = list(loader)
    assert len(loader) == 3 and len(batches) == 3
    assert [b[1].tolist() for b in batches] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert batches[0][0].shape == (4, 2) and batches[0][0].dtype == ember.float32
    loader = DataLoader(ds, batch_size=4, drop_last=True)
    assert len(loader) == 2 and [b[1].shape for b in loader] == [(4,), (4,)]


def test_collate_nested_structures():
    batch = next(iter(DataLoader(Items(), batch_size=3)))
    assert batch["x"].shape == (3, 2, 3) and batch["x"].dtype == ember.float32
    assert batch["y"].tolist() == [0, 1, 2] and batch["y"].dtype == ember.int64
    assert batch["w"].dtype == ember.float64
    assert batch["name"] == ["item0", "item1", "item2"]
    assert isinstance(batch["pair"], list)
    assert batch["pair"][0].tolist() == [[0, 0], [1, -1], [2, -2]]
    assert batch["pair"][1].tolist() == [0, 1, 2]


def test_collate_namedtuple_and_errors():
    Point = collections.namedtuple("Point", "x y")
    out = default_collate([Point(1, 2.0), Point(3, 4.0)])
    assert isinstance(out, Point) and out.x.tolist() == [1, 3] and out.y.tolist() == [2.0, 4.0]
    with pytest.raises(RuntimeError, match="equal size"):
        default_collate([[1, 2], [3]])
    with pytest.raises(RuntimeError):
        default_collate([np.zeros(2), np.zeros(3)])
    with pytest.raises(TypeError):
        default_collate([object(), object()])


@pytest.mark.oracle
def test_collate_matches_torch():
    torch = pytest.importorskip("torch")
    items = [Items()[i] for i in range(4)]
    # torch needs torch tensors where ember has ember tensors
    torch_items = [dict(d, pair=(torch.tensor(d["pair"][0].tolist()), d["pair"][1]))
                   for d in items]
    ours = default_collate(items)
    theirs = torch.utils.data.default_collate(torch_items)
    assert set(ours) == set(theirs) and ours["name"] == theirs["name"]
    for key in ("x", "y", "w"):
        np.testing.assert_array_equal(ours[key].numpy(), theirs[key].numpy())
        assert str(ours[key].dtype).split(".")[-1] == str(theirs[key].dtype).split(".")[-1]
    assert type(ours["pair"]) is type(theirs["pair"])


@pytest.mark.oracle
def test_batch_counts_and_order_match_torch():
    torch = pytest.importorskip("torch")
    for n in (1, 7, 16):
        for bsz in (1, 3, 16, 20):
            for drop in (False, True):
                x = np.arange(n * 2, dtype=np.float32).reshape(n, 2)
                ours = DataLoader(TensorDataset(x), batch_size=bsz, drop_last=drop)
                theirs = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(
                    torch.from_numpy(x)), batch_size=bsz, drop_last=drop)
                assert len(ours) == len(theirs)
                got, want = list(ours), list(theirs)
                assert len(got) == len(want)
                for (a,), (b,) in zip(got, want):
                    np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_batch_size_none_and_batch_sampler():
    ds = TensorDataset(np.arange(5))
    singles = list(DataLoader(ds, batch_size=None))
    assert len(singles) == 5 and singles[2][0].item() == 2 and singles[2][0].shape == ()
    bs = BatchSampler(SequentialSampler(range(5)), 2, drop_last=False)
    loader = DataLoader(ds, batch_sampler=bs)
    assert [b[0].tolist() for b in loader] == [[0, 1], [2, 3], [4]] and len(loader) == 3
    with pytest.raises(ValueError, match="mutually exclusive"):
        DataLoader(ds, batch_sampler=bs, batch_size=2)
    with pytest.raises(ValueError, match="mutually exclusive"):
        DataLoader(ds, sampler=SequentialSampler(ds), shuffle=True)


def test_custom_collate_and_subset():
    ds = Subset(TensorDataset(np.arange(10)), [9, 8, 7, 6])
    loader = DataLoader(ds, batch_size=3, collate_fn=lambda b: [int(x[0]) for x in b])
    assert list(loader) == [[9, 8, 7], [6]]
    assert [b[0].tolist() for b in DataLoader(ds, batch_size=3)] == [[9, 8, 7], [6]]


class Stream(IterableDataset):
    def __iter__(self):
        return iter(range(7))


def test_iterable_dataset():
    assert [b.tolist() for b in DataLoader(Stream(), batch_size=3)] == [[0, 1, 2], [3, 4, 5], [6]]
    assert len(list(DataLoader(Stream(), batch_size=3, drop_last=True))) == 2
    with pytest.raises(ValueError):
        DataLoader(Stream(), shuffle=True)
    with pytest.raises(TypeError):
        len(DataLoader(Stream()))


def _epochs(loader, n):
    return [[b[0].tolist() for b in loader] for _ in range(n)]


def test_shuffle_seeded_and_reshuffled():
    ds = TensorDataset(np.arange(30))
    a = _epochs(DataLoader(ds, batch_size=4, shuffle=True,
                           generator=ember.Generator().manual_seed(1)), 2)
    b = _epochs(DataLoader(ds, batch_size=4, shuffle=True,
                           generator=ember.Generator().manual_seed(1)), 2)
    assert a == b and a[0] != a[1]
    assert sorted(sum(a[0], [])) == list(range(30))
    ember.manual_seed(4)
    c = _epochs(DataLoader(ds, batch_size=4, shuffle=True), 2)
    ember.manual_seed(4)
    assert c == _epochs(DataLoader(ds, batch_size=4, shuffle=True), 2)


@pytest.mark.parametrize("prefetch", [0, 2])
@pytest.mark.parametrize("use_generator", [True, False])
def test_resume_mid_epoch_equals_uninterrupted(prefetch, use_generator):
    ds = TensorDataset(np.arange(23))

    def make():
        gen = ember.Generator().manual_seed(11) if use_generator else None
        return DataLoader(ds, batch_size=3, shuffle=True, drop_last=False, generator=gen,
                          prefetch=prefetch)

    ember.manual_seed(2)
    reference = _epochs(make(), 3)

    ember.manual_seed(2)
    loader = make()
    first = _epochs(loader, 1)[0]
    seen = []
    for i, (x,) in enumerate(loader):  # epoch 1, interrupted after 5 batches
        seen.append(x.tolist())
        if i == 4:
            state = json.loads(json.dumps(loader.state_dict()))
            rng = ember.default_generator.get_state()
            break
    ember.manual_seed(999)  # the interrupted process is gone; a new one restores the state
    ember.default_generator.set_state(rng)
    resumed = make()
    resumed.load_state_dict(state)
    rest = _epochs(resumed, 2)
    assert first == reference[0]
    assert seen + rest[0] == reference[1]
    assert rest[1] == reference[2]


def test_state_after_full_epoch_starts_next_epoch():
    ds = TensorDataset(np.arange(10))
    gen = ember.Generator().manual_seed(0)
    loader = DataLoader(ds, batch_size=5, shuffle=True, generator=gen)
    ref = DataLoader(ds, batch_size=5, shuffle=True, generator=ember.Generator().manual_seed(0))
    reference = _epochs(ref, 2)
    _epochs(loader, 1)
    state = loader.state_dict()
    assert state["batches_consumed"] == 0
    other = DataLoader(ds, batch_size=5, shuffle=True, generator=ember.Generator())
    other.load_state_dict(state)
    assert _epochs(other, 1)[0] == reference[1]


def test_resume_sequential_loader():
    loader = DataLoader(TensorDataset(np.arange(10)), batch_size=2)
    it = iter(loader)
    next(it), next(it)
    state = loader.state_dict()
    fresh = DataLoader(TensorDataset(np.arange(10)), batch_size=2)
    fresh.load_state_dict(state)
    assert [b[0].tolist() for b in fresh] == [[4, 5], [6, 7], [8, 9]]


# ---------------------------------------------------------------------- prefetch
class Slow(Dataset):
    def __init__(self, n=12, fail_at=None, delay=0.0):
        self.n, self.fail_at, self.delay = n, fail_at, delay
        self.calls = 0

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        self.calls += 1
        if self.delay:
            time.sleep(self.delay)
        if i == self.fail_at:
            raise KeyError(f"bad item {i}")
        return np.array([i, i * i])


def _prefetch_threads():
    return [t for t in threading.enumerate() if t.name == "ember-data-prefetch"]


def test_prefetch_gives_the_same_batches():
    ds = Slow(25)
    plain = [b.tolist() for b in DataLoader(ds, batch_size=4, shuffle=True,
                                            generator=ember.Generator().manual_seed(5))]
    ahead = [b.tolist() for b in DataLoader(ds, batch_size=4, shuffle=True, prefetch=3,
                                            generator=ember.Generator().manual_seed(5))]
    assert plain == ahead and len(ahead) == 7
    assert not _prefetch_threads()


def test_prefetch_reraises_in_main_thread():
    loader = DataLoader(Slow(12, fail_at=7), batch_size=2, prefetch=2)
    got = []
    with pytest.raises(KeyError, match="bad item 7"):
        for b in loader:
            got.append(b.tolist())
    assert len(got) == 3  # the batches before the failing one arrived
    assert not _prefetch_threads()


def test_prefetch_early_break_stops_the_thread():
    ds = Slow(400, delay=0.0005)
    loader = DataLoader(ds, batch_size=2, prefetch=2)
    start = time.perf_counter()
    for i, _ in enumerate(loader):
        if i == 1:
            break
    deadline = time.perf_counter() + 5
    while _prefetch_threads() and time.perf_counter() < deadline:
        time.sleep(0.01)
    assert not _prefetch_threads()
    assert time.perf_counter() - start < 5
    assert ds.calls < 40  # it stopped instead of loading the whole epoch


def test_prefetch_rejects_negative():
    with pytest.raises(ValueError):
        DataLoader(Slow(), prefetch=-1)
