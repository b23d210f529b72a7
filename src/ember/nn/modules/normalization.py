"""Normalization layers: ``BatchNorm1d/2d/3d``, ``InstanceNorm1d/2d/3d``, ``GroupNorm``,
``LayerNorm``, ``RMSNorm``, ``LocalResponseNorm``.

Matches: the ``torch.nn`` classes of the same names: parameter and buffer names, shapes and
defaults (``weight`` ones, ``bias`` zeros, ``running_mean`` zeros, ``running_var`` ones,
``num_batches_tracked`` int64 0), momentum semantics (``momentum=None`` is a cumulative average)
and the unbiased running-variance update.
"""

from __future__ import annotations

from ...autograd import creation, no_grad
from .. import init
from ..functional import basic as F
from ..functional import normalization as FN
from ..module import Module
from ..parameter import Parameter

__all__ = ["BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "InstanceNorm1d", "InstanceNorm2d",
           "InstanceNorm3d", "GroupNorm", "LayerNorm", "RMSNorm", "LocalResponseNorm"]


def _register_affine(module, shape: tuple, affine: bool, bias: bool, dtype) -> None:
    """Register ``weight`` (ones) and ``bias`` (zeros) of ``shape``, in that order (the state
    dict order PyTorch uses), or None parameters when ``affine`` / ``bias`` is off."""
    if affine:
        module.weight = Parameter(creation.ones(shape, dtype=dtype))
        if bias:
            module.bias = Parameter(creation.zeros(shape, dtype=dtype))
        else:
            module.register_parameter("bias", None)
    else:
        module.register_parameter("weight", None)
        module.register_parameter("bias", None)


def _reset_affine(module) -> None:
    if module.weight is not None:
        init.ones_(module.weight)
    if module.bias is not None:
        init.zeros_(module.bias)


class _NormBase(Module):
    """Shared state of batch and instance norm: affine parameters and running statistics."""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum=0.1, affine: bool = True,
                 track_running_stats: bool = True, device=None, dtype=None, bias: bool = True):
        super().__init__()
        if not isinstance(num_features, int) or num_features <= 0:
            raise ValueError(f"{type(self).__name__}: num_features must be a positive int, got "
                             f"{num_features!r}")
        self.num_features = num_features
        self.eps, self.momentum = eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        self._bias = bias
        _register_affine(self, (num_features,), affine, bias, dtype)
        if track_running_stats:
            self.register_buffer("running_mean", creation.zeros(num_features, dtype=dtype))
            self.register_buffer("running_var", creation.ones(num_features, dtype=dtype))
            self.register_buffer("num_batches_tracked", creation.zeros((), dtype="int64"))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            init.zeros_(self.running_mean)
            init.ones_(self.running_var)
            with no_grad():
                self.num_batches_tracked.zero_()

    def reset_parameters(self) -> None:
        self.reset_running_stats()
        _reset_affine(self)

    def _factor(self) -> float:
        """The running-average factor of this training step (counts the batch)."""
        if not (self.training and self.track_running_stats):
            return 0.0 if self.momentum is None else self.momentum
        with no_grad():
            self.num_batches_tracked.add_(1)
        if self.momentum is None:
            return 1.0 / float(self.num_batches_tracked.item())
        return self.momentum

    def _check_input(self, input, ndims) -> None:
        shape = tuple(input.shape)
        c = self.num_features
        if len(shape) not in ndims or shape[self._channel_dim(len(shape))] != c:
            layouts = " or ".join(self._layout(n) for n in sorted(ndims))
            raise self._error(f"expected input of shape {layouts}, got {shape}")

    def _channel_dim(self, ndim: int) -> int:
        return 1

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, bias={self.affine and self._bias}, "
                f"track_running_stats={self.track_running_stats}")


class _BatchNorm(_NormBase):
    _ndims: tuple = ()
    _spatial_names: tuple = ()

    def _layout(self, ndim: int) -> str:
        rest = self._spatial_names[: ndim - 2]
        return "(" + ", ".join(("N", str(self.num_features)) + tuple(rest)) + ")"

    def forward(self, input):
        self._check_input(input, self._ndims)
        factor = self._factor()
        use_batch = self.training or self.running_mean is None
        track = not self.training or self.track_running_stats
        return FN.batch_norm(input, self.running_mean if track else None,
                             self.running_var if track else None, self.weight, self.bias,
                             use_batch, factor, self.eps)


