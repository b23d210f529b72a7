"""Pooling and resizing layers: MaxPool, AvgPool, AdaptiveAvg/MaxPool, MaxUnpool, Upsample.

Matches: the ``torch.nn`` classes of the same names (constructor arguments, defaults, repr).
They have no parameters; the work is in :mod:`ember.nn.functional.pooling`.
"""

from __future__ import annotations

from ...autograd.tensor import Tensor
from ...ops.base import call
from ...ops.pool import BlockMaxPool
from ..functional import pooling as F
from ..module import Module

__all__ = ["MaxPool1d", "MaxPool2d", "MaxPool3d", "AvgPool1d", "AvgPool2d", "AvgPool3d",
           "AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "AdaptiveAvgPool3d", "AdaptiveMaxPool1d",
           "AdaptiveMaxPool2d", "MaxUnpool1d", "MaxUnpool2d", "Upsample",
           "UpsamplingNearest2d", "UpsamplingBilinear2d"]


class _Pool(Module):
    _nd = 2
    _what = {1: "(N, C, L) or (C, L)", 2: "(N, C, H, W) or (C, H, W)",
             3: "(N, C, D, H, W) or (C, D, H, W)"}

    def _check(self, input):
        if len(input.shape) not in (self._nd + 1, self._nd + 2):
            raise self._error(f"expected input of shape {self._what[self._nd]}, got "
                              f"{tuple(input.shape)}")


class _MaxPool(_Pool):
    def __init__(self, kernel_size, stride=None, padding=0, dilation=1,
                 return_indices: bool = False, ceil_mode: bool = False):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding, self.dilation = padding, dilation
        self.return_indices, self.ceil_mode = return_indices, ceil_mode

    _lean = None

    def _lean_plan(self, key):
        """The kernel size when windows never overlap nor pad (stride == kernel), else None."""
        ksize = None
        try:
            nd = self._nd
            k = F._ntuple(self.kernel_size, nd, "kernel_size", "")
            s = F._ntuple(self.stride, nd, "stride", "")
            if k == s and min(k) >= 1 and F._ntuple(self.padding, nd, "padding", "") == \
                    (0,) * nd and F._ntuple(self.dilation, nd, "dilation", "") == (1,) * nd \
                    and not self.return_indices:
                ksize = k
        except (TypeError, ValueError):
            pass
        self._lean = lean = (key, ksize, {})
        return lean

    def forward(self, input):
        key = (self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode,
               self.return_indices)
        lean = self._lean
        if lean is None or lean[0] != key:
            lean = self._lean_plan(key)
        ksize = lean[1]
        if ksize is not None and isinstance(input, Tensor):
            shape = input._data.shape
            out = lean[2].get(shape)
            if out is None:
                out = False
                # non-overlapping windows: every window inside the input (floor mode), or
                # exact tiling (ceil mode), gives out = n // k
                if len(shape) == self._nd + 2 and all(
                        n >= k and (not self.ceil_mode or n % k == 0)
                        for n, k in zip(shape[2:], ksize)):
                    out = tuple(n // k for n, k in zip(shape[2:], ksize))
                if len(lean[2]) < 64:
                    lean[2][shape] = out
            if out:
                return call(BlockMaxPool, input, ksize=ksize, out_size=out)
        self._check(input)
        try:
            return F._max_pool(self._nd, input, self.kernel_size, self.stride, self.padding,
                               self.dilation, self.ceil_mode, self.return_indices)
        except (ValueError, RuntimeError) as e:
            raise self._error(str(e), type(e)) from None

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class MaxPool1d(_MaxPool):
    """1-D max pooling. Matches ``torch.nn.MaxPool1d`` (see :func:`F.max_pool1d`)."""

    _nd = 1


class MaxPool2d(_MaxPool):
    """2-D max pooling. Matches ``torch.nn.MaxPool2d``.

    Args: kernel_size, stride=None (kernel_size), padding=0, dilation=1, return_indices=False,
    ceil_mode=False. Shape: (N, C, H, W) -> (N, C, H_out, W_out).
    """

    _nd = 2


class MaxPool3d(_MaxPool):
    """3-D max pooling. Matches ``torch.nn.MaxPool3d``."""

    _nd = 3


class _AvgPool(_Pool):
    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
                 count_include_pad: bool = True, divisor_override=None):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding, self.ceil_mode = padding, ceil_mode
        self.count_include_pad, self.divisor_override = count_include_pad, divisor_override

    def forward(self, input):
        self._check(input)
        try:
            return F._avg_pool(self._nd, input, self.kernel_size, self.stride, self.padding,
                               self.ceil_mode, self.count_include_pad, self.divisor_override)
        except (ValueError, RuntimeError) as e:
            raise self._error(str(e), type(e)) from None

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AvgPool1d(_AvgPool):
    """1-D average pooling. Matches ``torch.nn.AvgPool1d``."""

    _nd = 1

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
                 count_include_pad: bool = True):
        super().__init__(kernel_size, stride, padding, ceil_mode, count_include_pad)


