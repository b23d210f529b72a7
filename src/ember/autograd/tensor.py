"""``ember.Tensor``: a NumPy array that remembers how it was computed.

Matches: ``torch.Tensor`` (names, arguments and semantics of the methods below).

A tensor holds its data in ``_data`` (a NumPy array), and for autograd: ``requires_grad``,
``grad`` (a Tensor, filled by backward), ``grad_fn`` (the :class:`~ember.autograd.engine.Node`
that produced it; None for leaves) and a *version counter* shared with its views, bumped by
every in-place change, which lets backward detect a saved value that was overwritten.

Ops are not implemented here: each method calls the function of the same name in
:mod:`ember.ops`, which owns all array math.
"""

from __future__ import annotations

import numpy as np

from .. import ops
from ..ops import dtypes as _dt
from ..ops.base import Context, Primitive, TensorBase
from .anomaly import capture_origin, check_forward
from .engine import Node, run_backward
from .grad_mode import STATE


def _describe(i: int, arr) -> str:
    return f"input {i} of shape {tuple(np.shape(arr))}"


class Tensor(TensorBase):
    """An n-dimensional array with reverse-mode automatic differentiation.

    Create tensors with :func:`ember.tensor`, :func:`ember.zeros`, :func:`ember.randn` and
    friends; ``Tensor(data)`` also works and, like PyTorch, gives float32.

    Example:
        >>> import ember
        >>> x = ember.tensor([1.0, 2.0, 3.0], requires_grad=True)
        >>> (x * x).sum().backward()
        >>> x.grad
        tensor([2., 4., 6.])
    """

    __slots__ = ("_data", "_requires_grad", "grad", "grad_fn", "_output_nr", "_version",
                 "_base", "_hooks", "_retains_grad", "__weakref__")
    __array_priority__ = 1000  # make ndarray (op) Tensor defer to Tensor's reflected operator

    def __init__(self, data=None, *, dtype=None, requires_grad: bool = False):
        from .creation import _to_array

        arr = _to_array([] if data is None else data, dtype if dtype is not None else _dt.float32)
        self._init(arr, False, None, 0, [0], None)
        if requires_grad:
            self.requires_grad_(True)

    def _init(self, data, requires_grad, grad_fn, output_nr, version, base):
        self._data = data
        self._requires_grad = requires_grad
        self.grad = None
        self.grad_fn = grad_fn
        self._output_nr = output_nr
        self._version = version
        self._base = base
        self._hooks = None
        self._retains_grad = False

    @classmethod
    def _make(cls, data, requires_grad=False, grad_fn=None, output_nr=0, version=None, base=None):
        """Wrap a NumPy array without copying (internal fast constructor)."""
        t = object.__new__(cls)
        t._init(data, requires_grad, grad_fn, output_nr, [0] if version is None else version,
                base)
        return t

    # ------------------------------------------------------------------ recording ops
    @staticmethod
    def _apply_primitive(prim: type[Primitive], args, attrs):
        """Run a primitive on tensors, recording a graph node when a gradient is needed.

        This is the hottest path of the framework (every op of every forward pass), so it is
        written for speed: one pass over the arguments, one forward call, one node.
        """
        needs_grad = False
        if STATE.enabled and prim.differentiable:
            arrays = []
            for a in args:
                if isinstance(a, Tensor):
                    arrays.append(a._data)
                    if a._requires_grad:
                        needs_grad = True
                else:
                    arrays.append(a)
        else:  # no_grad (an inference) or an op without a gradient
            arrays = []  # (a loop: a list comprehension costs a frame of its own in 3.11)
            for a in args:
                arrays.append(a._data if isinstance(a, Tensor) else a)
        if not needs_grad:
            # no graph: the forward call and the new tensor written out here, not through
            # _forward and _wrap_view (this is every op of an inference)
            try:
                out = prim.forward(NULL_CTX, *arrays, **attrs)
            except (ValueError, IndexError, TypeError) as e:
                _raise_named(prim, e, arrays)
            if STATE.anomaly:  # the only cost of anomaly mode when it is off
                check_forward(prim, args, attrs, out if isinstance(out, tuple) else (out,))
            if type(out) is not np.ndarray or prim.view:
                if isinstance(out, tuple):
                    return tuple(_wrap_view(prim, o, args) for o in out)
                return _wrap_view(prim, out, args)
            t = _new(Tensor)
            t._data = out
            t._requires_grad = False
            t.grad = t.grad_fn = t._hooks = t._base = None
            t._output_nr = 0
            t._retains_grad = False
            t._version = [0]
            return t
        ctx = Context()
        out = _forward(prim, ctx, arrays, attrs)
        if type(out) is np.ndarray:  # one output: the common case
            node = _record(prim, ctx, args, arrays, (out,), attrs)
            t = _wrap_view(prim, out, args, node)
            if node.versions is not None:
                _fix_output_versions(node, [t])
            return t
        multi = isinstance(out, tuple)
        outs = out if multi else (out,)
        outs = tuple(o if type(o) is np.ndarray else np.asarray(o) for o in outs)
        node = _record(prim, ctx, args, arrays, outs, attrs)
        results = []
        for k, o in enumerate(outs):
            t = Tensor._make(o, True, node, k)
            if prim.view and k == 0 and isinstance(args[0], Tensor):
                t._version = args[0]._version
                t._base = args[0]._base if args[0]._base is not None else args[0]
            results.append(t)
        if node.versions is not None:
            _fix_output_versions(node, results)
        return tuple(results) if multi else results[0]

    # ------------------------------------------------------------------ autograd attributes
    @property
    def requires_grad(self) -> bool:
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, value: bool) -> None:
        self.requires_grad_(value)

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        """Set whether autograd records ops on this leaf tensor (in place); returns self."""
        requires_grad = bool(requires_grad)
        if self.grad_fn is not None and not requires_grad:
            raise RuntimeError("requires_grad_: you can only change requires_grad of leaf "
                               "tensors; use detach() to get a tensor that does not require grad")
        if requires_grad and self._data.dtype.kind != "f":
            raise RuntimeError(f"requires_grad_: only floating-point tensors can require "
                               f"gradients, got dtype {self.dtype}; convert with .float() first")
        self._requires_grad = requires_grad
        return self

    @property
    def is_leaf(self) -> bool:
        return self.grad_fn is None

    @property
    def data(self) -> Tensor:
        """A tensor sharing this one's storage, detached from autograd (PyTorch's ``.data``)."""
        return Tensor._make(self._data)

    @data.setter
    def data(self, value) -> None:
        value = value._data if isinstance(value, Tensor) else np.asarray(value)
        self._data = value

    @property
    def retains_grad(self) -> bool:
        return self._retains_grad is not False

    def detach(self) -> Tensor:
        """A new tensor sharing storage (and version counter), outside the graph."""
        return Tensor._make(self._data, version=self._version,
                            base=self._base if self._base is not None else self)

    def detach_(self) -> Tensor:
        """Detach this tensor from the graph in place, making it a leaf."""
        self.grad_fn = None
        self._requires_grad = False
        return self

    def backward(self, gradient=None, retain_graph=None, create_graph: bool = False,
                 inputs=None) -> None:
        """Accumulate d(self)/d(leaf) into the ``.grad`` of every leaf that requires grad.

        Args:
            gradient: the gradient of some scalar with respect to this tensor; may be omitted
                when this tensor holds a single element (it is then 1).
            retain_graph: keep the graph's saved values for another backward (defaults to
                ``create_graph``).
            create_graph: record the backward pass itself, for higher-order gradients.
            inputs: if given, accumulate only into these tensors' ``.grad``.
        """
        roots, grads = _root_grads([self], None if gradient is None else [gradient],
                                   create_graph, "backward")
        retain = create_graph if retain_graph is None else retain_graph
        if inputs is not None:
            inputs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
            run_backward(roots, grads, retain, create_graph, inputs=inputs, accumulate=True)
            return
        run_backward(roots, grads, retain, create_graph)

    def register_hook(self, hook):
        """Call ``hook(grad)`` when this tensor's gradient is computed; it may return a new grad.

        Returns a handle whose ``remove()`` unregisters the hook.
        """
        if not self._requires_grad:
            raise RuntimeError("register_hook: cannot register a hook on a tensor that does "
                               "not require gradient")
        if self.grad_fn is None:
            if self._hooks is None:
                self._hooks = []
            hooks = self._hooks
        else:
            node = self.grad_fn
            if node.hooks is None:
                node.hooks = {}
            hooks = node.hooks.setdefault(self._output_nr, [])
        retain = self._retains_grad
        if retain and retain in hooks:  # like PyTorch, retain_grad sees the final gradient
            hooks.insert(hooks.index(retain), hook)
        else:
            hooks.append(hook)
        return _HookHandle(hooks, hook)

    def retain_grad(self) -> None:
        """Keep ``.grad`` for this non-leaf tensor after backward."""
        if self.grad_fn is None or self._retains_grad:
            return
        import weakref

        ref = weakref.ref(self)

        def _store(grad):
            t = ref()
            if t is not None:
                g = grad.detach()
                t.grad = g if t.grad is None else t.grad + g
            return None

        self.register_hook(_store)
        self._retains_grad = _store

    # ------------------------------------------------------------------ introspection
    @property
    def shape(self) -> tuple:
        return self._data.shape

    @property
    def ndim(self) -> int:
        return self._data.ndim

    def dim(self) -> int:
        return self._data.ndim

    @property
    def dtype(self):
        return _dt.from_np(self._data.dtype)

    @property
    def device(self) -> str:
        return "cpu"

    def is_floating_point(self) -> bool:
        return self._data.dtype.kind == "f"

    def size(self, dim: int | None = None):
        """The shape, or the size of one dimension."""
        if dim is None:
            return self._data.shape
        return self._data.shape[ops.base.normalize_dim(dim, self._data.ndim, "size")]

    def numel(self) -> int:
        return int(self._data.size)

    def element_size(self) -> int:
        return self._data.itemsize

    def __len__(self) -> int:
        if self._data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self._data.shape[0]

    def numpy(self, *, force: bool = False) -> np.ndarray:
        """The data as a NumPy array sharing memory (like PyTorch, refuses if grad is needed)."""
        if self._requires_grad and not force:
            raise RuntimeError("numpy: can't call numpy() on a tensor that requires grad; "
                               "use tensor.detach().numpy() instead")
        return self._data

    def item(self):
        """The single value of a one-element tensor as a Python number."""
        if self._data.size != 1:
            raise RuntimeError(f"item: a tensor with {self._data.size} elements cannot be "
                               f"converted to a Python scalar (shape {self.shape})")
        return self._data.item()

    def tolist(self):
        return self._data.tolist()

    def __repr__(self) -> str:
        extras = []
        if self._data.dtype not in (_dt.F32, _dt.DEFAULT_INT, np.dtype(bool)) or \
                self._data.size == 0:
            extras.append(f"dtype={self.dtype}")
        if self.grad_fn is not None:
            extras.append(f"grad_fn={self.grad_fn!r}")
        elif self._requires_grad:
            extras.append("requires_grad=True")
        return ops.format_tensor(self._data, extras)

    def __bool__(self) -> bool:
        if self._data.size != 1:
            raise RuntimeError(f"bool: the truth value of a tensor with {self._data.size} "
                               f"elements is ambiguous; use .any() or .all()")
        return bool(self._data.item())

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __index__(self) -> int:
        if self._data.dtype.kind not in "iub" or self._data.size != 1:
            raise TypeError("only integer tensors of a single element can be converted to an "
                            "index")
        return int(self._data.item())

    def __hash__(self) -> int:
        return id(self)

    def __array__(self, dtype=None, copy=None):
        return self._data if dtype is None else self._data.astype(dtype)

    def __iter__(self):
        if self._data.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return iter(self.unbind(0))

    def __getstate__(self):
        raise TypeError("ember tensors cannot be pickled; use ember.save (safetensors) instead")

    # ------------------------------------------------------------------ dtype and device
    def to(self, *args, dtype=None, device=None, copy: bool = False) -> Tensor:
        """Convert dtype and/or device: ``t.to(ember.float64)``, ``t.to("cpu")``, ``t.to(t2)``."""
        for a in args:
            if isinstance(a, str) and not _looks_like_dtype(a):
                device = a
            elif isinstance(a, Tensor):
                dtype = a.dtype
            else:
                dtype = a
        if device is not None:
            check_device(device, "to")
        if dtype is not None:
            try:
                npd = _dt.as_np_dtype(dtype)
            except TypeError as e:
                raise TypeError(f"to: {e}") from None
        out = self if dtype is None else ops.cast(self, npd)
        return out.clone() if copy and out is self else out

    def cpu(self) -> Tensor:
        return self

    def type(self, dtype=None):
        if dtype is None:
            return f"ember.{self.dtype.name}"
        return self.to(dtype)

    def float(self) -> Tensor:
        return ops.cast(self, _dt.F32)

    def double(self) -> Tensor:
        return ops.cast(self, _dt.F64)

    def half(self) -> Tensor:
        return ops.cast(self, np.dtype(np.float16))

    def long(self) -> Tensor:
        return ops.cast(self, _dt.DEFAULT_INT)

    def int(self) -> Tensor:
        return ops.cast(self, np.dtype(np.int32))

    def bool(self) -> Tensor:
        return ops.cast(self, np.dtype(bool))

    # ------------------------------------------------------------------ operators
    def __add__(self, other):
        return ops.add(self, other)

    def __radd__(self, other):
        return ops.add(other, self)

    def __sub__(self, other):
        return ops.sub(self, other)

    def __rsub__(self, other):
        return ops.sub(other, self)

    def __mul__(self, other):
        return ops.mul(self, other)

    def __rmul__(self, other):
        return ops.mul(other, self)

    def __truediv__(self, other):
        return ops.div(self, other)

    def __rtruediv__(self, other):
        return ops.div(other, self)

    def __floordiv__(self, other):
        return ops.floor_divide(self, other)

    def __rfloordiv__(self, other):
        return ops.floor_divide(other, self)

    def __mod__(self, other):
        return ops.remainder(self, other)

    def __rmod__(self, other):
        return ops.remainder(other, self)

    def __pow__(self, other):
        return ops.pow(self, other)

    def __rpow__(self, other):
        return ops.pow(other, self)

    def __matmul__(self, other):
        return ops.matmul(self, other)

    def __rmatmul__(self, other):
        return ops.matmul(other, self)

    def __neg__(self):
        return ops.neg(self)

    def __pos__(self):
        return self

    def __abs__(self):
        return ops.abs(self)

    def __invert__(self):
        return ops.bitwise_not(self)

    def __and__(self, other):
        return ops.logical_and(self, other)

    def __rand__(self, other):
        return ops.logical_and(other, self)

    def __or__(self, other):
        return ops.logical_or(self, other)

    def __ror__(self, other):
        return ops.logical_or(other, self)

    def __xor__(self, other):
        return ops.logical_xor(self, other)

    def __eq__(self, other):  # noqa: D105 - elementwise, like PyTorch
        return ops.eq(self, other)

    def __ne__(self, other):
        return ops.ne(self, other)

    def __lt__(self, other):
        return ops.lt(self, other)

    def __le__(self, other):
        return ops.le(self, other)

    def __gt__(self, other):
        return ops.gt(self, other)

    def __ge__(self, other):
        return ops.ge(self, other)

    def __getitem__(self, key):
        return ops.getitem(self, key)

    def __setitem__(self, key, value) -> None:
        from .inplace import setitem_

        setitem_(self, key, value)

    # in-place arithmetic operators: x += y
    def __iadd__(self, other):
        return self.add_(other)

    def __isub__(self, other):
        return self.sub_(other)

    def __imul__(self, other):
        return self.mul_(other)

    def __itruediv__(self, other):
        return self.div_(other)

    # ------------------------------------------------------------------ shape helpers
    @property
    def T(self) -> Tensor:  # noqa: N802
        """All dims reversed (PyTorch deprecates ``.T`` beyond 2-D; ember allows it)."""
        return ops.permute(self, tuple(range(self._data.ndim - 1, -1, -1)))

    @property
    def mT(self) -> Tensor:  # noqa: N802
        """The last two dims swapped (batched matrix transpose)."""
        return ops.transpose(self, -2, -1)


