"""Loss functions and layers vs PyTorch: forward values and gradients (inputs and targets),
every reduction, float32 and float64, plus gradcheck, second order, stability and errors."""

from __future__ import annotations

import numpy as np
import pytest

import ember
import ember.nn.functional as EF
from ember import nn
from tests.nn.harness import check_module
from tests.oracle import FLOATS, check

pytestmark = pytest.mark.usefixtures("kernels")  # compiled and NumPy kernels

torch = pytest.importorskip("torch")
TF = torch.nn.functional

REDS = ["none", "mean", "sum"]
RNG = np.random.default_rng(1234)


def _rand(*shape, dtype=np.float64, low=-2.0, high=2.0, seed=0):
    return np.random.default_rng(seed).uniform(low, high, shape).astype(dtype)


def _kw(**kw):
    return {k: v for k, v in kw.items() if v is not None}


# ============================================================================ regression
@pytest.mark.oracle
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("red", REDS)
@pytest.mark.parametrize("name,kw", [
    ("mse_loss", {}), ("l1_loss", {}), ("smooth_l1_loss", {}), ("smooth_l1_loss", {"beta": 0.5}),
    ("smooth_l1_loss", {"beta": 0.0}), ("huber_loss", {}), ("huber_loss", {"delta": 0.3}),
    ("soft_margin_loss", {}), ("poisson_nll_loss", {}),
    ("poisson_nll_loss", {"full": True}),
])
def test_pointwise_losses(name, kw, red, dtype):
    x = _rand(4, 5, dtype=dtype, seed=1)
    y = _rand(4, 5, dtype=dtype, seed=2)
    if name == "poisson_nll_loss" and kw.get("full"):
        y = _rand(4, 5, dtype=dtype, low=0.0, high=4.0, seed=3)
    check(lambda a, b: getattr(EF, name)(a, b, reduction=red, **kw),
          lambda a, b: getattr(TF, name)(a, b, reduction=red, **kw), [x, y],
          grad=[0] if name == "soft_margin_loss" else None)


@pytest.mark.oracle
@pytest.mark.parametrize("red", REDS)
def test_poisson_nll_not_log_input(red):
    x = _rand(3, 4, low=0.1, high=3.0, seed=4)
    y = _rand(3, 4, low=0.0, high=4.0, seed=5)
    check(lambda a, b: EF.poisson_nll_loss(a, b, log_input=False, full=True, reduction=red),
          lambda a, b: TF.poisson_nll_loss(a, b, log_input=False, full=True, reduction=red),
          [x, y])


@pytest.mark.oracle
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("red", REDS)
@pytest.mark.parametrize("name", ["mse_loss", "l1_loss", "huber_loss"])
def test_weighted_pointwise(name, red, dtype):
    x, y = _rand(3, 4, dtype=dtype, seed=6), _rand(3, 4, dtype=dtype, seed=7)
    w = _rand(3, 4, dtype=dtype, low=0.1, high=2.0, seed=8)
    check(lambda a, b, c: getattr(EF, name)(a, b, reduction=red, weight=c),
          lambda a, b, c: getattr(TF, name)(a, b, reduction=red, weight=c), [x, y, w])


@pytest.mark.oracle
def test_mse_broadcast_warns_like_torch():
    x, y = _rand(3, 4, seed=9), _rand(4, seed=10)
    with pytest.warns(UserWarning, match="target size"):
        e = EF.mse_loss(ember.tensor(x), ember.tensor(y))
    with pytest.warns(UserWarning):
        t = TF.mse_loss(torch.tensor(x), torch.tensor(y))
    np.testing.assert_allclose(e.item(), t.item(), rtol=1e-12)


@pytest.mark.oracle
def test_l1_gradient_zero_at_ties():
    x = np.array([1.0, 2.0, 3.0])
    check(lambda a, b: EF.l1_loss(a, b), lambda a, b: TF.l1_loss(a, b), [x, x.copy()])


# ============================================================================ cross-entropy
@pytest.mark.oracle
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("red", REDS)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("ls", [0.0, 0.25])
@pytest.mark.parametrize("ignore", [False, True])
def test_cross_entropy_indices(ignore, ls, weighted, red, dtype):
    x = _rand(7, 5, dtype=dtype, low=-3, high=3, seed=11)
    t = np.array([0, 4, 2, 2, 1, 3, 0])
    if ignore:
        t[[1, 4]] = -100
    arrays = [x, t] + ([_rand(5, dtype=dtype, low=0.2, high=2.0, seed=12)] if weighted else [])

    def run(f):
        return lambda a, b, *w: f(a, b, weight=w[0] if w else None, reduction=red,
                                  label_smoothing=ls)

    check(run(EF.cross_entropy), run(TF.cross_entropy), arrays, grad=[0])


