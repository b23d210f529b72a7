"""The reverse-mode engine: graph nodes and the backward pass.

Every differentiable op applied to a tensor that requires grad records a :class:`Node` (the
tensor's ``grad_fn``). A node remembers its primitive, the context its forward left, and one
*edge* per input: ``None`` when that input needs no gradient, else ``(target, output_nr)`` where
the target is the input's own node, or the input tensor itself when it is a leaf.

``run_backward`` visits the nodes reachable from the roots in reverse topological order (an
iterative depth-first search, so deep graphs cannot overflow Python's stack), sums the gradients
arriving at each node output, calls the node's backward, and passes the results along its edges;
leaf gradients are summed and accumulated into ``.grad`` at the end.

Two modes share every gradient formula (see :mod:`ember.ops.base`):
- ``create_graph=False`` (the common case): gradients and saved values are plain NumPy arrays, so
  backward is pure NumPy with no graph bookkeeping;
- ``create_graph=True``: they are Tensors and recording is on, so the backward pass is itself a
  differentiable graph (gradients of gradients).
"""

from __future__ import annotations

import sys

import numpy as np

from .. import ops
from ..ops.base import Context
from .anomaly import check_backward
from .grad_mode import STATE

_FREED = "freed"
_TENSOR = []


def _tensor_class():
    """The Tensor class (tensor.py imports this module, so it is looked up on first use)."""
    if not _TENSOR:
        from .tensor import Tensor

        _TENSOR.append(Tensor)
    return _TENSOR[0]


class Node:
    """A recorded op: the ``grad_fn`` of the tensors it produced."""

    __slots__ = ("prim", "ctx", "edges", "in_meta", "out_meta", "saved_from", "versions",
                 "hooks", "trace", "__weakref__")

    def __init__(self, prim, ctx, edges, in_meta, out_meta):
        self.prim = prim
        self.ctx = ctx
        self.edges = edges
        self.in_meta = in_meta  # (shape, np dtype) of each input with an edge, else None
        self.out_meta = out_meta  # (shape, np dtype) of each output
        self.saved_from = None  # for create_graph: where each saved value came from
        self.versions = None  # [(version counter, version at save time, description)]
        self.hooks = None  # {output_nr: [fn, ...]} from Tensor.register_hook on non-leaves
        self.trace = None  # where it was created (anomaly.Origin), in anomaly-detection mode

    def name(self) -> str:
        n = self.prim.op_name()
        if n.islower():  # primitives are snake_case (log_softmax); Functions keep their name
            n = n.title().replace("_", "")
        return n + "Backward"

    @property
    def next_functions(self) -> tuple:
        out = []
        for e in self.edges:
            if e is None:
                out.append((None, 0))
            elif isinstance(e[0], Node):
                out.append(e)
            else:
                out.append((AccumulateGrad(e[0]), 0))
        return tuple(out)

    def __repr__(self) -> str:
        return f"<{self.name()}>"


class AccumulateGrad:
    """What ``next_functions`` shows for a leaf: the step that writes into ``leaf.grad``."""

    def __init__(self, variable):
        self.variable = variable

    def name(self) -> str:
        return "AccumulateGrad"

    def __repr__(self) -> str:
        return "<AccumulateGrad>"


def _postorder(roots: list) -> list:
    """Nodes reachable from ``roots``, each after every node it feeds from (iterative DFS)."""
    seen = set()
    order = []
    for root in roots:
        if id(root) in seen:
            continue
        seen.add(id(root))
        stack = [(root, iter(root.edges))]
        while stack:
            node, it = stack[-1]
            for e in it:
                if e is not None and isinstance(e[0], Node) and id(e[0]) not in seen:
                    seen.add(id(e[0]))
                    stack.append((e[0], iter(e[0].edges)))
                    break
            else:
                stack.pop()
                order.append(node)
    return order


def _accumulate(store: dict, key, n: int, nr: int, grad) -> None:
    slot = store.get(key)
    if slot is None:
        slot = store[key] = [None] * n
    prev = slot[nr]
    slot[nr] = grad if prev is None else ops.add(prev, grad)


