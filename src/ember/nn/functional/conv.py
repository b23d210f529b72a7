"""Convolutions of ``ember.nn.functional``: conv1d/2d/3d and conv_transpose1d/2d/3d.

Matches: the ``torch.nn.functional`` functions of the same names, arguments and defaults
(``padding`` may be an int, a tuple, ``'valid'`` or ``'same'``; unbatched inputs (C, *S) are
accepted). The kernels are the im2col primitives of :mod:`ember.ops.conv`, differentiable to
any order.
"""

from __future__ import annotations

from ... import ops

__all__ = ["conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
           "conv_transpose3d"]


def _ntuple(value, n: int, name: str, op: str) -> tuple:
    if isinstance(value, (list, tuple)):
        if len(value) == 1:
            value = tuple(value) * n
        if len(value) != n:
            raise ValueError(f"{op}: {name} must be an int or a tuple of {n} ints, got {value}")
        return tuple(int(v) for v in value)
    return (int(value),) * n


def conv_pads(padding, ksize, stride, dilation, op: str) -> tuple:
    """Per-side padding ``((lo, hi), ...)`` from an int, a tuple, ``'valid'`` or ``'same'``."""
    nd = len(ksize)
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0),) * nd
        if padding == "same":
            if any(s != 1 for s in stride):
                raise ValueError(f"{op}: padding='same' is not supported for strided "
                                 f"convolutions (stride={tuple(stride)})")
            pads = []
            for k, d in zip(ksize, dilation):
                total = d * (k - 1)
                pads.append((total // 2, total - total // 2))
            return tuple(pads)
        raise ValueError(f"{op}: invalid padding string {padding!r}, should be one of "
                         f"{{'valid', 'same'}}")
    p = _ntuple(padding, nd, "padding", op)
    if any(v < 0 for v in p):
        raise ValueError(f"{op}: negative padding is not supported, got {p}")
    return tuple((v, v) for v in p)


def _batched(input, nd: int, op: str, what: str):
    """(input with a batch dim, whether one was added)."""
    shape = tuple(input.shape)
    if len(shape) == nd + 1:
        return ops.unsqueeze(input, 0), True
    if len(shape) != nd + 2:
        raise RuntimeError(f"{op}: expected a {nd + 1}-D (unbatched) or {nd + 2}-D (batched) "
                           f"input of shape {what}, got {shape}")
    return input, False


_WHAT = {1: "(N, C, L)", 2: "(N, C, H, W)", 3: "(N, C, D, H, W)"}


def _conv(nd, input, weight, bias, stride, padding, dilation, groups):
    op = f"conv{nd}d"
    ws = tuple(weight.shape)
    if len(ws) != nd + 2:
        raise RuntimeError(f"{op}: expected a {nd + 2}-D weight (out_channels, "
                           f"in_channels/groups, *kernel), got shape {ws}")
    stride = _ntuple(stride, nd, "stride", op)
    dilation = _ntuple(dilation, nd, "dilation", op)
    if any(s < 1 for s in stride) or any(d < 1 for d in dilation):
        raise ValueError(f"{op}: stride {stride} and dilation {dilation} must be positive")
    pads = conv_pads(padding, ws[2:], stride, dilation, op)
    x, added = _batched(input, nd, op, _WHAT[nd])
    out = ops.conv_nd(x, weight, bias, stride, pads, dilation, int(groups), op=op)
    return ops.squeeze(out, 0) if added else out


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups: int = 1):
    """1-D cross-correlation. Matches ``torch.nn.functional.conv1d``.

    Shape: input (N, C, L) or (C, L); weight (O, C/groups, k); bias (O,); output (N, O, L_out).
    """
    return _conv(1, input, weight, bias, stride, padding, dilation, groups)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups: int = 1):
    """2-D cross-correlation. Matches ``torch.nn.functional.conv2d``.

    Args:
        input: (N, C, H, W) or (C, H, W). weight: (O, C/groups, kH, kW). bias: (O,) or None.
        stride, dilation: int or pair. padding: int, pair, ``'valid'`` or ``'same'``.
        groups: split channels into this many independent groups.
    Shape: output (N, O, H_out, W_out), ``H_out = (H + 2p - d(k-1) - 1) // s + 1``.
    """
    return _conv(2, input, weight, bias, stride, padding, dilation, groups)