@pytest.mark.oracle
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("red", REDS)
def test_cross_entropy_extra_dims(red, dtype):
    x = _rand(2, 4, 3, 5, dtype=dtype, seed=13)
    t = np.random.default_rng(0).integers(0, 4, (2, 3, 5))
    t[0, 1, 2] = 7
    w = _rand(4, dtype=dtype, low=0.5, high=1.5, seed=14)
    for ls in (0.0, 0.1):
        check(lambda a, b, c, ls=ls: EF.cross_entropy(a, b, c, ignore_index=7, reduction=red,
                                               label_smoothing=ls),
              lambda a, b, c, ls=ls: TF.cross_entropy(a, b, c, ignore_index=7, reduction=red,
                                               label_smoothing=ls), [x, t, w], grad=[0])


@pytest.mark.oracle
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("red", REDS)
@pytest.mark.parametrize("ls", [0.0, 0.3])
def test_cross_entropy_probabilities(ls, red, dtype):
    x = _rand(4, 3, 2, dtype=dtype, seed=15)
    p = np.random.default_rng(1).dirichlet(np.ones(3), (4, 2)).transpose(0, 2, 1).astype(dtype)
    w = _rand(3, dtype=dtype, low=0.5, high=1.5, seed=16)
    check(lambda a, b, c: EF.cross_entropy(a, b, c, reduction=red, label_smoothing=ls),
          lambda a, b, c: TF.cross_entropy(a, b, c, reduction=red, label_smoothing=ls),
          [x, p, w], grad=[0, 1])


@pytest.mark.oracle
@pytest.mark.parametrize("red", REDS)
def test_cross_entropy_unbatched(red):
    x = _rand(6, seed=17)
    check(lambda a, b: EF.cross_entropy(a, b, reduction=red, label_smoothing=0.1),
          lambda a, b: TF.cross_entropy(a, b, reduction=red, label_smoothing=0.1),
          [x, np.array(3)])
    p = np.random.default_rng(2).dirichlet(np.ones(6))
    check(lambda a, b: EF.cross_entropy(a, b, reduction=red),
          lambda a, b: TF.cross_entropy(a, b, reduction=red), [x, p])


@pytest.mark.oracle
@pytest.mark.parametrize("ls", [0.0, 0.2])
def test_cross_entropy_all_ignored_is_nan_like_torch(ls):
    x = _rand(3, 4, seed=18)
    t = np.full(3, -100)
    out = check(lambda a, b: EF.cross_entropy(a, b, label_smoothing=ls),
                lambda a, b: TF.cross_entropy(a, b, label_smoothing=ls), [x, t])
    assert np.isnan(out[0].item())
    # the gradient is zero (not nan), as in PyTorch
    xe = ember.tensor(x, requires_grad=True)
    EF.cross_entropy(xe, ember.tensor(t)).backward()
    assert np.array_equal(xe.grad.numpy(), np.zeros_like(x))


@pytest.mark.oracle
@pytest.mark.parametrize("dtype", FLOATS)
def test_cross_entropy_extreme_logits(dtype):
    x = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, 1e4], [5e3, 5e3, -1e4]], dtype=dtype)
    t = np.array([1, 2, 0])
    for red in REDS:
        out = check(lambda a, b, r=red: EF.cross_entropy(a, b, reduction=r, label_smoothing=0.1),
                    lambda a, b, r=red: TF.cross_entropy(a, b, reduction=r, label_smoothing=0.1),
                    [x, t])
        assert np.all(np.isfinite(out[0].detach().numpy()))


@pytest.mark.oracle
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("red", REDS)
def test_nll_loss(red, dtype):
    lp = _rand(6, 4, dtype=dtype, low=-4, high=0, seed=19)
    t = np.array([0, 3, -100, 1, 2, 3])
    w = _rand(4, dtype=dtype, low=0.5, high=2.0, seed=20)
    check(lambda a, b, c: EF.nll_loss(a, b, c, reduction=red),
          lambda a, b, c: TF.nll_loss(a, b, c, reduction=red), [lp, t, w], grad=[0])
    x4 = _rand(2, 4, 3, 3, dtype=dtype, low=-4, high=0, seed=21)
    t4 = np.random.default_rng(3).integers(0, 4, (2, 3, 3))
    check(lambda a, b: EF.nll_loss(a, b, ignore_index=2, reduction=red),
          lambda a, b: TF.nll_loss(a, b, ignore_index=2, reduction=red), [x4, t4])
    check(lambda a, b: EF.nll_loss(a, b, reduction=red),
          lambda a, b: TF.nll_loss(a, b, reduction=red), [lp[0], np.array(2)])


