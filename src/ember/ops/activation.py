"""Activation functions and softmax: relu, leaky_relu, elu, gelu, silu, softplus, softmax ...

Matches: ``torch.nn.functional`` functions of the same names and arguments.
"""

from __future__ import annotations

import numpy as np

from .base import Primitive, call


class Relu(Primitive):
    """max(x, 0); the gradient at exactly 0 is 0 (PyTorch's convention)."""

    @staticmethod
    def forward(ctx, x):
        y = np.maximum(x, 0)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        from .binary import gt, where

        (y,) = ctx.saved
        return where(gt(y, 0), g, g * 0)


def relu(input, inplace: bool = False):
    """Matches ``torch.relu`` / ``F.relu``."""
    return call(Relu, input)