def _looks_like_dtype(s: str) -> bool:
    try:
        _dt.as_dtype(s)
        return True
    except TypeError:
        return False


def check_device(device, op: str | None = None) -> None:
    """Only the CPU exists in this build: anything else is a clear error."""
    name = str(device)
    if name not in ("cpu", "cpu:0"):
        where = f"{op}: " if op else ""
        raise RuntimeError(f"{where}device {name!r} is not available: this build of ember runs "
                           f"on the CPU only (use device='cpu')")


class _HookHandle:
    def __init__(self, hooks: list, hook):
        self._hooks = hooks
        self._hook = hook

    def remove(self) -> None:
        if self._hook in self._hooks:
            self._hooks.remove(self._hook)


def _forward(prim, ctx, arrays, attrs):
    try:
        return prim.forward(ctx, *arrays, **attrs)
    except (ValueError, IndexError, TypeError) as e:
        _raise_named(prim, e, arrays)


def _raise_named(prim, e, arrays):
    """Re-raise ``e`` (raised by ``prim``'s forward) with the op's name and the input shapes
    in front, unless it already names the op."""
    name = prim.op_name()
    if getattr(e, "ember", False) or str(e).startswith(name + ":"):
        raise e  # already names the op
    shapes = ", ".join(_describe(i, a) for i, a in enumerate(arrays))
    raise type(e)(f"{name}: {e} ({shapes})") from e


