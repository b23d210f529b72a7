"""Pooling and resizing of ``ember.nn.functional``: max/avg/adaptive pools, unpool, interpolate.

Matches: the ``torch.nn.functional`` functions of the same names, arguments and defaults
(unbatched inputs (C, *S) accepted; ``return_indices`` gives PyTorch's flat per-plane indices).
Kernels: :mod:`ember.ops.pool`.
"""

from __future__ import annotations

import math

from ... import ops
from .conv import _ntuple

__all__ = ["max_pool1d", "max_pool2d", "max_pool3d", "avg_pool1d", "avg_pool2d", "avg_pool3d",
           "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d",
           "adaptive_max_pool1d", "adaptive_max_pool2d", "max_unpool1d", "max_unpool2d",
           "interpolate", "upsample"]


def _batched(input, nd: int, op: str):
    shape = tuple(input.shape)
    if len(shape) == nd + 1:
        return ops.unsqueeze(input, 0), True
    if len(shape) != nd + 2:
        raise RuntimeError(f"{op}: expected a {nd + 1}-D (unbatched) or {nd + 2}-D (batched) "
                           f"input, got shape {shape}")
    return input, False


def _unbatch(out, added):
    if isinstance(out, tuple):
        return tuple(_unbatch(o, added) for o in out)
    if not added:
        return out
    return ops.squeeze(out, 0) if hasattr(out, "_data") else out[0]


def _max_pool(nd, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices):
    op = f"max_pool{nd}d"
    k = _ntuple(kernel_size, nd, "kernel_size", op)
    s = k if stride is None or stride == [] or stride == () else _ntuple(stride, nd, "stride", op)
    p = _ntuple(padding, nd, "padding", op)
    d = _ntuple(dilation, nd, "dilation", op)
    if min(k + s + d) < 1:
        raise ValueError(f"{op}: kernel_size {k}, stride {s} and dilation {d} must be positive")
    for pj, kj, dj in zip(p, k, d):
        if pj < 0 or pj > (dj * (kj - 1) + 1) // 2:
            raise ValueError(f"{op}: pad should be at most half of effective kernel size, but "
                             f"got pad={pj}, kernel_size={kj} and dilation={dj}")
    x, added = _batched(input, nd, op)
    out, idx = ops.max_pool_nd(x, k, s, p, d, ceil_mode, op=op,
                               return_indices=return_indices)
    if return_indices:
        from ...autograd import Tensor

        return _unbatch((out, Tensor._make(idx)), added)
    return _unbatch(out, added)


def max_pool1d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """1-D max pooling of (N, C, L) or (C, L). Matches ``torch.nn.functional.max_pool1d``."""
    return _max_pool(1, input, kernel_size, stride, padding, dilation, ceil_mode,
                     return_indices)


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """2-D max pooling. Matches ``torch.nn.functional.max_pool2d``.

    Args: kernel_size; stride (default kernel_size); padding (implicit -inf, at most half the
    effective kernel); dilation; ceil_mode; return_indices (flat ``h * W + w`` per plane).
    Shape: (N, C, H, W) -> (N, C, H_out, W_out), H_out = (H + 2p - d(k-1) - 1) / s + 1 rounded
    down (up with ceil_mode).
    """
    return _max_pool(2, input, kernel_size, stride, padding, dilation, ceil_mode,
                     return_indices)


def max_pool3d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """3-D max pooling. Matches ``torch.nn.functional.max_pool3d``."""
    return _max_pool(3, input, kernel_size, stride, padding, dilation, ceil_mode,
                     return_indices)


def _avg_pool(nd, input, kernel_size, stride, padding, ceil_mode, count_include_pad,
              divisor_override):
    op = f"avg_pool{nd}d"
    k = _ntuple(kernel_size, nd, "kernel_size", op)
    s = k if stride is None or stride == [] or stride == () else _ntuple(stride, nd, "stride", op)
    p = _ntuple(padding, nd, "padding", op)
    if min(k + s) < 1:
        raise ValueError(f"{op}: kernel_size {k} and stride {s} must be positive")
    for pj, kj in zip(p, k):
        if pj < 0 or pj > kj // 2:
            raise ValueError(f"{op}: pad should be at most half of kernel size, but got "
                             f"pad={pj} and kernel_size={kj}")
    if divisor_override is not None and divisor_override == 0:
        raise ValueError(f"{op}: divisor must be not zero")
    x, added = _batched(input, nd, op)
    out = ops.avg_pool_nd(x, k, s, p, ceil_mode, count_include_pad, divisor_override, op=op)
    return _unbatch(out, added)