class BatchNorm1d(_BatchNorm):
    """Batch normalization (Ioffe & Szegedy, 2015) of (N, C) or (N, C, L) inputs: each channel
    is normalized with the batch statistics in training (updating the running estimates) and
    with the running estimates in evaluation, then scaled by ``weight`` and shifted by ``bias``.

    Args:
        num_features: C.
        eps: added to the variance (1e-5).
        momentum: running-average factor (0.1); None for a cumulative average.
        affine: learn ``weight`` (ones) and ``bias`` (zeros) of shape (C,).
        track_running_stats: keep ``running_mean``, ``running_var``, ``num_batches_tracked``
            buffers; if False, batch statistics are used in evaluation too.

    Shape: input (N, C) or (N, C, L); output the same. Matches ``torch.nn.BatchNorm1d``.
    """

    _ndims = (2, 3)
    _spatial_names = ("L",)


class BatchNorm2d(_BatchNorm):
    """Batch normalization of (N, C, H, W) inputs over N, H, W per channel (see
    :class:`BatchNorm1d` for the arguments). Matches ``torch.nn.BatchNorm2d``."""

    _ndims = (4,)
    _spatial_names = ("H", "W")


class BatchNorm3d(_BatchNorm):
    """Batch normalization of (N, C, D, H, W) inputs (see :class:`BatchNorm1d`). Matches
    ``torch.nn.BatchNorm3d``."""

    _ndims = (5,)
    _spatial_names = ("D", "H", "W")


class _InstanceNorm(_NormBase):
    _ndims: tuple = ()
    _spatial_names: tuple = ()

    def __init__(self, num_features: int, eps: float = 1e-5, momentum=0.1, affine: bool = False,
                 track_running_stats: bool = False, device=None, dtype=None, bias: bool = True):
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device, dtype,
                         bias)

    def _layout(self, ndim: int) -> str:
        batched = ndim == max(self._ndims)
        names = (("N",) if batched else ()) + (str(self.num_features),) + self._spatial_names
        return "(" + ", ".join(names) + ")"

    def _channel_dim(self, ndim: int) -> int:
        return 1 if ndim == max(self._ndims) else 0

    def forward(self, input):
        self._check_input(input, self._ndims)
        unbatched = input.dim() == min(self._ndims)
        if unbatched:
            input = input.unsqueeze(0)
        # like PyTorch: no num_batches_tracked count, and momentum None means 0
        factor = 0.0 if self.momentum is None else self.momentum
        use_input = self.training or not self.track_running_stats
        out = FN.instance_norm(input, self.running_mean, self.running_var, self.weight,
                               self.bias, use_input, factor, self.eps)
        return out.squeeze(0) if unbatched else out


class InstanceNorm1d(_InstanceNorm):
    """Instance normalization (Ulyanov et al., 2016): each (sample, channel) of an (N, C, L)
    or unbatched (C, L) input normalized over L. Defaults ``affine=False``,
    ``track_running_stats=False``. Matches ``torch.nn.InstanceNorm1d``."""

    _ndims = (2, 3)
    _spatial_names = ("L",)


class InstanceNorm2d(_InstanceNorm):
    """Instance normalization of (N, C, H, W) or (C, H, W) inputs over H, W. Matches
    ``torch.nn.InstanceNorm2d``."""

    _ndims = (3, 4)
    _spatial_names = ("H", "W")


class InstanceNorm3d(_InstanceNorm):
    """Instance normalization of (N, C, D, H, W) or (C, D, H, W) inputs. Matches
    ``torch.nn.InstanceNorm3d``."""

    _ndims = (4, 5)
    _spatial_names = ("D", "H", "W")


