"""Linear algebra: matmul (1-D, 2-D, batched with broadcasting), mm, bmm, dot, outer, einsum.

Matches: the ``torch`` functions of the same names (``matmul``, ``mm``, ``bmm``, ``mv``, ``dot``,
``vdot``, ``outer``/``ger``, ``inner``, ``addmm``, ``addmv``, ``baddbmm``, ``einsum``,
``tensordot``, ``kron``).

matmul follows PyTorch's rules: 1-D x 1-D is a dot product (0-d result); a 1-D first operand is
treated as a row vector and a 1-D second operand as a column vector, the added dim being removed
from the result; leading (batch) dims broadcast. Its gradient sums over broadcast batch dims, so
each gradient has its input's shape. A batched operand times a 2-D matrix is folded into a single
2-D product (one BLAS call) in forward and backward.

einsum runs ``np.einsum`` forward; the gradient of each operand is another einsum of the upstream
gradient with the other operands, whose output is that operand's subscripts. Ellipses, implicit
outputs, size-1 broadcasting, letters summed away within one operand ('ij->i') and repeated
letters within one operand ('ii->i', the diagonal) are handled.

Operands must share a dtype (as in PyTorch); mismatches and wrong shapes raise RuntimeError
naming the op and both shapes.
"""

from __future__ import annotations

import numpy as np

from . import native
from .arrays import column_sums
from .base import NO_ATTRS, NULL_CTX, Primitive, TensorBase, call, dtype_of, shape_of

__all__ = [
    "linear",
    "orthonormal_columns",
    "matmul", "mm", "bmm", "mv", "dot", "vdot", "outer", "ger", "inner", "addmm", "addmv",
    "baddbmm", "einsum", "tensordot", "kron",
]


# ---------------------------------------------------------------------------- validation
def _check_dtypes(op: str, *xs) -> None:
    dts = [dtype_of(x) for x in xs]
    for x, d in zip(xs, dts):
        if d is None and not isinstance(x, (np.ndarray, TensorBase)):
            raise TypeError(f"{op}: expected tensors, got a {type(x).__name__}")
    if any(d != dts[0] for d in dts[1:]):
        names = " and ".join(str(d) for d in dts)
        raise RuntimeError(f"{op}: expected all operands to have the same dtype, got {names}; "
                           f"convert them with .to(...) first")


def _matmul_shape(op: str, sa: tuple, sb: tuple) -> None:
    """Raise a clear error unless ``sa @ sb`` is defined under PyTorch's matmul rules."""
    if not sa or not sb:
        raise RuntimeError(f"{op}: both arguments need to be at least 1-D, got shapes {sa} "
                           f"and {sb}")
    ka = sa[-1]
    kb = sb[-2] if len(sb) > 1 else sb[0]
    if ka != kb:
        raise RuntimeError(f"{op}: cannot multiply shapes {sa} and {sb} (inner dimensions "
                           f"{ka} and {kb} differ)")
    if len(sa) > 2 or len(sb) > 2:
        try:
            np.broadcast_shapes(sa[:-2], sb[:-2])
        except ValueError:
            raise RuntimeError(f"{op}: cannot multiply shapes {sa} and {sb}: batch dimensions "
                               f"{sa[:-2]} and {sb[:-2]} cannot be broadcast together") from None


def _needs(ctx, i: int) -> bool:
    """Whether input ``i`` wants a gradient (if the engine tells; otherwise assume so)."""
    need = getattr(ctx, "needs_input_grad", None)
    return True if need is None else bool(need[i])


# ---------------------------------------------------------------------------- matmul
def _np_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if a.ndim > 2 and b.ndim == 2:  # fold the batch into rows: one BLAS call
        out = np.matmul(a.reshape(-1, a.shape[-1]), b)
        return out.reshape(a.shape[:-1] + (b.shape[-1],))
    return np.matmul(a, b)


