"""Samplers: the order in which a DataLoader visits a dataset's indices.

Matches: ``torch.utils.data`` ``Sampler``, ``SequentialSampler``, ``RandomSampler``,
``SubsetRandomSampler``, ``WeightedRandomSampler``, ``BatchSampler``. The random orders differ
from PyTorch's (ember's RNG), but one seed always gives one order.

Resuming (an ember addition): a random sampler draws a whole epoch's order when iteration
starts, from an ember ``Generator`` whose state just before that draw it remembers.
``state_dict()`` returns that state and how many indices were handed out;
``load_state_dict()`` makes the next ``iter()`` redraw the same order and skip those indices.
States are plain dicts of ints and strings, so they can be saved as JSON.

With ``generator=None`` each epoch draws a fresh seed from ember's default generator (like
PyTorch), so ``ember.manual_seed(s)`` fixes the order.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from ..ops.random import Generator, default_generator


class Sampler:
    """Base class: subclasses define ``__iter__`` (indices) and usually ``__len__``."""

    def __init__(self, data_source=None):
        pass

    def __iter__(self) -> Iterator[int]:
        raise NotImplementedError(f"{type(self).__name__} must define __iter__")

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class SequentialSampler(Sampler):
    """Indices 0, 1, ..., len(data_source) - 1. Matches ``torch.utils.data.SequentialSampler``."""

    def __init__(self, data_source):
        self.data_source = data_source

    def __iter__(self):
        return iter(range(len(self.data_source)))

    def __len__(self) -> int:
        return len(self.data_source)


class _Counting:
    """An iterator over a drawn order that counts what it has handed out."""

    def __init__(self, order: list, start: int, owner: _RandomOrderSampler):
        self._order, self.position, self._owner = order, start, owner

    def __iter__(self):
        return self

    def __next__(self) -> int:
        if self.position >= len(self._order):
            if self._owner._epoch is self:
                self._owner._epoch = None
            raise StopIteration
        self.position += 1
        return self._order[self.position - 1]


class _RandomOrderSampler(Sampler):
    """Shared machinery: draw an epoch's order eagerly in ``__iter__``; remember how."""

    generator: Generator | None

    def _draw(self, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def __iter__(self) -> _Counting:
        resume = getattr(self, "_resume", None)
        self._resume = None
        if resume is not None:
            state, start = resume
            gen = self.generator if self.generator is not None else Generator()
            gen.set_state(state)
        else:
            start = 0
            gen = self.generator
            if gen is None:
                seed = int(default_generator.numpy_generator.integers(2**63))
                gen = Generator().manual_seed(seed)
            state = gen.get_state()
        order = self._draw(gen.numpy_generator).tolist()
        self._epoch_state = state
        self._epoch = _Counting(order, start, self)
        return self._epoch

    def state_dict(self) -> dict:
        """Where the sampler stands: mid-epoch, the epoch's RNG state and position; between
        epochs, the generator's state (``None`` when it uses the default generator)."""
        epoch = getattr(self, "_epoch", None)
        if epoch is not None:
            return {"epoch_rng_state": dict(self._epoch_state), "position": epoch.position}
        return {"rng_state": self.generator.get_state() if self.generator is not None else None}

    def load_state_dict(self, state: dict) -> None:
        if "epoch_rng_state" in state:
            self._resume = (dict(state["epoch_rng_state"]), int(state.get("position", 0)))
        elif state.get("rng_state") is not None:
            if self.generator is None:
                raise ValueError(f"{type(self).__name__}.load_state_dict: the state holds a "
                                 f"generator state but this sampler has generator=None")
            self.generator.set_state(state["rng_state"])
            self._resume = None


class RandomSampler(_RandomOrderSampler):
    """Indices in random order (a permutation, or ``num_samples`` draws with replacement).

    Args:
        data_source: the dataset (only its length is used).
        replacement: draw with replacement.
        num_samples: how many indices per epoch (default ``len(data_source)``); without
            replacement and larger than the dataset, several permutations are chained.
        generator: an ember ``Generator`` (default: a seed drawn from the global one per epoch).

    Example:
        >>> import ember
        >>> s = RandomSampler(range(5), generator=ember.Generator().manual_seed(0))
        >>> sorted(s)
        [0, 1, 2, 3, 4]

    Matches ``torch.utils.data.RandomSampler``.
    """

    def __init__(self, data_source, replacement: bool = False, num_samples: int | None = None,
                 generator: Generator | None = None):
        if not isinstance(replacement, bool):
            raise TypeError(f"RandomSampler: replacement should be a boolean value, but got "
                            f"replacement={replacement}")
        self.data_source, self.replacement = data_source, replacement
        self._num_samples, self.generator = num_samples, generator
        if not isinstance(self.num_samples, int) or self.num_samples <= 0:
            raise ValueError(f"RandomSampler: num_samples should be a positive integer value, "
                             f"but got num_samples={self.num_samples}")

    @property
    def num_samples(self) -> int:
        return len(self.data_source) if self._num_samples is None else self._num_samples

    def _draw(self, rng):
        n, k = len(self.data_source), self.num_samples
        if self.replacement:
            return rng.integers(0, n, size=k)
        perms = [rng.permutation(n) for _ in range(-(-k // n))]
        return np.concatenate(perms)[:k]

    def __len__(self) -> int:
        return self.num_samples


class SubsetRandomSampler(_RandomOrderSampler):
    """The given indices in random order. Matches ``torch.utils.data.SubsetRandomSampler``."""

    def __init__(self, indices: Sequence[int], generator: Generator | None = None):
        self.indices, self.generator = list(indices), generator

    def _draw(self, rng):
        return np.asarray(self.indices, dtype=np.int64)[rng.permutation(len(self.indices))]

    def __len__(self) -> int:
        return len(self.indices)


class WeightedRandomSampler(_RandomOrderSampler):
    """``num_samples`` indices drawn with probabilities proportional to ``weights``.

    Matches ``torch.utils.data.WeightedRandomSampler``.
    """

    def __init__(self, weights: Sequence[float], num_samples: int, replacement: bool = True,
                 generator: Generator | None = None):
        if not isinstance(num_samples, int) or isinstance(num_samples, bool) or num_samples <= 0:
            raise ValueError(f"WeightedRandomSampler: num_samples should be a positive integer "
                             f"value, but got num_samples={num_samples}")
        w = np.asarray(weights, dtype=np.float64)
        if w.ndim != 1 or (w < 0).any() or not np.isfinite(w).all() or w.sum() <= 0:
            raise ValueError("WeightedRandomSampler: weights must be a 1-d sequence of finite, "
                             "non-negative numbers with a positive sum")
        if not replacement and num_samples > int((w > 0).sum()):
            raise ValueError("WeightedRandomSampler: without replacement, num_samples cannot "
                             "exceed the number of positive weights")
        self.weights, self.num_samples = w, num_samples
        self.replacement, self.generator = replacement, generator

    def _draw(self, rng):
        return rng.choice(len(self.weights), size=self.num_samples, replace=self.replacement,
                          p=self.weights / self.weights.sum())

    def __len__(self) -> int:
        return self.num_samples


class BatchSampler(Sampler):
    """Groups another sampler's indices into lists of ``batch_size``.

    Example:
        >>> list(BatchSampler(SequentialSampler(range(7)), batch_size=3, drop_last=False))
        [[0, 1, 2], [3, 4, 5], [6]]

    Matches ``torch.utils.data.BatchSampler``.
    """

    def __init__(self, sampler, batch_size: int, drop_last: bool):
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size <= 0:
            raise ValueError(f"BatchSampler: batch_size should be a positive integer value, but "
                             f"got batch_size={batch_size}")
        if not isinstance(drop_last, bool):
            raise ValueError(f"BatchSampler: drop_last should be a boolean value, but got "
                             f"drop_last={drop_last}")
        self.sampler, self.batch_size, self.drop_last = sampler, batch_size, drop_last

    def __iter__(self):
        # iter(sampler) runs now, not at the first next(): a random sampler draws its order
        # here, so a DataLoader can read the epoch's state before any batch is made.
        return self._batches(iter(self.sampler))

    def _batches(self, indices):
        batch = []
        for i in indices:
            batch.append(i)
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch and not self.drop_last:
            yield batch

    def __len__(self) -> int:
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def state_dict(self) -> dict:
        return self.sampler.state_dict() if hasattr(self.sampler, "state_dict") else {}

    def load_state_dict(self, state: dict) -> None:
        if hasattr(self.sampler, "load_state_dict"):
            self.sampler.load_state_dict(state)