class GroupNorm(Module):
    """Group normalization (Wu & He, 2018): channels split into ``num_groups`` groups, each
    (sample, group) normalized over its channels and spatial dims, then a per-channel affine.

    Args:
        num_groups: number of groups (must divide num_channels).
        num_channels: C.
        eps: added to the variance (1e-5).
        affine: learn per-channel ``weight`` (ones) and ``bias`` (zeros).

    Shape: input (N, C, *); output the same. Matches ``torch.nn.GroupNorm``.
    """

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5,
                 affine: bool = True, device=None, dtype=None, bias: bool = True):
        super().__init__()
        if num_groups <= 0 or num_channels % num_groups:
            raise ValueError(f"GroupNorm: num_channels ({num_channels}) must be divisible by "
                             f"num_groups ({num_groups})")
        self.num_groups, self.num_channels = num_groups, num_channels
        self.eps, self.affine, self._bias = eps, affine, bias
        _register_affine(self, (num_channels,), affine, bias, dtype)

    def reset_parameters(self) -> None:
        _reset_affine(self)

    def forward(self, input):
        shape = tuple(input.shape)
        if len(shape) < 2 or shape[1] != self.num_channels:
            raise self._error(f"expected input of shape (N, {self.num_channels}, *), got "
                              f"{shape}")
        return FN.group_norm(input, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.num_groups}, {self.num_channels}, eps={self.eps}, "
                f"affine={self.affine}, bias={self.affine and self._bias}")


def _norm_shape(normalized_shape) -> tuple:
    if isinstance(normalized_shape, int):
        return (normalized_shape,)
    return tuple(int(s) for s in normalized_shape)


class LayerNorm(Module):
    """Layer normalization (Ba et al., 2016): normalize over the last dims to zero mean and unit
    (biased) variance, then ``* weight + bias``.

    Args:
        normalized_shape: the trailing shape to normalize over (int or tuple).
        eps: added to the variance (1e-5).
        elementwise_affine: learn ``weight`` (ones) of shape ``normalized_shape``.
        bias: also learn ``bias`` (zeros) when ``elementwise_affine``.

    Shape: input (*, *normalized_shape); output the same. Matches ``torch.nn.LayerNorm``.
    """

    def __init__(self, normalized_shape, eps: float = 1e-5, elementwise_affine: bool = True,
                 bias: bool = True, device=None, dtype=None):
        super().__init__()
        self.normalized_shape = _norm_shape(normalized_shape)
        self.eps = eps
        self.elementwise_affine = elementwise_affine
        self._bias = bias
        _register_affine(self, self.normalized_shape, elementwise_affine, bias, dtype)

    def reset_parameters(self) -> None:
        _reset_affine(self)

    def forward(self, input):
        k = len(self.normalized_shape)
        shape = tuple(input.shape)
        if len(shape) < k or shape[len(shape) - k:] != self.normalized_shape:
            raise self._error(f"expected input of shape (*, "
                              f"{', '.join(map(str, self.normalized_shape))}), got {shape}")
        return F.layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}, "
                f"bias={self.elementwise_affine and self._bias}")


class RMSNorm(Module):
    """Root-mean-square normalization (Zhang & Sennrich, 2019): ``x / sqrt(mean(x^2) + eps)``
    over the last dims, times ``weight`` (ones). ``eps=None`` uses the dtype's epsilon.

    Shape: input (*, *normalized_shape). Matches ``torch.nn.RMSNorm``.
    """

    def __init__(self, normalized_shape, eps=None, elementwise_affine: bool = True,
                 device=None, dtype=None):
        super().__init__()
        self.normalized_shape = _norm_shape(normalized_shape)
        self.eps, self.elementwise_affine = eps, elementwise_affine
        if elementwise_affine:
            self.weight = Parameter(creation.ones(self.normalized_shape, dtype=dtype))
        else:
            self.register_parameter("weight", None)

    def reset_parameters(self) -> None:
        if self.weight is not None:
            init.ones_(self.weight)

    def forward(self, input):
        k = len(self.normalized_shape)
        shape = tuple(input.shape)
        if len(shape) < k or shape[len(shape) - k:] != self.normalized_shape:
            raise self._error(f"expected input of shape (*, "
                              f"{', '.join(map(str, self.normalized_shape))}), got {shape}")
        return FN.rms_norm(input, self.normalized_shape, self.weight, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}")


class LocalResponseNorm(Module):
    """Local response normalization across channels (Krizhevsky et al., 2012):
    ``x / (k + alpha / size * sum of x^2 over size neighbouring channels) ** beta``.

    Shape: input (N, C, *). Matches ``torch.nn.LocalResponseNorm``.
    """

    def __init__(self, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0):
        super().__init__()
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

    def forward(self, input):
        if input.dim() < 3:
            raise self._error(f"expected input of shape (N, C, *) with at least 3 dims, got "
                              f"{tuple(input.shape)}")
        return FN.local_response_norm(input, self.size, self.alpha, self.beta, self.k)

    def extra_repr(self) -> str:
        return f"{self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"