class AvgPool2d(_AvgPool):
    """2-D average pooling. Matches ``torch.nn.AvgPool2d``.

    Args: kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
    divisor_override=None.
    """

    _nd = 2


class AvgPool3d(_AvgPool):
    """3-D average pooling. Matches ``torch.nn.AvgPool3d``."""

    _nd = 3


class _AdaptiveAvg(_Pool):
    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    def forward(self, input):
        self._check(input)
        return F._adaptive_avg(self._nd, input, self.output_size)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class AdaptiveAvgPool1d(_AdaptiveAvg):
    """Adaptive 1-D average pooling. Matches ``torch.nn.AdaptiveAvgPool1d``."""

    _nd = 1


class AdaptiveAvgPool2d(_AdaptiveAvg):
    """Adaptive 2-D average pooling (int or pair output_size, None keeps a dim). Matches
    ``torch.nn.AdaptiveAvgPool2d``."""

    _nd = 2


class AdaptiveAvgPool3d(_AdaptiveAvg):
    """Adaptive 3-D average pooling. Matches ``torch.nn.AdaptiveAvgPool3d``."""

    _nd = 3


class _AdaptiveMax(_Pool):
    def __init__(self, output_size, return_indices: bool = False):
        super().__init__()
        self.output_size, self.return_indices = output_size, return_indices

    def forward(self, input):
        self._check(input)
        return F._adaptive_max(self._nd, input, self.output_size, self.return_indices)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class AdaptiveMaxPool1d(_AdaptiveMax):
    """Adaptive 1-D max pooling. Matches ``torch.nn.AdaptiveMaxPool1d``."""

    _nd = 1


class AdaptiveMaxPool2d(_AdaptiveMax):
    """Adaptive 2-D max pooling. Matches ``torch.nn.AdaptiveMaxPool2d``."""

    _nd = 2


class _MaxUnpool(_Pool):
    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding

    def forward(self, input, indices, output_size=None):
        self._check(input)
        return F._max_unpool(self._nd, input, indices, self.kernel_size, self.stride,
                             self.padding, output_size)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxUnpool1d(_MaxUnpool):
    """Partial inverse of MaxPool1d. Matches ``torch.nn.MaxUnpool1d``."""

    _nd = 1


class MaxUnpool2d(_MaxUnpool):
    """Partial inverse of MaxPool2d. Matches ``torch.nn.MaxUnpool2d``."""

    _nd = 2


class Upsample(Module):
    """Resize by ``size`` or ``scale_factor`` (see :func:`F.interpolate`). Matches
    ``torch.nn.Upsample`` (mode 'nearest' by default)."""

    def __init__(self, size=None, scale_factor=None, mode: str = "nearest", align_corners=None,
                 recompute_scale_factor=None):
        super().__init__()
        self.size, self.mode, self.align_corners = size, mode, align_corners
        self.scale_factor = float(scale_factor) if isinstance(scale_factor, (int, float)) \
            else (tuple(float(f) for f in scale_factor) if scale_factor else None)
        self.recompute_scale_factor = recompute_scale_factor

    def forward(self, input):
        try:
            return F.interpolate(input, self.size, self.scale_factor, self.mode,
                                 self.align_corners, self.recompute_scale_factor)
        except (ValueError, NotImplementedError) as e:
            raise self._error(str(e), type(e)) from None

    def extra_repr(self) -> str:
        if self.scale_factor is not None:
            info = f"scale_factor={self.scale_factor!r}"
        else:
            info = f"size={self.size!r}"
        return info + f", mode={self.mode!r}"


class UpsamplingNearest2d(Upsample):
    """Nearest 2-D upsampling. Matches ``torch.nn.UpsamplingNearest2d``."""

    def __init__(self, size=None, scale_factor=None):
        super().__init__(size, scale_factor, mode="nearest")


class UpsamplingBilinear2d(Upsample):
    """Bilinear 2-D upsampling with align_corners=True. Matches
    ``torch.nn.UpsamplingBilinear2d``."""

    def __init__(self, size=None, scale_factor=None):
        super().__init__(size, scale_factor, mode="bilinear", align_corners=True)
