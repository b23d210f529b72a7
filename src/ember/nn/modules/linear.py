"""Dense layers: ``Identity``, ``Linear``, ``Bilinear``, ``Flatten``, ``Unflatten``.

Matches: the ``torch.nn`` classes of the same names (parameters, shapes, default init).
"""

from __future__ import annotations

import math

from ... import ops
from ...autograd import creation
from ...autograd.tensor import Tensor
from ...ops.base import NO_ATTRS
from ...ops.linalg import Linear as LinearOp
from .. import init
from ..functional import basic as F
from ..module import Module
from ..parameter import Parameter

__all__ = ["Identity", "Linear", "Bilinear", "Flatten", "Unflatten"]

_LEAN_BIAS = (Parameter, type(None))


class Identity(Module):
    """Returns its input unchanged (a placeholder layer)."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, input):
        return input


class Linear(Module):
    """The artificial neuron, ``out_features`` of them: ``y = x W^T + b``.

    Args:
        in_features: size of each input sample.
        out_features: size of each output sample.
        bias: learn an additive bias (default True).

    Shape: input (*, in_features), output (*, out_features).
    Parameters: ``weight`` (out_features, in_features), ``bias`` (out_features), both
    initialized U(-1/sqrt(in_features), 1/sqrt(in_features)) as in PyTorch.

    Example:
        >>> import ember
        >>> ember.nn.Linear(20, 30)(ember.randn(128, 20)).shape
        (128, 30)
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, device=None,
                 dtype=None):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.weight = Parameter(creation.empty(out_features, in_features, dtype=dtype,
                                               device=device))
        if bias:
            self.bias = Parameter(creation.empty(out_features, dtype=dtype, device=device))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # kaiming_uniform_(a=sqrt(5)) gives U(-1/sqrt(fan_in), 1/sqrt(fan_in)), PyTorch's default
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.in_features) if self.in_features > 0 else 0
            init.uniform_(self.bias, -bound, bound)

    def forward(self, input):
        w, b = self.weight, self.bias
        # lean path (every call of a plain layer): what ops.linear would check, on the arrays
        if type(input) is Tensor and type(w) is Parameter and type(b) in _LEAN_BIAS:
            x, wa = input._data, w._data
            if (x.ndim and x.shape[-1] == self.in_features and x.dtype is wa.dtype
                    and wa.shape == (self.out_features, self.in_features)
                    and (b is None or (b._data.dtype is wa.dtype
                                       and b._data.shape == (self.out_features,)))):
                return input._apply_primitive(LinearOp, (input, w) if b is None else
                                              (input, w, b), NO_ATTRS)
        shape = input.shape
        if not shape or shape[-1] != self.in_features:
            raise self._error(f"expected input of shape (*, {self.in_features}), got "
                              f"{tuple(shape)}")
        return ops.linear(input, w, b)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


class Bilinear(Module):
    """``y = x1^T A x2 + b``: weight (out, in1, in2), bias (out), U(-1/sqrt(in1), 1/sqrt(in1))."""

    def __init__(self, in1_features: int, in2_features: int, out_features: int,
                 bias: bool = True, device=None, dtype=None):
        super().__init__()
        self.in1_features, self.in2_features = in1_features, in2_features
        self.out_features = out_features
        self.weight = Parameter(creation.empty(out_features, in1_features, in2_features,
                                               dtype=dtype))
        if bias:
            self.bias = Parameter(creation.empty(out_features, dtype=dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1 / math.sqrt(self.weight.shape[1])
        init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            init.uniform_(self.bias, -bound, bound)

    def forward(self, input1, input2):
        if input1.shape[-1] != self.in1_features or input2.shape[-1] != self.in2_features:
            raise self._error(f"expected inputs of shapes (*, {self.in1_features}) and "
                              f"(*, {self.in2_features}), got {tuple(input1.shape)} and "
                              f"{tuple(input2.shape)}")
        return F.bilinear(input1, input2, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (f"in1_features={self.in1_features}, in2_features={self.in2_features}, "
                f"out_features={self.out_features}, bias={self.bias is not None}")


class Flatten(Module):
    """Flatten dims ``start_dim..end_dim`` (default: all but the batch dim)."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, input):
        return ops.flatten(input, self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Unflatten(Module):
    """Split dim ``dim`` into ``unflattened_size``."""

    def __init__(self, dim: int, unflattened_size):
        super().__init__()
        self.dim, self.unflattened_size = dim, tuple(unflattened_size)

    def forward(self, input):
        return ops.unflatten(input, self.dim, self.unflattened_size)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"
