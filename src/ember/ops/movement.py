"""Shape and movement ops: reshape, permute, expand, cat/stack/split, flip, roll, pad, tril/triu.

Matches: the ``torch`` functions of the same names. Ops marked ``view = True`` return arrays that
share memory with their input (as PyTorch's views do), so in-place changes show through both and
bump a shared version counter.
"""

from __future__ import annotations

import math

import numpy as np

from .base import Primitive, TensorBase, call, dtype_of, normalize_dim, shape_of

__all__ = ["reshape", "view", "view_as", "reshape_as", "permute", "transpose", "swapaxes",
           "swapdims", "t", "movedim", "moveaxis", "squeeze", "unsqueeze", "flatten", "ravel",
           "unflatten", "broadcast_to", "expand", "expand_as", "broadcast_tensors",
           "broadcast_shapes", "cat", "concat", "concatenate", "stack", "hstack", "vstack",
           "narrow", "split", "chunk", "tensor_split", "unbind", "flip", "fliplr", "flipud",
           "roll", "repeat", "tile", "repeat_interleave", "pad", "pad_constant", "tril", "triu",
           "clone", "contiguous", "diagonal"]



def _shape_arg(shape) -> tuple:
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = shape[0]
    return tuple(map(int, shape))


def _infer_shape(shape: tuple, numel: int, op: str, in_shape: tuple) -> tuple:
    if shape and min(shape) >= 0 and math.prod(shape) == numel:
        return shape  # the usual case: every size given
    unknown = [i for i, s in enumerate(shape) if s == -1]
    if len(unknown) > 1:
        raise RuntimeError(f"{op}: only one dimension can be -1, got shape {shape}")
    known = 1
    for s in shape:
        if s != -1:
            if s < 0:
                raise RuntimeError(f"{op}: invalid shape dimension {s} in {shape}")
            known *= s
    if unknown:
        if known == 0 or numel % known:
            raise RuntimeError(f"{op}: shape {shape} is invalid for input of shape {in_shape} "
                               f"({numel} elements)")
        shape = shape[:unknown[0]] + (numel // known,) + shape[unknown[0] + 1:]
    elif known != numel:
        raise RuntimeError(f"{op}: shape {shape} is invalid for input of shape {in_shape} "
                           f"({numel} elements)")
    return shape


class Reshape(Primitive):
    view = True

    @staticmethod
    def forward(ctx, x, shape):
        ctx.in_shape = x.shape
        return x.reshape(shape)

    @staticmethod
    def backward(ctx, g):
        return reshape(g, ctx.in_shape)


class Permute(Primitive):
    view = True

    @staticmethod
    def forward(ctx, x, dims):
        ctx.dims = dims
        return np.transpose(x, dims)

    @staticmethod
    def backward(ctx, g):
        return permute(g, tuple(np.argsort(ctx.dims)))


def broadcast_view(x: np.ndarray, shape: tuple) -> np.ndarray:
    """A read-only view of ``x`` broadcast to ``shape`` (zero strides on broadcast dims).

    Same result as ``np.broadcast_to``; for a C-contiguous ``x`` it builds the view directly,
    which costs a fraction of ``np.broadcast_to``'s Python overhead (this runs in the backward
    pass of every reduction).
    """
    if not x.flags.c_contiguous or len(shape) < x.ndim:
        return np.broadcast_to(x, shape)
    lead = len(shape) - x.ndim
    strides = [0] * lead
    for i, (s, st) in enumerate(zip(x.shape, x.strides)):
        t = shape[lead + i]
        if s == t:
            strides.append(st)
        elif s == 1:
            strides.append(0)
        else:
            return np.broadcast_to(x, shape)  # let NumPy raise its error
    out = np.ndarray(shape, dtype=x.dtype, buffer=x, strides=tuple(strides))
    out.flags.writeable = False
    return out


class BroadcastTo(Primitive):
    """Expand size-1 (or missing leading) dims without copying; backward sums them back."""

    view = True

    @staticmethod
    def forward(ctx, x, shape):
        ctx.in_shape = x.shape
        return broadcast_view(x, shape)

    @staticmethod
    def backward(ctx, g):
        from .reduce import sum_to

        return sum_to(g, ctx.in_shape)


class Cat(Primitive):
    """Concatenate; inputs flagged in ``skip`` (PyTorch's legacy empty (0,) tensors) are left out
    of the result and get an empty gradient."""

    @staticmethod
    def forward(ctx, *xs, axis, skip):
        ctx.sizes = [0 if sk else x.shape[axis] for x, sk in zip(xs, skip)]
        ctx.axis = axis
        ctx.skip = skip
        return np.concatenate([x for x, sk in zip(xs, skip) if not sk], axis=axis)

    @staticmethod
    def backward(ctx, g):
        out, start = [], 0
        for n, sk in zip(ctx.sizes, ctx.skip):
            piece = narrow(g, ctx.axis, start, n)
            out.append(reshape(piece, (0,)) if sk else piece)
            start += n
        return tuple(out)


class Stack(Primitive):
    """Join same-shape, same-dtype inputs along a new axis; the gradient of input i is slice i."""

    @staticmethod
    def forward(ctx, *xs, axis):
        ctx.axis = axis
        ctx.n = len(xs)
        return np.stack(xs, axis=axis)

    @staticmethod
    def backward(ctx, g):
        return tuple(squeeze(narrow(g, ctx.axis, i, 1), ctx.axis) for i in range(ctx.n))


class Narrow(Primitive):
    """The slice ``start:start+length`` along one axis (a view)."""

    view = True

    @staticmethod
    def forward(ctx, x, axis, start, length):
        ctx.args = (x.shape, axis, start, length)
        idx = (slice(None),) * axis + (slice(start, start + length),)
        return x[idx]

    @staticmethod
    def backward(ctx, g):
        shape, axis, start, length = ctx.args
        after = shape[axis] - start - length
        pads = [(0, 0)] * len(shape)
        pads[axis] = (start, after)
        return pad_constant(g, tuple(pads), 0.0)


class PadConstant(Primitive):
    @staticmethod
    def forward(ctx, x, pads, value):
        ctx.pads = pads
        if any(lo < 0 or hi < 0 for lo, hi in pads):  # negative padding crops
            crop = tuple(slice(-lo if lo < 0 else 0, (x.shape[i] + hi) if hi < 0 else None)
                         for i, (lo, hi) in enumerate(pads))
            x = x[crop]
            pads = tuple((max(lo, 0), max(hi, 0)) for lo, hi in pads)
        return np.pad(x, pads, mode="constant", constant_values=value)

    @staticmethod
    def backward(ctx, g):
        idx = tuple(slice(lo, (shape_of(g)[i] - hi) if hi else None)
                    for i, (lo, hi) in enumerate(ctx.pads))
        if any(lo < 0 or hi < 0 for lo, hi in ctx.pads):
            return pad_constant(g, tuple((-lo, -hi) for lo, hi in ctx.pads), 0.0)
        from .indexing import getitem

        return getitem(g, idx)


class PadIndexed(Primitive):
    """reflect / replicate / circular padding as a gather along each padded axis."""

    @staticmethod
    def forward(ctx, x, pads, mode):
        idx = []
        for axis, (lo, hi) in enumerate(pads):
            n = x.shape[axis]
            i = np.arange(-lo, n + hi)
            if mode == "reflect":
                if lo >= n or hi >= n:
                    raise ValueError(f"pad: reflect padding ({lo}, {hi}) must be smaller than "
                                     f"the dimension size {n}")
                period = 2 * (n - 1) if n > 1 else 1
                i = np.abs(i) % period
                i = np.where(i >= n, period - i, i)
            elif mode == "replicate":
                i = np.clip(i, 0, n - 1)
            else:  # circular
                i = i % n
            idx.append(i)
        index = np.ix_(*idx)
        ctx.index = index
        ctx.in_shape = x.shape
        return x[index]

    @staticmethod
    def backward(ctx, g):
        from .indexing import index_put_add_zeros

        return index_put_add_zeros(g, ctx.index, ctx.in_shape)


class Flip(Primitive):
    @staticmethod
    def forward(ctx, x, axes):
        ctx.axes = axes
        return np.flip(x, axes).copy()

    @staticmethod
    def backward(ctx, g):
        return flip(g, ctx.axes)


class Roll(Primitive):
    @staticmethod
    def forward(ctx, x, shifts, axes):
        ctx.args = (shifts, axes)
        return np.roll(x, shifts, axes)

    @staticmethod
    def backward(ctx, g):
        shifts, axes = ctx.args
        neg = tuple(-s for s in shifts) if isinstance(shifts, tuple) else -shifts
        return call(Roll, g, shifts=neg, axes=axes)


class Tile(Primitive):
    @staticmethod
    def forward(ctx, x, reps):
        ctx.in_shape = x.shape
        ctx.reps = reps
        return np.tile(x, reps)

    @staticmethod
    def backward(ctx, g):
        # view the gradient as (r0, s0, r1, s1, ...) and sum the repetition axes
        shape = ctx.in_shape
        reps = ctx.reps
        if len(reps) > len(shape):
            shape = (1,) * (len(reps) - len(shape)) + tuple(shape)
        split = []
        for r, s in zip(reps, shape):
            split += [r, s]
        from .reduce import sum

        summed = sum(reshape(g, tuple(split)), tuple(range(0, 2 * len(reps), 2)))
        return reshape(summed, ctx.in_shape)


class TriMask(Primitive):
    """tril / triu: zero the elements outside the band; the gradient is masked the same way."""

    @staticmethod
    def forward(ctx, x, diagonal, lower):
        ctx.args = (diagonal, lower)
        return np.tril(x, diagonal) if lower else np.triu(x, diagonal)

    @staticmethod
    def backward(ctx, g):
        return call(TriMask, g, diagonal=ctx.args[0], lower=ctx.args[1])


class Copy(Primitive):
    """A fresh contiguous copy (clone / contiguous)."""

    @staticmethod
    def forward(ctx, x):
        return np.array(x, copy=True, order="C")

    @staticmethod
    def backward(ctx, g):
        return g


class Diagonal(Primitive):
    @staticmethod
    def forward(ctx, x, offset, a1, a2):
        ctx.args = (x.shape, offset, a1, a2)
        return np.diagonal(x, offset, a1, a2).copy()

    @staticmethod
    def backward(ctx, g):
        from .indexing import diagonal_embed_like

        return diagonal_embed_like(g, *ctx.args)


# ---------------------------------------------------------------------------- public functions
def reshape(input, *shape):
    """Same data with a new shape (one dim may be -1). Matches ``torch.reshape``."""
    shape = _shape_arg(shape)
    in_shape = shape_of(input)
    if shape == in_shape:
        return input
    shape = _infer_shape(shape, math.prod(in_shape), "reshape", in_shape)
    if shape == in_shape:
        return input
    return call(Reshape, input, shape=shape)


def view(input, *shape):
    """Like :func:`reshape` (ember does not require contiguity). Matches ``Tensor.view``."""
    if len(shape) == 1 and not isinstance(shape[0], (tuple, list, int, np.integer)):
        from . import dtypes as dt
        from .binary import cast

        return cast(input, dt.as_np_dtype(shape[0]))
    return reshape(input, *shape)


def view_as(input, other):
    return reshape(input, shape_of(other))


def reshape_as(input, other):
    return reshape(input, shape_of(other))


def permute(input, *dims):
    """Reorder the dims. Matches ``torch.permute``."""
    dims = _shape_arg(dims)
    n = len(shape_of(input))
    if len(dims) != n:
        raise RuntimeError(f"permute: expected {n} dims for a tensor of shape "
                           f"{shape_of(input)}, got {dims}")
    dims = tuple(normalize_dim(d, n, "permute") for d in dims)
    if len(set(dims)) != n:
        raise RuntimeError(f"permute: repeated dim in {dims}")
    if dims == tuple(range(n)):
        return input
    return call(Permute, input, dims=dims)


def transpose(input, dim0: int, dim1: int):
    """Swap two dims. Matches ``torch.transpose``."""
    n = len(shape_of(input))
    if n == 0:
        return input
    d0, d1 = normalize_dim(dim0, n, "transpose"), normalize_dim(dim1, n, "transpose")
    dims = list(range(n))
    dims[d0], dims[d1] = dims[d1], dims[d0]
    return permute(input, dims)


swapaxes = swapdims = transpose


def t(input):
    """Transpose of a matrix (0-d and 1-d unchanged). Matches ``torch.t``."""
    n = len(shape_of(input))
    if n > 2:
        raise RuntimeError(f"t: expects a tensor with <= 2 dims, got shape {shape_of(input)}")
    return input if n < 2 else transpose(input, 0, 1)


def movedim(input, source, destination):
    """Move dims to new positions. Matches ``torch.movedim``."""
    n = len(shape_of(input))
    src = [source] if isinstance(source, int) else list(source)
    dst = [destination] if isinstance(destination, int) else list(destination)
    src = [normalize_dim(s, n, "movedim") for s in src]
    dst = [normalize_dim(d, n, "movedim") for d in dst]
    order = [i for i in range(n) if i not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return permute(input, order)


moveaxis = movedim


def squeeze(input, dim=None):
    """Remove size-1 dims (all, or those in ``dim`` that have size 1). Matches ``torch.squeeze``."""
    shape = shape_of(input)
    if dim is None:
        axes = [i for i, s in enumerate(shape) if s == 1]
    else:
        dims = (dim,) if isinstance(dim, int) else dim
        axes = [normalize_dim(d, len(shape), "squeeze") for d in dims]
        axes = [a for a in axes if len(shape) and shape[a] == 1]
    return reshape(input, tuple(s for i, s in enumerate(shape) if i not in axes))


def _view_as_shape(input, shape: tuple):
    """``input`` reshaped to ``shape``, already checked to hold the same number of elements."""
    return input if shape == shape_of(input) else call(Reshape, input, shape=shape)


def unsqueeze(input, dim: int):
    """Insert a size-1 dim at ``dim``. Matches ``torch.unsqueeze``."""
    shape = shape_of(input)
    d = normalize_dim(dim, len(shape) + 1, "unsqueeze")
    return call(Reshape, input, shape=shape[:d] + (1,) + shape[d:])


def flatten(input, start_dim: int = 0, end_dim: int = -1):
    """Merge dims ``start_dim..end_dim`` into one. Matches ``torch.flatten``."""
    shape = shape_of(input)
    if len(shape) == 0:
        return reshape(input, (1,))
    s = normalize_dim(start_dim, len(shape), "flatten")
    e = normalize_dim(end_dim, len(shape), "flatten")
    if s > e:
        raise RuntimeError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim}")
    return _view_as_shape(input, shape[:s] + (math.prod(shape[s:e + 1]),) + shape[e + 1:])


def ravel(input):
    return reshape(input, (-1,))


def unflatten(input, dim: int, sizes):
    """Split one dim into ``sizes`` (one may be -1). Matches ``torch.unflatten``."""
    shape = shape_of(input)
    d = normalize_dim(dim, len(shape), "unflatten")
    sizes = _infer_shape(tuple(sizes), shape[d], "unflatten", shape)
    return reshape(input, shape[:d] + sizes + shape[d + 1:])


def broadcast_to(input, *shape):
    """A read-only view broadcast to ``shape``. Matches ``torch.broadcast_to``."""
    shape = _shape_arg(shape)
    in_shape = shape_of(input)
    if shape == in_shape:
        return input
    if len(shape) < len(in_shape) or any(
            s != t and s != 1 for s, t in zip(reversed(in_shape), reversed(shape))):
        raise RuntimeError(f"broadcast_to: cannot broadcast shape {in_shape} to {shape} (each "
                           f"dim, aligned from the right, must match or be 1)")
    return call(BroadcastTo, input, shape=shape)


def expand(input, *sizes):
    """Broadcast to ``sizes`` (-1 keeps a dim). Matches ``Tensor.expand``."""
    sizes = _shape_arg(sizes)
    in_shape = shape_of(input)
    if len(sizes) < len(in_shape):
        raise RuntimeError(f"expand: the number of sizes {len(sizes)} must be at least the "
                           f"number of dims {len(in_shape)} (shape {in_shape})")
    lead = len(sizes) - len(in_shape)
    target = tuple(in_shape[i - lead] if s == -1 and i >= lead else s
                   for i, s in enumerate(sizes))
    for i, s in enumerate(in_shape):
        if s != 1 and s != target[i + lead]:
            raise RuntimeError(f"expand: the expanded size {target[i + lead]} must match the "
                               f"existing size {s} at dim {i} (shape {in_shape} to {sizes})")
    return broadcast_to(input, target)


def expand_as(input, other):
    return expand(input, shape_of(other))


def broadcast_tensors(*tensors):
    """Broadcast all inputs to their common shape. Matches ``torch.broadcast_tensors``."""
    shape = np.broadcast_shapes(*[shape_of(t) for t in tensors])
    return tuple(broadcast_to(t, shape) for t in tensors)


def broadcast_shapes(*shapes) -> tuple:
    try:
        return tuple(np.broadcast_shapes(*shapes))
    except ValueError:
        raise RuntimeError(f"broadcast_shapes: shapes {shapes} cannot be broadcast together") \
            from None


def cat(tensors, dim: int = 0):
    """Concatenate along an existing dim. Matches ``torch.cat``."""
    tensors = list(tensors)
    if not tensors:
        raise RuntimeError("cat: expected a non-empty list of tensors")
    shapes = [shape_of(t) for t in tensors]
    # PyTorch skips 1-D empty tensors in cat (unless all of them are)
    skip = tuple(s == (0,) for s in shapes)
    if all(skip) or not any(len(s) > 1 for s in shapes):
        skip = (False,) * len(tensors)
    keep = [t for t, sk in zip(tensors, skip) if not sk]
    shapes = [shape_of(t) for t in keep]
    nd = len(shapes[0])
    if nd == 0:
        raise RuntimeError("cat: zero-dimensional tensors cannot be concatenated; use stack")
    axis = normalize_dim(dim, nd, "cat")
    for i, s in enumerate(shapes):
        if len(s) != nd or s[:axis] + s[axis + 1:] != shapes[0][:axis] + shapes[0][axis + 1:]:
            raise RuntimeError(f"cat: tensors must have the same shape except in dim {dim}; "
                               f"tensor 0 has shape {shapes[0]}, tensor {i} has shape {s}")
    dtypes = {dtype_of(t) for t in tensors}
    if len(dtypes) == 1 and None not in dtypes:  # nothing to promote
        return call(Cat, *tensors, axis=axis, skip=skip)
    from .binary import cast, promote

    first = keep[0]
    for j in range(1, len(keep)):
        first, _ = promote(first, keep[j], "cat", broadcast=False)
    d = dtype_of(first)
    tensors = [t if sk else cast(t, d) for t, sk in zip(tensors, skip)]
    return call(Cat, *tensors, axis=axis, skip=skip)


concat = concatenate = cat


def stack(tensors, dim: int = 0):
    """Join along a new dim. Matches ``torch.stack``."""
    tensors = list(tensors)
    if not tensors:
        raise RuntimeError("stack: expected a non-empty list of tensors")
    shapes = [shape_of(t) for t in tensors]
    for i, s in enumerate(shapes):
        if s != shapes[0]:
            raise RuntimeError(f"stack: all tensors must have the same shape; tensor 0 has "
                               f"shape {shapes[0]}, tensor {i} has shape {s}")
    d = normalize_dim(dim, len(shapes[0]) + 1, "stack")
    dtypes = {dtype_of(t) for t in tensors}
    if len(dtypes) == 1 and None not in dtypes:  # nothing to promote: one primitive
        return call(Stack, *tensors, axis=d)
    return cat([unsqueeze(t, d) for t in tensors], d)


def hstack(tensors):
    tensors = list(tensors)
    return cat(tensors, 0 if len(shape_of(tensors[0])) == 1 else 1)


def vstack(tensors):
    return cat([reshape(t, (1, -1)) if len(shape_of(t)) == 1 else t for t in tensors], 0)


def narrow(input, dim: int, start: int, length: int):
    """The slice ``start:start+length`` of ``dim`` (a view). Matches ``torch.narrow``."""
    shape = shape_of(input)
    axis = normalize_dim(dim, len(shape), "narrow")
    if start < 0:
        start += shape[axis]
    if not (0 <= start and length >= 0 and start + length <= shape[axis]):
        raise IndexError(f"narrow: start {start} + length {length} exceeds dim {dim} of size "
                         f"{shape[axis]}")
    if start == 0 and length == shape[axis]:
        return input
    return call(Narrow, input, axis=axis, start=int(start), length=int(length))


def split(tensor, split_size_or_sections, dim: int = 0):
    """Split into chunks of a given size, or of the given list of sizes. Matches ``torch.split``."""
    shape = shape_of(tensor)
    axis = normalize_dim(dim, len(shape), "split")
    n = shape[axis]
    if isinstance(split_size_or_sections, (int, np.integer)):
        size = int(split_size_or_sections)
        if size <= 0:
            raise ValueError(f"split: split_size must be positive, got {size}")
        sizes = [min(size, n - s) for s in range(0, n, size)] or [0]
    else:
        sizes = [int(s) for s in split_size_or_sections]
        if sum(sizes) != n:
            raise RuntimeError(f"split: sizes {sizes} must sum to the size {n} of dim {dim}")
    out, start = [], 0
    for s in sizes:
        out.append(narrow(tensor, axis, start, s))
        start += s
    return tuple(out)


def chunk(input, chunks: int, dim: int = 0):
    """Split into ``chunks`` nearly equal pieces (the last may be smaller). Matches torch."""
    if chunks <= 0:
        raise ValueError(f"chunk: chunks must be positive, got {chunks}")
    n = shape_of(input)[normalize_dim(dim, len(shape_of(input)), "chunk")]
    size = -(-n // chunks) if n else 1
    return split(input, size, dim)


def tensor_split(input, indices_or_sections, dim: int = 0):
    n = shape_of(input)[normalize_dim(dim, len(shape_of(input)), "tensor_split")]
    if isinstance(indices_or_sections, int):
        k = indices_or_sections
        sizes = [n // k + (1 if i < n % k else 0) for i in range(k)]
    else:
        bounds = [0] + list(indices_or_sections) + [n]
        sizes = [max(b - a, 0) for a, b in zip(bounds[:-1], bounds[1:])]
    return split(input, sizes, dim)


def unbind(input, dim: int = 0):
    """All slices along ``dim``, with that dim removed. Matches ``torch.unbind``."""
    axis = normalize_dim(dim, len(shape_of(input)), "unbind")
    return tuple(squeeze(p, axis) for p in split(input, 1, axis))


def flip(input, dims):
    """Reverse the order along ``dims``. Matches ``torch.flip``."""
    dims = (dims,) if isinstance(dims, int) else tuple(dims)
    n = len(shape_of(input))
    axes = tuple(normalize_dim(d, n, "flip") for d in dims)
    return call(Flip, input, axes=axes)


def fliplr(input):
    return flip(input, (1,))


def flipud(input):
    return flip(input, (0,))


def roll(input, shifts, dims=None):
    """Shift elements cyclically along ``dims`` (flattened if None). Matches ``torch.roll``."""
    n = len(shape_of(input))
    if dims is None:
        flat = reshape(input, (-1,))
        return reshape(call(Roll, flat, shifts=int(shifts) if isinstance(shifts, int)
                            else tuple(shifts), axes=0), shape_of(input))
    if isinstance(dims, int):
        dims = (dims,)
        shifts = (shifts,) if isinstance(shifts, int) else tuple(shifts)
    axes = tuple(normalize_dim(d, n, "roll") for d in dims)
    shifts = tuple(shifts)
    if len(shifts) != len(axes):
        raise RuntimeError(f"roll: shifts {shifts} and dims {dims} must have the same length")
    return call(Roll, input, shifts=shifts, axes=axes)


def repeat(input, *sizes):
    """Tile the tensor ``sizes`` times along each dim. Matches ``Tensor.repeat``."""
    sizes = _shape_arg(sizes)
    if len(sizes) < len(shape_of(input)):
        raise RuntimeError(f"repeat: number of repeat dims {len(sizes)} can not be smaller "
                           f"than the number of tensor dims {len(shape_of(input))}")
    return call(Tile, input, reps=sizes)


def tile(input, dims):
    """Like :func:`repeat`, padding ``dims`` with ones on the left. Matches ``torch.tile``."""
    dims = tuple(dims)
    n = len(shape_of(input))
    if len(dims) < n:
        dims = (1,) * (n - len(dims)) + dims
    return call(Tile, input, reps=dims)


def repeat_interleave(input, repeats, dim=None):
    """Repeat each element ``repeats`` times. Matches ``torch.repeat_interleave`` (int repeats)."""
    if dim is None:
        input, dim = reshape(input, (-1,)), 0
    shape = shape_of(input)
    axis = normalize_dim(dim, len(shape), "repeat_interleave")
    if not isinstance(repeats, int):
        from .indexing import index_select

        reps = np.asarray(repeats._data if isinstance(repeats, TensorBase) else repeats)
        idx = np.repeat(np.arange(shape[axis]), reps)
        return index_select(input, axis, idx)
    x = unsqueeze(input, axis + 1)
    target = shape[:axis + 1] + (repeats,) + shape[axis + 1:]
    return reshape(broadcast_to(x, target), shape[:axis] + (shape[axis] * repeats,) +
                   shape[axis + 1:])


def pad(input, pad, mode: str = "constant", value=None):
    """Pad the last dims: ``pad = (left, right, top, bottom, ...)``. Matches ``F.pad``.

    Modes: ``constant`` (with ``value``, negative pads crop), ``reflect``, ``replicate``,
    ``circular``.
    """
    pad = tuple(int(p) for p in pad)
    shape = shape_of(input)
    if len(pad) % 2 or len(pad) // 2 > len(shape):
        raise ValueError(f"pad: padding {pad} must have an even length of at most twice the "
                         f"number of dims (shape {shape})")
    pads = [(0, 0)] * len(shape)
    for i in range(len(pad) // 2):
        pads[len(shape) - 1 - i] = (pad[2 * i], pad[2 * i + 1])
    pads = tuple(pads)
    if mode == "constant":
        return pad_constant(input, pads, 0.0 if value is None else value)
    if mode not in ("reflect", "replicate", "circular"):
        raise ValueError(f"pad: mode must be 'constant', 'reflect', 'replicate' or 'circular', "
                         f"got {mode!r}")
    if any(lo < 0 or hi < 0 for lo, hi in pads):
        raise ValueError(f"pad: negative padding is only supported in constant mode, got {pad}")
    return call(PadIndexed, input, pads=pads, mode=mode)


def pad_constant(input, pads, value):
    if all(lo == 0 and hi == 0 for lo, hi in pads):
        return input
    return call(PadConstant, input, pads=tuple(pads), value=value)


def tril(input, diagonal: int = 0):
    """Lower triangle of the last two dims (others zeroed). Matches ``torch.tril``."""
    if len(shape_of(input)) < 2:
        raise RuntimeError(f"tril: expected a tensor with at least 2 dims, got shape "
                           f"{shape_of(input)}")
    return call(TriMask, input, diagonal=diagonal, lower=True)


def triu(input, diagonal: int = 0):
    """Upper triangle of the last two dims (others zeroed). Matches ``torch.triu``."""
    if len(shape_of(input)) < 2:
        raise RuntimeError(f"triu: expected a tensor with at least 2 dims, got shape "
                           f"{shape_of(input)}")
    return call(TriMask, input, diagonal=diagonal, lower=False)


def clone(input, *, memory_format=None):
    """A copy that autograd tracks (gradient flows through). Matches ``torch.clone``."""
    return call(Copy, input)


def contiguous(input, memory_format=None):
    """A C-contiguous tensor (self if already). Matches ``Tensor.contiguous``."""
    data = input._data if isinstance(input, TensorBase) else input
    if isinstance(data, np.ndarray) and data.flags.c_contiguous:
        return input
    return call(Copy, input)


def diagonal(input, offset: int = 0, dim1: int = 0, dim2: int = 1):
    """The diagonal of the (dim1, dim2) planes, as the last dim. Matches ``torch.diagonal``."""
    n = len(shape_of(input))
    a1, a2 = normalize_dim(dim1, n, "diagonal"), normalize_dim(dim2, n, "diagonal")
    return call(Diagonal, input, offset=offset, a1=a1, a2=a2)