def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True):
    """1-D average pooling. Matches ``torch.nn.functional.avg_pool1d``."""
    return _avg_pool(1, input, kernel_size, stride, padding, ceil_mode, count_include_pad, None)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None):
    """2-D average pooling. Matches ``torch.nn.functional.avg_pool2d``.

    The divisor is the window size clipped to the padded input (``count_include_pad``), or to
    the input itself, or ``divisor_override``.
    """
    return _avg_pool(2, input, kernel_size, stride, padding, ceil_mode, count_include_pad,
                     divisor_override)


def avg_pool3d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None):
    """3-D average pooling. Matches ``torch.nn.functional.avg_pool3d``."""
    return _avg_pool(3, input, kernel_size, stride, padding, ceil_mode, count_include_pad,
                     divisor_override)


def _adaptive_size(nd, input, output_size, op):
    if isinstance(output_size, (list, tuple)):
        if len(output_size) != nd:
            raise ValueError(f"{op}: output_size must be an int or {nd} values, got "
                             f"{output_size}")
        sizes = tuple(input.shape[-nd + j] if o is None else int(o)
                      for j, o in enumerate(output_size))
    else:
        sizes = (int(output_size),) * nd
    if any(o < 1 for o in sizes):
        raise ValueError(f"{op}: output_size must be positive, got {sizes}")
    return sizes


def _adaptive_avg(nd, input, output_size):
    op = f"adaptive_avg_pool{nd}d"
    x, added = _batched(input, nd, op)
    size = _adaptive_size(nd, x, output_size, op)
    return _unbatch(ops.adaptive_avg_pool_nd(x, size), added)


def adaptive_avg_pool1d(input, output_size):
    """Adaptive average pooling to length ``output_size``. Matches PyTorch."""
    return _adaptive_avg(1, input, output_size)


def adaptive_avg_pool2d(input, output_size):
    """Adaptive average pooling to ``output_size`` (int or pair; None keeps the input size).

    Window i spans ``[floor(i*H/H_out), ceil((i+1)*H/H_out))``. Matches
    ``torch.nn.functional.adaptive_avg_pool2d``."""
    return _adaptive_avg(2, input, output_size)


def adaptive_avg_pool3d(input, output_size):
    """Adaptive 3-D average pooling. Matches ``torch.nn.functional.adaptive_avg_pool3d``."""
    return _adaptive_avg(3, input, output_size)


def _adaptive_max(nd, input, output_size, return_indices):
    op = f"adaptive_max_pool{nd}d"
    x, added = _batched(input, nd, op)
    size = _adaptive_size(nd, x, output_size, op)
    out, idx = ops.adaptive_max_pool_nd(x, size)
    if return_indices:
        from ...autograd import Tensor

        return _unbatch((out, Tensor._make(idx)), added)
    return _unbatch(out, added)


def adaptive_max_pool1d(input, output_size, return_indices=False):
    """Adaptive 1-D max pooling. Matches ``torch.nn.functional.adaptive_max_pool1d``."""
    return _adaptive_max(1, input, output_size, return_indices)


def adaptive_max_pool2d(input, output_size, return_indices=False):
    """Adaptive 2-D max pooling (windows as in adaptive_avg_pool2d). Matches PyTorch."""
    return _adaptive_max(2, input, output_size, return_indices)


