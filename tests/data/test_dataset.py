"""Datasets: TensorDataset, Subset, ConcatDataset, random_split."""

import numpy as np
import pytest

import ember
from ember.data import ConcatDataset, Dataset, Subset, TensorDataset, random_split


def test_tensor_dataset_items_and_len():
    x = ember.arange(12.0).reshape(6, 2)
    y = np.arange(6)
    ds = TensorDataset(x, y)
    assert len(ds) == 6
    xi, yi = ds[4]
    assert isinstance(xi, ember.Tensor) and xi.tolist() == [8.0, 9.0] and yi.item() == 4
    assert ds.tensors[0] is x
    batch = ds.get_batch([5, 0])
    assert batch[0].tolist() == [[10.0, 11.0], [0.0, 1.0]] and batch[1].tolist() == [5, 0]


def test_tensor_dataset_size_mismatch():
    with pytest.raises(ValueError, match="size mismatch"):
        TensorDataset(np.zeros((3, 2)), np.zeros(4))
    with pytest.raises(ValueError):
        TensorDataset()


def test_subset_and_concat():
    ds = TensorDataset(np.arange(10))
    sub = Subset(ds, [7, 2, 5])
    assert len(sub) == 3 and sub[0][0].item() == 7 and sub.get_batch([1, 2])[0].tolist() == [2, 5]
    cat = ConcatDataset([sub, TensorDataset(np.arange(100, 104))])
    assert len(cat) == 7 and cat.cumulative_sizes == [3, 7]
    assert [cat[i][0].item() for i in range(7)] == [7, 2, 5, 100, 101, 102, 103]
    assert cat[-1][0].item() == 103
    with pytest.raises(IndexError):
        cat[7]
    assert len(sub + sub) == 6


class _Squares(Dataset):
    def __len__(self):
        return 5

    def __getitem__(self, i):
        return i * i


def test_random_split_sizes_disjoint_and_seeded():
    ds = _Squares()
    parts = random_split(range(103), [0.7, 0.2, 0.1], generator=ember.Generator().manual_seed(3))
    assert [len(p) for p in parts] == [73, 20, 10]  # remainder handed out round-robin
    seen = sorted(i for p in parts for i in p.indices)
    assert seen == list(range(103))
    again = random_split(range(103), [0.7, 0.2, 0.1], generator=ember.Generator().manual_seed(3))
    assert [p.indices for p in parts] == [p.indices for p in again]
    a, b = random_split(ds, [2, 3])
    assert sorted(list(a) + list(b)) == [0, 1, 4, 9, 16]
    with pytest.raises(ValueError, match="does not equal"):
        random_split(ds, [2, 2])


@pytest.mark.oracle
def test_random_split_fraction_sizes_match_torch():
    torch = pytest.importorskip("torch")
    for n, fr in [(103, [0.7, 0.2, 0.1]), (10, [0.33, 0.33, 0.34]), (7, [0.5, 0.5]),
                  (1000, [0.8, 0.1, 0.1])]:
        ours = [len(p) for p in random_split(range(n), fr)]
        theirs = [len(p) for p in torch.utils.data.random_split(range(n), fr)]
        assert ours == theirs, (n, fr)