@pytest.mark.oracle
@pytest.mark.filterwarnings("ignore:size_average and reduce")
def test_legacy_size_average_reduce():
    x = _rand(5, 3, seed=22)
    t = np.array([0, 1, 2, 1, 0])
    for sa, rd in [(False, None), (None, False), (True, True)]:
        check(lambda a, b, sa=sa, rd=rd: EF.cross_entropy(a, b, size_average=sa, reduce=rd),
              lambda a, b, sa=sa, rd=rd: TF.cross_entropy(a, b, size_average=sa, reduce=rd), [x, t])


# ============================================================================ binary
@pytest.mark.oracle
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("red", REDS)
def test_binary_cross_entropy(red, dtype):
    p = _rand(4, 3, dtype=dtype, low=0.02, high=0.98, seed=23)
    y = _rand(4, 3, dtype=dtype, low=0.0, high=1.0, seed=24)
    w = _rand(3, dtype=dtype, low=0.5, high=2.0, seed=25)
    check(lambda a, b: EF.binary_cross_entropy(a, b, reduction=red),
          lambda a, b: TF.binary_cross_entropy(a, b, reduction=red), [p, y])
    check(lambda a, b, c: EF.binary_cross_entropy(a, b, c, reduction=red),
          lambda a, b, c: TF.binary_cross_entropy(a, b, c, reduction=red), [p, y, w],
          grad=[0, 1])


@pytest.mark.oracle
def test_binary_cross_entropy_clamps_logs_at_minus_100():
    p = np.array([0.0, 1.0, 0.0, 1.0, 0.5])
    y = np.array([1.0, 0.0, 0.0, 1.0, 1.0])
    out = check(lambda a, b: EF.binary_cross_entropy(a, b, reduction="none"),
                lambda a, b: TF.binary_cross_entropy(a, b, reduction="none"), [p, y], grad=[0],
                grad_rtol=1e-7)
    np.testing.assert_allclose(out[0].detach().numpy()[:2], [100.0, 100.0])


@pytest.mark.oracle
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("red", REDS)
def test_bce_with_logits(red, dtype):
    x = _rand(4, 3, dtype=dtype, low=-4, high=4, seed=26)
    y = _rand(4, 3, dtype=dtype, low=0.0, high=1.0, seed=27)
    w = _rand(4, 1, dtype=dtype, low=0.5, high=2.0, seed=28)
    pw = _rand(3, dtype=dtype, low=0.5, high=3.0, seed=29)
    check(lambda a, b: EF.binary_cross_entropy_with_logits(a, b, reduction=red),
          lambda a, b: TF.binary_cross_entropy_with_logits(a, b, reduction=red), [x, y])
    check(lambda a, b, c, d: EF.binary_cross_entropy_with_logits(a, b, c, reduction=red,
                                                                  pos_weight=d),
          lambda a, b, c, d: TF.binary_cross_entropy_with_logits(a, b, c, reduction=red,
                                                                  pos_weight=d),
          [x, y, w, pw], grad=[0, 1])


@pytest.mark.oracle
@pytest.mark.parametrize("dtype", FLOATS)
def test_bce_with_logits_extreme(dtype):
    x = np.array([1e4, -1e4, 1e4, -1e4, 80.0, -80.0], dtype=dtype)
    y = np.array([1.0, 0.0, 0.0, 1.0, 0.3, 0.7], dtype=dtype)
    pw = np.full(6, 2.0, dtype=dtype)
    out = check(lambda a, b, c: EF.binary_cross_entropy_with_logits(a, b, reduction="none",
                                                                     pos_weight=c),
                lambda a, b, c: TF.binary_cross_entropy_with_logits(a, b, reduction="none",
                                                                     pos_weight=c),
                [x, y, pw], grad=[0, 1])
    assert np.all(np.isfinite(out[0].detach().numpy()))


