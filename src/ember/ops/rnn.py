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

Under ``create_graph=True`` the backward rebuilds the gate activations from the saved inputs
with ops functions, so the gradient is itself differentiable.
"""

from __future__ import annotations

import numpy as np

from .base import NULL_CTX, Primitive, TensorBase, call, dtype_of, shape_of
from .linalg import matmul, mT
from .movement import cat, narrow
from .reduce import sum as _sum
from .unary import sigmoid, tanh

__all__ = ["rnn_sequence", "pack_layout", "packed_to_padded_index", "padded_to_packed_index",
           "sort_lengths", "lengths_of_batch_sizes", "sequence_pad_index"]

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
class RnnSequence(Primitive):
    """A whole recurrence over a packed sequence: inputs (xp, h0, c0, w_hh, b_hh, w_hr), outputs
    (out, h_n[, c_n]); ``c0``, ``b_hh`` and ``w_hr`` may be None."""

    @staticmethod
    def forward(ctx, xp, h0, c0, w, b, w_hr, mode, batch_sizes, reverse):
        keep = ctx is not NULL_CTX
        with np.errstate(**_QUIET):
            out, h, c, cache = _forward_numpy(mode, xp, h0, c0, w, b, w_hr,
                                              _steps(batch_sizes, reverse), keep)
        if keep:
            ctx.save_for_backward(xp, h0, c0, w, b, w_hr, out)
            ctx.cache = cache
            ctx.args = (mode, batch_sizes, reverse)
        return (out, h, c) if mode == "LSTM" else (out, h)

    @staticmethod
    def backward(ctx, g_out, g_h, g_c=None):
        xp, h0, c0, w, b, w_hr, out = ctx.saved
        mode, batch_sizes, reverse = ctx.args
        graph = any(isinstance(v, TensorBase) for v in (g_out, g_h, g_c, xp, h0, c0, w, b))
        if graph:
            cache = _forward_graph(mode, xp, h0, c0, w, b, w_hr, batch_sizes, reverse)
        else:
            cache = ctx.cache
            if mode in ("RNN_TANH", "RNN_RELU"):
                cache = cache + (out,)
        with np.errstate(**_QUIET):
            dxp, dh0, dc0, dW, db, dW_hr = _bptt(mode, cache, g_out, g_h, g_c, w, w_hr,
                                                 batch_sizes, reverse)
        return (dxp, dh0, dc0 if c0 is not None else None, dW,
                db if b is not None and _needs(ctx, 4) else None, dW_hr)


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
    return call(RnnSequence, xp, h0, c0, w_hh, b_hh, w_hr, mode=mode, batch_sizes=batch_sizes,
                reverse=bool(reverse))


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
