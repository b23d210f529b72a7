"""Recurrent kernels: whole-sequence RNN (tanh/relu), LSTM and GRU recurrences, packing indices.

Matches: the recurrences of ``torch.nn.RNN``, ``torch.nn.LSTM`` (optionally with ``proj_size``)
and ``torch.nn.GRU`` (gate orders i, f, g, o and r, z, n;
``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``).

Design. The input projection ``x W_ih^T + b_ih`` of a whole sequence is one matmul done by the
caller (``ops.linear``); :func:`rnn_sequence` then runs the recurrence over time steps as ONE
primitive whose forward is a NumPy loop (in-place gate math, one BLAS call per step) and whose
backward is hand-written backpropagation through time in :mod:`ember.ops` functions: the
elementwise gate derivatives of all steps are computed at once, the time loop carries only the
state gradients (one matmul per step), and the weight gradient is one matmul over all steps.

Sequences use the *packed* layout: ``xp`` is (T, G*H) with the rows of time step t at
``offsets[t] : offsets[t] + batch_sizes[t]``, and the batch sorted by decreasing length, so at
step t only the first ``batch_sizes[t]`` states are updated (finished sequences keep their
state; in reverse direction a sequence starts at its own last element). A padded batch of equal
lengths is the special case ``batch_sizes = (N,) * L``.

Equal-length batches (every ``batch_sizes`` entry equal: all padded input) take a dense fast
path (see "dense fast path" below): a leaner NumPy forward and a NumPy BPTT, and
:func:`rnn_bidirectional` steps both directions of a bidirectional layer in the same time loop
(one batched GEMM and one set of ufunc calls per step for the two).

Under ``create_graph=True`` the backward rebuilds the gate activations from the saved inputs
with ops functions, so the gradient is itself differentiable.
"""

from __future__ import annotations

import numpy as np

from . import native
from .arrays import BLAS_FLOATS, column_sums
from .base import NULL_CTX, Primitive, TensorBase, call, dtype_of, shape_of
from .linalg import matmul, mT
from .movement import cat, narrow
from .reduce import sum as _sum
from .unary import sigmoid, tanh

__all__ = ["rnn_sequence", "rnn_bidirectional", "lstm_small_inference", "pack_layout",
           "packed_to_padded_index", "padded_to_packed_index", "sort_lengths",
           "lengths_of_batch_sizes", "sequence_pad_index"]

_MODES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}
_QUIET = {"over": "ignore", "under": "ignore"}


def _needs(ctx, i: int) -> bool:
    need = getattr(ctx, "needs_input_grad", None)
    return True if need is None else bool(need[i])


def _steps(batch_sizes, reverse: bool):
    """(offset, batch size) of each time step, in processing order."""
    offs, o = [], 0
    for b in batch_sizes:
        offs.append((o, b))
        o += b
    return offs[::-1] if reverse else offs


def _np_sigmoid(x):
    """In-place logistic function of an array view."""
    np.negative(x, out=x)
    np.exp(x, out=x)
    x += 1.0
    np.reciprocal(x, out=x)


# ============================================================================ forward (NumPy)
def _forward_numpy(mode, xp, h0, c0, w, b, w_hr, steps, keep):
    """Run the recurrence; returns (out, h_n, c_n, cache) (cache None unless ``keep``)."""
    T = xp.shape[0]
    B = h0.shape[0]
    Hout = h0.shape[1]
    dt = xp.dtype
    wT = w.T
    h = np.array(h0, dtype=dt, copy=True)
    out = np.empty((T, Hout), dtype=dt)
    if mode == "GRU":
        H = Hout
        xpb = xp.copy()
        if b is not None:
            xpb[:, :2 * H] += b[:2 * H]
            b_n = b[2 * H:]
        else:
            b_n = None
        gates = np.empty((T, 3 * H), dtype=dt)
        hn_all = np.empty((T, H), dtype=dt)
        hprev = np.empty((T, H), dtype=dt) if keep else None
        for o, n in steps:
            sl = slice(o, o + n)
            hb = h[:n]
            if keep:
                hprev[sl] = hb
            g = gates[sl]
            hn = hn_all[sl]
            gh = hb @ wT
            np.add(xpb[sl, :2 * H], gh[:, :2 * H], out=g[:, :2 * H])
            _np_sigmoid(g[:, :2 * H])
            np.copyto(hn, gh[:, 2 * H:])
            if b_n is not None:
                hn += b_n
            nn_ = g[:, 2 * H:]
            np.multiply(g[:, :H], hn, out=nn_)
            nn_ += xpb[sl, 2 * H:]
            np.tanh(nn_, out=nn_)
            hnew = out[sl]
            np.subtract(hb, nn_, out=hnew)  # h' = n + z * (h - n)
            hnew *= g[:, H:2 * H]
            hnew += nn_
            h[:n] = hnew
        cache = (gates, hn_all, hprev) if keep else None
        return out, h, None, cache

    xpb = xp + b if b is not None else xp
    if mode == "LSTM":
        H = c0.shape[1]
        c = np.array(c0, dtype=dt, copy=True)
        acts = np.empty((T, 4 * H), dtype=dt) if keep else None
        cprev = np.empty((T, H), dtype=dt) if keep else None
        tcs = np.empty((T, H), dtype=dt) if keep else None
        ms = np.empty((T, H), dtype=dt) if keep and w_hr is not None else None
        hprev = np.empty((T, Hout), dtype=dt) if keep else None
        scratch = np.empty((B, 4 * H), dtype=dt)
        w_hrT = w_hr.T if w_hr is not None else None
        for o, n in steps:
            sl = slice(o, o + n)
            hb = h[:n]
            cb = c[:n]
            g = acts[sl] if keep else scratch[:n]
            if keep:
                hprev[sl] = hb
                cprev[sl] = cb
            # (np.matmul with out= skips BLAS in NumPy: assign the product instead)
            np.add(hb @ wT, xpb[sl], out=g)
            _np_sigmoid(g[:, :2 * H])
            _np_sigmoid(g[:, 3 * H:])
            np.tanh(g[:, 2 * H:3 * H], out=g[:, 2 * H:3 * H])
            cb *= g[:, H:2 * H]
            cb += g[:, :H] * g[:, 2 * H:3 * H]
            tc = tcs[sl] if keep else np.empty((n, H), dtype=dt)
            np.tanh(cb, out=tc)
            if w_hr is None:
                hnew = out[sl]
                np.multiply(g[:, 3 * H:], tc, out=hnew)
            else:
                m = ms[sl] if keep else np.empty((n, H), dtype=dt)
                np.multiply(g[:, 3 * H:], tc, out=m)
                hnew = out[sl]
                hnew[...] = m @ w_hrT
            h[:n] = hnew
        cache = (acts, cprev, tcs, ms, hprev) if keep else None
        return out, h, c, cache

    # plain RNN
    relu = mode == "RNN_RELU"
    hprev = np.empty((T, Hout), dtype=dt) if keep else None
    for o, n in steps:
        sl = slice(o, o + n)
        hb = h[:n]
        if keep:
            hprev[sl] = hb
        hnew = out[sl]
        np.add(hb @ wT, xpb[sl], out=hnew)
        if relu:
            np.maximum(hnew, 0, out=hnew)
        else:
            np.tanh(hnew, out=hnew)
        h[:n] = hnew
    return out, h, None, ((hprev,) if keep else None)