class Matmul(Primitive):
    """``np.matmul`` with PyTorch's vector rules; backward g @ b^T and a^T @ g, summed to shape."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return _np_matmul(a, b)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved
        sa, sb = shape_of(a), shape_of(b)
        if len(sa) == 2 and len(sb) == 2:  # the common case, without reshapes or sums
            return (call(Matmul, g, mT(b)) if _needs(ctx, 0) else None,
                    call(Matmul, mT(a), g) if _needs(ctx, 1) else None)
        if len(sa) == 1 and len(sb) == 1:  # dot product: g is 0-d
            return (g * b if _needs(ctx, 0) else None), (g * a if _needs(ctx, 1) else None)
        # view vectors as matrices, and g with the corresponding size-1 dims
        a2 = a if len(sa) > 1 else reshape(a, (1, sa[0]))
        b2 = b if len(sb) > 1 else reshape(b, (sb[0], 1))
        sa2, sb2 = shape_of(a2), shape_of(b2)
        batch = np.broadcast_shapes(sa2[:-2], sb2[:-2])
        g2 = reshape(g, batch + (sa2[-2], sb2[-1]))
        ga = gb = None
        if _needs(ctx, 0):
            ga = reshape(sum_to(matmul(g2, mT(b2)), sa2), sa)
        if _needs(ctx, 1):
            if len(sb2) == 2 and batch:  # fold the batch: (k, B*m) @ (B*m, n)
                k, n = sb2
                gb = matmul(mT(reshape(a2, (-1, k))), reshape(g2, (-1, n)))
            else:
                gb = sum_to(matmul(mT(a2), g2), sb2)
            gb = reshape(gb, sb)
        return ga, gb


def matmul(input, other):
    """Matrix product with PyTorch's 1-D and batch-broadcasting rules. Matches ``torch.matmul``."""
    _check_dtypes("matmul", input, other)
    _matmul_shape("matmul", shape_of(input), shape_of(other))
    return call(Matmul, input, other)


def mT(x):  # noqa: N802 - like Tensor.mT
    """The last two dims swapped (a free view for NumPy arrays in the backward fast path)."""
    if type(x) is np.ndarray and x.ndim >= 2:
        return x.swapaxes(-1, -2)
    return transpose(x, -1, -2)


def mm(input, mat2):
    """Product of two 2-D matrices (no broadcasting). Matches ``torch.mm``."""
    sa, sb = shape_of(input), shape_of(mat2)
    if len(sa) != 2 or len(sb) != 2:
        raise RuntimeError(f"mm: expected 2-D matrices, got shapes {sa} and {sb}")
    _check_dtypes("mm", input, mat2)
    _matmul_shape("mm", sa, sb)
    return call(Matmul, input, mat2)


def bmm(input, mat2):
    """Batched product of 3-D tensors with equal batch size (no broadcasting). Matches torch."""
    sa, sb = shape_of(input), shape_of(mat2)
    if len(sa) != 3 or len(sb) != 3:
        raise RuntimeError(f"bmm: expected 3-D tensors, got shapes {sa} and {sb}")
    if sa[0] != sb[0]:
        raise RuntimeError(f"bmm: batch sizes differ: shapes {sa} and {sb}")
    _check_dtypes("bmm", input, mat2)
    _matmul_shape("bmm", sa, sb)
    return call(Matmul, input, mat2)


def mv(input, vec):
    """Matrix (n, m) times vector (m,). Matches ``torch.mv``."""
    sa, sb = shape_of(input), shape_of(vec)
    if len(sa) != 2 or len(sb) != 1:
        raise RuntimeError(f"mv: expected a 2-D matrix and a 1-D vector, got shapes {sa} "
                           f"and {sb}")
    _check_dtypes("mv", input, vec)
    _matmul_shape("mv", sa, sb)
    return call(Matmul, input, vec)


def dot(input, other):
    """Inner product of two 1-D tensors of the same size (0-d result). Matches ``torch.dot``."""
    sa, sb = shape_of(input), shape_of(other)
    if len(sa) != 1 or len(sb) != 1:
        raise RuntimeError(f"dot: expected 1-D tensors, got shapes {sa} and {sb}")
    if sa != sb:
        raise RuntimeError(f"dot: inconsistent tensor sizes: shapes {sa} and {sb}")
    _check_dtypes("dot", input, other)
    return call(Matmul, input, other)