def _max_unpool(nd, input, indices, kernel_size, stride, padding, output_size):
    op = f"max_unpool{nd}d"
    k = _ntuple(kernel_size, nd, "kernel_size", op)
    s = k if stride is None else _ntuple(stride, nd, "stride", op)
    p = _ntuple(padding, nd, "padding", op)
    x, added = _batched(input, nd, op)
    idx = indices._data if hasattr(indices, "_data") else indices
    if added:
        idx = idx[None]
    if tuple(idx.shape) != tuple(x.shape):
        raise ValueError(f"{op}: indices {tuple(idx.shape)} must have the input's shape "
                         f"{tuple(x.shape)}")
    if output_size is None:
        size = tuple((i - 1) * sj - 2 * pj + kj for i, sj, pj, kj in zip(x.shape[2:], s, p, k))
    else:
        size = tuple(int(v) for v in tuple(output_size)[-nd:])
    if idx.size and (idx.min() < 0 or idx.max() >= math.prod(size)):
        raise ValueError(f"{op}: found an invalid max index (output size {size})")
    return _unbatch(ops.scatter_plane(x, idx, size), added)


def max_unpool1d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    """Inverse of max_pool1d (zeros except at the indices). Matches PyTorch."""
    return _max_unpool(1, input, indices, kernel_size, stride, padding, output_size)


def max_unpool2d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    """Inverse of max_pool2d (zeros except at the indices). Matches PyTorch."""
    return _max_unpool(2, input, indices, kernel_size, stride, padding, output_size)


_LINEAR = {"linear": 1, "bilinear": 2, "trilinear": 3}


def interpolate(input, size=None, scale_factor=None, mode: str = "nearest",
                align_corners=None, recompute_scale_factor=None, antialias: bool = False):
    """Resize (N, C, *S) to ``size`` or ``floor(S * scale_factor)``.

    Modes: 'nearest', 'nearest-exact', 'linear' (3-D), 'bilinear' (4-D), 'trilinear' (5-D),
    'area'. ``align_corners`` (linear modes only, default False) uses PyTorch's source-index
    formulas. Matches ``torch.nn.functional.interpolate``.
    """
    shape = tuple(input.shape)
    nd = len(shape) - 2
    if nd < 1:
        raise ValueError(f"interpolate: expected a 3-D, 4-D or 5-D input, got shape {shape}")
    if mode in _LINEAR:
        if _LINEAR[mode] != nd:
            raise NotImplementedError(f"interpolate: got {nd + 2}D input, but {mode} mode "
                                      f"needs {_LINEAR[mode] + 2}D input")
        align_corners = bool(align_corners)
    elif mode in ("nearest", "nearest-exact", "area"):
        if align_corners is not None:
            raise ValueError("interpolate: align_corners option can only be set with the "
                             "interpolating modes: linear | bilinear | bicubic | trilinear")
    else:
        raise NotImplementedError(f"interpolate: mode {mode!r} is not supported (use nearest, "
                                  f"nearest-exact, linear, bilinear, trilinear or area)")
    if antialias:
        raise NotImplementedError("interpolate: antialias=True is not supported")
    if (size is None) == (scale_factor is None):
        raise ValueError("interpolate: exactly one of size or scale_factor must be defined")
    if size is not None:
        out = _ntuple(size, nd, "size", "interpolate")
        scales = (None,) * nd
    else:
        sf = tuple(float(v) for v in (scale_factor if isinstance(scale_factor, (list, tuple))
                                      else (scale_factor,) * nd))
        if len(sf) != nd:
            raise ValueError(f"interpolate: scale_factor must have {nd} values, got {sf}")
        out = tuple(int(math.floor(n * f)) for n, f in zip(shape[2:], sf))
        scales = (None,) * nd if recompute_scale_factor else sf
    if any(o < 1 for o in out):
        raise ValueError(f"interpolate: output size {out} must be positive (input {shape})")
    if mode in _LINEAR:
        return ops.interpolate_linear_nd(input, out, align_corners, scales)
    if mode == "area":
        return ops.adaptive_avg_pool_nd(input, out)
    return ops.interpolate_nearest_nd(input, out, scales, exact=mode == "nearest-exact")


def upsample(input, size=None, scale_factor=None, mode="nearest", align_corners=None):
    """Alias of :func:`interpolate` (deprecated in PyTorch). Matches ``F.upsample``."""
    return interpolate(input, size, scale_factor, mode, align_corners)