# ============================================================================ kl_div
@pytest.mark.oracle
@pytest.mark.filterwarnings("ignore:reduction. 'mean'")
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("red", REDS + ["batchmean"])
@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div(log_target, red, dtype):
    x = np.log(np.random.default_rng(4).dirichlet(np.ones(5), 3)).astype(dtype)
    q = np.random.default_rng(5).dirichlet(np.ones(5), 3).astype(dtype)
    if log_target:
        q = np.log(q)
    check(lambda a, b: EF.kl_div(a, b, reduction=red, log_target=log_target),
          lambda a, b: TF.kl_div(a, b, reduction=red, log_target=log_target), [x, q])


# ============================================================================ embedding / ranking
@pytest.mark.oracle
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("red", REDS)
def test_cosine_embedding_and_margin_ranking(red, dtype):
    a, b = _rand(6, 4, dtype=dtype, seed=30), _rand(6, 4, dtype=dtype, seed=31)
    y = np.array([1, -1, 1, -1, -1, 1])
    for margin in (0.0, 0.2):
        check(lambda u, v, t, m=margin: EF.cosine_embedding_loss(u, v, t, m, reduction=red),
              lambda u, v, t, m=margin: TF.cosine_embedding_loss(u, v, t, m, reduction=red),
              [a, b, y])
    check(lambda u, v, t: EF.cosine_embedding_loss(u, v, t, reduction=red),
          lambda u, v, t: TF.cosine_embedding_loss(u, v, t, reduction=red),
          [a[0], b[0], np.array(-1)])
    x1, x2 = _rand(6, dtype=dtype, seed=32), _rand(6, dtype=dtype, seed=33)
    yf = y.astype(dtype)
    check(lambda u, v, t: EF.margin_ranking_loss(u, v, t, 0.3, reduction=red),
          lambda u, v, t: TF.margin_ranking_loss(u, v, t, 0.3, reduction=red), [x1, x2, yf])


@pytest.mark.oracle
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("red", REDS)
@pytest.mark.parametrize("p,swap", [(2, False), (1, True), (3, False), (2, True)])
def test_triplet_margin(p, swap, red, dtype):
    a, q, n = (_rand(5, 4, dtype=dtype, seed=s) for s in (34, 35, 36))
    check(lambda u, v, w: EF.triplet_margin_loss(u, v, w, margin=1.5, p=p, swap=swap,
                                                 reduction=red),
          lambda u, v, w: TF.triplet_margin_loss(u, v, w, margin=1.5, p=p, swap=swap,
                                                 reduction=red), [a, q, n])


@pytest.mark.oracle
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("red", REDS)
def test_further_losses(red, dtype):
    x, y = _rand(4, 5, dtype=dtype, seed=37), _rand(4, 5, dtype=dtype, seed=38)
    var = _rand(4, 5, dtype=dtype, low=0.1, high=2.0, seed=39)
    var[0, 0] = 1e-9  # clamped at eps, gradient passed through unchanged
    check(lambda a, b, v: EF.gaussian_nll_loss(a, b, v, full=True, reduction=red),
          lambda a, b, v: TF.gaussian_nll_loss(a, b, v, full=True, reduction=red), [x, y, var])
    check(lambda a, b, v: EF.gaussian_nll_loss(a, b, v, reduction=red),
          lambda a, b, v: TF.gaussian_nll_loss(a, b, v, reduction=red), [x, y, var[:, :1]])
    check(lambda a, b, v: EF.gaussian_nll_loss(a, b, v, reduction=red),
          lambda a, b, v: TF.gaussian_nll_loss(a, b, v, reduction=red), [x, y, var[:, 0]])
    lbl = (y > 0).astype(dtype)
    w = _rand(5, dtype=dtype, low=0.5, high=2.0, seed=40)
    check(lambda a, b, c: EF.multilabel_soft_margin_loss(a, b, c, reduction=red),
          lambda a, b, c: TF.multilabel_soft_margin_loss(a, b, c, reduction=red),
          [x, lbl, w], grad=[0, 1])
    sign = np.where(y > 0, 1.0, -1.0).astype(dtype)
    check(lambda a, b: EF.hinge_embedding_loss(a, b, margin=0.7, reduction=red),
          lambda a, b: TF.hinge_embedding_loss(a, b, margin=0.7, reduction=red), [x, sign])
    check(lambda a, b: EF.soft_margin_loss(a, b, reduction=red),
          lambda a, b: TF.soft_margin_loss(a, b, reduction=red), [x, sign], grad=[0])
    t = np.array([0, 4, 2, 1])
    for p in (1, 2):
        check(lambda a, b, c, p=p: EF.multi_margin_loss(a, b, p=p, margin=0.8, weight=c,
                                                   reduction=red),
              lambda a, b, c, p=p: TF.multi_margin_loss(a, b, p=p, margin=0.8, weight=c,
                                                   reduction=red), [x, t, w], grad=[0])
    check(lambda a, b: EF.multi_margin_loss(a, b, reduction=red),
          lambda a, b: TF.multi_margin_loss(a, b, reduction=red), [x[0], np.array(3)])