def vdot(input, other):
    """Like :func:`dot` (ember has no complex numbers to conjugate). Matches ``torch.vdot``."""
    return dot(input, other)


class Outer(Primitive):
    """a[:, None] * b[None, :] for 1-D a and b; backward g @ b and a @ g."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return np.multiply.outer(a, b)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved
        return (matmul(g, b) if _needs(ctx, 0) else None,
                matmul(a, g) if _needs(ctx, 1) else None)


def outer(input, vec2):
    """Outer product of two 1-D tensors. Matches ``torch.outer``."""
    sa, sb = shape_of(input), shape_of(vec2)
    if len(sa) != 1 or len(sb) != 1:
        raise RuntimeError(f"outer: expected 1-D tensors, got shapes {sa} and {sb}")
    _check_dtypes("outer", input, vec2)
    return call(Outer, input, vec2)


ger = outer


def inner(input, other):
    """Sum of products over the last dims (a scalar operand multiplies). Matches ``torch.inner``."""
    sa, sb = shape_of(input), shape_of(other)
    if not sa or not sb:
        return mul(input, other)
    if sa[-1] != sb[-1]:
        raise RuntimeError(f"inner: the last dimensions must match, got shapes {sa} and {sb}")
    if len(sa) == 1 and len(sb) == 1:
        return dot(input, other)
    return tensordot(input, other, dims=([-1], [-1]))


# ---------------------------------------------------------------------------- fused a*x@y + b*c
class AddMatmul(Primitive):
    """beta * c + alpha * (a @ b) in one node (addmm, addmv, baddbmm)."""

    @staticmethod
    def forward(ctx, c, a, b, beta, alpha):
        ctx.save_for_backward(a, b)
        ctx.args = (np.shape(c), beta, alpha)
        out = _np_matmul(a, b)
        if alpha != 1:
            out *= alpha
        if beta == 0:  # PyTorch ignores c entirely (no nan/inf from it)
            return out
        if beta == 1:
            out += c
        else:
            out += c * beta
        return out

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved
        sc, beta, alpha = ctx.args
        gc = sum_to(g * beta if beta != 1 else g, sc) if _needs(ctx, 0) else None
        ga = gb = None
        gm = g * alpha if alpha != 1 else g
        if _needs(ctx, 1):
            ga = matmul(gm, mT(b)) if len(shape_of(b)) > 1 else outer(gm, b)
        if _needs(ctx, 2):
            gb = matmul(mT(a), gm)
        return gc, ga, gb


def _add_matmul(op, input, a, b, beta, alpha, out_shape):
    _check_dtypes(op, input, a, b)
    sc = shape_of(input)
    try:
        full = np.broadcast_shapes(sc, out_shape)
    except ValueError:
        full = None
    if full != out_shape:
        raise RuntimeError(f"{op}: input of shape {sc} cannot be broadcast to the product's "
                           f"shape {out_shape}")
    return call(AddMatmul, input, a, b, beta=beta, alpha=alpha)


def addmm(input, mat1, mat2, *, beta=1, alpha=1):
    """beta * input + alpha * (mat1 @ mat2) for 2-D mats. Matches ``torch.addmm``."""
    sa, sb = shape_of(mat1), shape_of(mat2)
    if len(sa) != 2 or len(sb) != 2:
        raise RuntimeError(f"addmm: expected 2-D matrices, got shapes {sa} and {sb}")
    _matmul_shape("addmm", sa, sb)
    return _add_matmul("addmm", input, mat1, mat2, beta, alpha, (sa[0], sb[1]))


def addmv(input, mat, vec, *, beta=1, alpha=1):
    """beta * input + alpha * (mat @ vec). Matches ``torch.addmv``."""
    sa, sb = shape_of(mat), shape_of(vec)
    if len(sa) != 2 or len(sb) != 1:
        raise RuntimeError(f"addmv: expected a 2-D matrix and a 1-D vector, got shapes {sa} "
                           f"and {sb}")
    _matmul_shape("addmv", sa, sb)
    return _add_matmul("addmv", input, mat, vec, beta, alpha, (sa[0],))


def baddbmm(input, batch1, batch2, *, beta=1, alpha=1):
    """beta * input + alpha * bmm(batch1, batch2). Matches ``torch.baddbmm``."""
    sa, sb = shape_of(batch1), shape_of(batch2)
    if len(sa) != 3 or len(sb) != 3:
        raise RuntimeError(f"baddbmm: expected 3-D tensors, got shapes {sa} and {sb}")
    if sa[0] != sb[0]:
        raise RuntimeError(f"baddbmm: batch sizes differ: shapes {sa} and {sb}")
    _matmul_shape("baddbmm", sa, sb)
    return _add_matmul("baddbmm", input, batch1, batch2, beta, alpha, (sa[0], sa[1], sb[2]))


# ---------------------------------------------------------------------------- einsum
_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_PARSED: dict = {}


def _parse_einsum(equation: str, shapes: tuple):
    """Expand ``equation`` for operands of ``shapes`` into explicit letter lists (no ellipsis).

    Returns (input subscripts, output subscripts, letter sizes). Cached per (equation, shapes).
    """
    key = (equation, shapes)
    hit = _PARSED.get(key)
    if hit is not None:
        return hit
    eq = equation.replace(" ", "")
    if "->" in eq:
        lhs, rhs = eq.split("->", 1)
    else:
        lhs, rhs = eq, None
    terms = lhs.split(",")
    if len(terms) != len(shapes):
        raise ValueError(f"einsum: equation {equation!r} names {len(terms)} operands but "
                         f"{len(shapes)} were given")
    used = set(c for c in eq if c.isalpha())
    for c in eq:
        if not (c.isalpha() or c in ",.->"):
            raise ValueError(f"einsum: invalid character {c!r} in equation {equation!r}")
    free = [c for c in _LETTERS if c not in used]
    n_ell = 0
    for t, s in zip(terms, shapes):
        if "..." in t:
            n_ell = max(n_ell, len(s) - (len(t) - 3))
    if n_ell > len(free):
        raise ValueError(f"einsum: too many dimensions for equation {equation!r}")
    ell = free[:n_ell]
    subs = []
    for i, (t, s) in enumerate(zip(terms, shapes)):
        if "..." in t:
            k = len(s) - (len(t) - 3)
            if k < 0:
                raise ValueError(f"einsum: operand {i} of shape {s} has fewer dims than "
                                 f"subscripts {t!r}")
            head, tail = t.split("...")
            letters = list(head) + ell[n_ell - k:] + list(tail)
        else:
            if "." in t:
                raise ValueError(f"einsum: invalid subscripts {t!r} in {equation!r}")
            letters = list(t)
        if len(letters) != len(s):
            raise ValueError(f"einsum: operand {i} has {len(s)} dims (shape {s}) but "
                             f"subscripts {t!r} name {len(letters)}")
        subs.append(letters)
    sizes: dict = {}
    for i, (letters, s) in enumerate(zip(subs, shapes)):
        for c, n in zip(letters, s):
            m = sizes.get(c)
            if m is None or m == 1:
                sizes[c] = n
            elif n != 1 and n != m:
                raise ValueError(f"einsum: subscript {c!r} has size {n} in operand {i} (shape "
                                 f"{s}) but size {m} elsewhere; shapes {list(shapes)}")
    if rhs is None:
        counts: dict = {}
        for letters in subs:
            for c in letters:
                counts[c] = counts.get(c, 0) + 1
        out = ell + sorted(c for c in counts if counts[c] == 1 and c not in ell)
    else:
        if "..." in rhs:
            head, tail = rhs.split("...")
            out = list(head) + ell + list(tail)
        else:
            out = list(rhs)
        for c in out:
            if c not in sizes:
                raise ValueError(f"einsum: output subscript {c!r} does not appear in the "
                                 f"inputs of {equation!r}")
        if len(set(out)) != len(out):
            raise ValueError(f"einsum: output subscripts repeat a letter in {equation!r}")
    result = (tuple(tuple(s) for s in subs), tuple(out), sizes)
    if len(_PARSED) > 4096:
        _PARSED.clear()
    _PARSED[key] = result
    return result


def _spec(subs, out) -> str:
    return ",".join("".join(s) for s in subs) + "->" + "".join(out)


class Einsum(Primitive):
    """``np.einsum`` on an explicit (ellipsis-free) spec; see the module docstring for backward."""

    @staticmethod
    def forward(ctx, *ops, subs, out, sizes):
        ctx.save_for_backward(*ops)
        ctx.args = (subs, out, sizes)
        spec = _spec(subs, out)
        if len(ops) > 1:
            return np.asarray(np.einsum(spec, *ops, optimize=True))
        return np.asarray(np.einsum(spec, *ops))

    @staticmethod
    def backward(ctx, g):
        ops = ctx.saved
        subs, out, sizes = ctx.args
        return tuple(_einsum_grad(i, g, ops, subs, out, sizes) if _needs(ctx, i) else None
                     for i in range(len(ops)))


def _einsum_grad(i, g, ops, subs, out, sizes):
    mine = subs[i]
    shape = shape_of(ops[i])
    others = [s for j, s in enumerate(subs) if j != i]
    other_ops = [o for j, o in enumerate(ops) if j != i]
    avail = set(out).union(*others) if others else set(out)
    uniq = list(dict.fromkeys(mine))  # letters of operand i, first occurrence order
    kept = [c for c in uniq if c in avail]
    gu = call(Einsum, g, *other_ops, subs=(tuple(out),) + tuple(others), out=tuple(kept),
              sizes=sizes)
    # sizes of operand i per unique letter (a repeated letter has one size)
    own = {}
    for c, n in zip(mine, shape):
        own[c] = n
    # a dim that operand i had as size 1 but was broadcast: sum it back to 1
    gshape = shape_of(gu)
    bcast = tuple(k for k, c in enumerate(kept) if own[c] == 1 and gshape[k] != 1)
    if bcast:
        gu = sum_(gu, bcast, keepdim=True)
        gshape = shape_of(gu)
    # letters summed away inside operand i only ('ij->i'), or that only operand i had at full
    # size while the others broadcast them: broadcast back to operand i's sizes
    target = tuple(own[c] for c in uniq)
    if len(kept) != len(uniq):
        pos = {c: k for k, c in enumerate(kept)}
        gu = reshape(gu, tuple(gshape[pos[c]] if c in pos else 1 for c in uniq))
    if shape_of(gu) != target:
        gu = broadcast_to(gu, target)
    if len(uniq) == len(mine):
        return gu
    # repeated letters ('ii'): spread onto the diagonal, multiplying by identity matrices
    fresh = iter(c for c in _LETTERS if c not in sizes)
    target, eyes, eye_subs = [], [], []
    seen = set()
    for c in mine:
        if c in seen:
            z = next(fresh)
            target.append(z)
            eyes.append(np.eye(own[c], dtype=dtype_of(ops[i])))
            eye_subs.append((c, z))
        else:
            seen.add(c)
            target.append(c)
    all_sizes = dict(sizes)
    for c, z in eye_subs:
        all_sizes[z] = own[c]
    return call(Einsum, gu, *eyes, subs=(tuple(uniq),) + tuple(eye_subs), out=tuple(target),
                sizes=all_sizes)


def einsum(equation: str, *operands):
    """Einstein summation. Matches ``torch.einsum`` (operands may also be given as one list).

    Examples: ``einsum('ij,jk->ik', a, b)``, ``einsum('bhqd,bhkd->bhqk', q, k)``,
    ``einsum('ii->i', a)`` (diagonal), ``einsum('...ij,...jk', a, b)`` (implicit output).
    """
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    if not isinstance(equation, str):
        raise TypeError(f"einsum: the first argument must be the equation string, got "
                        f"{type(equation).__name__}")
    if not operands:
        raise ValueError("einsum: at least one operand is required")
    _check_dtypes("einsum", *operands)
    shapes = tuple(shape_of(o) for o in operands)
    subs, out, sizes = _parse_einsum(equation, shapes)
    return call(Einsum, *operands, subs=subs, out=out, sizes=sizes)


def tensordot(a, b, dims=2):
    """Sum of products over ``dims`` (an int: the last dims of a with the first of b; or two
    lists of dims). Matches ``torch.tensordot``."""
    sa, sb = shape_of(a), shape_of(b)
    if isinstance(dims, TensorBase):
        dims = dims._data.tolist()
    if isinstance(dims, (int, np.integer)):
        d = int(dims)
        if d < 0 or d > len(sa) or d > len(sb):
            raise RuntimeError(f"tensordot: dims={d} is invalid for shapes {sa} and {sb}")
        da, db = list(range(len(sa) - d, len(sa))), list(range(d))
    else:
        da, db = dims
        da = [da] if isinstance(da, int) else list(da)
        db = [db] if isinstance(db, int) else list(db)
        if len(da) != len(db):
            raise RuntimeError(f"tensordot: both dim lists must have the same length, got "
                               f"{da} and {db}")
    na, nb = len(sa), len(sb)
    try:
        da = [d % na if -na <= d < na else _bad() for d in da]
        db = [d % nb if -nb <= d < nb else _bad() for d in db]
    except IndexError:
        raise IndexError(f"tensordot: dims {dims} out of range for shapes {sa} and {sb}") \
            from None
    for x, y in zip(da, db):
        if sa[x] != sb[y]:
            raise RuntimeError(f"tensordot: contracted dimensions have different sizes: "
                               f"dim {x} of {sa} is {sa[x]}, dim {y} of {sb} is {sb[y]}")
    la = _LETTERS[:na]
    lb = list(_LETTERS[na:na + nb])
    for x, y in zip(da, db):
        lb[y] = la[x]
    out = [la[k] for k in range(na) if k not in da] + [lb[k] for k in range(nb) if k not in db]
    return einsum(f"{la},{''.join(lb)}->{''.join(out)}", a, b)


def _bad():
    raise IndexError


def kron(input, other):
    """Kronecker product. Matches ``torch.kron``."""
    _check_dtypes("kron", input, other)
    sa, sb = shape_of(input), shape_of(other)
    n = max(len(sa), len(sb))
    sa = (1,) * (n - len(sa)) + sa
    sb = (1,) * (n - len(sb)) + sb
    a = reshape(input, tuple(x for s in sa for x in (s, 1)))
    b = reshape(other, tuple(x for s in sb for x in (1, s)))
    return reshape(mul(a, b), tuple(x * y for x, y in zip(sa, sb)))


# ops used in backward formulas (imported last: these modules import each other)
from .binary import mul  # noqa: E402
from .movement import broadcast_to, reshape, transpose  # noqa: E402
from .reduce import sum as sum_  # noqa: E402
from .reduce import sum_to  # noqa: E402


def orthonormal_columns(a: np.ndarray) -> np.ndarray:
    """Q of the QR decomposition of ``a`` with signs fixed so that diag(R) > 0 (no gradient)."""
    q, r = np.linalg.qr(a)
    d = np.sign(np.diag(r))
    d[d == 0] = 1
    return q * d


class Linear(Primitive):
    """``x @ W^T + b`` in one op (the dense layer). Leading dims of ``x`` are batch dims.

    Backward: dx = g @ W, dW = g^T x (over all batch rows), db = sum of g over batch rows.
    """

    @staticmethod
    def forward(ctx, x, w, b=None):
        if ctx is not NULL_CTX:  # (a no-grad call keeps nothing)
            ctx.save_for_backward(x, w)
            ctx.has_bias = b is not None
        if x.ndim <= 2 and (x.shape[0] if x.ndim == 2 else 1) <= _DENSE_MAX_ROWS:
            out = _dense_rows(x, w, b)
            if out is not None:
                return out
        out = np.matmul(x, w.T) if x.ndim <= 2 else np.matmul(
            x.reshape(-1, x.shape[-1]), w.T).reshape(x.shape[:-1] + (w.shape[0],))
        if b is not None:
            out += b
        return out

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved
        if type(g) is np.ndarray and type(x) is np.ndarray and x.ndim >= 2:
            return _linear_backward_np(ctx, g, x, w)
        sx = shape_of(x)
        gx = gw = gb = None
        if _needs(ctx, 0):
            gx = matmul(g, w)
        if _needs(ctx, 1) or _needs(ctx, 2):
            g2 = reshape(g, (-1, shape_of(g)[-1])) if len(sx) != 2 else g
            if _needs(ctx, 1):
                x2 = reshape(x, (-1, sx[-1])) if len(sx) != 2 else x
                gw = matmul(mT(g2), x2) if len(sx) > 1 else outer(g, x)
            if ctx.has_bias and _needs(ctx, 2):
                from .reduce import sum as sum_

                gb = sum_(g2, 0) if len(sx) > 1 else g
        return (gx, gw, gb) if ctx.has_bias else (gx, gw)


_DENSE_MAX_ROWS = 4  # from 8 rows on, a BLAS product is faster than dense_rows (NOTES.md)


def _dense_rows(x, w, b):
    """``x @ w.T + b`` for at most a few rows by the compiled ``dense_rows`` kernel, or None
    when it cannot run (not built, switched off, or arrays it does not take)."""
    k = native.kernel("dense_rows")
    if k is None or not x.size:
        return None
    n, kk = w.shape
    out = np.empty(x.shape[:-1] + (n,), x.dtype)
    try:  # the kernel checks the rest: one float dtype, C-contiguous, the sizes
        k(x, w, b, out, x.size // kk, kk, n)
    except (TypeError, ValueError, BufferError):
        return None  # (float16, integers, a strided view ...): the NumPy path
    return out


def _linear_backward_np(ctx, g, x, w):
    """:class:`Linear`'s backward on arrays (no graph to record): straight NumPy calls."""
    g2 = g.reshape(-1, g.shape[-1]) if g.ndim != 2 else g
    gx = gw = gb = None
    if _needs(ctx, 0):
        gx = (g2 @ w).reshape(x.shape)
    if _needs(ctx, 1):
        gw = g2.T @ (x.reshape(-1, x.shape[-1]) if x.ndim != 2 else x)
    if ctx.has_bias and _needs(ctx, 2):
        gb = column_sums(g2)
    return (gx, gw, gb) if ctx.has_bias else (gx, gw)