# ============================================================================ dense fast path
# Equal-length batches (no packing) take a leaner NumPy path. The states live in one
# (T+1, B, H) buffer whose rows are also every step's previous state (no per-step copies; the
# output is a view of it), and the sigmoid gates sit next to each other with their
# pre-activations negated: internal gate order LSTM (i, f, o, g), GRU (r, z, n), the weight
# rows and the input projection permuted and negated once per call (exact), so one exp, one
# add and one reciprocal make all the sigmoids 1 / (1 + exp(-x)) of a step. The pre-activations
# are bitwise those of the general path. The backward computes the elementwise gate derivatives
# of all steps at once, then runs a time loop of one GEMM and a few in-place ufuncs per step
# (gradients kept in the public gate order), and gets the weight gradient with one GEMM.
# Scratch buffers that never leave a call (the permuted input projection, the backward's gate
# derivatives) are recycled between calls: fresh multi-megabyte arrays cost page faults on
# every training step.
_POOL: dict = {}


def _take(shape, dt):
    """A scratch array (uninitialised) of ``shape`` and ``dt``, recycled when possible."""
    free = _POOL.get((shape, dt))
    if free:
        try:
            return free.pop()
        except IndexError:  # another thread took it
            pass
    return np.empty(shape, dtype=dt)


def _give(*arrays) -> None:
    """Return scratch arrays from :func:`_take` for reuse (a few per shape, a few shapes)."""
    for a in arrays:
        free = _POOL.get((a.shape, a.dtype))
        if free is None:
            if len(_POOL) >= 16:
                _POOL.clear()
            free = _POOL[(a.shape, a.dtype)] = []
        if len(free) < 2:
            free.append(a)


class _Saved:
    """The forward's gate activations etc. kept for backward; they go back to the scratch pool
    once nothing refers to them any more (the graph node freed after backward, or dropped)."""

    __slots__ = ("arrays", "pooled")

    def __init__(self, arrays, pooled):
        self.arrays = arrays
        self.pooled = pooled

    def __del__(self):
        try:
            _give(*self.pooled)
        except Exception:  # pragma: no cover - interpreter shutdown
            pass


class _Lease:
    """Lends a pooled scratch array to an array handed out of the primitive (an output or a
    gradient): ``np.asarray(_Lease(buf))`` shares buf's memory and has the lease as its base
    (as have all views of it), so buf goes back to the pool only once none of them is alive."""

    __slots__ = ("buf", "__array_interface__")

    def __init__(self, buf):
        self.buf = buf
        self.__array_interface__ = buf.__array_interface__

    def __del__(self):
        try:
            _give(self.buf)
        except Exception:  # pragma: no cover - interpreter shutdown
            pass


def _lent(shape, dt):
    """A recycled (uninitialised) array for data that leaves the primitive."""
    return np.asarray(_Lease(_take(shape, dt)))


def _dense(batch_sizes) -> bool:
    return len(set(batch_sizes)) == 1


def _internal(xp, w, b, spec, X):
    """Write the input projection (T, B, G*H) into ``X`` and return the weights, both in
    internal gate order: ``spec`` lists the public column blocks (lo, hi, negate, add b)."""
    W = np.empty(w.shape, dtype=w.dtype)
    j = 0
    for lo, hi, neg, with_b in spec:
        k = j + hi - lo
        src, dst = xp[..., lo:hi], X[..., j:k]
        if with_b and b is not None:
            if neg:  # -(x + b) == (-b) - x exactly
                np.subtract(-b[lo:hi], src, out=dst)
            else:
                np.add(src, b[lo:hi], out=dst)
        elif neg:
            np.negative(src, out=dst)
        else:
            np.copyto(dst, src)
        if neg:
            np.negative(w[lo:hi], out=W[j:k])
        else:
            W[j:k] = w[lo:hi]
        j = k
    return W


def _sigmoid_neg(s):
    """In place: s <- 1 / (1 + exp(s)) (the sigmoid of -s)."""
    np.exp(s, out=s)
    s += 1.0
    np.reciprocal(s, out=s)


def _stack(arrays, dt):
    """(D, ...) stack of per-direction arrays (a view when D == 1)."""
    if len(arrays) == 1:
        return arrays[0][None]
    return np.stack(arrays).astype(dt, copy=False)


def _timeline(a, T, reverse):
    """The (T, ...) per-step view of a packed-layout array in processing order."""
    a = a.reshape((T, -1) + a.shape[1:])
    return a[::-1] if reverse else a


def _bmm(a, b):
    """(D, n, k) @ (D, k, m) for big matrices: one 2-D GEMM per direction."""
    return np.stack([x @ y for x, y in zip(a, b)])


def _kernels(D: int, k: int, m: int):
    """(matmul for the per-step products, view maker): with one direction the direction axis
    is dropped from every per-step array (plain 2-D GEMMs, no batching overhead)."""
    if D == 1:
        return np.matmul, lambda a, t=True: None if a is None else (a[:, 0] if t else a[0])
    return (np.matmul if k * m <= 4096 else _bmm), lambda a, t=True: a


