"""Flatten parameters into one vector and back: ``parameters_to_vector``,
``vector_to_parameters``.

Matches: ``torch.nn.utils.parameters_to_vector`` / ``vector_to_parameters``.
"""

from __future__ import annotations

from ... import ops
from ...autograd import Tensor

__all__ = ["parameters_to_vector", "vector_to_parameters"]


def parameters_to_vector(parameters) -> Tensor:
    """All parameters flattened and concatenated into one 1-d tensor (differentiable).

    Args:
        parameters: an iterable of tensors (e.g. ``model.parameters()``).
    """
    if isinstance(parameters, Tensor):
        raise TypeError(f"parameters_to_vector: expected an iterable of tensors, got a single "
                        f"{type(parameters).__name__}")
    flat = [ops.reshape(p, (-1,)) for p in parameters]
    if not flat:
        raise ValueError("parameters_to_vector: got no parameters")
    return ops.cat(flat)


def vector_to_parameters(vec, parameters) -> None:
    """Copy consecutive slices of the 1-d tensor ``vec`` into ``parameters``' data.

    Args:
        vec: a 1-d tensor with as many elements as all parameters together.
        parameters: an iterable of tensors, in the order used by ``parameters_to_vector``.

    Like PyTorch, each parameter's data is replaced by a view of ``vec`` (so they share
    memory); autograd does not track this.
    """
    if not isinstance(vec, Tensor):
        raise TypeError(f"vector_to_parameters: expected vec to be a Tensor, but got "
                        f"{type(vec).__name__}")
    if vec.ndim != 1:
        raise ValueError(f"vector_to_parameters: expected a 1-d vector, got shape "
                         f"{tuple(vec.shape)}")
    params = list(parameters)
    total = sum(p.numel() for p in params)
    if total != vec.numel():
        raise ValueError(f"vector_to_parameters: the vector has {vec.numel()} elements but the "
                         f"parameters have {total} in all")
    data = vec.detach()
    start = 0
    for p in params:
        n = p.numel()
        p.data = ops.reshape(data[start:start + n], p.shape)
        start += n
