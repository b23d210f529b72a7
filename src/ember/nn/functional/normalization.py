"""Normalization functions of ``ember.nn.functional``: batch, instance, group, RMS and local
response normalization (``layer_norm`` is in :mod:`.basic`).

Matches: ``F.batch_norm``, ``F.instance_norm``, ``F.group_norm``, ``F.rms_norm``,
``F.local_response_norm`` (arguments, defaults, biased variance for normalizing and the
unbiased one for running statistics, as in PyTorch). Training-mode normalization runs the fused
:func:`ember.ops.norm_affine` primitive; evaluation with running statistics is a per-channel
``x * scale + shift``.
"""

from __future__ import annotations

from ... import ops

__all__ = ["batch_norm", "instance_norm", "group_norm", "rms_norm", "local_response_norm"]


def _numel(shape) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def _check_param(op: str, name: str, t, c: int) -> None:
    if t is not None and tuple(t.shape) != (c,):
        raise RuntimeError(f"{op}: expected {name} of shape ({c},) for an input with {c} "
                           f"channels, got {tuple(t.shape)}")


def _affine_eval(input, mean, var, weight, bias, eps, pshape):
    """``(x - mean) / sqrt(var + eps) * weight + bias`` with fixed per-channel statistics."""
    scale = ops.rsqrt(var + eps)
    if weight is not None:
        scale = scale * weight
    shift = -mean * scale
    if bias is not None:
        shift = shift + bias
    return input * scale.reshape(pshape) + shift.reshape(pshape)


def _update(op, running_mean, running_var, stats, momentum, n) -> None:
    mean, var = stats[0]
    rm = None if running_mean is None else running_mean._data
    rv = None if running_var is None else running_var._data
    ops.update_running_stats(rm, rv, mean, var, momentum, n)
    for t in (running_mean, running_var):
        if t is not None:
            t._version[0] += 1


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training: bool = False,
               momentum: float = 0.1, eps: float = 1e-5):
    """Normalize each channel (dim 1) over the batch and spatial dims. Matches ``F.batch_norm``.

    Args:
        input: (N, C) or (N, C, *).
        running_mean, running_var: (C,) tensors or None. In training they are updated in place
            as ``(1 - momentum) * running + momentum * batch_stat`` (unbiased batch variance);
            in evaluation they normalize the input.
        weight, bias: optional (C,) affine parameters.
        training: use batch statistics (True) or the running ones (False).
    """
    shape = tuple(input.shape)
    if len(shape) < 2:
        raise ValueError(f"batch_norm: expected an input with at least 2 dims (N, C, ...), got "
                         f"shape {shape}")
    c = shape[1]
    for name, t in (("running_mean", running_mean), ("running_var", running_var),
                    ("weight", weight), ("bias", bias)):
        _check_param("batch_norm", name, t, c)
    pshape = (c,) + (1,) * (len(shape) - 2)
    if not training:
        if running_mean is None or running_var is None:
            raise RuntimeError("batch_norm: running_mean and running_var must be given when "
                               "training=False")
        return _affine_eval(input, running_mean, running_var, weight, bias, eps, pshape)
    n = _numel(shape) // c if c else 0
    if n <= 1:
        raise ValueError(f"batch_norm: expected more than 1 value per channel when training, "
                         f"got input of shape {shape}")
    axes = (0,) + tuple(range(2, len(shape)))
    track = running_mean is not None or running_var is not None
    stats = [] if track else None
    out = ops.norm_affine(input, weight, bias, axes, eps, pshape, stats)
    if track:
        _update("batch_norm", running_mean, running_var, stats, momentum, n)
    return out