def _dense_forward(mode, xps, h0s, c0s, ws, bs, w_hrs, T, reverses, keep):
    """Forward of D directions over an equal-length batch, stepped together (each direction
    in its own time order). Returns (outs, h_ns, c_ns, cache), one entry per direction."""
    cell = native.kernel("lstm_fwd") if mode == "LSTM" else None
    if cell is not None:
        return _lstm_forward_native(cell, xps, h0s, c0s, ws, bs, w_hrs, T, reverses, keep)
    D = len(xps)
    B, Hout = h0s[0].shape
    dt = xps[0].dtype
    GH = xps[0].shape[1]
    H = GH // {"LSTM": 4, "GRU": 3}.get(mode, 1)
    H2, H3 = 2 * H, 3 * H
    spec = {"LSTM": [(0, H2, True, True), (H3, 4 * H, True, True), (H2, H3, False, True)],
            "GRU": [(0, H2, True, True), (H2, H3, False, False)]}.get(
        mode, [(0, H, False, True)])
    X = Xbuf = _take((T, D, B, GH), dt)
    WT = np.empty((D, Hout, GH), dtype=dt)
    for d in range(D):
        WT[d] = _internal(_timeline(xps[d], T, reverses[d]), ws[d], bs[d], spec, X[:, d]).T
    hs = _lent((T + 1, D, B, Hout), dt)  # hs[s]: the state before step s
    hs[0] = _stack(h0s, dt)
    cs = acts = tcs = ms = None
    if mode == "LSTM":
        w_hrT = _stack([w.T for w in w_hrs], dt) if w_hrs[0] is not None else None
        if keep:
            acts = _take((T, D, B, 4 * H), dt)
            cs = _take((T + 1, D, B, H), dt)
            tcs = _take((T, D, B, H), dt)
            ms = _take((T, D, B, H), dt) if w_hrT is not None else None
            cs[0] = _stack(c0s, dt)
        else:
            gbuf = np.empty((D, B, 4 * H), dtype=dt)
            c = np.array(_stack(c0s, dt), copy=True)
            tcb = np.empty((D, B, H), dtype=dt)
            mb = np.empty((D, B, H), dtype=dt)
        tmp = np.empty((D, B, H), dtype=dt)
        mm, v = _kernels(D, Hout, 4 * H)
        cache = (acts, cs, tcs, ms, hs)
        hs, X, acts, cs, tcs, ms = v(hs), v(X), v(acts), v(cs), v(tcs), v(ms)
        WT, w_hrT, tmp = v(WT, False), v(w_hrT, False), v(tmp, False)
        if not keep:
            gbuf, c, tcb, mb = v(gbuf, False), v(c, False), v(tcb, False), v(mb, False)
        if keep:
            for s in range(T):
                g = acts[s]
                # (np.matmul with out= may skip BLAS: add the product instead)
                np.add(mm(hs[s], WT), X[s], out=g)
                _sigmoid_neg(g[..., :H3])
                gg = g[..., H3:]
                np.tanh(gg, out=gg)
                cn = cs[s + 1]
                np.multiply(g[..., H:H2], cs[s], out=cn)
                np.multiply(g[..., :H], gg, out=tmp)
                cn += tmp
                tc = tcs[s]
                np.tanh(cn, out=tc)
                if w_hrT is None:
                    np.multiply(g[..., H2:H3], tc, out=hs[s + 1])
                else:
                    m = ms[s]
                    np.multiply(g[..., H2:H3], tc, out=m)
                    hs[s + 1] = mm(m, w_hrT)
        else:  # inference: the same on fixed buffers, their views made once
            g, gs, gg = gbuf, gbuf[..., :H3], gbuf[..., H3:]
            gi, gf, go = gbuf[..., :H], gbuf[..., H:H2], gbuf[..., H2:H3]
            m = tcb if w_hrT is None else mb
            for s in range(T):
                np.add(mm(hs[s], WT), X[s], out=g)
                np.exp(gs, out=gs)
                gs += 1.0
                np.reciprocal(gs, out=gs)
                np.tanh(gg, out=gg)
                c *= gf
                np.multiply(gi, gg, out=tmp)
                c += tmp
                np.tanh(c, out=tcb)
                if w_hrT is None:
                    np.multiply(go, tcb, out=hs[s + 1])
                else:
                    np.multiply(go, tcb, out=m)
                    hs[s + 1] = mm(m, w_hrT)
        acts, cs, tcs, ms, hs = cache
        c_last = cs[T] if keep else c.reshape(D, B, H)
        if keep:
            cache = _Saved((acts, cs, tcs, ms, hs), [a for a in (acts, cs, tcs, ms)
                                                     if a is not None])
    elif mode == "GRU":
        b_n = _stack([b[H2:] if b is not None else np.zeros(H, dtype=dt) for b in bs], dt)
        b_n = b_n[:, None, :]
        if keep:
            acts = _take((T, D, B, 3 * H), dt)
            ms = _take((T, D, B, H), dt)  # W_hn h + b_hn
        else:
            gbuf = np.empty((D, B, 3 * H), dtype=dt)
            hnb = np.empty((D, B, H), dtype=dt)
        mm, v = _kernels(D, Hout, 3 * H)
        cache = (acts, ms, hs)
        hs, X, acts, ms, WT, b_n = v(hs), v(X), v(acts), v(ms), v(WT, False), v(b_n, False)
        if not keep:
            gbuf, hnb = v(gbuf, False), v(hnb, False)
        for s in range(T):
            g = acts[s] if keep else gbuf
            hn = ms[s] if keep else hnb
            x = X[s]
            hp = hs[s]
            gh = mm(hp, WT)
            rz = g[..., :H2]
            np.add(gh[..., :H2], x[..., :H2], out=rz)
            _sigmoid_neg(rz)
            np.add(gh[..., H2:], b_n, out=hn)
            n_ = g[..., H2:]
            np.multiply(g[..., :H], hn, out=n_)
            n_ += x[..., H2:]
            np.tanh(n_, out=n_)
            hq = hs[s + 1]  # h' = n + z * (h - n)
            np.subtract(hp, n_, out=hq)
            hq *= g[..., H:H2]
            hq += n_
        acts, ms, hs = cache
        if keep:
            cache = _Saved((acts, ms, hs), [acts, ms])
    else:
        relu = mode == "RNN_RELU"
        mm, v = _kernels(D, Hout, Hout)
        hv, Xv, WTv = v(hs), v(X), v(WT, False)
        for s in range(T):
            hq = hv[s + 1]
            np.add(mm(hv[s], WTv), Xv[s], out=hq)
            if relu:
                np.maximum(hq, 0, out=hq)
            else:
                np.tanh(hq, out=hq)
        if keep:
            cache = _Saved((hs,), [])
    _give(Xbuf)
    return _outputs(hs, c_last if mode == "LSTM" else None, T, reverses, cache if keep else None)


def _outputs(hs, c_last, T, reverses, cache):
    """(outs, h_ns, c_ns, cache) per direction from the states hs (T + 1, D, B, Hout)."""
    D, B, Hout = hs.shape[1:]
    outs, h_ns, c_ns = [], [], []
    for d in range(D):
        o = _timeline(hs[1:, d], T, reverses[d])
        if D > 1 or reverses[d]:
            o = np.ascontiguousarray(o)
        outs.append(o.reshape(T * B, Hout))
        h_ns.append(hs[T, d].copy())
        c_ns.append(c_last[d].copy() if c_last is not None else None)
    return outs, h_ns, c_ns, cache


_SEQ_MAX_BATCH = 4  # above this a BLAS product per step beats the kernel's dot products


def _lstm_seq(xp, w_hh, b, h0, c0, T, reverse, dt, x=None, w_ih=None):
    """One direction by the compiled ``lstm_seq``: (hs (T + 1, B, H) in processing order, h0
    first; the last c). The input is its projection ``xp``, or raw ``x`` with ``w_ih``."""
    B, H = np.shape(h0)
    hs = np.empty((T + 1, B, H), dt)
    hs[0] = h0
    c = np.array(c0, dtype=dt, copy=True)
    raw = () if x is None else (np.ascontiguousarray(x), np.ascontiguousarray(w_ih),
                                x.shape[-1])
    native.kernel("lstm_seq")(
        None if xp is None else np.ascontiguousarray(xp), np.ascontiguousarray(w_hh, dtype=dt),
        None if b is None else np.ascontiguousarray(b, dtype=dt), hs, c, T, B, H, reverse,
        *raw)
    return hs, c


