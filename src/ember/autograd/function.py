"""User-defined differentiable operations: ``ember.autograd.Function``.

Matches: ``torch.autograd.Function`` (``forward(ctx, ...)``, ``backward(ctx, *grads)``,
``ctx.save_for_backward``, ``ctx.saved_tensors``, ``ctx.needs_input_grad``,
``ctx.mark_non_differentiable``, ``ctx.set_materialize_grads``, ``Function.apply``).

Example:
    >>> import ember
    >>> class Cube(ember.autograd.Function):
    ...     @staticmethod
    ...     def forward(ctx, x):
    ...         ctx.save_for_backward(x)
    ...         return x ** 3
    ...     @staticmethod
    ...     def backward(ctx, grad):
    ...         (x,) = ctx.saved_tensors
    ...         return grad * 3 * x ** 2
    >>> x = ember.tensor(2.0, requires_grad=True)
    >>> Cube.apply(x).backward()
    >>> x.grad.item()
    12.0
"""

from __future__ import annotations

import weakref

from .. import ops
from ..ops.base import Primitive
from .engine import Node
from .grad_mode import STATE, no_grad
from .tensor import Tensor


class FunctionCtx:
    """The ``ctx`` a Function's forward and backward share."""

    def __init__(self):
        self._saved = ()
        self._versions = ()
        self.needs_input_grad = ()
        self._non_diff = set()
        self.materialize_grads = True
        self._name = "Function"
        self._out_refs = None  # {saved index: output number} for saved outputs
        self._node = None  # weakref to the node, to rebuild saved outputs for double backward

    def save_for_backward(self, *tensors) -> None:
        for t in tensors:
            if t is not None and not isinstance(t, Tensor):
                raise TypeError(f"save_for_backward: expected tensors (or None), got "
                                f"{type(t).__name__}; keep other values as ctx attributes")
        self._saved = tensors
        self._versions = tuple((t._version, t._version[0]) if t is not None else None
                               for t in tensors)

    @property
    def saved_tensors(self) -> tuple:
        if self._saved is None:
            raise RuntimeError("saved_tensors: the saved tensors were freed after backward; "
                               "pass retain_graph=True to backward twice")
        for t, v in zip(self._saved, self._versions):
            if v is not None and v[0][0] != v[1]:
                raise RuntimeError(
                    f"{self._name}Backward: one of the tensors needed for gradient computation "
                    f"(a tensor of shape {tuple(t.shape)} passed to save_for_backward) has been "
                    f"modified by an in-place operation: it was saved at version {v[1]} and is "
                    f"now at version {v[0][0]}. Use an out-of-place op, or clone() it first.")
        if self._out_refs and STATE.enabled:
            # create_graph: a saved output must be the graph's output, not the no_grad original
            node = self._node()
            saved = list(self._saved)
            for i, k in self._out_refs.items():
                t = saved[i]
                saved[i] = Tensor._make(t._data, True, node, k, version=t._version)
            return tuple(saved)
        return self._saved

    def mark_non_differentiable(self, *tensors) -> None:
        self._non_diff.update(id(t) for t in tensors)

    def set_materialize_grads(self, value: bool) -> None:
        self.materialize_grads = bool(value)

    def mark_dirty(self, *tensors) -> None:
        pass


def _make_adapter(fn_cls):
    """A primitive whose backward calls the user's backward with Tensors."""

    class _UserFunctionBackward(Primitive):
        @staticmethod
        def backward(ctx, *grads):
            graph = STATE.enabled
            tgrads = []
            for g in grads:
                if g is None or isinstance(g, Tensor):
                    tgrads.append(g)
                else:
                    tgrads.append(Tensor._make(g))
            result = fn_cls.backward(ctx, *tgrads)
            if not isinstance(result, tuple):
                result = (result,)
            out = []
            for r in result:
                if r is None or graph:
                    out.append(r)
                elif isinstance(r, Tensor):
                    out.append(r._data)
                else:
                    out.append(ops.as_array(r))
            return tuple(out)

        @classmethod
        def op_name(cls) -> str:
            return fn_cls.__name__

    _UserFunctionBackward.raw_ctx = True
    return _UserFunctionBackward


class Function:
    """Base class for ops with a hand-written backward (subclass it; call ``.apply``)."""

    @staticmethod
    def forward(ctx, *args, **kwargs):
        raise NotImplementedError("Function subclasses must implement forward(ctx, ...)")

    @staticmethod
    def backward(ctx, *grad_outputs):
        raise NotImplementedError("Function subclasses must implement backward(ctx, *grads)")

    @classmethod
    def apply(cls, *args, **kwargs):
        ctx = FunctionCtx()
        ctx.needs_input_grad = tuple(isinstance(a, Tensor) and a._requires_grad for a in args)
        record = STATE.enabled and any(ctx.needs_input_grad)
        with no_grad():
            result = cls.forward(ctx, *args, **kwargs)
        if not record:
            return result
        multi = isinstance(result, tuple)
        outs = result if multi else (result,)
        adapter = cls.__dict__.get("_adapter")
        if adapter is None:
            adapter = _make_adapter(cls)
            cls._adapter = adapter
        edges, in_meta = [], []
        for a, need in zip(args, ctx.needs_input_grad):
            if need:
                edges.append((a.grad_fn, a._output_nr) if a.grad_fn is not None else (a, 0))
                in_meta.append((a._data.shape, a._data.dtype))
            else:
                edges.append(None)
                in_meta.append(None)
        out_meta = tuple((o._data.shape, o._data.dtype) if isinstance(o, Tensor) else ((), None)
                         for o in outs)
        node = Node(adapter, ctx, tuple(edges), tuple(in_meta), out_meta)
        ctx._name = cls.__name__
        wrapped = []
        for k, o in enumerate(outs):
            if isinstance(o, Tensor) and o._data.dtype.kind == "f" and \
                    id(o) not in ctx._non_diff:
                # the output shares its version counter, so in-place changes of a saved
                # output are detected
                wrapped.append(Tensor._make(o._data, True, node, k, version=o._version))
                for i, t in enumerate(ctx._saved):
                    if t is o:
                        if ctx._out_refs is None:
                            ctx._out_refs = {}
                            ctx._node = weakref.ref(node)
                        ctx._out_refs[i] = k
            else:
                wrapped.append(o)
        return tuple(wrapped) if multi else wrapped[0]