def instance_norm(input, running_mean=None, running_var=None, weight=None, bias=None,
                  use_input_stats: bool = True, momentum: float = 0.1, eps: float = 1e-5):
    """Normalize each (sample, channel) over its spatial dims. Matches ``F.instance_norm``.

    Args:
        input: (N, C, *) with at least one spatial dim.
        running_mean, running_var: optional (C,) tensors, updated with the batch average of the
            per-instance statistics when ``use_input_stats``; used to normalize otherwise.
    """
    shape = tuple(input.shape)
    if len(shape) < 3:
        raise ValueError(f"instance_norm: expected an input of shape (N, C, *) with a spatial "
                         f"dim, got {shape}")
    c = shape[1]
    for name, t in (("running_mean", running_mean), ("running_var", running_var),
                    ("weight", weight), ("bias", bias)):
        _check_param("instance_norm", name, t, c)
    pshape = (c,) + (1,) * (len(shape) - 2)
    if not use_input_stats:
        if running_mean is None or running_var is None:
            raise RuntimeError("instance_norm: running stats are needed when "
                               "use_input_stats=False")
        return _affine_eval(input, running_mean, running_var, weight, bias, eps, pshape)
    n = _numel(shape[2:])
    if n <= 1:
        raise ValueError(f"instance_norm: expected more than 1 spatial element when training, "
                         f"got input of shape {shape}")
    track = running_mean is not None or running_var is not None
    stats = [] if track else None
    out = ops.norm_affine(input, weight, bias, tuple(range(2, len(shape))), eps, pshape, stats)
    if track:
        _update("instance_norm", running_mean, running_var, stats, momentum, n)
    return out


def group_norm(input, num_groups: int, weight=None, bias=None, eps: float = 1e-5):
    """Split the channels into ``num_groups`` groups and normalize each (sample, group) over its
    channels and spatial dims; per-channel affine. Matches ``F.group_norm``.

    Shape: input (N, C, *) with C divisible by ``num_groups``; output the same.
    """
    shape = tuple(input.shape)
    if len(shape) < 2:
        raise ValueError(f"group_norm: expected an input of shape (N, C, *), got {shape}")
    n, c = shape[0], shape[1]
    if num_groups <= 0 or c % num_groups:
        raise ValueError(f"group_norm: the number of channels ({c}) must be divisible by "
                         f"num_groups ({num_groups})")
    _check_param("group_norm", "weight", weight, c)
    _check_param("group_norm", "bias", bias, c)
    g = num_groups
    x = input.reshape((n, g, c // g, _numel(shape[2:])))
    out = ops.norm_affine(x, weight, bias, (2, 3), eps, (1, g, c // g, 1))
    return out.reshape(shape)


def rms_norm(input, normalized_shape, weight=None, eps=None):
    """``x / sqrt(mean(x^2) + eps) * weight`` over the last dims. Matches ``F.rms_norm``
    (``eps=None`` uses the dtype's machine epsilon)."""
    normalized_shape = (normalized_shape,) if isinstance(normalized_shape, int) else \
        tuple(normalized_shape)
    k = len(normalized_shape)
    if tuple(input.shape[len(input.shape) - k:]) != normalized_shape or k > len(input.shape):
        raise RuntimeError(f"rms_norm: expected input with shape (*, "
                           f"{', '.join(map(str, normalized_shape))}), got {tuple(input.shape)}")
    if eps is None:
        eps = ops.machine_eps(input)
    dims = tuple(range(-k, 0))
    out = input * ops.rsqrt((input * input).mean(dims, keepdim=True) + eps)
    return out if weight is None else out * weight


def local_response_norm(input, size: int, alpha: float = 1e-4, beta: float = 0.75,
                        k: float = 1.0):
    """``x / (k + alpha * mean of x^2 over `size` neighbouring channels) ** beta``.
    Matches ``F.local_response_norm`` (window padded by size // 2 before, (size - 1) // 2
    after)."""
    shape = tuple(input.shape)
    if len(shape) < 3:
        raise ValueError(f"local_response_norm: expected an input of shape (N, C, *), got "
                         f"{shape}")
    c = shape[1]
    sq = input * input
    pad = [0, 0] * (len(shape) - 2) + [size // 2, (size - 1) // 2]
    padded = ops.pad(sq, pad)
    acc = None
    for j in range(size):  # loop over the (small) window, not over channels
        part = padded[:, j:j + c]
        acc = part if acc is None else acc + part
    div = (acc * (alpha / size) + k) ** beta
    return input / div