# ============================================================================ CTC
def _ctc_case(T, N, C, S, seed, blank=0, repeat=False):
    rng = np.random.default_rng(seed)
    labels = [c for c in range(C) if c != blank]
    tg = rng.choice(labels, (N, S))
    if repeat and S >= 2:
        tg[:, 1] = tg[:, 0]
    tl = rng.integers(max(S // 2, 1), S + 1, N) if S else np.zeros(N, np.int64)
    tl[0] = S
    il = rng.integers(max(2 * S + 1, 1), T + 1, N)
    il[0] = T
    return rng.standard_normal((T, N, C)), tg, il, tl


def _ctc_pair(red, blank=0, zero_inf=False, logsm=True, flat=None):
    def e(lp, tg):
        x = EF.log_softmax(lp, -1) if logsm else lp
        return EF.ctc_loss(x, tg if flat is None else ember.tensor(flat[0]), flat_il[0],
                           flat_il[1], blank=blank, reduction=red, zero_infinity=zero_inf)

    def t(lp, tg):
        x = TF.log_softmax(lp, -1) if logsm else lp
        return TF.ctc_loss(x, tg if flat is None else torch.tensor(flat[0]),
                           torch.tensor(flat_il[0]), torch.tensor(flat_il[1]), blank=blank,
                           reduction=red, zero_infinity=zero_inf)

    flat_il = [None, None]
    return e, t, flat_il


@pytest.mark.oracle
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("red", REDS)
@pytest.mark.parametrize("T,N,C,S,blank,repeat", [
    (10, 3, 5, 3, 0, False), (12, 2, 4, 4, 2, True), (8, 4, 6, 1, 5, False),
    (15, 3, 3, 5, 0, True), (6, 2, 7, 0, 3, False),
])
@pytest.mark.parametrize("logsm", [True, False])
def test_ctc_loss(T, N, C, S, blank, repeat, red, dtype, logsm):
    lp, tg, il, tl = _ctc_case(T, N, C, S, seed=T * 7 + S, blank=blank, repeat=repeat)
    e, t, lens = _ctc_pair(red, blank=blank, logsm=logsm)
    lens[:] = [il, tl]
    check(e, t, [lp.astype(dtype), tg])


@pytest.mark.oracle
@pytest.mark.parametrize("red", REDS)
def test_ctc_concatenated_targets(red):
    lp, tg, il, tl = _ctc_case(11, 3, 5, 4, seed=3, repeat=True)
    flat = np.concatenate([tg[n, :tl[n]] for n in range(3)])
    e, t, lens = _ctc_pair(red, flat=(flat,))
    lens[:] = [il, tl]
    check(e, t, [lp, tg])
    e2, t2, lens2 = _ctc_pair(red)  # the padded form gives the same numbers
    lens2[:] = [il, tl]
    a = check(e2, t2, [lp, tg])[0].detach().numpy()
    b = check(e, t, [lp, tg])[0].detach().numpy()
    np.testing.assert_allclose(a, b, rtol=1e-12)


@pytest.mark.oracle
@pytest.mark.parametrize("red", REDS)
@pytest.mark.parametrize("zero_inf", [False, True])
def test_ctc_impossible_alignments(zero_inf, red):
    # sequence 0 needs 2*3 - 1 = 5 frames for labels 1 1 1 but has 4; sequence 1 is feasible
    lp = np.random.default_rng(6).standard_normal((6, 2, 4))
    tg = np.array([[1, 1, 1], [2, 3, 0]])
    il, tl = np.array([4, 6]), np.array([3, 2])
    e, t, lens = _ctc_pair(red, zero_inf=zero_inf)
    lens[:] = [il, tl]
    out = check(e, t, [lp, tg])[0].detach().numpy()
    if red == "none":
        assert (out[0] == 0.0) if zero_inf else np.isposinf(out[0])
        assert np.isfinite(out[1])


@pytest.mark.oracle
@pytest.mark.parametrize("red", REDS)
def test_ctc_unbatched_and_module(red):
    lp = np.random.default_rng(7).standard_normal((9, 5))
    tg = np.array([1, 3, 3, 2])
    check(lambda x, y: EF.ctc_loss(EF.log_softmax(x, -1), y, 9, 4, reduction=red),
          lambda x, y: TF.ctc_loss(TF.log_softmax(x, -1), y, torch.tensor(9), torch.tensor(4),
                                   reduction=red), [lp, tg])
    lp3 = np.random.default_rng(8).standard_normal((9, 2, 5)).astype(np.float32)
    check(lambda x, y: nn.CTCLoss(blank=4, reduction=red)(x, y, [9, 7], [2, 3]),
          lambda x, y: torch.nn.CTCLoss(blank=4, reduction=red)(x, y, torch.tensor([9, 7]),
                                                                 torch.tensor([2, 3])),
          [lp3, np.array([[1, 2, 0], [3, 3, 1]])])


# ============================================================================ gradcheck / order 2
def test_gradcheck_float64():
    gc = ember.autograd.gradcheck
    x = ember.tensor(_rand(3, 4, seed=41), requires_grad=True)
    t = ember.tensor(np.array([0, 3, 1]))
    w = ember.tensor(_rand(4, low=0.5, high=2, seed=42))
    assert gc(lambda a: EF.cross_entropy(a, t, w, label_smoothing=0.2), (x,))
    assert gc(lambda a: EF.cross_entropy(a, t, reduction="none"), (x,))
    y = ember.tensor(_rand(3, 4, low=0, high=1, seed=43), requires_grad=True)
    pw = ember.tensor(_rand(4, low=0.5, high=2, seed=44))
    assert gc(lambda a, b: EF.binary_cross_entropy_with_logits(a, b, pos_weight=pw), (x, y))
    lp = ember.tensor(np.random.default_rng(9).standard_normal((7, 2, 4)), requires_grad=True)
    tg = ember.tensor(np.array([[1, 1, 2], [3, 2, 0]]))
    assert gc(lambda a: EF.ctc_loss(EF.log_softmax(a, 2), tg, [7, 6], [3, 2],
                                    reduction="none"), (lp,))
    assert ember.autograd.gradgradcheck(
        lambda a: EF.cross_entropy(a, t, w, label_smoothing=0.1, reduction="sum"), (x,))


def _grad_of(lib, F, loss_fn):
    """fn(x, target, u) -> d(sum(u * loss(x, target)))/dx, built with create_graph=True."""
    def fn(x, tgt, u):
        out = loss_fn(F, x, tgt)
        return lib.autograd.grad((out * u).sum(), [x], create_graph=True)[0]
    return fn


@pytest.mark.oracle
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("red", REDS)
@pytest.mark.parametrize("variant", ["plain", "weighted_smooth_ignore", "extra_dims", "mse"])
def test_second_order_vs_torch(variant, red, dtype):
    x = _rand(5, 4, dtype=dtype, seed=45)
    t = np.array([0, 3, 1, 1, 2])
    shape_u = (5,) if red == "none" else ()
    if variant == "plain":
        def loss(F, a, b):
            return F.cross_entropy(a, b, reduction=red)
    elif variant == "weighted_smooth_ignore":
        t[2] = -100
        wv = _rand(4, low=0.5, high=2.0, seed=46).astype(dtype)

        def loss(F, a, b):
            w = ember.tensor(wv) if F is EF else torch.tensor(wv)
            return F.cross_entropy(a, b, w, reduction=red, label_smoothing=0.3)
    elif variant == "extra_dims":
        x = _rand(2, 4, 3, dtype=dtype, seed=47)
        t = np.array([[0, 3, 1], [2, 2, 0]])
        shape_u = (2, 3) if red == "none" else ()

        def loss(F, a, b):
            return F.cross_entropy(a, b, reduction=red, label_smoothing=0.1)
    else:
        t = _rand(5, 4, dtype=dtype, seed=48)
        shape_u = (5, 4) if red == "none" else ()

        def loss(F, a, b):
            return F.mse_loss(a, b, reduction=red)
    u = _rand(*shape_u, dtype=dtype, seed=49) if shape_u else np.asarray(1.3, dtype=dtype)
    check(_grad_of(ember, EF, loss), _grad_of(torch, TF, loss), [x, t, u])


# ============================================================================ modules
@pytest.mark.oracle
@pytest.mark.parametrize("dtype", FLOATS)
def test_modules_match_torch(dtype):
    x = _rand(4, 3, seed=50)
    y = _rand(4, 3, seed=51)
    t = np.array([0, 2, 1, 2])
    prob = _rand(4, 3, low=0.05, high=0.95, seed=52)
    lbl = (y > 0).astype(np.float64)
    cases = [
        ("MSELoss", {}, [x, y]), ("L1Loss", {"reduction": "sum"}, [x, y]),
        ("SmoothL1Loss", {"beta": 0.5}, [x, y]), ("HuberLoss", {"delta": 0.5}, [x, y]),
        ("CrossEntropyLoss", {"label_smoothing": 0.1, "ignore_index": 1}, [x, t]),
        ("NLLLoss", {"reduction": "none"}, [x, t]), ("BCELoss", {}, [prob, lbl]),
        ("BCEWithLogitsLoss", {}, [x, lbl]), ("KLDivLoss", {"reduction": "batchmean"}, [x, prob]),
        ("CosineEmbeddingLoss", {"margin": 0.1}, [x, y, np.array([1, -1, -1, 1])]),
        ("MarginRankingLoss", {"margin": 0.2}, [x[:, 0], y[:, 0], np.sign(y[:, 1])]),
        ("TripletMarginLoss", {"swap": True}, [x, y, prob]),
        ("PoissonNLLLoss", {}, [x, prob]),
        ("MultiLabelSoftMarginLoss", {}, [x, lbl]), ("HingeEmbeddingLoss", {}, [x, np.sign(y)]),
        ("MultiMarginLoss", {"p": 2}, [x, t]),
        ("GaussianNLLLoss", {}, [x, y, prob]),
    ]
    for name, kw, inputs in cases:
        check_module(lambda name=name, kw=kw: getattr(nn, name)(**kw),
                     lambda name=name, kw=kw: getattr(torch.nn, name)(**kw),
                     inputs, dtype=dtype, modes=("train",))
    # PyTorch refuses a target that requires grad here
    check(lambda a, b: nn.SoftMarginLoss(reduction="sum")(a, b),
          lambda a, b: torch.nn.SoftMarginLoss(reduction="sum")(a, b),
          [x.astype(dtype), np.sign(y).astype(dtype)], grad=[0])


@pytest.mark.oracle
def test_weighted_modules_state_dict_and_values():
    w = _rand(3, low=0.5, high=2.0, seed=53).astype(np.float32)
    x, t = _rand(4, 3, seed=54), np.array([0, 2, 1, 2])
    for name in ("CrossEntropyLoss", "NLLLoss", "MultiMarginLoss"):
        check_module(lambda name=name: getattr(nn, name)(weight=ember.ones(3)),
                     lambda name=name: getattr(torch.nn, name)(weight=torch.tensor(w)), [x, t],
                     modes=("train",))
    pw = torch.tensor(w)
    lbl = (_rand(4, 3, seed=55) > 0).astype(np.float64)
    e, _ = check_module(lambda: nn.BCEWithLogitsLoss(pos_weight=ember.ones(3)),
                        lambda: torch.nn.BCEWithLogitsLoss(pos_weight=pw), [x, lbl],
                        modes=("train",))
    assert set(e.state_dict()) == {"pos_weight"}


# ============================================================================ errors
def _e(a, **kw):
    return ember.tensor(np.asarray(a), **kw)


def test_error_messages():
    x = _e(np.zeros((32, 10), np.float32))
    with pytest.raises(ValueError, match=r"cross_entropy: expected target of shape \(32,\) "
                                         r"with class indices in \[0, 10\), got shape \(32, 1\)"):
        EF.cross_entropy(x, _e(np.zeros((32, 1), np.int64)))
    with pytest.raises(IndexError, match=r"cross_entropy: target class index 10 is out of "
                                         r"range.*\[0, 10\)"):
        EF.cross_entropy(x, _e(np.full(32, 10)))
    with pytest.raises(IndexError, match="class index -1"):
        EF.nll_loss(x, _e(np.full(32, -1)))
    with pytest.raises(ValueError, match=r"cross_entropy: .*class probabilities of the input's "
                                         r"shape \(32, 10\).*float32 target of shape \(32,\)"):
        EF.cross_entropy(x, _e(np.zeros(32, np.float32)))
    with pytest.raises(TypeError, match="nll_loss: got a floating-point target.*class "
                                        "probabilities are only supported by cross_entropy"):
        EF.nll_loss(x, _e(np.zeros((32, 10), np.float32)))
    with pytest.raises(TypeError, match=r"nll_loss: expected target of integer class indices"):
        EF.nll_loss(x, _e(np.zeros(32, np.float32)))
    with pytest.raises(ValueError, match=r"weight of shape \(10,\)"):
        EF.cross_entropy(x, _e(np.zeros(32, np.int64)), weight=_e(np.ones(3, np.float32)))
    with pytest.raises(ValueError, match="reduction must be one of"):
        EF.mse_loss(x, x, reduction="avg")
    with pytest.raises(ValueError, match="binary_cross_entropy: all elements of input should "
                                         "be between 0 and 1"):
        EF.binary_cross_entropy(_e([0.5, 1.5]), _e([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"binary_cross_entropy_with_logits: expected target "
                                         r"of the input's shape \(2,\), got \(3,\)"):
        EF.binary_cross_entropy_with_logits(_e([0.5, 1.5]), _e([0.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match="mse_loss: target of shape"):
        EF.mse_loss(x, _e(np.zeros(3, np.float32)))
    with pytest.raises(ValueError, match=r"unbatched input of shape \(10,\)"):
        EF.cross_entropy(x[0], _e(np.array([1])))


def test_ctc_error_messages():
    lp = _e(np.zeros((5, 2, 4)))
    tg = _e(np.array([[1, 2], [3, 1]]))
    with pytest.raises(ValueError, match=r"ctc_loss: input_lengths must be in \[0, 5\]"):
        EF.ctc_loss(lp, tg, [6, 5], [2, 2])
    with pytest.raises(ValueError, match="exceed the padded targets' length 2"):
        EF.ctc_loss(lp, tg, [5, 5], [3, 2])
    with pytest.raises(ValueError, match=r"sum\(target_lengths\) = 4"):
        EF.ctc_loss(lp, _e(np.array([1, 2, 3])), [5, 5], [2, 2])
    with pytest.raises(IndexError, match="target label 7 is out of range"):
        EF.ctc_loss(lp, _e(np.array([[1, 7], [3, 1]])), [5, 5], [2, 2])
    with pytest.raises(ValueError, match="one entry per batch element"):
        EF.ctc_loss(lp, tg, [5], [2, 2])
    with pytest.raises(ValueError, match=r"blank must be in \[0, 4\)"):
        EF.ctc_loss(lp, tg, [5, 5], [2, 2], blank=4)
    with pytest.raises(ValueError, match=r"log_probs of shape \(T, N, C\)"):
        EF.ctc_loss(_e(np.zeros((5, 2, 4, 1))), tg, [5, 5], [2, 2])


def test_ctc_double_backward_raises():
    lp = ember.tensor(np.random.default_rng(10).standard_normal((4, 1, 3)), requires_grad=True)
    loss = EF.ctc_loss(lp, ember.tensor(np.array([[1, 2]])), [4], [2])
    (g,) = ember.autograd.grad(loss, [lp], create_graph=True)
    with pytest.raises(RuntimeError, match="ctc_loss: double backward"):
        g.sum().backward()


def test_module_options_and_errors():
    m = nn.CrossEntropyLoss(reduction="sum", label_smoothing=0.1)
    assert (m.reduction, m.label_smoothing, m.ignore_index) == ("sum", 0.1, -100)
    assert nn.MSELoss(size_average=False).reduction == "sum"
    assert nn.L1Loss(reduce=False).reduction == "none"
    with pytest.raises(ValueError, match="reduction"):
        nn.MSELoss(reduction="batchmean")
    assert nn.KLDivLoss(reduction="batchmean").reduction == "batchmean"
    with pytest.raises(ValueError, match="MultiMarginLoss.*p == 1 and p == 2"):
        nn.MultiMarginLoss(p=3)


def test_cross_entropy_fast_path_has_no_graph_for_targets():
    # the loss of a classifier step: value and gradient against the closed form
    x = np.random.default_rng(11).standard_normal((8, 6)).astype(np.float32)
    t = np.arange(8) % 6
    xe = ember.tensor(x, requires_grad=True)
    loss = EF.cross_entropy(xe, ember.tensor(t))
    loss.backward()
    p = np.exp(x - x.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    np.testing.assert_allclose(loss.item(), -np.log(p[np.arange(8), t]).mean(), rtol=1e-5)
    p[np.arange(8), t] -= 1
    np.testing.assert_allclose(xe.grad.numpy(), p / 8, rtol=1e-5, atol=1e-7)
    assert xe.grad.dtype == ember.float32
