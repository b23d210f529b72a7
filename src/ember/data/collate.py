"""Turning a list of samples into a batch: ``default_collate`` and ``default_convert``.

Matches: ``torch.utils.data.default_collate`` / ``default_convert``: tensors, NumPy arrays and
numbers are stacked into ember tensors (Python floats become float64, ints int64, like
PyTorch); dicts, tuples, lists and namedtuples are collated field by field; strings and bytes
stay as lists.
"""

from __future__ import annotations

import collections.abc

import numpy as np

from .. import ops
from ..autograd import Tensor
from ..autograd.creation import from_numpy, tensor
from ..ops.dtypes import float64


def _stack_tensors(batch: list) -> Tensor:
    shapes = {b.shape for b in batch}
    if len(shapes) != 1:
        raise RuntimeError(f"default_collate: stack expects each tensor to be equal size, but "
                           f"got shapes {sorted(shapes)}")
    if any(b.requires_grad for b in batch):
        return ops.stack(batch, 0)
    return from_numpy(np.stack([b.numpy() for b in batch]))


def _collate_arrays(batch: list) -> Tensor:
    if batch[0].dtype.kind in "OSU":
        raise TypeError(f"default_collate: batch must contain tensors, NumPy arrays, numbers, "
                        f"dicts or lists; found arrays of dtype {batch[0].dtype}")
    shapes = {b.shape for b in batch}
    if len(shapes) != 1:
        raise RuntimeError(f"default_collate: stack expects each array to be equal size, but "
                           f"got shapes {sorted(shapes)}")
    return from_numpy(np.stack(batch))


def default_collate(batch: list):
    """Stack a list of samples into a batch, recursing into containers.

    Example:
        >>> import numpy as np
        >>> out = default_collate([(np.zeros(2), 1, "a"), (np.ones(2), 2, "b")])
        >>> out[0].shape, out[1].tolist(), out[2]
        ((2, 2), [1, 2], ['a', 'b'])

    Matches ``torch.utils.data.default_collate`` (tuples come back as lists, like PyTorch).
    """
    elem = batch[0]
    if isinstance(elem, Tensor):
        return _stack_tensors(batch)
    if isinstance(elem, np.ndarray):
        return _collate_arrays(batch)
    if isinstance(elem, np.generic):
        return from_numpy(np.array(batch))
    if isinstance(elem, (bool, int, float)):
        dtype = float64 if isinstance(elem, float) else None
        return tensor(batch, dtype=dtype)
    if isinstance(elem, (str, bytes)):
        return list(batch)
    if isinstance(elem, collections.abc.Mapping):
        return {key: default_collate([d[key] for d in batch]) for key in elem}
    if isinstance(elem, tuple) and hasattr(elem, "_fields"):
        return type(elem)(*(default_collate(list(s)) for s in zip(*batch)))
    if isinstance(elem, collections.abc.Sequence):
        if any(len(b) != len(elem) for b in batch):
            raise RuntimeError("default_collate: each element in list of batch should be of "
                               "equal size")
        return [default_collate(list(samples)) for samples in zip(*batch)]
    raise TypeError(f"default_collate: batch must contain tensors, NumPy arrays, numbers, dicts "
                    f"or lists; found {type(elem).__name__}")


def default_convert(data):
    """Turn NumPy arrays (inside containers too) into ember tensors, without batching.

    Used by the DataLoader when ``batch_size=None``. Matches
    ``torch.utils.data.default_convert``.
    """
    if isinstance(data, np.ndarray) and data.dtype.kind not in "OSU":
        return from_numpy(data)
    if isinstance(data, np.generic) and data.dtype.kind not in "OSU":
        return from_numpy(np.asarray(data))
    if isinstance(data, collections.abc.Mapping):
        return {key: default_convert(v) for key, v in data.items()}
    if isinstance(data, tuple) and hasattr(data, "_fields"):
        return type(data)(*(default_convert(d) for d in data))
    if isinstance(data, tuple):
        return [default_convert(d) for d in data]
    if isinstance(data, list):
        return [default_convert(d) for d in data]
    return data
