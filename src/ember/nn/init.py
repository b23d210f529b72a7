"""Weight initializers: ``ember.nn.init``.

Matches: ``torch.nn.init`` (names, arguments, gains and fan conventions). Each function fills a
tensor in place without recording gradients and returns it. Xavier/Glorot (2010) keeps the
variance of activations and gradients equal across layers for tanh/sigmoid networks; He/Kaiming
(2015) doubles it for ReLU, which zeroes half of its inputs. Both fight vanishing gradients.
"""

from __future__ import annotations

import math

from .. import ops
from ..autograd import creation, no_grad

_GAINS = {"linear": 1.0, "identity": 1.0, "conv1d": 1.0, "conv2d": 1.0, "conv3d": 1.0,
          "conv_transpose1d": 1.0, "conv_transpose2d": 1.0, "conv_transpose3d": 1.0,
          "sigmoid": 1.0, "tanh": 5.0 / 3, "relu": math.sqrt(2.0), "selu": 3.0 / 4}


def calculate_gain(nonlinearity: str, param=None) -> float:
    """The recommended gain for ``nonlinearity``. Matches ``torch.nn.init.calculate_gain``."""
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        if not isinstance(slope, (int, float)) or isinstance(slope, bool):
            raise ValueError(f"calculate_gain: negative_slope {param!r} is not a number")
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity not in _GAINS:
        raise ValueError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r}; expected "
                         f"one of {sorted(_GAINS) + ['leaky_relu']}")
    return _GAINS[nonlinearity]


def _calculate_fan_in_and_fan_out(tensor) -> tuple:
    """fan_in = in_features x receptive field; fan_out = out_features x receptive field."""
    if tensor.dim() < 2:
        raise ValueError(f"fan in and fan out can not be computed for a tensor with fewer than "
                         f"2 dimensions (shape {tuple(tensor.shape)})")
    receptive = 1
    for s in tensor.shape[2:]:
        receptive *= s
    return tensor.shape[1] * receptive, tensor.shape[0] * receptive


def _fan(tensor, mode: str) -> int:
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def uniform_(tensor, a: float = 0.0, b: float = 1.0, generator=None):
    """Fill with U(a, b)."""
    with no_grad():
        return tensor.uniform_(a, b, generator=generator)


def normal_(tensor, mean: float = 0.0, std: float = 1.0, generator=None):
    """Fill with N(mean, std^2)."""
    with no_grad():
        return tensor.normal_(mean, std, generator=generator)


def constant_(tensor, val: float):
    with no_grad():
        return tensor.fill_(val)


def zeros_(tensor):
    return constant_(tensor, 0.0)


def ones_(tensor):
    return constant_(tensor, 1.0)


def eye_(tensor):
    """The identity matrix (2-D tensors only)."""
    if tensor.dim() != 2:
        raise ValueError(f"eye_: only 2-D tensors are supported, got shape {tuple(tensor.shape)}")
    with no_grad():
        tensor.copy_(ops.eye_array(tensor.shape[0], tensor.shape[1], tensor._data.dtype))
    return tensor


def dirac_(tensor, groups: int = 1):
    """Identity convolution kernels (3-, 4- or 5-D tensors): output channel i copies input i."""
    d = tensor.dim()
    if d not in (3, 4, 5):
        raise ValueError(f"dirac_: only 3-, 4- and 5-D tensors are supported, got shape "
                         f"{tuple(tensor.shape)}")
    out_ch = tensor.shape[0]
    if out_ch % groups:
        raise ValueError(f"dirac_: dim 0 ({out_ch}) must be divisible by groups ({groups})")
    per = out_ch // groups
    n = min(per, tensor.shape[1])
    # output channel g * per + i copies input channel i (i < n) of group g: one scatter
    rows = (creation.arange(groups).reshape(-1, 1) * per + creation.arange(n)).reshape(-1)
    cols = creation.arange(groups * n) % n
    centre = tuple(s // 2 for s in tensor.shape[2:])
    with no_grad():
        tensor.zero_()
        tensor[(rows, cols) + centre] = 1.0
    return tensor


def xavier_uniform_(tensor, gain: float = 1.0, generator=None):
    """U(-a, a) with a = gain * sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio, 2010)."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    a = gain * math.sqrt(6.0 / float(fan_in + fan_out))
    return uniform_(tensor, -a, a, generator)


def xavier_normal_(tensor, gain: float = 1.0, generator=None):
    """N(0, std^2) with std = gain * sqrt(2 / (fan_in + fan_out)) (Glorot & Bengio, 2010)."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / float(fan_in + fan_out)), generator)


def kaiming_uniform_(tensor, a: float = 0, mode: str = "fan_in",
                     nonlinearity: str = "leaky_relu", generator=None):
    """U(-b, b) with b = gain * sqrt(3 / fan) (He et al., 2015)."""
    if 0 in tensor.shape:
        return tensor
    std = calculate_gain(nonlinearity, a) / math.sqrt(_fan(tensor, mode))
    bound = math.sqrt(3.0) * std
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(tensor, a: float = 0, mode: str = "fan_in",
                    nonlinearity: str = "leaky_relu", generator=None):
    """N(0, std^2) with std = gain / sqrt(fan) (He et al., 2015)."""
    if 0 in tensor.shape:
        return tensor
    std = calculate_gain(nonlinearity, a) / math.sqrt(_fan(tensor, mode))
    return normal_(tensor, 0.0, std, generator)


def trunc_normal_(tensor, mean: float = 0.0, std: float = 1.0, a: float = -2.0, b: float = 2.0,
                  generator=None):
    """N(mean, std^2) restricted to [a, b] (resampling out-of-range values)."""
    shape, dt = tuple(tensor.shape), tensor._data.dtype
    out = ops.random.normal(shape, mean, std, "float64", generator)
    bad = (out < a) | (out > b)
    while bad.any():
        out[bad] = ops.random.normal((int(bad.sum()),), mean, std, "float64", generator)
        bad = (out < a) | (out > b)
    with no_grad():
        tensor.copy_(out.astype(dt))
    return tensor


def orthogonal_(tensor, gain: float = 1.0, generator=None):
    """A (semi-)orthogonal matrix from the QR decomposition of a Gaussian (Saxe et al., 2013)."""
    if tensor.dim() < 2:
        raise ValueError(f"orthogonal_: only tensors with 2 or more dimensions are supported, "
                         f"got shape {tuple(tensor.shape)}")
    rows = tensor.shape[0]
    cols = tensor.numel() // rows if rows else 0
    flat = ops.random.normal((rows, cols), 0.0, 1.0, "float64", generator)
    q = ops.orthonormal_columns(flat.T if rows < cols else flat)
    if rows < cols:
        q = q.T
    with no_grad():
        tensor.copy_((q * gain).reshape(tensor.shape).astype(tensor._data.dtype))
    return tensor


def sparse_(tensor, sparsity: float, std: float = 0.01, generator=None):
    """Each column gets a fraction ``sparsity`` of zeros, the rest N(0, std^2)."""
    if tensor.dim() != 2:
        raise ValueError("sparse_: only 2-D tensors are supported")
    rows, cols = tensor.shape
    arr = ops.random.normal((rows, cols), 0.0, std, tensor._data.dtype, generator)
    zeros = int(math.ceil(sparsity * rows))
    for c in range(cols):
        idx = ops.random.randperm(rows, "int64", generator)[:zeros]
        arr[idx, c] = 0
    with no_grad():
        tensor.copy_(arr)
    return tensor