def _check_versions(node: Node) -> None:
    for counter, version, where in node.versions:
        if counter[0] != version:
            if len(where) == 2 and where[0] == "out":  # ("out", shape)
                what = f"a tensor of shape {tuple(where[1])} output"
            else:
                what = f"a tensor of shape {tuple(where)} input"
            raise RuntimeError(
                f"{node.name()}: one of the tensors needed for gradient computation ({what}) has "
                f"been modified by an in-place operation: it was saved at version {version} and "
                f"is now at version {counter[0]}. Use an out-of-place op (e.g. x = x + 1 instead "
                f"of x += 1), or clone() the tensor before modifying it.")


def _call_backward(node: Node, grads: list, create_graph: bool, retain_graph: bool):
    ctx = node.ctx
    if ctx is _FREED:
        raise RuntimeError(
            f"{node.name()}: trying to backward through the graph a second time (or to use "
            f"saved values after they were freed). Pass retain_graph=True to the first "
            f"backward() or autograd.grad() call if you need to backward twice.")
    if node.versions:
        _check_versions(node)
    prim = node.prim
    if create_graph and not getattr(prim, "raw_ctx", False):
        ctx = _graph_context(node)
    result = prim.backward(ctx, *grads)
    if not retain_graph and getattr(node.ctx, "__dict__", None):
        if getattr(prim, "raw_ctx", False):
            node.ctx._saved = None
        node.ctx = _FREED
        node.saved_from = None
    if not isinstance(result, tuple):
        result = (result,)
    if len(result) != len(node.edges):
        raise RuntimeError(f"{node.name()}: backward returned {len(result)} gradients, "
                           f"expected {len(node.edges)} (one per input of forward)")
    return result


def _graph_context(node: Node):
    """A copy of the node's context whose saved values are Tensors connected to the graph."""
    Tensor = _tensor_class()

    ctx = node.ctx
    gctx = Context()
    gctx.__dict__.update(ctx.__dict__)
    saved = getattr(ctx, "saved", None)
    if saved is not None:
        values = []
        for value, src in zip(saved, node.saved_from):
            if src is None:
                values.append(value)
            elif isinstance(src, Tensor):
                values.append(src)
            else:  # ("out", k): rebuild the output tensor; keeping it would form a cycle
                values.append(Tensor._make(value, True, node, src[1]))
        gctx.saved = tuple(values)
    return gctx


def _validate(node: Node, i: int, g, create_graph: bool):
    shape, dtype = node.in_meta[i]
    gdata = g._data if create_graph else g
    if type(gdata) is np.ndarray and gdata.shape == shape and gdata.dtype == dtype:
        return g
    gshape = np.shape(gdata)
    if gshape != shape:
        if ops.numel_of_shape(gshape) == ops.numel_of_shape(shape) and not gshape:
            g = ops.reshape(g, shape)
        else:
            raise RuntimeError(f"{node.name()}: backward returned a gradient of shape "
                               f"{gshape} for input {i} of shape {shape}")
    if ops.dtype_of(g) != dtype:
        g = ops.cast(g, dtype)
    return g


def _wrap_if_array(g):
    Tensor = _tensor_class()

    return g if isinstance(g, Tensor) else Tensor._make(g)


def _run_hooks(hooks: list, grad, create_graph: bool):
    Tensor = _tensor_class()

    for hook in hooks:
        t = grad if create_graph else Tensor._make(grad)
        new = hook(t)
        if new is not None:
            if not isinstance(new, Tensor):
                raise TypeError(f"a gradient hook must return a Tensor or None, "
                                f"got {type(new).__name__}")
            grad = new if create_graph else new._data
    return grad


