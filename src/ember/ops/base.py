"""The primitive protocol: the one place where array math meets autograd.

A *primitive* is a class with two static methods:

- ``forward(ctx, *inputs, **attrs)`` computes the result with NumPy from NumPy arrays (and Python
  scalars), and may keep what backward needs with ``ctx.save_for_backward(...)`` (inputs or the
  output, so that autograd can connect them to the graph) or as plain ``ctx`` attributes
  (non-differentiable things: masks, indices, shapes);
- ``backward(ctx, grad)`` returns one gradient per input (``None`` where there is none), written
  with the functions of :mod:`ember.ops` rather than NumPy calls.

Writing backward with ops functions gives both speeds and higher-order gradients from one formula:
every ops function is *polymorphic*. Called on NumPy arrays it runs the primitive's forward
directly (this is how an ordinary ``loss.backward()`` runs: pure NumPy, no graph); called with an
:class:`TensorBase` among its arguments it hands the primitive to that tensor's autograd layer,
which records it (this is how ``create_graph=True`` builds a differentiable graph of the backward).

The ops package never imports autograd: it only knows the :class:`TensorBase` interface below.
"""

from __future__ import annotations

import numpy as np


class TensorBase:
    """Interface the autograd layer's Tensor implements (``_data`` and ``_apply_primitive``)."""

    __slots__ = ()
    _data: np.ndarray

    @staticmethod
    def _apply_primitive(prim, args, attrs):  # pragma: no cover - implemented by Tensor
        raise NotImplementedError


class Context:
    """What a primitive's forward leaves for its backward."""

    def save_for_backward(self, *values) -> None:
        self.saved = values


class _NullContext:
    """Stands in for a Context when no backward will run: stores nothing."""

    __slots__ = ()

    def save_for_backward(self, *values) -> None:
        pass

    def __setattr__(self, name, value) -> None:
        pass


NULL_CTX = _NullContext()

#: the attributes of a primitive call that has none (shared: ``_apply_primitive`` only reads it)
NO_ATTRS: dict = {}


class Primitive:
    """Base class of every primitive operation (see the module docstring)."""

    #: False for ops without a gradient (comparisons, argmax, floor): they never record a graph.
    differentiable = True
    #: True when the output may share memory with input 0 (reshape, transpose, slicing ...);
    #: such an output shares input 0's version counter, so in-place changes are detected.
    view = False
    #: False when backward accepts None for an output that received no gradient (instead of
    #: an array of zeros built and handed to it): a recurrence whose full output sequence is
    #: unused, for instance.
    materialize_grads = True

    @staticmethod
    def forward(ctx, *args, **attrs):
        raise NotImplementedError

    @staticmethod
    def backward(ctx, grad):
        raise NotImplementedError

    @classmethod
    def op_name(cls) -> str:
        return cls.__name__.lower()


def call(prim, *args, **attrs):
    """Run ``prim`` on ``args``: recorded by autograd if a tensor is among them, else NumPy."""
    if args and isinstance(args[0], TensorBase):  # the common case, checked first
        return args[0]._apply_primitive(prim, args, attrs)
    for a in args:
        if isinstance(a, TensorBase):
            return a._apply_primitive(prim, args, attrs)
    return prim.forward(NULL_CTX, *args, **attrs)


def data_of(x):
    """The NumPy array (or scalar) behind ``x``."""
    return x._data if isinstance(x, TensorBase) else x


def shape_of(x) -> tuple:
    if isinstance(x, TensorBase):
        return x._data.shape
    if type(x) is np.ndarray:
        return x.shape
    return np.shape(x)


def dtype_of(x):
    """NumPy dtype of a tensor or array; None for Python scalars."""
    if isinstance(x, TensorBase):
        return x._data.dtype
    if isinstance(x, np.ndarray):
        return x.dtype
    return None


def normalize_dim(dim: int, ndim: int, op: str) -> int:
    """Map a possibly negative ``dim`` into ``range(ndim)`` (0-d tensors accept -1 and 0)."""
    n = max(ndim, 1)
    if not -n <= dim < n:
        raise IndexError(f"{op}: dimension {dim} out of range for a tensor with {ndim} dims "
                         f"(expected a dim in [{-n}, {n - 1}])")
    return dim % n


def normalize_dims(dim, ndim: int, op: str):
    """``dim`` as a sorted tuple of non-negative axes; None means all axes."""
    if dim is None:
        return tuple(range(ndim))
    if isinstance(dim, (int, np.integer)):
        dim = (int(dim),)
    axes = tuple(sorted({normalize_dim(int(d), ndim, op) for d in dim}))
    if ndim == 0:
        return ()
    return axes