def _lstm_forward_native(cell, xps, h0s, c0s, ws, bs, w_hrs, T, reverses, keep):
    """:func:`_dense_forward` of an LSTM on the compiled cell (``lstm_fwd``), which reads the
    input projection and weights in PyTorch's gate layout as they are (the NumPy path first
    copies them into its internal layout) and writes the same saved arrays."""
    D = len(xps)
    B, Hout = h0s[0].shape
    dt = xps[0].dtype
    H = xps[0].shape[1] // 4
    hs = _lent((T + 1, D, B, Hout), dt)
    seq = native.kernel("lstm_seq")
    if seq is not None and not keep and w_hrs[0] is None and B <= _SEQ_MAX_BATCH:
        # small-batch inference: the whole sequence in one compiled call per direction
        c_last = np.empty((D, B, H), dt)
        for d in range(D):
            hs[:, d], c_last[d] = _lstm_seq(xps[d], ws[d], bs[d], h0s[d], c0s[d], T,
                                            reverses[d], dt)
        return _outputs(hs, c_last, T, reverses, None)
    hs[0] = _stack(h0s, dt)
    w_hrT = [w.T for w in w_hrs] if w_hrs[0] is not None else None
    WT = [w.T for w in ws]  # (Hout, 4H) views: BLAS reads them transposed
    Xs = [xp.reshape(T, B, 4 * H) for xp in xps]
    bs = [None if b is None else np.ascontiguousarray(b, dtype=dt) for b in bs]
    if keep:
        acts, tcs = _take((T, D, B, 4 * H), dt), _take((T, D, B, H), dt)
        cs = _take((T + 1, D, B, H), dt)
        ms = _take((T, D, B, H), dt) if w_hrT is not None else None
        cs[0] = _stack(c0s, dt)
    else:  # inference: fixed buffers, c updated in place
        a1, tcb = np.empty((D, B, 4 * H), dt), np.empty((D, B, H), dt)
        c = np.array(_stack(c0s, dt), copy=True)
        mb = np.empty((D, B, H), dt)
    for s in range(T):
        for d in range(D):
            if keep:
                a, c_in, c_out, tc = acts[s, d], cs[s, d], cs[s + 1, d], tcs[s, d]
                m = ms[s, d] if w_hrT is not None else None
            else:
                a, c_in, c_out, tc, m = a1[d], c[d], c[d], tcb[d], mb[d]
            out = hs[s + 1, d] if w_hrT is None else m
            cell(hs[s, d] @ WT[d], Xs[d][T - 1 - s if reverses[d] else s], bs[d], c_in, a,
                 c_out, tc, out, B, H)
            if w_hrT is not None:
                hs[s + 1, d] = m @ w_hrT[d]
    if not keep:
        return _outputs(hs, c, T, reverses, None)
    cache = _Saved((acts, cs, tcs, ms, hs), [x for x in (acts, cs, tcs, ms) if x is not None])
    return _outputs(hs, cs[T], T, reverses, cache)


def _bptt_dm(s, dh, go, DH, w_hr, mm):
    """Step ``s`` of an LSTM's backward through time: the output's gradient added to ``dh`` in
    place; returns the gradient at the cell output (through the projection, recorded in
    ``DH``, when there is one)."""
    if go is not None:
        dh += go[s]
    if w_hr is None:
        return dh
    DH[s] = dh
    return mm(dh, w_hr)


def _lstm_bptt_numpy(a4, cs, tcs, dpre, dh, dc, go, W, w_hr, DH, T, scratch):
    """The LSTM's backward through time in NumPy (the reference for the ``lstm_bwd`` kernel):
    fills ``dpre`` (T, D, B, 4, H), updates ``dc`` in place and returns d h0 (as a view)."""
    D, B, H = tcs.shape[1:]
    dt = tcs.dtype
    Hout = dh.shape[-1]
    i, f, o, g = a4[..., 0, :], a4[..., 1, :], a4[..., 2, :], a4[..., 3, :]
    A = _take((T, D, B, 4, H), dt)  # public order i, f, g, o
    S = _take((T, D, B, 3, H), dt)  # sigmoid' of i, f, o
    np.subtract(1.0, a4[..., :3, :], out=S)
    S *= a4[..., :3, :]
    np.multiply(S[..., 0, :], g, out=A[..., 0, :])
    np.multiply(S[..., 1, :], cs[:T], out=A[..., 1, :])
    np.multiply(S[..., 2, :], tcs, out=A[..., 3, :])
    a = A[..., 2, :]
    np.multiply(g, g, out=a)
    np.subtract(1.0, a, out=a)
    a *= i
    K = S[..., 0, :]  # reuse: o (1 - tanh(c)^2)
    np.multiply(tcs, tcs, out=K)
    np.subtract(1.0, K, out=K)
    K *= o
    scratch += [A, S]
    tmp = np.empty((D, B, H), dtype=dt)
    dG = dpre.reshape(T, D, B, 4 * H)
    mm, v = _kernels(D, 4 * H, Hout)
    goV, DHv, Kv, Av, dpv, dGv, fv = v(go), v(DH), v(K), v(A), v(dpre), v(dG), v(f)
    Wv, w_hrv, dhv, dcv, tmpv = v(W, False), v(w_hr, False), v(dh, False), v(dc, False), \
        v(tmp, False)
    dcb = dcv[..., None, :]
    for s in range(T - 1, -1, -1):
        dm = _bptt_dm(s, dhv, goV, DHv, w_hrv, mm)
        np.multiply(dm, Kv[s], out=tmpv)
        dcv += tmpv
        p, a = dpv[s], Av[s]
        np.multiply(dcb, a[..., :3, :], out=p[..., :3, :])
        np.multiply(dm, a[..., 3, :], out=p[..., 3, :])
        dhv = mm(dGv[s], Wv)
        dcv *= fv[s]
    return dhv


