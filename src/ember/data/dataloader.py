"""The DataLoader: batches from a dataset, in sampler order, optionally prepared ahead.

Matches: ``torch.utils.data.DataLoader`` (``batch_size``, ``shuffle``, ``sampler``,
``batch_sampler``, ``drop_last``, ``collate_fn``, ``generator``; ``len()``). ember runs in one
process: ``num_workers``, ``pin_memory``, ``timeout``, ``worker_init_fn``,
``prefetch_factor`` and ``persistent_workers`` are accepted and ignored.

ember additions:

* ``prefetch=k``: one background thread prepares up to ``k`` batches ahead (NumPy releases the
  GIL in most array work, so loading overlaps training). An exception raised while preparing
  a batch is re-raised in the main thread at that batch; stopping early (``break``) stops the
  thread. Random transforms then run in that thread: give them their own ``Generator`` so
  they don't share the default one with the training step.
* ``state_dict()`` / ``load_state_dict()``: the sampler's RNG state for the current epoch and
  how many batches were consumed. A run resumed from it yields exactly the remaining batches
  of the epoch, in the same order, then carries on as the uninterrupted run would.
"""

from __future__ import annotations

import itertools
import queue
import threading

from ..ops.random import Generator
from .collate import default_collate, default_convert
from .dataset import IterableDataset, has_get_batch
from .sampler import BatchSampler, RandomSampler, SequentialSampler


class DataLoader:
    """Iterate over ``dataset`` in batches.

    Args:
        dataset: a map-style dataset (``len``/``[i]``) or an ``IterableDataset``.
        batch_size: samples per batch; ``None`` yields samples one by one (converted only).
        shuffle: reshuffle every epoch (a ``RandomSampler`` using ``generator``).
        sampler: the index order (excludes ``shuffle``).
        batch_sampler: yields lists of indices (excludes the four options above).
        drop_last: drop the last, incomplete batch.
        collate_fn: list of samples -> batch (default :func:`default_collate`).
        generator: the ember ``Generator`` for shuffling.
        prefetch: batches to prepare ahead in a background thread (0: none).

    Example:
        >>> import ember
        >>> from ember.data import TensorDataset
        >>> ds = TensorDataset(ember.arange(10.0).reshape(5, 2), ember.arange(5))
        >>> [y.tolist() for x, y in DataLoader(ds, batch_size=2)]
        [[0, 1], [2, 3], [4]]
    """

    def __init__(self, dataset, batch_size: int | None = 1, shuffle: bool | None = None,
                 sampler=None, batch_sampler=None, num_workers: int = 0, collate_fn=None,
                 pin_memory: bool = False, drop_last: bool = False, timeout: float = 0,
                 worker_init_fn=None, generator: Generator | None = None, *,
                 prefetch_factor=None, persistent_workers: bool = False, prefetch: int = 0):
        if not isinstance(prefetch, int) or prefetch < 0:
            raise ValueError(f"DataLoader: prefetch must be a non-negative int, got {prefetch!r}")
        if not isinstance(num_workers, int) or num_workers < 0:
            raise ValueError(f"DataLoader: num_workers option should be non-negative; got "
                             f"{num_workers!r}")
        self.dataset, self.batch_size, self.drop_last = dataset, batch_size, drop_last
        self.generator, self.prefetch, self.num_workers = generator, prefetch, num_workers
        self._iterable = isinstance(dataset, IterableDataset)
        self._default_collate = collate_fn is None
        if collate_fn is None:
            collate_fn = default_collate if batch_size is not None or batch_sampler is not None \
                else default_convert
        self.collate_fn = collate_fn
        if self._iterable:
            if shuffle:
                raise ValueError("DataLoader with IterableDataset: expected unspecified shuffle "
                                 "option, but got shuffle=True")
            if sampler is not None or batch_sampler is not None:
                raise ValueError("DataLoader with IterableDataset: expected unspecified sampler "
                                 "and batch_sampler options")
            self.sampler = self.batch_sampler = None
        else:
            self.sampler, self.batch_sampler = self._make_samplers(
                dataset, batch_size, shuffle, sampler, batch_sampler, drop_last, generator)
        self._progress = None
        self._skip_batches = 0

    @staticmethod
    def _make_samplers(dataset, batch_size, shuffle, sampler, batch_sampler, drop_last,
                       generator):
        if sampler is not None and shuffle:
            raise ValueError("DataLoader: sampler option is mutually exclusive with shuffle")
        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError("DataLoader: batch_sampler option is mutually exclusive with "
                                 "batch_size, shuffle, sampler, and drop_last")
            return getattr(batch_sampler, "sampler", None), batch_sampler
        if batch_size is None and drop_last:
            raise ValueError("DataLoader: batch_size=None option disables auto-batching and is "
                             "mutually exclusive with drop_last")
        if sampler is None:
            sampler = RandomSampler(dataset, generator=generator) if shuffle \
                else SequentialSampler(dataset)
        if batch_size is None:
            return sampler, None
        return sampler, BatchSampler(sampler, batch_size, drop_last)

    def __len__(self) -> int:
        if self._iterable:
            n = len(self.dataset)  # TypeError when the stream has no length, like PyTorch
            if self.batch_size is None:
                return n
            return n // self.batch_size if self.drop_last else -(-n // self.batch_size)
        return len(self.batch_sampler if self.batch_sampler is not None else self.sampler)

    # ------------------------------------------------------------------ iteration
    def _index_batches(self):
        """An iterator of index lists (or single indices when batch_size=None)."""
        if self.batch_sampler is not None:
            return iter(self.batch_sampler)
        return iter(self.sampler)

    def _fetch(self, index):
        if self.batch_sampler is None:
            return self.collate_fn(self.dataset[index])
        if self._default_collate and has_get_batch(self.dataset):
            return self.dataset.get_batch(index)
        return self.collate_fn([self.dataset[i] for i in index])

    def _iterable_batches(self):
        it = iter(self.dataset)
        if self.batch_size is None:
            for sample in it:
                yield self.collate_fn(sample)
            return
        while True:
            chunk = list(itertools.islice(it, self.batch_size))
            if not chunk or (self.drop_last and len(chunk) < self.batch_size):
                return
            yield self.collate_fn(chunk)

    def _sampler_with_state(self):
        sampler = self.sampler
        return sampler if hasattr(sampler, "state_dict") else None

    def __iter__(self) -> _LoaderIterator:
        skip, self._skip_batches = self._skip_batches, 0
        if self._iterable:
            epoch_state = None
            batches = self._iterable_batches()
            for _ in range(skip):
                next(batches, None)
        else:
            sampler = self._sampler_with_state()
            index_iter = self._index_batches()  # a random sampler draws its order here
            epoch_state = sampler.state_dict() if sampler is not None else None
            for _ in range(skip):
                next(index_iter, None)
            batches = map(self._fetch, index_iter)
        it = _LoaderIterator(batches, self.prefetch, _Progress(epoch_state, skip))
        self._progress = it.progress
        return it

    # ------------------------------------------------------------------ resuming
    def state_dict(self) -> dict:
        """Where iteration stands: the epoch's sampler state and the batches consumed.

        Taken mid-epoch (between batches, or after a ``break``), loading it into a fresh
        loader built the same way makes its next epoch yield the remaining batches in the
        same order. Taken after a whole epoch, the next epoch starts afresh.
        """
        p = self._progress
        if p is not None and not p.finished and not self._epoch_complete(p.consumed):
            return {"sampler": p.epoch_state, "batches_consumed": p.consumed}
        return {"sampler": _between_epochs_state(self._sampler_with_state()),
                "batches_consumed": 0}

    def _epoch_complete(self, consumed: int) -> bool:
        try:
            return consumed >= len(self)
        except TypeError:  # an IterableDataset without a length
            return False

    def load_state_dict(self, state: dict) -> None:
        sampler = self._sampler_with_state()
        if state.get("sampler") is not None and sampler is not None:
            sampler.load_state_dict(state["sampler"])
        self._skip_batches = int(state.get("batches_consumed", 0))