def run_backward(roots, root_grads, retain_graph: bool, create_graph: bool,
                 inputs=None, accumulate: bool = True):
    """Backpropagate ``root_grads`` from ``roots``; returns captured grads when ``inputs`` given.

    With ``accumulate`` the leaves' ``.grad`` are updated (``Tensor.backward``); without, the
    gradients of ``inputs`` are returned instead (``autograd.grad``).
    """
    node_grads: dict = {}
    leaf_grads: dict = {}
    for t, g in zip(roots, root_grads):
        if t.grad_fn is None:
            _accumulate(leaf_grads, t, 1, 0, g)
        else:
            _accumulate(node_grads, t.grad_fn, len(t.grad_fn.out_meta), t._output_nr, g)

    capture_leaf, capture_out = {}, {}
    if inputs is not None:
        for i, t in enumerate(inputs):
            if t.grad_fn is None:
                capture_leaf[id(t)] = i
            else:
                capture_out[(id(t.grad_fn), t._output_nr)] = i
    captured = [None] * (len(inputs) if inputs is not None else 0)

    order = _postorder([t.grad_fn for t in roots if t.grad_fn is not None])
    needed = _needed_nodes(order, capture_leaf, capture_out) if inputs is not None else None
    # backward formulas record a graph only when create_graph asks for one
    prev_mode = STATE.enabled
    STATE.enabled = create_graph
    quiet = ops.quiet_fp()
    quiet.__enter__()
    try:
        _run_nodes(order, node_grads, leaf_grads, create_graph, retain_graph, needed,
                   capture_out, capture_leaf, captured, inputs)
        for leaf, slot in leaf_grads.items():
            g, slot[0] = slot[0], None
            if leaf._hooks:
                g = _run_hooks(leaf._hooks, g, create_graph)
            if inputs is not None:
                k = capture_leaf.get(id(leaf))
                if k is not None:
                    captured[k] = g
            if accumulate:
                _accumulate_leaf(leaf, g, create_graph)
                del g
    finally:
        STATE.enabled = prev_mode
        quiet.__exit__(None, None, None)
    return captured


def _run_nodes(order, node_grads, leaf_grads, create_graph, retain_graph, needed, capture_out,
               capture_leaf, captured, inputs) -> None:
    for node in reversed(order):
        grads = node_grads.pop(node, None)
        if grads is None:
            continue
        if node.hooks:
            for nr, hooks in node.hooks.items():
                if grads[nr] is not None:
                    grads[nr] = _run_hooks(hooks, grads[nr], create_graph)
        if capture_out:
            for nr, g in enumerate(grads):
                k = capture_out.get((id(node), nr))
                if k is not None:
                    captured[k] = g
        if needed is not None and id(node) not in needed:
            continue
        for nr, g in enumerate(grads):
            if g is None and getattr(node.prim, "materialize_grads", True):
                shape, dtype = node.out_meta[nr]
                z = ops.zeros_array(shape, dtype)
                grads[nr] = _wrap_if_array(z) if create_graph else z
        result = _call_backward(node, grads, create_graph, retain_graph)
        if STATE.anomaly:
            check_backward(node, grads, result)
        for i, (edge, g) in enumerate(zip(node.edges, result)):
            if edge is None or g is None:
                continue
            g = _validate(node, i, g, create_graph)
            target, nr = edge
            if isinstance(target, Node):
                _accumulate(node_grads, target, len(target.out_meta), nr, g)
            elif inputs is None or id(target) in capture_leaf:
                _accumulate(leaf_grads, target, 1, 0, g)


def _needed_nodes(order: list, capture_leaf: dict, capture_out: dict) -> set:
    """Nodes whose backward must run to reach the requested inputs (``order`` is postorder)."""
    needed = set()
    out_nodes = {k[0] for k in capture_out}
    for node in order:
        for e in node.edges:
            if e is None:
                continue
            target = e[0]
            if isinstance(target, Node):
                if id(target) in needed or id(target) in out_nodes:
                    needed.add(id(node))
                    break
            elif id(target) in capture_leaf:
                needed.add(id(node))
                break
    return needed


def _accumulate_leaf(leaf, g, create_graph: bool) -> None:
    Tensor = _tensor_class()

    if create_graph:
        g = g if isinstance(g, Tensor) else Tensor._make(g)
        leaf.grad = g if leaf.grad is None else leaf.grad + g
        return
    if isinstance(g, Tensor):
        g = g._data
    if leaf.grad is None:
        # Steal the array when nothing else can see it (a fresh result of the last backward
        # op: the references are this frame's, the caller's and getrefcount's own), else copy,
        # so that a later in-place accumulation cannot write into someone else's array.
        if _exclusive(g, sys.getrefcount(g)):
            leaf.grad = Tensor._make(g)
        else:
            leaf.grad = Tensor._make(ops.owned_copy(g))
    else:
        ops.add_into(leaf.grad._data, g)


def _exclusive(g, refcount: int) -> bool:
    return (type(g) is np.ndarray and refcount <= 4 and g.base is None and g.flags.writeable
            and g.flags.c_contiguous)
