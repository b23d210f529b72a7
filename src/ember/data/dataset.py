"""Datasets: map-style ``Dataset``, ``IterableDataset``, ``TensorDataset``, ``Subset``,
``ConcatDataset`` and ``random_split``.

Matches: ``torch.utils.data`` (same names and semantics). A dataset only has to answer
``len(ds)`` and ``ds[i]``; the :class:`~ember.data.DataLoader` turns its items into batches.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Sequence

import numpy as np

from ..autograd import Tensor
from ..autograd.creation import from_numpy
from ..ops.random import Generator, default_generator


class Dataset:
    """A map-style dataset: subclasses define ``__getitem__(index)`` and ``__len__()``.

    ``ds1 + ds2`` concatenates. Matches ``torch.utils.data.Dataset``.
    """

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__")

    def __add__(self, other: Dataset) -> ConcatDataset:
        return ConcatDataset([self, other])


class IterableDataset(Dataset):
    """A stream of samples: subclasses define ``__iter__``. Matches
    ``torch.utils.data.IterableDataset`` (the DataLoader batches it in order; no sampler)."""

    def __iter__(self):
        raise NotImplementedError(f"{type(self).__name__} must define __iter__")

    def __add__(self, other):
        raise TypeError("IterableDataset does not support '+'; chain the iterators instead")


def _as_array(data) -> np.ndarray:
    if isinstance(data, Tensor):
        return data.detach().numpy()
    return np.asarray(data)


class TensorDataset(Dataset):
    """Samples are the rows of equally long tensors (or arrays): ``ds[i] = (t0[i], t1[i], ...)``.

    Args:
        *tensors: ember tensors or NumPy arrays with the same first dimension.

    Example:
        >>> import ember
        >>> ds = TensorDataset(ember.arange(6).reshape(3, 2), ember.tensor([0, 1, 0]))
        >>> len(ds), ds[1][0].tolist(), ds[1][1].item()
        (3, [2, 3], 1)

    Matches ``torch.utils.data.TensorDataset``. Items are ember tensors sharing memory with the
    stored data; the DataLoader fetches whole batches by fancy indexing (``get_batch``).
    """

    def __init__(self, *tensors):
        if not tensors:
            raise ValueError("TensorDataset: expected at least one tensor")
        arrays = [_as_array(t) for t in tensors]
        sizes = {a.shape[0] if a.ndim else None for a in arrays}
        if None in sizes or len(sizes) != 1:
            raise ValueError(f"TensorDataset: size mismatch between tensors; first dimensions "
                             f"are {[a.shape[0] if a.ndim else '0-d' for a in arrays]}")
        self._arrays = arrays
        self.tensors = tuple(t if isinstance(t, Tensor) else from_numpy(a)
                             for t, a in zip(tensors, arrays))

    def __getitem__(self, index):
        return tuple(from_numpy(np.asarray(a[index])) for a in self._arrays)

    def get_batch(self, indices) -> list:
        """The samples at ``indices`` already stacked, as ``default_collate`` would build them."""
        idx = np.asarray(indices, dtype=np.int64)
        return [from_numpy(a[idx]) for a in self._arrays]

    def __len__(self) -> int:
        return self._arrays[0].shape[0]


class Subset(Dataset):
    """The items of ``dataset`` at ``indices``. Matches ``torch.utils.data.Subset``."""

    def __init__(self, dataset, indices: Sequence[int]):
        self.dataset = dataset
        self.indices = [int(i) for i in indices]

    def __getitem__(self, idx):
        if isinstance(idx, list):
            return self.dataset[[self.indices[i] for i in idx]]
        return self.dataset[self.indices[idx]]

    def get_batch(self, indices) -> list:
        return self.dataset.get_batch([self.indices[i] for i in indices])

    def __len__(self) -> int:
        return len(self.indices)


def has_get_batch(dataset) -> bool:
    """Whether ``dataset`` can fetch a stacked batch in one call (``get_batch``)."""
    if isinstance(dataset, Subset):
        return has_get_batch(dataset.dataset)
    return callable(getattr(dataset, "get_batch", None))


class ConcatDataset(Dataset):
    """Several datasets one after another. Matches ``torch.utils.data.ConcatDataset``."""

    def __init__(self, datasets: Iterable[Dataset]):
        self.datasets = list(datasets)
        if not self.datasets:
            raise ValueError("ConcatDataset: datasets should not be an empty iterable")
        for d in self.datasets:
            if isinstance(d, IterableDataset):
                raise TypeError("ConcatDataset does not support IterableDataset")
        self.cumulative_sizes = list(np.cumsum([len(d) for d in self.datasets]).tolist())

    def __len__(self) -> int:
        return self.cumulative_sizes[-1]

    def __getitem__(self, idx: int):
        if idx < 0:
            if -idx > len(self):
                raise IndexError("ConcatDataset: absolute value of index should not exceed "
                                 "dataset length")
            idx = len(self) + idx
        if idx >= len(self):
            raise IndexError(f"ConcatDataset: index {idx} out of range for length {len(self)}")
        which = bisect.bisect_right(self.cumulative_sizes, idx)
        start = self.cumulative_sizes[which - 1] if which else 0
        return self.datasets[which][idx - start]


def _split_lengths(lengths: Sequence, n: int) -> list[int]:
    """Turn fractions into counts like PyTorch: floor each, then hand the remainder out
    one by one, round-robin from the first split."""
    if math.isclose(sum(lengths), 1) and sum(lengths) <= 1:
        if any(f < 0 or f > 1 for f in lengths):
            raise ValueError(f"random_split: fractions must lie in [0, 1], got {list(lengths)}")
        counts = [int(math.floor(n * f)) for f in lengths]
        for i in range(n - sum(counts)):
            counts[i % len(counts)] += 1
        return counts
    counts = [int(x) for x in lengths]
    if any(c != x for c, x in zip(counts, lengths)) or any(c < 0 for c in counts):
        raise ValueError(f"random_split: lengths must be non-negative ints or fractions summing "
                         f"to 1, got {list(lengths)}")
    if sum(counts) != n:
        raise ValueError(f"random_split: sum of input lengths ({sum(counts)}) does not equal the "
                         f"length of the input dataset ({n})")
    return counts


def random_split(dataset, lengths: Sequence, generator: Generator | None = None) -> list[Subset]:
    """Split ``dataset`` into non-overlapping random subsets of the given lengths.

    Args:
        dataset: a map-style dataset.
        lengths: counts summing to ``len(dataset)``, or fractions summing to 1.
        generator: the ember ``Generator`` drawing the permutation (default: the global one).

    Example:
        >>> import ember
        >>> a, b = random_split(range(10), [0.7, 0.3], generator=ember.Generator().manual_seed(0))
        >>> len(a), len(b), sorted(list(a) + list(b)) == list(range(10))
        (7, 3, True)

    Matches ``torch.utils.data.random_split`` (the permutation differs: another RNG).
    """
    counts = _split_lengths(lengths, len(dataset))
    perm = (generator or default_generator).numpy_generator.permutation(len(dataset)).tolist()
    out, start = [], 0
    for c in counts:
        out.append(Subset(dataset, perm[start:start + c]))
        start += c
    return out