def _between_epochs_state(sampler):
    if sampler is None:
        return None
    state = sampler.state_dict()
    if "epoch_rng_state" in state:  # the order is drawn, all its batches were consumed
        gen = getattr(sampler, "generator", None)
        state = {"rng_state": gen.get_state() if gen is not None else None}
    return state


_DONE = object()


class _Progress:
    """What the loader remembers of its latest epoch, kept even after the iterator is gone."""

    def __init__(self, epoch_state, consumed: int):
        self.epoch_state, self.consumed, self.finished = epoch_state, consumed, False


class _LoaderIterator:
    """Yields batches, directly or through a prefetching thread; counts what it yields."""

    def __init__(self, batches, prefetch: int, progress: _Progress):
        self.progress = progress
        self._prefetcher = _Prefetcher(batches, prefetch) if prefetch > 0 else None
        self._batches, self._done = batches, False

    def __iter__(self):
        return self

    def __next__(self):
        if self._done:
            raise StopIteration
        try:
            batch = self._prefetcher.get() if self._prefetcher else next(self._batches)
        except StopIteration:
            self._done = self.progress.finished = True
            raise
        except BaseException:
            self.close()
            raise
        self.progress.consumed += 1
        return batch

    def close(self) -> None:
        """Stop the prefetching thread (also done when the iterator is dropped)."""
        self._done = True
        if self._prefetcher is not None:
            self._prefetcher.stop()

    def __del__(self):
        if self._prefetcher is not None:
            self._prefetcher.stop()


class _Prefetcher:
    """A daemon thread filling a bounded queue with ("ok", batch) / ("error", exc) / _DONE.

    The thread holds no reference to the iterator that owns it, so dropping the iterator
    (a ``break`` out of the loop) runs ``__del__``, which stops the thread.
    """

    def __init__(self, batches, size: int):
        self._queue: queue.Queue = queue.Queue(maxsize=size)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=_produce, args=(batches, self._queue, self._stop),
                                        name="ember-data-prefetch", daemon=True)
        self._thread.start()

    def get(self):
        item = self._queue.get()
        if item is _DONE:
            self._thread.join()
            raise StopIteration
        kind, value = item
        if kind == "error":
            self._thread.join()
            raise value
        return value

    def stop(self) -> None:
        self._stop.set()
        while self._thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                self._queue.get(timeout=0.01)
            except queue.Empty:
                pass
        self._thread.join()


def _produce(batches, q: queue.Queue, stop: threading.Event) -> None:
    def put(item) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    try:
        for batch in batches:
            if not put(("ok", batch)):
                return
    except BaseException as exc:  # handed to the main thread, never raised here
        put(("error", exc))
        return
    put(_DONE)
