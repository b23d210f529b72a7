"""Normalization layers. Matches: ``torch.nn.LayerNorm`` (more layers are in the same file)."""

from __future__ import annotations

from ...autograd import creation
from ..functional import basic as F
from ..module import Module
from ..parameter import Parameter


__all__ = ["LayerNorm"]


class LayerNorm(Module):
    """Normalize over the last dims to zero mean and unit variance, then ``* weight + bias``.

    Parameters ``weight`` (ones) and ``bias`` (zeros) of shape ``normalized_shape`` when
    ``elementwise_affine`` (and ``bias``).
    """

    def __init__(self, normalized_shape, eps: float = 1e-5, elementwise_affine: bool = True,
                 bias: bool = True, device=None, dtype=None):
        super().__init__()
        if isinstance(normalized_shape, int):
            normalized_shape = (normalized_shape,)
        self.normalized_shape = tuple(normalized_shape)
        self.eps = eps
        self.elementwise_affine = elementwise_affine
        if elementwise_affine:
            self.weight = Parameter(creation.ones(self.normalized_shape, dtype=dtype))
            if bias:
                self.bias = Parameter(creation.zeros(self.normalized_shape, dtype=dtype))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def reset_parameters(self) -> None:
        from .. import init

        if self.weight is not None:
            init.ones_(self.weight)
        if self.bias is not None:
            init.zeros_(self.bias)

    def forward(self, input):
        k = len(self.normalized_shape)
        if tuple(input.shape[-k:]) != self.normalized_shape:
            raise self._error(f"expected input of shape (*, "
                              f"{', '.join(map(str, self.normalized_shape))}), got "
                              f"{tuple(input.shape)}")
        return F.layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}")