def _dense_backward(mode, cache, g_outs, g_hs, g_cs, ws, w_hrs, T, reverses, need_w):
    """BPTT of :func:`_dense_forward`: per direction (d xp, d h0, d c0, d W_hh, d b_hh,
    d W_hr) as arrays."""
    cache = cache.arrays
    hs = cache[-1]
    D, B, Hout = hs.shape[1:]
    dt = hs.dtype
    go = None
    if any(g is not None and g.any() for g in g_outs):
        go = np.empty((T, D, B, Hout), dtype=dt)
        for d in range(D):
            if g_outs[d] is None:  # (this direction's outputs unused)
                go[:, d] = 0
            else:
                go[:, d] = _timeline(g_outs[d], T, reverses[d])
    W = _stack(ws, dt)
    dh = np.array(_stack(g_hs, dt), dtype=dt, copy=True)
    dc = None
    dW_hrs = [None] * D
    scratch = []
    if mode == "LSTM":
        acts, cs, tcs, ms, _ = cache
        H = tcs.shape[3]
        a4 = acts.reshape(T, D, B, 4, H)  # internal order i, f, o, g
        dpre = _lent((T, D, B, 4, H), dt)
        dc = np.array(_stack(g_cs, dt), dtype=dt, copy=True)
        w_hr = _stack(w_hrs, dt) if w_hrs[0] is not None else None
        DH = np.empty((T, D, B, Hout), dtype=dt) if w_hr is not None else None
        dG = dpre.reshape(T, D, B, 4 * H)
        mm, v = _kernels(D, 4 * H, Hout)
        cell = native.kernel("lstm_bwd")  # the fused C step (same math as the NumPy loop)
        if cell is not None:
            goV, DHv, dpv, dGv, Wv, w_hrv, dcv = v(go), v(DH), v(dpre), v(dG), v(W, False), \
                v(w_hr, False), v(dc, False)
            av, cv, tv, dhv = v(acts), v(cs), v(tcs), v(dh, False)
            for s in range(T - 1, -1, -1):
                dm = _bptt_dm(s, dhv, goV, DHv, w_hrv, mm)
                cell(dm, dcv, av[s], cv[s], tv[s], dpv[s], D * B, H)
                dhv = mm(dGv[s], Wv)
        else:
            dhv = _lstm_bptt_numpy(a4, cs, tcs, dpre, dh, dc, go, W, w_hr, DH, T, scratch)
        dh = dhv.reshape(D, B, Hout)
        dX = dG
        if w_hr is not None:
            for d in range(D):
                dW_hrs[d] = (DH[:, d].reshape(T * B, Hout).T @ ms[:, d].reshape(T * B, H))
    elif mode == "GRU":
        gates, hns, _ = cache
        H = Hout
        g4 = gates.reshape(T, D, B, 3, H)
        r, z, n_ = g4[..., 0, :], g4[..., 1, :], g4[..., 2, :]
        P = _take((T, D, B, 3, H), dt)  # d pre-activation / d h' of r, z, n (input side)
        Q = _take((T, D, B, 3, H), dt)  # the same on the hidden side (n also through r)
        tmp3 = _take((T, D, B, H), dt)
        pr, pz, pn = P[..., 0, :], P[..., 1, :], P[..., 2, :]
        np.multiply(n_, n_, out=pn)
        np.subtract(1.0, pn, out=pn)
        np.subtract(1.0, z, out=tmp3)
        pn *= tmp3
        np.multiply(tmp3, z, out=pz)  # z (1 - z)
        np.subtract(hs[:T], n_, out=tmp3)
        pz *= tmp3
        np.subtract(1.0, r, out=pr)
        pr *= r
        pr *= hns
        pr *= pn
        np.copyto(Q, P)
        Q[..., 2, :] *= r
        dGH = _take((T, D, B, 3 * H), dt)
        DH = _take((T, D, B, H), dt)
        dGH4 = dGH.reshape(T, D, B, 3, H)
        scratch += [P, Q, tmp3, dGH, DH]
        mm, v = _kernels(D, 3 * H, Hout)
        goV, DHv, Qv, dGH4v, dGHv, zv = v(go), v(DH), v(Q), v(dGH4), v(dGH), v(z)
        Wv, dhv = v(W, False), v(dh, False)
        for s in range(T - 1, -1, -1):
            if go is not None:
                dhv += goV[s]
            DHv[s] = dhv
            np.multiply(dhv[..., None, :], Qv[s], out=dGH4v[s])
            tmp = mm(dGHv[s], Wv)
            dhv *= zv[s]
            dhv += tmp
        dX = np.multiply(DH[..., None, :], P).reshape(T, D, B, 3 * H)
        dG = dGH
    else:
        outs = hs[1:]
        if mode == "RNN_RELU":
            Dv = (outs > 0).astype(dt)
        else:
            Dv = np.multiply(outs, outs)
            np.subtract(1.0, Dv, out=Dv)
        dpre = np.empty((T, D, B, Hout), dtype=dt)
        mm, v = _kernels(D, Hout, Hout)
        goV, Dvv, dpv, Wv, dhv = v(go), v(Dv), v(dpre), v(W, False), v(dh, False)
        for s in range(T - 1, -1, -1):
            if go is not None:
                dhv += goV[s]
            p = dpv[s]
            np.multiply(dhv, Dvv[s], out=p)
            dhv = mm(p, Wv)
        dh = dhv.reshape(D, B, Hout)
        dX = dG = dpre
    GH = dG.shape[-1]
    res = []
    for d in range(D):
        dGd = dG[:, d].reshape(T * B, GH)
        dxp = _timeline(dX[:, d], T, reverses[d])
        if D > 1 or reverses[d]:
            dxp = np.ascontiguousarray(dxp)
        dW = dGd.T @ hs[:T, d].reshape(T * B, Hout) if need_w else None
        res.append((dxp.reshape(T * B, GH), dh[d], dc[d] if dc is not None else None, dW,
                    column_sums(dGd), dW_hrs[d]))
    _give(*scratch)
    return res


# ============================================================================ forward (ops)
def _rows(x, o, n):
    return narrow(x, 0, o, n)


def _merge(new, old, n, B):
    """``new`` for the first n rows of a (B, H) state, the rest of ``old`` unchanged."""
    return new if n == B else cat([new, narrow(old, 0, n, B - n)], 0)


def _in_order(pieces: dict, batch_sizes):
    return cat([pieces[t] for t in range(len(batch_sizes))], 0)


