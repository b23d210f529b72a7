"""Dropout layers. Matches: ``torch.nn.Dropout`` (more variants are in the same file)."""

from __future__ import annotations

from ..functional import basic as F
from ..module import Module


__all__ = ["Dropout"]


class Dropout(Module):
    """Zero each element with probability ``p`` during training, scaling the rest by 1/(1-p)."""

    def __init__(self, p: float = 0.5, inplace: bool = False):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"Dropout: p must be between 0 and 1, got {p}")
        self.p, self.inplace = p, inplace

    def forward(self, input):
        return F.dropout(input, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"