_new = object.__new__
NULL_CTX = ops.base.NULL_CTX


def _wrap_view(prim, out, args, node=None):
    """A new tensor around ``out`` (the output of ``prim`` on ``args``, recorded as ``node``);
    a view shares its input's version counter and base. Written out rather than through
    ``Tensor._make`` because it runs for every op."""
    if type(out) is not np.ndarray:
        out = np.asarray(out)
    t = object.__new__(Tensor)
    t._data = out
    t._requires_grad = node is not None
    t.grad = None
    t.grad_fn = node
    t._output_nr = 0
    t._hooks = None
    t._retains_grad = False
    if prim.view and isinstance(args[0], Tensor):
        t._version = args[0]._version
        t._base = args[0]._base if args[0]._base is not None else args[0]
    else:
        t._version = [0]
        t._base = None
    return t


def _record(prim, ctx, args, arrays, outs, attrs) -> Node:
    """Build the graph node of one op (kept lean: this runs for every recorded op)."""
    edges = []
    in_meta = []
    for a, arr in zip(args, arrays):
        if isinstance(a, Tensor) and a._requires_grad:
            fn = a.grad_fn
            edges.append((a, 0) if fn is None else (fn, a._output_nr))
            in_meta.append((arr.shape, arr.dtype))
        else:
            edges.append(None)
            in_meta.append(None)
    node = Node(prim, ctx, tuple(edges), tuple(in_meta),
                tuple([(o.shape, o.dtype) for o in outs]))
    # lets a backward skip gradients nobody needs (e.g. matmul's for a network's input)
    ctx.needs_input_grad = tuple([e is not None for e in edges])
    saved = ctx.__dict__.get("saved")
    if saved:
        sources, versions = [], []
        for v in saved:
            src = None
            for i, arr in enumerate(arrays):
                if v is arr:
                    a = args[i]
                    if isinstance(a, Tensor):
                        src = a
                        versions.append((a._version, a._version[0], arr.shape))
                    break
            else:
                for k, o in enumerate(outs):
                    if v is o:
                        src = ("out", k)
                        break
            sources.append(src)
        node.saved_from = sources
        node.versions = versions
    if STATE.anomaly:  # remember where the op was created, for errors in backward
        node.trace = capture_origin()
        check_forward(prim, args, attrs, outs, node.trace)
    return node