def _forward_graph(mode, xp, h0, c0, w, b, w_hr, batch_sizes, reverse):
    """The same recurrence with ops functions (differentiable); returns the backward cache."""
    B = shape_of(h0)[0]
    order = range(len(batch_sizes) - 1, -1, -1) if reverse else range(len(batch_sizes))
    offs = [o for o, _ in _steps(batch_sizes, False)]
    h, c = h0, c0
    keys = {"GRU": ("gates", "hn", "hprev"), "LSTM": ("acts", "cprev", "tc", "m", "hprev"),
            "RNN_TANH": ("hprev", "out"), "RNN_RELU": ("hprev", "out")}[mode]
    pieces = {k: {} for k in keys}
    Hout = shape_of(h0)[1]
    for t in order:
        o, n = offs[t], batch_sizes[t]
        hb = _rows(h, 0, n)
        x = _rows(xp, o, n)
        pieces["hprev"][t] = hb
        gh = matmul(hb, mT(w))
        if mode == "GRU":
            H = Hout
            if b is not None:
                gh = gh + b
            rz = sigmoid(narrow(x, 1, 0, 2 * H) + narrow(gh, 1, 0, 2 * H))
            r, z = narrow(rz, 1, 0, H), narrow(rz, 1, H, H)
            hn = narrow(gh, 1, 2 * H, H)
            nn_ = tanh(narrow(x, 1, 2 * H, H) + r * hn)
            hnew = nn_ + z * (hb - nn_)
            pieces["gates"][t] = cat([rz, nn_], 1)
            pieces["hn"][t] = hn
        elif mode == "LSTM":
            H = shape_of(c0)[1]
            pre = x + gh if b is None else x + gh + b
            ifs = sigmoid(narrow(pre, 1, 0, 2 * H))
            gg = tanh(narrow(pre, 1, 2 * H, H))
            og = sigmoid(narrow(pre, 1, 3 * H, H))
            cb = _rows(c, 0, n)
            cnew = narrow(ifs, 1, H, H) * cb + narrow(ifs, 1, 0, H) * gg
            tc = tanh(cnew)
            m = og * tc
            hnew = m if w_hr is None else matmul(m, mT(w_hr))
            pieces["acts"][t] = cat([ifs, gg, og], 1)
            pieces["cprev"][t] = cb
            pieces["tc"][t] = tc
            pieces["m"][t] = m
            c = _merge(cnew, c, n, B)
        else:
            pre = x + gh if b is None else x + gh + b
            from .activation import relu

            hnew = relu(pre) if mode == "RNN_RELU" else tanh(pre)
            pieces["out"][t] = hnew
        h = _merge(hnew, h, n, B)
    cache = tuple(_in_order(pieces[k], batch_sizes) for k in keys)
    if mode == "LSTM":
        acts, cprev, tc, m, hprev = cache
        return (acts, cprev, tc, m if w_hr is not None else None, hprev)
    if mode in ("RNN_TANH", "RNN_RELU"):
        return cache
    return cache


# ============================================================================ backward (ops)
def _split_rows(x, batch_sizes):
    out, o = [], 0
    for n in batch_sizes:
        out.append(narrow(x, 0, o, n))
        o += n
    return out


def _bptt(mode, cache, g_out, g_h, g_c, w, w_hr, batch_sizes, reverse, out_saved=None):
    """Backpropagation through time. Returns (d xp, d h0, d c0, d W_hh, d b_hh, d W_hr)."""
    order = range(len(batch_sizes)) if reverse else range(len(batch_sizes) - 1, -1, -1)
    B = shape_of(g_h)[0]
    gouts = _split_rows(g_out, batch_sizes)
    dh, dc = g_h, g_c
    dW_hr = None
    if mode == "GRU":
        gates, hn, hprev = cache
        H = shape_of(hn)[1]
        r, z, nn_ = narrow(gates, 1, 0, H), narrow(gates, 1, H, H), narrow(gates, 1, 2 * H, H)
        p_n = (1.0 - z) * (1.0 - nn_ * nn_)
        p_z = (hprev - nn_) * (z * (1.0 - z))
        p_r = p_n * hn * (r * (1.0 - r))
        P = cat([p_r, p_z, p_n], 1)
        Q = cat([p_r, p_z, p_n * r], 1)
        Qs, Zs = _split_rows(Q, batch_sizes), _split_rows(z, batch_sizes)
        dhs, dghs = {}, {}
        for t in order:
            n = batch_sizes[t]
            dh_b = (narrow(dh, 0, 0, n) if n != B else dh) + gouts[t]
            dgh = cat([dh_b, dh_b, dh_b], 1) * Qs[t]
            dh = _merge(matmul(dgh, w) + dh_b * Zs[t], dh, n, B)
            dhs[t], dghs[t] = dh_b, dgh
        DH = _in_order(dhs, batch_sizes)
        dxp = cat([DH, DH, DH], 1) * P
        dGH = _in_order(dghs, batch_sizes)
    elif mode == "LSTM":
        acts, cprev, tc, m, hprev = cache
        H = shape_of(tc)[1]
        i, f = narrow(acts, 1, 0, H), narrow(acts, 1, H, H)
        gg, o = narrow(acts, 1, 2 * H, H), narrow(acts, 1, 3 * H, H)
        A = cat([gg * (i * (1.0 - i)), cprev * (f * (1.0 - f)), i * (1.0 - gg * gg),
                 tc * (o * (1.0 - o))], 1)
        K = o * (1.0 - tc * tc)
        As, Ks, Fs = (_split_rows(A, batch_sizes), _split_rows(K, batch_sizes),
                      _split_rows(f, batch_sizes))
        dpres, dhs = {}, {}
        for t in order:
            n = batch_sizes[t]
            full = n == B
            dh_b = (dh if full else narrow(dh, 0, 0, n)) + gouts[t]
            dm = dh_b if w_hr is None else matmul(dh_b, w_hr)
            dc_b = (dc if full else narrow(dc, 0, 0, n)) + dm * Ks[t]
            dpre = cat([dc_b, dc_b, dc_b, dm], 1) * As[t]
            dh = _merge(matmul(dpre, w), dh, n, B)
            dc = _merge(dc_b * Fs[t], dc, n, B)
            dpres[t] = dpre
            if w_hr is not None:
                dhs[t] = dh_b
        dxp = dGH = _in_order(dpres, batch_sizes)
        if w_hr is not None:
            dW_hr = matmul(mT(_in_order(dhs, batch_sizes)), m)
    else:
        hprev, out = cache
        if mode == "RNN_RELU":
            from .binary import gt, where

            D = where(gt(out, 0), 1.0, 0.0)
            if dtype_of(D) != dtype_of(out):
                from .binary import cast

                D = cast(D, dtype_of(out))
        else:
            D = 1.0 - out * out
        Ds = _split_rows(D, batch_sizes)
        dpres = {}
        for t in order:
            n = batch_sizes[t]
            dpre = ((dh if n == B else narrow(dh, 0, 0, n)) + gouts[t]) * Ds[t]
            dh = _merge(matmul(dpre, w), dh, n, B)
            dpres[t] = dpre
        dxp = dGH = _in_order(dpres, batch_sizes)
    dW = matmul(mT(dGH), hprev)
    db = _sum(dGH, 0)
    return dxp, dh, dc, dW, db, dW_hr


# ============================================================================ the primitive
def _run_forward(ctx, mode, dirs, batch_sizes):
    """Forward of the directions ``dirs`` = [(xp, h0, c0, w, b, w_hr, reverse)], stepped
    together when the batch is dense; the outputs in order (out, h_n[, c_n]) per direction."""
    keep = ctx is not NULL_CTX
    dense = _dense(batch_sizes)
    T = len(batch_sizes)
    with np.errstate(**_QUIET):
        if dense:
            cols = list(zip(*dirs))
            outs, hs, cs, cache = _dense_forward(mode, *cols[:6], T, cols[6], keep)
            caches = [cache]
        else:
            outs, hs, cs, caches = [], [], [], []
            for xp, h0, c0, w, b, w_hr, reverse in dirs:
                o, h, c, cache = _forward_numpy(mode, xp, h0, c0, w, b, w_hr,
                                                _steps(batch_sizes, reverse), keep)
                outs.append(o)
                hs.append(h)
                cs.append(c)
                caches.append(cache)
    if keep:
        saved = [v for dr in dirs for v in dr[:6]]
        ctx.save_for_backward(*saved, *outs)
        ctx.cache = caches
        ctx.dense = dense
        ctx.args = (mode, batch_sizes, tuple(dr[6] for dr in dirs))
    res = []
    for d in range(len(dirs)):
        res += [outs[d], hs[d]] + ([cs[d]] if mode == "LSTM" else [])
    if keep:
        ctx.out_meta = [(np.shape(o), o.dtype) for o in res]
    return tuple(res)


