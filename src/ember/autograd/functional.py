"""``ember.autograd.grad`` and ``ember.autograd.backward``.

Matches: ``torch.autograd.grad`` and ``torch.autograd.backward``.
"""

from __future__ import annotations

from .. import ops
from .engine import run_backward
from .tensor import Tensor


def _as_list(x) -> list:
    if x is None:
        return None
    return [x] if isinstance(x, Tensor) else list(x)


def _root_grads(outputs: list, grad_outputs, create_graph: bool, where: str):
    """Check the roots and build their starting gradients (ones for single-element outputs)."""
    roots, grads = [], []
    if grad_outputs is not None and len(grad_outputs) != len(outputs):
        raise RuntimeError(f"{where}: got {len(grad_outputs)} grad_outputs for "
                           f"{len(outputs)} outputs")
    for i, out in enumerate(outputs):
        if not isinstance(out, Tensor):
            raise TypeError(f"{where}: outputs must be tensors, got {type(out).__name__}")
        if not out._requires_grad:
            raise RuntimeError(f"{where}: element {i} of the outputs does not require grad and "
                               f"has no grad_fn (was it computed under no_grad, or from tensors "
                               f"without requires_grad=True?)")
        g = None if grad_outputs is None else grad_outputs[i]
        if g is None:
            if out._data.size != 1:
                raise RuntimeError(
                    f"{where}: grad can be implicitly created only for single-element outputs, "
                    f"but output {i} has shape {tuple(out.shape)}; pass gradient= (a tensor of "
                    f"that shape), or reduce it first (e.g. out.sum().backward())")
            g = ops.ones_array(out._data.shape, out._data.dtype)
        else:
            gdata = g._data if isinstance(g, Tensor) else ops.as_array(g)
            if gdata.shape != out._data.shape:
                raise RuntimeError(f"{where}: gradient has shape {tuple(gdata.shape)} but output "
                                   f"{i} has shape {tuple(out._data.shape)}")
            if create_graph and isinstance(g, Tensor):
                g = ops.cast(g, out._data.dtype)
            else:
                g = ops.cast(gdata, out._data.dtype)
        if create_graph and not isinstance(g, Tensor):
            g = Tensor._make(g)
        roots.append(out)
        grads.append(g)
    return roots, grads


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph: bool = False,
             inputs=None) -> None:
    """Accumulate gradients of ``tensors`` into the leaves' ``.grad`` (several roots at once)."""
    outputs = _as_list(tensors)
    roots, grads = _root_grads(outputs, _as_list(grad_tensors), create_graph, "backward")
    retain = create_graph if retain_graph is None else retain_graph
    run_backward(roots, grads, retain, create_graph, inputs=_as_list(inputs), accumulate=True)


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph: bool = False,
         allow_unused: bool = False, materialize_grads: bool = False):
    """Gradients of ``outputs`` with respect to ``inputs``, returned (``.grad`` is not touched).

    Args:
        outputs: tensor or sequence of tensors to differentiate.
        inputs: tensor or sequence of tensors (leaves or intermediate results).
        grad_outputs: the vector in the vector-Jacobian product, one per output (None for 1).
        retain_graph: keep the graph for another backward; defaults to ``create_graph``.
        create_graph: record the backward pass, so the returned gradients can be differentiated.
        allow_unused: return None for inputs the outputs do not depend on (else an error).
        materialize_grads: return zeros instead of None for unused inputs.

    Returns:
        A tuple with one gradient per input.

    Example:
        >>> import ember
        >>> x = ember.tensor(3.0, requires_grad=True)
        >>> (dy,) = ember.autograd.grad(x ** 3, x, create_graph=True)
        >>> ember.autograd.grad(dy, x)[0].item()  # d2/dx2 x^3 = 6x
        18.0
    """
    outs = _as_list(outputs)
    ins = _as_list(inputs)
    for i, t in enumerate(ins):
        if not isinstance(t, Tensor) or not t._requires_grad:
            raise RuntimeError(f"grad: input {i} does not require grad")
    roots, grads = _root_grads(outs, _as_list(grad_outputs), create_graph, "grad")
    retain = create_graph if retain_graph is None else retain_graph
    captured = run_backward(roots, grads, retain, create_graph, inputs=ins, accumulate=False)
    result = []
    for i, (t, g) in enumerate(zip(ins, captured)):
        if g is None:
            if materialize_grads:
                g = ops.zeros_array(t._data.shape, t._data.dtype)
            elif not allow_unused:
                raise RuntimeError(f"grad: input {i} (shape {tuple(t.shape)}) was not used to "
                                   f"compute the outputs; pass allow_unused=True to get None")
            else:
                result.append(None)
                continue
        result.append(g if isinstance(g, Tensor) else Tensor._make(ops.owned_copy(g)))
    return tuple(result)