def linear(input, weight, bias=None):
    """``input @ weight.T + bias``. Matches ``torch.nn.functional.linear``.

    Shape: input (*, in_features), weight (out_features, in_features), bias (out_features),
    output (*, out_features).
    """
    # fast path: the checks below, on the arrays, for the usual well-formed call
    xa = input._data if isinstance(input, TensorBase) else input
    wa = weight._data if isinstance(weight, TensorBase) else weight
    ba = bias._data if isinstance(bias, TensorBase) else bias
    if (type(xa) is np.ndarray and type(wa) is np.ndarray and wa.ndim == 2 and xa.ndim
            and xa.shape[-1] == wa.shape[1] and xa.dtype is wa.dtype):
        if ba is None:
            return call(Linear, input, weight)
        if type(ba) is np.ndarray and ba.shape == wa.shape[:1] and ba.dtype is wa.dtype:
            if xa is not input:  # a tensor: straight to autograd (call's dispatch, inlined)
                return input._apply_primitive(Linear, (input, weight, bias), NO_ATTRS)
            return call(Linear, input, weight, bias)
    si, sw = shape_of(input), shape_of(weight)
    if len(sw) != 2 or not si or si[-1] != sw[1]:
        raise RuntimeError(f"linear: input of shape {si} does not match weight of shape {sw} "
                           f"(expected input (*, {sw[-1] if sw else '?'}))")
    if bias is not None and shape_of(bias) != (sw[0],):
        raise RuntimeError(f"linear: bias of shape {shape_of(bias)} does not match weight of "
                           f"shape {sw} (expected ({sw[0]},))")
    _check_dtypes("linear", input, weight, *([bias] if bias is not None else []))
    if bias is None:
        return call(Linear, input, weight)
    return call(Linear, input, weight, bias)