def _fix_output_versions(node: Node, results: list) -> None:
    """Saved outputs are checked against their own tensor's version counter."""
    for src in node.saved_from:
        if isinstance(src, tuple):
            t = results[src[1]]
            node.versions.append((t._version, t._version[0], ("out", t._data.shape)))


def _method(name: str):
    """A Tensor method that forwards to ``ember.ops.<name>(self, ...)``."""

    def method(self, *args, **kwargs):
        return getattr(ops, name)(self, *args, **kwargs)

    method.__name__ = name
    method.__qualname__ = f"Tensor.{name}"
    method.__doc__ = f"Same as ``ember.{name}(self, ...)``."
    return method


# Methods that are plain calls into ember.ops (see each op's docstring there).
_OPS_METHODS = """
add sub mul div true_divide floor_divide remainder pow matmul neg abs sign exp log log1p expm1
log2 log10 sqrt rsqrt sin cos tan tanh sigmoid relu leaky_relu elu gelu silu softplus clamp clip
maximum minimum reciprocal erf floor ceil round trunc square
sum mean prod max min amax amin var std logsumexp norm argmax argmin all any cumsum cumprod
reshape view view_as permute transpose squeeze unsqueeze flatten unflatten expand expand_as
broadcast_to repeat tile split chunk unbind flip roll tril triu contiguous clone narrow
gather scatter scatter_add index_select index_add masked_fill masked_select take_along_dim
take index_put nonzero argwhere
softmax log_softmax dot outer mm bmm mv vdot ger inner addmm addmv baddbmm kron
hardshrink eq ne lt le gt ge logical_and logical_or logical_not
logical_xor isnan isinf isfinite nan_to_num diagonal movedim swapaxes sort argsort topk unique
msort t
""".split()
for _name in _OPS_METHODS:
    # a plain function bound as is (one call less per method call); anything else wrapped
    _fn = getattr(ops, _name)
    setattr(Tensor, _name, _fn if type(_fn) is type(_method) else _method(_name))
del _name, _fn


def _where(self, condition, other):
    """``self`` where ``condition`` else ``other``. Matches ``torch.Tensor.where`` (whose first
    argument is the condition, unlike ``ember.where(condition, input, other)``)."""
    return ops.where(condition, self, other)


Tensor.where = _where

# In-place methods: each is documented in ember.autograd.inplace.
from . import inplace as _inplace  # noqa: E402
from .functional import _root_grads  # noqa: E402  (functional imports Tensor)

for _name in _inplace.INPLACE_METHODS:
    setattr(Tensor, _name, getattr(_inplace, _name))
del _name