def _run_backward(ctx, grads):
    """Gradients of the inputs of :func:`_run_forward` (six per direction).

    An output that received no gradient arrives as None (the primitives do not have the engine
    materialize zeros): the dense path skips an unused output sequence (a classifier reading
    only h_n), every other None becomes zeros here."""
    mode, batch_sizes, reverses = ctx.args
    D = len(reverses)
    saved = ctx.saved
    k = 3 if mode == "LSTM" else 2
    dense_np = ctx.dense and not any(isinstance(v, TensorBase) for v in grads)
    grads = tuple(g if g is not None or (dense_np and i % k == 0) else
                  np.zeros(*ctx.out_meta[i]) for i, g in enumerate(grads))
    g = [grads[d * k:(d + 1) * k] + ((None,) if k == 2 else ()) for d in range(D)]
    graph = any(isinstance(v, TensorBase) for v in saved[:6 * D] + tuple(grads))
    if not graph and ctx.dense:
        with np.errstate(**_QUIET):
            res = _dense_backward(mode, ctx.cache[0], [x[0] for x in g], [x[1] for x in g],
                                  [x[2] for x in g], saved[3:6 * D:6], saved[5:6 * D:6],
                                  len(batch_sizes), reverses,
                                  any(_needs(ctx, 6 * d + 3) for d in range(D)))
    else:
        res = []
        for d in range(D):
            xp, h0, c0, w, b, w_hr = saved[6 * d:6 * d + 6]
            if graph:
                cache = _forward_graph(mode, xp, h0, c0, w, b, w_hr, batch_sizes, reverses[d])
            else:
                cache = ctx.cache[d]
                if mode in ("RNN_TANH", "RNN_RELU"):
                    cache = cache + (saved[6 * D + d],)
            with np.errstate(**_QUIET):
                res.append(_bptt(mode, cache, *g[d], w, w_hr, batch_sizes, reverses[d]))
    out = []
    for d in range(D):
        dxp, dh0, dc0, dW, db, dW_hr = res[d]
        c0, b = saved[6 * d + 2], saved[6 * d + 4]
        out += [dxp, dh0, dc0 if c0 is not None else None, dW,
                db if b is not None and _needs(ctx, 6 * d + 4) else None, dW_hr]
    return tuple(out)


class RnnSequence(Primitive):
    """A whole recurrence over a packed sequence: inputs (xp, h0, c0, w_hh, b_hh, w_hr), outputs
    (out, h_n[, c_n]); ``c0``, ``b_hh`` and ``w_hr`` may be None."""

    materialize_grads = False  # (see _run_backward)

    @staticmethod
    def forward(ctx, xp, h0, c0, w, b, w_hr, mode, batch_sizes, reverse):
        return _run_forward(ctx, mode, [(xp, h0, c0, w, b, w_hr, reverse)], batch_sizes)

    @staticmethod
    def backward(ctx, *grads):
        return _run_backward(ctx, grads)


class BiRnnSequence(Primitive):
    """Both directions of a bidirectional layer, stepped together: inputs (xp, h0, c0, w_hh,
    b_hh, w_hr) of the forward then of the reverse direction; outputs (out, h_n[, c_n]) of
    each direction."""

    materialize_grads = False  # (see _run_backward)

    @staticmethod
    def forward(ctx, xf, hf, cf, wf, bf, rf, xr, hr, cr, wr, br, rr, mode, batch_sizes):
        return _run_forward(ctx, mode, [(xf, hf, cf, wf, bf, rf, False),
                                        (xr, hr, cr, wr, br, rr, True)], batch_sizes)

    @staticmethod
    def backward(ctx, *grads):
        return _run_backward(ctx, grads)


def _check(mode, xp, h0, w_hh, b_hh, c0, w_hr, batch_sizes):
    """Validate the arguments of one direction; returns batch_sizes as a tuple of ints."""
    if mode not in _MODES:
        raise ValueError(f"rnn_sequence: unknown mode {mode!r} (expected one of "
                         f"{sorted(_MODES)})")
    sx, sh, sw = shape_of(xp), shape_of(h0), shape_of(w_hh)
    if batch_sizes is None:
        batch_sizes = (sx[0],) if sx else ()
    batch_sizes = tuple(int(n) for n in batch_sizes)
    G = _MODES[mode]
    if len(sx) != 2 or len(sh) != 2 or len(sw) != 2 or sw[1] != sh[1] or sx[1] != sw[0] \
            or sw[0] % G:
        raise RuntimeError(f"rnn_sequence ({mode}): inconsistent shapes: input projection "
                           f"{sx}, h0 {sh}, w_hh {sw}")
    if sum(batch_sizes) != sx[0] or (batch_sizes and batch_sizes[0] != sh[0]):
        raise RuntimeError(f"rnn_sequence ({mode}): batch_sizes {batch_sizes} do not match the "
                           f"input projection {sx} and h0 {sh}")
    if mode == "LSTM":
        H = sw[0] // 4
        if c0 is None or shape_of(c0) != (sh[0], H):
            raise RuntimeError(f"rnn_sequence (LSTM): expected c0 of shape {(sh[0], H)}, got "
                               f"{None if c0 is None else shape_of(c0)}")
        if w_hr is not None and shape_of(w_hr) != (sh[1], H):
            raise RuntimeError(f"rnn_sequence (LSTM): expected w_hr of shape {(sh[1], H)}, got "
                               f"{shape_of(w_hr)}")
    dts = {dtype_of(v) for v in (xp, h0, c0, w_hh, b_hh, w_hr) if v is not None}
    if len(dts) != 1:
        raise RuntimeError(f"rnn_sequence ({mode}): expected all tensors to have the same dtype, "
                           f"got {sorted(str(d) for d in dts)}")
    return batch_sizes


