"""Recurrent layers (RNN, LSTM, GRU, cells) and packed sequences against PyTorch."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import ember
from ember.nn.utils import rnn as ernn
from tests.nn.harness import check_module

torch = pytest.importorskip("torch")
trnn = torch.nn.utils.rnn

pytestmark = [pytest.mark.oracle, pytest.mark.usefixtures("kernels")]
T64 = dict(rtol=1e-9, atol=1e-10)

MODES = ["RNN", "LSTM", "GRU"]
IN, HID, L, N = 5, 6, 4, 3


def _rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def _state(mode, shape, seed=1):
    if mode == "LSTM":
        return (_rand(*shape, seed=seed), _rand(*shape, seed=seed + 1))
    return (_rand(*shape, seed=seed),)


def _forward_fn(mod, lstm):
    def f(x, *hs):
        if not hs:
            return mod(x)
        return mod(x, (hs[0], hs[1]) if lstm else hs[0])
    return f


# the 16 combinations of (num_layers, bidirectional, batch_first, with_state), bias alternating
# between them, in float64; float32 on a covering subset
_GRID = [c + (i % 3 != 2, np.float64) for i, c in
         enumerate(itertools.product((1, 2), (False, True), (False, True), (False, True)))]
_GRID += [(1, False, False, True, True, np.float32), (2, True, True, False, False, np.float32),
          (2, True, False, True, True, np.float32), (1, True, True, True, False, np.float32)]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("num_layers,bidirectional,batch_first,with_state,bias,dtype", _GRID)
def test_rnn_layers_match_torch(mode, num_layers, bidirectional, batch_first, with_state, bias,
                                dtype):
    D = 2 if bidirectional else 1
    x = _rand(N, L, IN) if batch_first else _rand(L, N, IN)
    kw = dict(num_layers=num_layers, bias=bias, batch_first=batch_first,
              bidirectional=bidirectional)
    inputs = [x] + (list(_state(mode, (D * num_layers, N, HID))) if with_state else [])
    lstm = mode == "LSTM"

    class EWrap(ember.nn.Module):
        def __init__(self):
            super().__init__()
            self.m = getattr(ember.nn, mode)(IN, HID, **kw)

        def forward(self, *a):
            return _forward_fn(self.m, lstm)(*a)

    class TWrap(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.m = getattr(torch.nn, mode)(IN, HID, **kw)

        def forward(self, *a):
            return _forward_fn(self.m, lstm)(*a)

    check_module(EWrap, TWrap, inputs, dtype=dtype)


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_rnn_relu_and_tanh(nonlinearity):
    check_module(lambda: ember.nn.RNN(IN, HID, 2, nonlinearity=nonlinearity, bidirectional=True),
                 lambda: torch.nn.RNN(IN, HID, 2, nonlinearity=nonlinearity, bidirectional=True),
                 [_rand(L, N, IN)], dtype=np.float64)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_lstm_proj_size(bidirectional):
    x = _rand(L, N, IN)
    D = 2 if bidirectional else 1
    h0, c0 = _rand(2 * D, N, 3, seed=3), _rand(2 * D, N, HID, seed=4)

    class EW(ember.nn.Module):
        def __init__(self):
            super().__init__()
            self.m = ember.nn.LSTM(IN, HID, 2, proj_size=3, bidirectional=bidirectional)

        def forward(self, x, h, c):
            return self.m(x, (h, c))

    class TW(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.m = torch.nn.LSTM(IN, HID, 2, proj_size=3, bidirectional=bidirectional)

        def forward(self, x, h, c):
            return self.m(x, (h, c))

    check_module(EW, TW, [x, h0, c0], dtype=np.float64)


@pytest.mark.parametrize("mode", MODES)
def test_unbatched_input(mode):
    lstm = mode == "LSTM"
    hs = list(_state(mode, (4, HID)))

    class EW(ember.nn.Module):
        def __init__(self):
            super().__init__()
            self.m = getattr(ember.nn, mode)(IN, HID, 2, bidirectional=True)

        def forward(self, *a):
            return _forward_fn(self.m, lstm)(*a)

    class TW(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.m = getattr(torch.nn, mode)(IN, HID, 2, bidirectional=True)

        def forward(self, *a):
            return _forward_fn(self.m, lstm)(*a)

    check_module(EW, TW, [_rand(L, IN)], dtype=np.float64)
    check_module(EW, TW, [_rand(L, IN)] + hs, dtype=np.float64)


def test_parameter_names_shapes_and_init():
    m = ember.nn.LSTM(10, 20, 2, bidirectional=True)
    t = torch.nn.LSTM(10, 20, 2, bidirectional=True)
    assert [n for n, _ in m.named_parameters()] == [n for n, _ in t.named_parameters()]
    assert {n: tuple(p.shape) for n, p in m.named_parameters()} == \
        {n: tuple(p.shape) for n, p in t.named_parameters()}
    bound = 1 / np.sqrt(20)
    w = np.concatenate([p.detach().numpy().ravel() for p in m.parameters()])
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound
    assert abs(w.mean()) < 0.01 and abs(w.std() - bound / np.sqrt(3)) < 0.01
    g = ember.nn.GRU(4, 8, bias=False)
    assert [n for n, _ in g.named_parameters()] == ["weight_ih_l0", "weight_hh_l0"]
    assert g.weight_ih_l0.shape == (24, 4)
    assert repr(ember.nn.GRU(4, 8, 2, batch_first=True)) == repr(
        torch.nn.GRU(4, 8, 2, batch_first=True))


def test_dropout_between_layers():
    m = ember.nn.LSTM(IN, HID, 3, dropout=0.5)
    x = ember.tensor(_rand(L, N, IN).astype(np.float32))
    m.eval()
    e1, e2 = m(x)[0].detach().numpy(), m(x)[0].detach().numpy()
    np.testing.assert_array_equal(e1, e2)
    m.train()
    t1, t2 = m(x)[0].detach().numpy(), m(x)[0].detach().numpy()
    assert not np.allclose(t1, e1) and not np.allclose(t1, t2)
    # dropout=0 in train mode is deterministic and equal to eval
    m0 = ember.nn.GRU(IN, HID, 2, dropout=0.0)
    np.testing.assert_array_equal(m0(x)[0].detach().numpy(), m0.eval()(x)[0].detach().numpy())
    # the last layer gets no dropout: a 1-layer RNN with dropout is deterministic
    m1 = ember.nn.GRU(IN, HID, 1, dropout=0.5)
    np.testing.assert_array_equal(m1(x)[0].detach().numpy(), m1(x)[0].detach().numpy())


def test_dropout_statistics():
    # layer 2 = relu(I @ dropout(h1)): each output is 0 or exactly 1/(1-p) times the eval one
    m = ember.nn.RNN(IN, 50, 2, dropout=0.3, nonlinearity="relu", bias=False)
    with ember.no_grad():
        m.weight_ih_l1.copy_(ember.eye(50))
        m.weight_hh_l1.zero_()
    x = ember.tensor(_rand(3, 400, IN).astype(np.float32))
    out_t = m.train()(x)[0].detach().numpy()
    out_e = m.eval()(x)[0].detach().numpy()
    on = out_e > 1e-3
    kept = out_t[on] != 0
    assert 0.65 < kept.mean() < 0.75
    np.testing.assert_allclose(out_t[on][kept], out_e[on][kept] / 0.7, rtol=1e-5)
    assert np.all(out_t[~on] <= out_e[~on] / 0.7 + 1e-6)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cells(mode, bias, dtype):
    ecls, tcls = getattr(ember.nn, mode + "Cell"), getattr(torch.nn, mode + "Cell")
    lstm = mode == "LSTM"
    hs = list(_state(mode, (N, HID)))

    class EW(ember.nn.Module):
        def __init__(self):
            super().__init__()
            self.c = ecls(IN, HID, bias=bias)

        def forward(self, x, *h):
            return self.c(x, (h[0], h[1]) if lstm and h else (h[0] if h else None))

    class TW(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.c = tcls(IN, HID, bias=bias)

        def forward(self, x, *h):
            return self.c(x, (h[0], h[1]) if lstm and h else (h[0] if h else None))

    check_module(EW, TW, [_rand(N, IN)] + hs, dtype=dtype)
    check_module(EW, TW, [_rand(N, IN)], dtype=dtype)
    check_module(EW, TW, [_rand(IN)] + [h[0] for h in hs], dtype=dtype)


def test_rnn_cell_relu():
    check_module(lambda: ember.nn.RNNCell(IN, HID, nonlinearity="relu"),
                 lambda: torch.nn.RNNCell(IN, HID, nonlinearity="relu"),
                 [_rand(N, IN), _rand(N, HID, seed=2)], dtype=np.float64)


# ---------------------------------------------------------------------------- packing
LENGTHS = [5, 2, 4, 1, 3]  # unsorted, no ties


def _padded(lengths, feat=IN, seed=0):
    x = _rand(max(lengths), len(lengths), feat, seed=seed)
    for b, n in enumerate(lengths):
        x[n:, b] = 0.0
    return x


def test_pack_pad_roundtrip_and_torch_layout():
    x = _padded(LENGTHS)
    for enforce in (True, False):
        lengths = sorted(LENGTHS, reverse=True) if enforce else LENGTHS
        xx = _padded(lengths)
        ep = ernn.pack_padded_sequence(ember.tensor(xx), lengths, enforce_sorted=enforce)
        tp = trnn.pack_padded_sequence(torch.tensor(xx), torch.tensor(lengths),
                                       enforce_sorted=enforce)
        np.testing.assert_array_equal(ep.data.detach().numpy(), tp.data.detach().numpy())
        np.testing.assert_array_equal(ep.batch_sizes.detach().numpy(), tp.batch_sizes.numpy())
        if enforce:
            assert ep.sorted_indices is None and tp.sorted_indices is None
        else:
            np.testing.assert_array_equal(ep.sorted_indices.detach().numpy(),
                                          tp.sorted_indices.numpy())
            np.testing.assert_array_equal(ep.unsorted_indices.detach().numpy(),
                                          tp.unsorted_indices.detach().numpy())
        for bf in (False, True):
            e_pad, e_len = ernn.pad_packed_sequence(ep, batch_first=bf, padding_value=-1.0,
                                                    total_length=7)
            t_pad, t_len = trnn.pad_packed_sequence(tp, batch_first=bf, padding_value=-1.0,
                                                    total_length=7)
            np.testing.assert_array_equal(e_pad.detach().numpy(), t_pad.detach().numpy())
            np.testing.assert_array_equal(e_len.detach().numpy(), t_len.detach().numpy())
    # batch_first packing
    xb = np.ascontiguousarray(x.transpose(1, 0, 2))
    ep = ernn.pack_padded_sequence(ember.tensor(xb), LENGTHS, batch_first=True,
                                   enforce_sorted=False)
    tp = trnn.pack_padded_sequence(torch.tensor(xb), torch.tensor(LENGTHS), batch_first=True,
                                   enforce_sorted=False)
    np.testing.assert_array_equal(ep.data.detach().numpy(), tp.data.detach().numpy())


def test_pack_padded_gradient():
    x = _padded(LENGTHS)
    ex = ember.tensor(x, requires_grad=True)
    tx = torch.tensor(x, requires_grad=True)
    ep = ernn.pack_padded_sequence(ex, LENGTHS, enforce_sorted=False)
    tp = trnn.pack_padded_sequence(tx, torch.tensor(LENGTHS), enforce_sorted=False)
    e_pad, _ = ernn.pad_packed_sequence(ep, batch_first=True)
    t_pad, _ = trnn.pad_packed_sequence(tp, batch_first=True)
    g = _rand(*t_pad.shape, seed=9)
    (e_pad * ember.tensor(g)).sum().backward()
    (t_pad * torch.tensor(g)).sum().backward()
    np.testing.assert_allclose(ex.grad.detach().numpy(), tx.grad.detach().numpy())


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("side", ["right", "left"])
def test_pad_sequence_and_pack_sequence(batch_first, side):
    seqs = [_rand(n, 2, seed=n) for n in LENGTHS]
    e = ernn.pad_sequence([ember.tensor(s) for s in seqs], batch_first=batch_first,
                          padding_value=7.0, padding_side=side)
    t = trnn.pad_sequence([torch.tensor(s) for s in seqs], batch_first=batch_first,
                          padding_value=7.0, padding_side=side)
    np.testing.assert_array_equal(e.detach().numpy(), t.detach().numpy())
    ep = ernn.pack_sequence([ember.tensor(s) for s in seqs], enforce_sorted=False)
    tp = trnn.pack_sequence([torch.tensor(s) for s in seqs], enforce_sorted=False)
    np.testing.assert_array_equal(ep.data.detach().numpy(), tp.data.detach().numpy())
    back = ernn.unpack_sequence(ep)
    for s, b in zip(seqs, back):
        np.testing.assert_array_equal(s, b.detach().numpy())


def test_pack_errors():
    x = ember.tensor(_padded(LENGTHS))
    with pytest.raises(RuntimeError, match="decreasing"):
        ernn.pack_padded_sequence(x, LENGTHS)
    with pytest.raises(RuntimeError, match="greater than 0"):
        ernn.pack_padded_sequence(x, [5, 0, 4, 1, 3], enforce_sorted=False)
    with pytest.raises(ValueError, match="expected 5 lengths"):
        ernn.pack_padded_sequence(x, [5, 2], enforce_sorted=False)
    p = ernn.pack_padded_sequence(x, LENGTHS, enforce_sorted=False)
    with pytest.raises(ValueError, match="total_length"):
        ernn.pad_packed_sequence(p, total_length=3)


def _alone(mod, x_seq, h0, lstm):
    """Run one sequence (L_i, IN) alone (batch of one); returns output, h_n[, c_n]."""
    if h0 is None:
        out, h = mod(x_seq[:, None])
    else:
        out, h = mod(x_seq[:, None], h0)
    return out, h


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("enforce_sorted", [True, False])
@pytest.mark.parametrize("with_state", [False, True])
def test_packed_sequences_vs_alone_and_torch(mode, enforce_sorted, with_state):
    lengths = sorted(LENGTHS, reverse=True) if enforce_sorted else LENGTHS
    B = len(lengths)
    lstm = mode == "LSTM"
    x = _padded(lengths)
    kw = dict(num_layers=2, bidirectional=True)
    torch.manual_seed(0)
    tm = getattr(torch.nn, mode)(IN, HID, **kw).double()
    em = getattr(ember.nn, mode)(IN, HID, **kw).double()
    em.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    hs = [_rand(4, B, HID, seed=5 + i) for i in range(2 if lstm else 1)]
    ex = ember.tensor(x, requires_grad=True)
    tx = torch.tensor(x, requires_grad=True)
    e_hx = tuple(ember.tensor(h, requires_grad=True) for h in hs)
    t_hx = tuple(torch.tensor(h, requires_grad=True) for h in hs)
    e_arg = (e_hx if lstm else e_hx[0]) if with_state else None
    t_arg = (t_hx if lstm else t_hx[0]) if with_state else None
    ep = ernn.pack_padded_sequence(ex, lengths, enforce_sorted=enforce_sorted)
    tp = trnn.pack_padded_sequence(tx, torch.tensor(lengths), enforce_sorted=enforce_sorted)
    eo, eh = em(ep, e_arg) if with_state else em(ep)
    to, th = tm(tp, t_arg) if with_state else tm(tp)
    assert isinstance(eo, ernn.PackedSequence)
    np.testing.assert_allclose(eo.data.detach().numpy(), to.data.detach().numpy(), **T64)
    e_states = eh if lstm else (eh,)
    t_states = th if lstm else (th,)
    for es, ts in zip(e_states, t_states):
        np.testing.assert_allclose(es.detach().numpy(), ts.detach().numpy(), **T64)
    # each sequence's outputs and final states equal running it alone
    e_pad, e_len = ernn.pad_packed_sequence(eo)
    np.testing.assert_array_equal(e_len.detach().numpy(), lengths)
    for b, n in enumerate(lengths):
        h0 = None
        if with_state:
            h0b = tuple(ember.tensor(h[:, b:b + 1]) for h in hs)
            h0 = h0b if lstm else h0b[0]
        out_b, st_b = _alone(em, ember.tensor(x[:n, b]), h0, lstm)
        np.testing.assert_allclose(e_pad.detach().numpy()[:n, b], out_b.detach().numpy()[:, 0],
                                   **T64)
        np.testing.assert_array_equal(e_pad.detach().numpy()[n:, b], 0.0)
        for es, sb in zip(e_states, st_b if lstm else (st_b,)):
            np.testing.assert_allclose(es.detach().numpy()[:, b], sb.detach().numpy()[:, 0], **T64)
    # gradients through packed data and states equal torch's
    rng = np.random.default_rng(3)
    g_out = rng.standard_normal(to.data.shape)
    g_st = [rng.standard_normal(ts.shape) for ts in t_states]
    ember.autograd.backward([eo.data, *e_states],
                            [ember.tensor(g_out)] + [ember.tensor(g) for g in g_st])
    torch.autograd.backward([to.data, *t_states],
                            [torch.tensor(g_out)] + [torch.tensor(g) for g in g_st])
    np.testing.assert_allclose(ex.grad.detach().numpy(), tx.grad.detach().numpy(), **T64)
    if with_state:
        for e, t in zip(e_hx, t_hx):
            np.testing.assert_allclose(e.grad.detach().numpy(), t.grad.detach().numpy(), **T64)
    tps = dict(tm.named_parameters())
    for name, p in em.named_parameters():
        np.testing.assert_allclose(p.grad.detach().numpy(), tps[name].grad.detach().numpy(),
                                   err_msg=name, **T64)


# ---------------------------------------------------------------------------- gradcheck
@pytest.mark.parametrize("mode", MODES)
def test_gradcheck_and_gradgradcheck(mode):
    from ember.autograd.gradcheck import gradcheck, gradgradcheck

    m = getattr(ember.nn, mode)(2, 2, 1, bidirectional=True).double()
    lstm = mode == "LSTM"
    x = ember.tensor(_rand(3, 1, 2), requires_grad=True)
    h = ember.tensor(_rand(2, 1, 2, seed=4), requires_grad=True)
    c = ember.tensor(_rand(2, 1, 2, seed=5), requires_grad=True)
    w = m.weight_hh_l0

    def f(x, h, c, w):
        m._parameters["weight_hh_l0"] = w
        out, st = m(x, (h, c)) if lstm else m(x, h)
        return (out, *st) if lstm else (out, st)

    assert gradcheck(f, (x, h, c, w))
    assert gradgradcheck(f, (x, h, c, w))


@pytest.mark.parametrize("mode", MODES)
def test_gradcheck_last_state_only(mode):
    # the output sequence unused: its gradient reaches the recurrence as None (not zeros),
    # on the plain, the double-backward and the packed (non-dense) paths
    from ember.autograd.gradcheck import gradcheck, gradgradcheck

    m = getattr(ember.nn, mode)(2, 3, 1, bidirectional=True).double()
    lstm = mode == "LSTM"
    x = ember.tensor(_rand(4, 2, 2), requires_grad=True)
    h = ember.tensor(_rand(2, 2, 3, seed=4), requires_grad=True)

    def f(x, h):  # (an LSTM returns h_n only: c_n's gradient is None as well)
        return m(x, (h, h * 0.5))[1][0] if lstm else m(x, h)[1]

    assert gradcheck(f, (x, h))
    assert gradgradcheck(f, (x, h))

    def packed(x):
        seq = ernn.pack_padded_sequence(x, [4, 2], enforce_sorted=True)
        st = m(seq)[1]
        return st[0] if lstm else st

    assert gradcheck(packed, (x,))


def test_gradcheck_packed():
    from ember.autograd.gradcheck import gradcheck

    m = ember.nn.GRU(2, 3, 2, bidirectional=True).double()
    x = ember.tensor(_padded([3, 1, 2], feat=2), requires_grad=True)

    def f(x):
        out, h = m(ernn.pack_padded_sequence(x, [3, 1, 2], enforce_sorted=False))
        return out.data, h

    assert gradcheck(f, (x,))


# ---------------------------------------------------------------------------- errors
def test_error_messages():
    m = ember.nn.LSTM(8, 16, 2)
    with pytest.raises(ValueError, match=r"LSTM.*expected input of shape \(L, N, 8\).*\(5, 3, 7\)"):
        m(ember.zeros(5, 3, 7))
    with pytest.raises(ValueError, match=r"\(N, L, 8\)"):
        ember.nn.GRU(8, 16, batch_first=True)(ember.zeros(5, 3, 7))
    with pytest.raises(RuntimeError, match=r"expected h_0 of shape \(2, 3, 16\).*\(1, 3, 16\)"):
        m(ember.zeros(5, 3, 8), (ember.zeros(1, 3, 16), ember.zeros(2, 3, 16)))
    with pytest.raises(RuntimeError, match=r"expected c_0 of shape \(2, 3, 16\)"):
        m(ember.zeros(5, 3, 8), (ember.zeros(2, 3, 16), ember.zeros(2, 3, 15)))
    with pytest.raises(TypeError, match="tuple"):
        m(ember.zeros(5, 3, 8), ember.zeros(2, 3, 16))
    with pytest.raises(RuntimeError, match=r"GRU.*expected h_0 of shape \(2, 16\)"):
        ember.nn.GRU(8, 16, 2)(ember.zeros(5, 8), ember.zeros(2, 3, 16))
    with pytest.raises(TypeError, match="dtype"):
        m(ember.zeros(5, 3, 8, dtype=ember.float64))
    with pytest.raises(ValueError, match=r"GRUCell.*\(N, 8\)"):
        ember.nn.GRUCell(8, 4)(ember.zeros(3, 5))
    with pytest.raises(RuntimeError, match=r"LSTMCell.*expected c_0 of shape \(3, 4\)"):
        ember.nn.LSTMCell(8, 4)(ember.zeros(3, 8), (ember.zeros(3, 4), ember.zeros(2, 4)))
    with pytest.raises(ValueError, match="nonlinearity"):
        ember.nn.RNN(3, 4, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="dropout"):
        ember.nn.GRU(3, 4, dropout=1.5)
    with pytest.raises(ValueError, match="proj_size"):
        ember.nn.LSTM(3, 4, proj_size=4)


def test_error_names_path():
    class Net(ember.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = ember.nn.LSTM(64, 32)

    net = Net()
    with pytest.raises(ValueError, match=r"LSTM 'rnn': expected input of shape \(L, N, 64\)"):
        net.rnn(ember.zeros(32, 50))


# ---------------------------------------------------------------------------- fast paths
# Equal-length batches run a dense NumPy kernel (both directions of a bidirectional layer
# stepped together); create_graph=True runs the general differentiable path instead, so the
# two must agree.
_FAST = [("RNN_TANH", 0), ("RNN_RELU", 0), ("LSTM", 0), ("LSTM", 2), ("GRU", 0)]


def _seq_args(mode, proj, B=3, T=4, H=5, seed=0, reverse=False):
    G = {"LSTM": 4, "GRU": 3}.get(mode, 1)
    Hout = proj or H
    arrays = [_rand(T * B, G * H, seed=seed), _rand(B, Hout, seed=seed + 1),
              _rand(G * H, Hout, seed=seed + 2) * 0.5, _rand(G * H, seed=seed + 3),
              _rand(B, H, seed=seed + 4) if mode == "LSTM" else None,
              _rand(Hout, H, seed=seed + 5) * 0.5 if proj else None]
    return [None if a is None else ember.tensor(a, requires_grad=True) for a in arrays]


def _loss(res):
    return sum(((r * r).sum() if k % 2 else (r * r * r).sum()) for k, r in enumerate(res))


@pytest.mark.parametrize("mode,proj", _FAST)
@pytest.mark.parametrize("reverse", [False, True])
def test_dense_fast_path_matches_general_path(mode, proj, reverse):
    args = _seq_args(mode, proj)
    leaves = [a for a in args if a is not None]
    res = ember.ops.rnn_sequence(mode, *args, batch_sizes=(3,) * 4, reverse=reverse)
    fast = ember.autograd.grad(_loss(res), leaves)
    res = ember.ops.rnn_sequence(mode, *args, batch_sizes=(3,) * 4, reverse=reverse)
    general = ember.autograd.grad(_loss(res), leaves, create_graph=True)
    for a, b in zip(fast, general):
        np.testing.assert_allclose(a.numpy(), b.detach().numpy(), **T64)


@pytest.mark.parametrize("mode,proj", _FAST)
def test_bidirectional_kernel_matches_two_directions(mode, proj):
    fw, bw = _seq_args(mode, proj, seed=0), _seq_args(mode, proj, seed=10)
    leaves = [a for a in fw + bw if a is not None]
    both = ember.ops.rnn_bidirectional(mode, tuple(fw), tuple(bw), (3,) * 4)
    g_both = ember.autograd.grad(_loss(both), leaves)
    one = ember.ops.rnn_sequence(mode, *fw, batch_sizes=(3,) * 4) + \
        ember.ops.rnn_sequence(mode, *bw, batch_sizes=(3,) * 4, reverse=True)
    g_one = ember.autograd.grad(_loss(one), leaves)
    for a, b in zip(both, one):
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), **T64)
    for a, b in zip(g_both, g_one):
        np.testing.assert_allclose(a.numpy(), b.numpy(), **T64)


@pytest.mark.parametrize("mode", MODES)
def test_wide_bidirectional_and_last_state_only(mode):
    # hidden 40: the per-direction GEMM branch; the loss reads only h_n (zero output gradient)
    class EW(ember.nn.Module):
        def __init__(self):
            super().__init__()
            self.m = getattr(ember.nn, mode)(IN, 40, bidirectional=True, batch_first=True)

        def forward(self, x):
            h = self.m(x)[1]
            return h[0] if mode == "LSTM" else h

    class TW(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.m = getattr(torch.nn, mode)(IN, 40, bidirectional=True, batch_first=True)

        def forward(self, x):
            h = self.m(x)[1]
            return h[0] if mode == "LSTM" else h

    check_module(EW, TW, [_rand(N, 7, IN)], dtype=np.float64)
    check_module(EW, TW, [_rand(N, 7, IN)], dtype=np.float32)


@pytest.mark.parametrize("mode", MODES)
def test_retain_graph_backward_twice_and_recycled_buffers(mode):
    m = getattr(ember.nn, mode)(IN, HID, bidirectional=True).double()
    x = ember.tensor(_rand(L, N, IN), requires_grad=True)
    out = m(x)[0]
    loss = (out * out).sum()
    loss.backward(retain_graph=True)
    first = x.grad.numpy().copy()
    m(ember.tensor(_rand(L, N, IN, seed=9)))[0].sum().backward()  # reuses scratch buffers
    x.grad = None
    loss.backward()
    np.testing.assert_allclose(x.grad.numpy(), first, **T64)


def test_rnn_bidirectional_errors():
    fw = _seq_args("GRU", 0)
    bw = _seq_args("GRU", 0, H=4)
    with pytest.raises(RuntimeError, match="inconsistent shapes|differ"):
        ember.ops.rnn_bidirectional("GRU", tuple(fw), tuple(bw), (3,) * 4)


@pytest.mark.parametrize("mode", MODES)
def test_outputs_and_gradients_survive_buffer_reuse(mode):
    # outputs and input gradients live in recycled buffers: they must stay intact while held
    m = getattr(ember.nn, mode)(IN, HID).double()
    x = ember.tensor(_rand(L, N, IN), requires_grad=True)
    out = m(x)[0]
    out.sum().backward()
    kept_out, kept_grad = out.detach().numpy().copy(), x.grad.numpy().copy()
    for seed in (5, 6):
        x2 = ember.tensor(_rand(L, N, IN, seed=seed), requires_grad=True)
        (m(x2)[0] * 3.0).sum().backward()
    np.testing.assert_array_equal(out.detach().numpy(), kept_out)
    np.testing.assert_array_equal(x.grad.numpy(), kept_grad)


@pytest.mark.parametrize("mode,proj", _FAST)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_no_grad_inference_path_matches(mode, proj, bidirectional):
    # without autograd the kernels keep nothing for backward (a separate loop for LSTM)
    kw = dict(proj_size=proj) if proj else {}
    if mode.startswith("RNN"):
        kw["nonlinearity"] = mode[4:].lower()
    m = getattr(ember.nn, mode[:4].rstrip("_"))(IN, HID, 2, bidirectional=bidirectional,
                                                **kw).double()
    x = ember.tensor(_rand(L, N, IN))
    with_graph = m(x)
    with ember.no_grad():
        without = m(x)
    flat = lambda r: [r[0]] + (list(r[1]) if isinstance(r[1], tuple) else [r[1]])  # noqa: E731
    from ember.ops import native

    # a small batch of an LSTM without projection runs the compiled whole-sequence kernel,
    # whose dot products round differently from BLAS's: equal to the last bits
    seq = mode == "LSTM" and not proj and native.kernel("lstm_seq") is not None
    for a, b in zip(flat(with_graph), flat(without)):
        if seq:
            np.testing.assert_allclose(a.detach().numpy(), b.numpy(), rtol=1e-13, atol=1e-15)
        else:
            np.testing.assert_array_equal(a.detach().numpy(), b.numpy())


@pytest.mark.parametrize("batch", [1, 3, 4, 5])
@pytest.mark.parametrize("kw", [dict(), dict(bidirectional=True, num_layers=2),
                                dict(batch_first=True, bias=False), dict(hidden_size=70)],
                         ids=["plain", "bi2", "bf-nobias", "h70"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_small_batch_lstm_inference_matches_torch(batch, kw, dtype):
    # no graph and at most 4 rows: each direction is one compiled call that also makes the
    # input projection (batch 5 takes the general path); hidden 70 splits each step in two
    kw = dict(kw)
    hidden = kw.pop("hidden_size", 6)
    args = (IN, hidden)
    e = ember.nn.LSTM(*args, **kw)
    t = torch.nn.LSTM(*args, **kw)
    if dtype == np.float64:
        e, t = e.double(), t.double()
    e.load_state_dict({k: v.detach().numpy() for k, v in t.state_dict().items()})
    bf = kw.get("batch_first", False)
    x = _rand(batch, L, IN) if bf else _rand(L, batch, IN)
    D = 2 if kw.get("bidirectional") else 1
    layers = kw.get("num_layers", 1)
    h0, c0 = _rand(D * layers, batch, hidden, seed=3), _rand(D * layers, batch, hidden, seed=4)
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == np.float32 else T64
    before = ember.get_num_threads()
    ember.set_num_threads(2)  # (on one thread the general path runs)
    try:
        _compare_small_lstm(e, t, x, h0, c0, bf, batch, dtype, tol)
    finally:
        ember.set_num_threads(before)


def _compare_small_lstm(e, t, x, h0, c0, bf, batch, dtype, tol):
    for state in (None, (h0, c0)):
        with ember.no_grad():
            eo = e(ember.tensor(x.astype(dtype)), None if state is None else
                   tuple(ember.tensor(s.astype(dtype)) for s in state))
        with torch.no_grad():
            to = t(torch.tensor(x.astype(dtype)), None if state is None else
                   tuple(torch.tensor(s.astype(dtype)) for s in state))
        for a, b in zip([eo[0], *eo[1]], [to[0], *to[1]]):
            assert a.numpy().dtype == dtype
            np.testing.assert_allclose(a.numpy(), b.numpy(), **tol)
    if batch == 1:  # unbatched input, and a module without requires_grad outside no_grad
        e.requires_grad_(False)
        xu = (x[0] if bf else x[:, 0]).astype(dtype)
        eo, to = e(ember.tensor(xu)), t(torch.tensor(xu))
        assert not eo[0].requires_grad
        for a, b in zip([eo[0], *eo[1]], [to[0], *to[1]]):
            np.testing.assert_allclose(a.numpy(), b.detach().numpy(), **tol)
