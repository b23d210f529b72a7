"""Linear algebra: matmul (1-D, 2-D, batched with broadcasting), mm, bmm, dot, outer, einsum.

Matches: the ``torch`` functions of the same names.
"""

from __future__ import annotations

import numpy as np

from .base import Primitive, call, shape_of


class Matmul(Primitive):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return np.matmul(a, b)

    @staticmethod
    def backward(ctx, g):
        from .movement import transpose
        from .reduce import sum_to

        a, b = ctx.saved
        ga = matmul(g, transpose(b, -1, -2))
        gb = matmul(transpose(a, -1, -2), g)
        return sum_to(ga, shape_of(a)), sum_to(gb, shape_of(b))


def matmul(input, other):
    """Matrix product with PyTorch's 1-D and batch-broadcasting rules. Matches ``torch.matmul``."""
    return call(Matmul, input, other)
