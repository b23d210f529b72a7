"""Dropout layers: ``Dropout``, ``Dropout1d``, ``Dropout2d``, ``Dropout3d``, ``AlphaDropout``,
``FeatureAlphaDropout``.

Matches: the ``torch.nn`` classes of the same names (arguments, defaults, repr). All are the
identity in evaluation mode; in training they draw a fresh mask from ember's seeded generator
(``ember.manual_seed`` makes masks reproducible; the numbers differ from PyTorch's).
"""

from __future__ import annotations

from ..functional import basic as F
from ..module import Module

__all__ = ["Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout",
           "FeatureAlphaDropout"]


class _DropoutNd(Module):
    _fn = staticmethod(F.dropout)

    def __init__(self, p: float = 0.5, inplace: bool = False):
        super().__init__()
        if not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
            raise ValueError(f"{type(self).__name__}: dropout probability has to be between 0 "
                             f"and 1, but got {p}")
        self.p, self.inplace = p, inplace

    def forward(self, input):
        return type(self)._fn(input, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"


class Dropout(_DropoutNd):
    """Zero each element with probability ``p`` during training and scale the survivors by
    1/(1-p) (inverted dropout; Srivastava et al., 2014). Identity in evaluation.

    Args:
        p: probability of zeroing an element (0.5).
        inplace: accepted for compatibility (a new tensor is returned).

    Shape: any; output the same. Matches ``torch.nn.Dropout``.
    """

    _fn = staticmethod(F.dropout)


class Dropout1d(_DropoutNd):
    """Zero whole channels of (N, C, L) or unbatched (C, L) inputs with probability ``p``,
    scaling the rest by 1/(1-p). Matches ``torch.nn.Dropout1d``."""

    _fn = staticmethod(F.dropout1d)

    def forward(self, input):
        if input.dim() not in (2, 3):
            raise self._error(f"expected input of shape (N, C, L) or (C, L), got "
                              f"{tuple(input.shape)}")
        return F.dropout1d(input, self.p, self.training)


class Dropout2d(_DropoutNd):
    """Zero whole channels of (N, C, H, W) inputs with probability ``p``, scaling the rest by
    1/(1-p) (Tompson et al., 2015). As in PyTorch, a 3-D input is treated as (N, C, L) with a
    warning. Matches ``torch.nn.Dropout2d``."""

    def forward(self, input):
        if input.dim() not in (3, 4):
            raise self._error(f"expected input of shape (N, C, H, W), got "
                              f"{tuple(input.shape)}")
        return F.dropout2d(input, self.p, self.training)


class Dropout3d(_DropoutNd):
    """Zero whole channels of (N, C, D, H, W) or (C, D, H, W) inputs. Matches
    ``torch.nn.Dropout3d``."""

    def forward(self, input):
        if input.dim() not in (4, 5):
            raise self._error(f"expected input of shape (N, C, D, H, W) or (C, D, H, W), got "
                              f"{tuple(input.shape)}")
        return F.dropout3d(input, self.p, self.training)


class AlphaDropout(_DropoutNd):
    """Dropout for self-normalizing (SELU) networks (Klambauer et al., 2017): dropped values
    are set to SELU's negative saturation and an affine correction keeps the input's mean and
    variance. Identity in evaluation. Matches ``torch.nn.AlphaDropout``."""

    def forward(self, input):
        return F.alpha_dropout(input, self.p, self.training)


class FeatureAlphaDropout(_DropoutNd):
    """Alpha dropout of whole channels (dim 1 of an (N, C, *) input). Matches
    ``torch.nn.FeatureAlphaDropout``."""

    def forward(self, input):
        return F.feature_alpha_dropout(input, self.p, self.training)