def conv3d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups: int = 1):
    """3-D cross-correlation. Matches ``torch.nn.functional.conv3d``."""
    return _conv(3, input, weight, bias, stride, padding, dilation, groups)


def transpose_out_size(in_size, ksize, stride, padding, output_padding, dilation) -> tuple:
    """``(in - 1) * s - 2p + d(k - 1) + output_padding + 1`` per spatial dim."""
    return tuple((i - 1) * s - 2 * p + d * (k - 1) + op + 1 for i, k, s, p, op, d in
                 zip(in_size, ksize, stride, padding, output_padding, dilation))


def _conv_transpose(nd, input, weight, bias, stride, padding, output_padding, groups, dilation):
    op = f"conv_transpose{nd}d"
    ws = tuple(weight.shape)
    if len(ws) != nd + 2:
        raise RuntimeError(f"{op}: expected a {nd + 2}-D weight (in_channels, "
                           f"out_channels/groups, *kernel), got shape {ws}")
    stride = _ntuple(stride, nd, "stride", op)
    dilation = _ntuple(dilation, nd, "dilation", op)
    padding = _ntuple(padding, nd, "padding", op)
    output_padding = _ntuple(output_padding, nd, "output_padding", op)
    if any(s < 1 for s in stride) or any(d < 1 for d in dilation):
        raise ValueError(f"{op}: stride {stride} and dilation {dilation} must be positive")
    if any(p < 0 for p in padding):
        raise ValueError(f"{op}: negative padding is not supported, got {padding}")
    for o, s, d in zip(output_padding, stride, dilation):
        if o < 0 or (o >= s and o >= d):
            raise ValueError(f"{op}: output padding must be smaller than either stride or "
                             f"dilation, got output_padding={output_padding}, "
                             f"stride={stride}, dilation={dilation}")
    x, added = _batched(input, nd, op, _WHAT[nd])
    out_size = transpose_out_size(x.shape[2:], ws[2:], stride, padding, output_padding,
                                  dilation)
    if any(o < 1 for o in out_size):
        raise RuntimeError(f"{op}: computed output size {out_size} is too small (input "
                           f"{tuple(input.shape)}, weight {ws}, padding {padding})")
    pads = tuple((p, p) for p in padding)
    out = ops.conv_transpose_nd(x, weight, bias, stride, pads, dilation, int(groups), out_size,
                                op=op)
    return ops.squeeze(out, 0) if added else out


def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0,
                     groups: int = 1, dilation=1):
    """1-D transposed convolution. Matches ``torch.nn.functional.conv_transpose1d``.

    Shape: input (N, C_in, L) or (C_in, L); weight (C_in, C_out/groups, k); output
    (N, C_out, (L-1)s - 2p + d(k-1) + output_padding + 1).
    """
    return _conv_transpose(1, input, weight, bias, stride, padding, output_padding, groups,
                           dilation)


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0,
                     groups: int = 1, dilation=1):
    """2-D transposed convolution (the gradient of conv2d). Matches
    ``torch.nn.functional.conv_transpose2d``.

    Shape: input (N, C_in, H, W) or (C_in, H, W); weight (C_in, C_out/groups, kH, kW);
    output H_out = (H-1)s - 2p + d(k-1) + output_padding + 1 (same for W).
    """
    return _conv_transpose(2, input, weight, bias, stride, padding, output_padding, groups,
                           dilation)


def conv_transpose3d(input, weight, bias=None, stride=1, padding=0, output_padding=0,
                     groups: int = 1, dilation=1):
    """3-D transposed convolution. Matches ``torch.nn.functional.conv_transpose3d``."""
    return _conv_transpose(3, input, weight, bias, stride, padding, output_padding, groups,
                           dilation)