def rnn_sequence(mode: str, xp, h0, w_hh, b_hh=None, c0=None, w_hr=None, batch_sizes=None,
                 reverse: bool = False):
    """Run one direction of one recurrent layer over a (packed) sequence.

    Args:
        mode: ``'RNN_TANH'``, ``'RNN_RELU'``, ``'LSTM'`` or ``'GRU'``.
        xp: the input projection ``x W_ih^T + b_ih`` of every step, (T, G*H) in packed layout.
        h0: initial state (B, H_out); c0: LSTM initial cell (B, H).
        w_hh: (G*H, H_out); b_hh: (G*H,) or None; w_hr: LSTM projection (H_out, H) or None.
        batch_sizes: rows per time step (non-increasing, summing to T, first = B); None means
            a single step of B rows.
        reverse: run from the last step to the first.

    Returns:
        ``(out, h_n)`` or, for LSTM, ``(out, h_n, c_n)``; out is (T, H_out).
    """
    batch_sizes = _check(mode, xp, h0, w_hh, b_hh, c0, w_hr, batch_sizes)
    return call(RnnSequence, xp, h0, c0, w_hh, b_hh, w_hr, mode=mode, batch_sizes=batch_sizes,
                reverse=bool(reverse))


def rnn_bidirectional(mode: str, forward: tuple, backward: tuple, batch_sizes=None):
    """Both directions of a bidirectional recurrent layer, stepped together over time (half
    the per-step work of two :func:`rnn_sequence` calls when the batch has equal lengths).

    Args:
        mode: as :func:`rnn_sequence`.
        forward, backward: ``(xp, h0, w_hh, b_hh, c0, w_hr)`` of the forward and of the
            reverse direction, as the arguments of :func:`rnn_sequence`.
        batch_sizes: as :func:`rnn_sequence` (shared by both directions).

    Returns:
        ``(out, h_n)`` or, for LSTM, ``(out, h_n, c_n)`` of the forward direction followed by
        the same of the reverse direction; exactly what two :func:`rnn_sequence` calls return.
    """
    xf, hf, wf, bf, cf, rf = forward
    xr, hr, wr, br, cr, rr = backward
    bs = _check(mode, xf, hf, wf, bf, cf, rf, batch_sizes)
    if _check(mode, xr, hr, wr, br, cr, rr, batch_sizes) != bs or shape_of(xr) != shape_of(xf) \
            or dtype_of(xr) != dtype_of(xf) or shape_of(hr) != shape_of(hf) \
            or (rf is None) != (rr is None):
        raise RuntimeError(f"rnn_bidirectional ({mode}): the two directions differ in shapes, "
                           f"dtypes or projections")
    return call(BiRnnSequence, xf, hf, cf, wf, bf, rf, xr, hr, cr, wr, br, rr, mode=mode,
                batch_sizes=bs)


# ============================================================================ packing indices
def pack_layout(lengths):
    """Batch sizes of the packed layout of sequences sorted by decreasing ``lengths``."""
    lengths = np.asarray(lengths, dtype=np.int64)
    if lengths.size == 0:
        return np.zeros(0, dtype=np.int64)
    steps = np.arange(int(lengths.max()))
    return (lengths[None, :] > steps[:, None]).sum(1).astype(np.int64)


def padded_to_packed_index(batch_sizes):
    """(time index, batch index) arrays that gather packed rows from a (L, B, ...) batch."""
    bs = np.asarray(batch_sizes, dtype=np.int64)
    t_idx = np.repeat(np.arange(bs.size), bs)
    starts = np.concatenate([[0], np.cumsum(bs)[:-1]])
    b_idx = np.arange(t_idx.size) - np.repeat(starts, bs)
    return t_idx, b_idx


def packed_to_padded_index(batch_sizes, total_length: int, fill: int):
    """(total_length, B) array of the packed row of each padded slot (``fill`` where none)."""
    bs = np.asarray(batch_sizes, dtype=np.int64)
    B = int(bs[0]) if bs.size else 0
    idx = np.full((total_length, B), fill, dtype=np.int64)
    t_idx, b_idx = padded_to_packed_index(bs)
    idx[t_idx, b_idx] = np.arange(t_idx.size)
    return idx


def sort_lengths(lengths):
    """(lengths sorted decreasingly, sorted_indices, unsorted_indices) as int64 arrays (stable)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    order = np.argsort(-lengths, kind="stable")
    inverse = np.empty_like(order)
    inverse[order] = np.arange(order.size)
    return lengths[order], order.astype(np.int64), inverse.astype(np.int64)


def lengths_of_batch_sizes(batch_sizes):
    """Length of each sequence (in sorted order) of a packed layout."""
    bs = np.asarray(batch_sizes, dtype=np.int64)
    B = int(bs[0]) if bs.size else 0
    return (bs[None, :] > np.arange(B)[:, None]).sum(1).astype(np.int64)


def sequence_pad_index(lengths, total_length: int, left: bool = False):
    """(total_length, B) rows of each padded slot in the concatenation of sequences of
    ``lengths`` (``sum(lengths)``, one past the end, for padding); ``left`` pads at the start."""
    lengths = np.asarray(lengths, dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    t = np.arange(total_length)[:, None]
    pos = t - (total_length - lengths[None, :]) if left else np.broadcast_to(t, (
        total_length, lengths.size))
    valid = (pos >= 0) & (pos < lengths[None, :])
    return np.where(valid, starts[None, :] + pos, int(lengths.sum())).astype(np.int64)


# ============================================================================ small-batch LSTM
class LstmSmall(Primitive):
    """One direction of an LSTM layer over an equal-length batch of at most a few rows, input
    projection included, by the compiled ``lstm_seq`` on the raw input: inference only (no
    gradient). Outputs (out (T * B, H), h_n (B, H), c_n (B, H)) as :class:`RnnSequence`'s."""

    differentiable = False

    @staticmethod
    def forward(ctx, x, w_ih, w_hh, b, h0, c0, *, steps, reverse):
        B, H = h0.shape
        hs, c = _lstm_seq(None, w_hh, b, h0, c0, steps, reverse, x.dtype, x, w_ih)
        out = _timeline(hs[1:], steps, reverse)  # back in time order
        return np.ascontiguousarray(out).reshape(steps * B, H), hs[steps].copy(), c


def lstm_small_inference(x, w_ih, w_hh, b, h0, c0, steps: int, reverse: bool = False):
    """One LSTM direction without a graph, for batches of at most 4: the input projection is
    made inside the compiled sequence kernel (no GEMM), ``None`` when the kernel cannot run
    (not built, switched off, one thread, another dtype or a bigger batch); the caller then
    takes :func:`rnn_sequence`. ``x`` is (steps * B, I) in time-major order; ``b`` = b_ih + b_hh or
    None. Returns ``(out, h_n, c_n)`` like :func:`rnn_sequence` for an LSTM."""
    xa = x._data if isinstance(x, TensorBase) else x
    ha = h0._data if isinstance(h0, TensorBase) else h0
    # (on one thread the input projection is faster as one BLAS product before the sequence)
    if (native.kernel("lstm_seq") is None or native.get_num_threads() < 2
            or xa.dtype not in BLAS_FLOATS
            or ha.shape[0] > _SEQ_MAX_BATCH or any(
                dtype_of(a) != xa.dtype for a in (w_ih, w_hh, b, h0, c0) if a is not None)):
        return None
    return call(LstmSmall, x, w_ih, w_hh, b, h0, c0, steps=int(steps), reverse=bool(reverse))
