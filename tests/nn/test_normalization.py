"""Normalization layers vs PyTorch: forward, input/parameter gradients, running buffers."""

import numpy as np
import pytest

import ember
from ember import nn
from ember.nn import functional as F
from tests.nn.harness import check_module, torch

pytestmark = pytest.mark.usefixtures("kernels")  # compiled and NumPy kernels

tnn = torch.nn


def _x(*shape, seed=0, scale=2.0, shift=0.5):
    return np.random.default_rng(seed).standard_normal(shape) * scale + shift


def _randomize(t_mod, seed=1):
    """Non-trivial affine parameters for the torch twin (copied into ember by the harness)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in t_mod.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.5 + 1.0)
    return t_mod


# ---------------------------------------------------------------------------- batch norm
@pytest.mark.oracle
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(8, 5), (6, 5, 7)])
@pytest.mark.parametrize("kw", [{}, {"affine": False}, {"track_running_stats": False},
                                {"momentum": None}, {"bias": False}])
def test_batchnorm1d(dtype, shape, kw):
    if "bias" in kw and int(torch.__version__.split(".")[0]) < 2:
        pytest.skip("bias argument")
    check_module(lambda: nn.BatchNorm1d(5, **kw),
                 lambda: _randomize(tnn.BatchNorm1d(5, **kw)), [_x(*shape)], dtype=dtype)


@pytest.mark.oracle
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kw", [{}, {"affine": False}, {"track_running_stats": False},
                                {"momentum": None}, {"eps": 1e-3, "momentum": 0.3}])
def test_batchnorm2d(dtype, kw):
    check_module(lambda: nn.BatchNorm2d(3, **kw),
                 lambda: _randomize(tnn.BatchNorm2d(3, **kw)), [_x(4, 3, 5, 6)], dtype=dtype)


@pytest.mark.oracle
def test_batchnorm3d():
    check_module(lambda: nn.BatchNorm3d(2), lambda: _randomize(tnn.BatchNorm3d(2)),
                 [_x(3, 2, 3, 4, 2)], dtype=np.float64)


@pytest.mark.oracle
@pytest.mark.parametrize("momentum", [0.1, None])
@pytest.mark.parametrize("cls,shape", [("BatchNorm1d", (16, 4)), ("BatchNorm1d", (5, 4, 3)),
                                       ("BatchNorm2d", (3, 4, 5, 5))])
def test_running_buffers_after_several_steps(momentum, cls, shape):
    e, t = getattr(nn, cls)(4, momentum=momentum), getattr(tnn, cls)(4, momentum=momentum)
    for step in range(4):
        x = _x(*shape, seed=step, scale=step + 1.0, shift=step - 1.0).astype(np.float32)
        e(ember.tensor(x))
        t(torch.tensor(x))
    for name in ("running_mean", "running_var"):
        np.testing.assert_allclose(getattr(e, name).numpy(), getattr(t, name).numpy(),
                                   rtol=1e-5, atol=1e-6)
    assert int(e.num_batches_tracked.item()) == 4 == int(t.num_batches_tracked)
    assert e.num_batches_tracked.dtype == ember.int64
    # eval uses the running stats: equal outputs on a fresh input
    e.eval()
    t.eval()
    x = _x(*shape, seed=9).astype(np.float32)
    np.testing.assert_allclose(e(ember.tensor(x)).detach().numpy(),
                               t(torch.tensor(x)).detach().numpy(),
                               rtol=1e-4, atol=1e-5)
    # eval does not change the buffers
    before = e.running_mean.numpy().copy()
    e(ember.tensor(x))
    np.testing.assert_array_equal(e.running_mean.numpy(), before)


def test_cumulative_average_closed_form():
    bn = nn.BatchNorm1d(2, momentum=None)
    xs = [_x(10, 2, seed=s) for s in range(3)]
    for x in xs:
        bn(ember.tensor(x.astype(np.float32)))
    want_mean = np.mean([x.mean(0) for x in xs], axis=0)
    want_var = np.mean([x.var(0, ddof=1) for x in xs], axis=0)
    np.testing.assert_allclose(bn.running_mean.numpy(), want_mean, rtol=1e-5)
    np.testing.assert_allclose(bn.running_var.numpy(), want_var, rtol=1e-5)


def test_batchnorm_state_dict_and_defaults():
    bn = nn.BatchNorm2d(3)
    assert list(bn.state_dict()) == list(tnn.BatchNorm2d(3).state_dict())
    np.testing.assert_array_equal(bn.running_var.numpy(), np.ones(3))
    np.testing.assert_array_equal(bn.weight.detach().numpy(), np.ones(3))
    assert list(nn.BatchNorm1d(3, track_running_stats=False).state_dict()) == ["weight", "bias"]
    assert nn.BatchNorm1d(3, track_running_stats=False).running_mean is None
    assert list(nn.BatchNorm1d(3, affine=False).state_dict()) == \
        ["running_mean", "running_var", "num_batches_tracked"]


def test_batchnorm_errors():
    with pytest.raises(ValueError, match=r"BatchNorm2d 'features.1': expected input of shape "
                                         r"\(N, 16, H, W\), got \(32, 28, 28\)"):
        m = nn.Sequential()
        m.add_module("features", nn.Sequential(nn.Identity(), nn.BatchNorm2d(16)))
        m(ember.zeros(32, 28, 28))
    with pytest.raises(ValueError, match=r"BatchNorm1d: expected input of shape \(N, 4\) or "
                                         r"\(N, 4, L\), got \(2, 3\)"):
        nn.BatchNorm1d(4)(ember.zeros(2, 3))
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        nn.BatchNorm1d(4)(ember.zeros(1, 4))
    nn.BatchNorm1d(4).eval()(ember.zeros(1, 4))  # fine in eval


def test_batchnorm_reset_and_to_double():
    bn = nn.BatchNorm1d(3)
    bn(ember.tensor(_x(5, 3).astype(np.float32)))
    bn.reset_running_stats()
    np.testing.assert_array_equal(bn.running_mean.numpy(), np.zeros(3))
    assert int(bn.num_batches_tracked.item()) == 0
    bn.double()
    assert bn.running_mean.dtype == ember.float64 and bn.num_batches_tracked.dtype == ember.int64
    y = bn(ember.tensor(_x(5, 3)))
    assert y.dtype == ember.float64


# ---------------------------------------------------------------------------- instance norm
@pytest.mark.oracle
@pytest.mark.parametrize("kw", [{}, {"affine": True}, {"track_running_stats": True},
                                {"affine": True, "track_running_stats": True, "momentum": 0.3}])
def test_instancenorm(kw):
    check_module(lambda: nn.InstanceNorm1d(3, **kw),
                 lambda: _randomize(tnn.InstanceNorm1d(3, **kw)), [_x(4, 3, 6)],
                 dtype=np.float64)
    check_module(lambda: nn.InstanceNorm2d(3, **kw),
                 lambda: _randomize(tnn.InstanceNorm2d(3, **kw)), [_x(2, 3, 4, 5)],
                 dtype=np.float64)


@pytest.mark.oracle
def test_instancenorm_unbatched():
    check_module(lambda: nn.InstanceNorm2d(3, affine=True),
                 lambda: _randomize(tnn.InstanceNorm2d(3, affine=True)), [_x(3, 4, 5)],
                 dtype=np.float64)


# ---------------------------------------------------------------------------- group norm
@pytest.mark.oracle
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("groups,shape", [(2, (3, 6, 4, 5)), (3, (2, 6, 7)), (3, (4, 6)),
                                          (1, (2, 6, 3, 3))])
@pytest.mark.parametrize("affine", [True, False])
def test_groupnorm(dtype, groups, shape, affine):
    check_module(lambda: nn.GroupNorm(groups, 6, affine=affine),
                 lambda: _randomize(tnn.GroupNorm(groups, 6, affine=affine)), [_x(*shape)],
                 dtype=dtype)


def test_groupnorm_errors():
    with pytest.raises(ValueError, match="divisible"):
        nn.GroupNorm(4, 6)
    with pytest.raises(ValueError, match=r"GroupNorm: expected input of shape \(N, 6, \*\)"):
        nn.GroupNorm(2, 6)(ember.zeros(2, 4, 3))


# ---------------------------------------------------------------------------- layer norm
@pytest.mark.oracle
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ns,shape", [(5, (4, 5)), ((3, 5), (2, 3, 5)), ([2, 3, 4], (2, 3, 4)),
                                      (4, (4,))])
@pytest.mark.parametrize("kw", [{}, {"elementwise_affine": False}, {"bias": False},
                                {"eps": 1e-2}])
def test_layernorm(dtype, ns, shape, kw):
    check_module(lambda: nn.LayerNorm(ns, **kw), lambda: _randomize(tnn.LayerNorm(ns, **kw)),
                 [_x(*shape)], dtype=dtype)


def test_layernorm_error():
    with pytest.raises(ValueError, match=r"LayerNorm: expected input of shape \(\*, 3, 4\), "
                                         r"got \(2, 4, 3\)"):
        nn.LayerNorm((3, 4))(ember.zeros(2, 4, 3))


# ---------------------------------------------------------------------------- rms / lrn
@pytest.mark.oracle
@pytest.mark.parametrize("kw", [{}, {"eps": 1e-5}, {"elementwise_affine": False}])
def test_rmsnorm(kw):
    for dtype in (np.float32, np.float64):
        check_module(lambda: nn.RMSNorm((3, 4), **kw),
                     lambda: _randomize(tnn.RMSNorm((3, 4), **kw)), [_x(2, 3, 4)], dtype=dtype)


@pytest.mark.oracle
@pytest.mark.parametrize("size", [1, 2, 3, 4])
def test_local_response_norm(size):
    check_module(lambda: nn.LocalResponseNorm(size, alpha=0.1, k=2.0),
                 lambda: tnn.LocalResponseNorm(size, alpha=0.1, k=2.0), [_x(2, 5, 3, 2)],
                 dtype=np.float64)


# ---------------------------------------------------------------------------- reprs
@pytest.mark.oracle
def test_reprs_match_torch():
    pairs = [("BatchNorm1d", (3,), {}), ("BatchNorm2d", (4,),
              {"momentum": None, "affine": False, "track_running_stats": False}),
             ("GroupNorm", (2, 4), {}), ("GroupNorm", (2, 4), {"affine": False}),
             ("LayerNorm", ((3, 4),), {}), ("LayerNorm", (3,), {"elementwise_affine": False}),
             ("LayerNorm", (3,), {"bias": False}),
             ("InstanceNorm1d", (3,), {}), ("InstanceNorm2d", (3,), {"affine": True}),
             ("RMSNorm", (3,), {}), ("RMSNorm", ([3, 4],), {"eps": 1e-5}),
             ("LocalResponseNorm", (2,), {})]
    for name, args, kw in pairs:
        assert repr(getattr(nn, name)(*args, **kw)) == repr(getattr(tnn, name)(*args, **kw))


# ---------------------------------------------------------------------------- functional
@pytest.mark.oracle
def test_functional_batch_norm_updates_given_buffers():
    x = _x(6, 3, 4)
    rm, rv = np.zeros(3), np.ones(3)
    erm, erv = ember.tensor(rm), ember.tensor(rv)
    trm, trv = torch.tensor(rm), torch.tensor(rv)
    y = F.batch_norm(ember.tensor(x), erm, erv, training=True, momentum=0.2)
    ty = torch.nn.functional.batch_norm(torch.tensor(x), trm, trv, training=True, momentum=0.2)
    np.testing.assert_allclose(y.numpy(), ty.numpy(), rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(erm.numpy(), trm.numpy(), rtol=1e-12)
    np.testing.assert_allclose(erv.numpy(), trv.numpy(), rtol=1e-12)


def _gradcheck(fn, *arrays):
    ts = [ember.tensor(a, requires_grad=True) for a in arrays]
    assert ember.autograd.gradcheck(fn, ts, eps=1e-6, atol=1e-5, rtol=1e-4)
    assert ember.autograd.gradgradcheck(fn, ts, eps=1e-6, atol=1e-4, rtol=1e-3)


def test_gradcheck_batch_norm():
    _gradcheck(lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True) ** 2,
               _x(4, 3, 2), _x(3, seed=1), _x(3, seed=2))


def test_gradcheck_layer_norm():
    _gradcheck(lambda x, w, b: F.layer_norm(x, (2, 3), w, b) ** 2,
               _x(2, 2, 3), _x(2, 3, seed=1), _x(2, 3, seed=2))
    _gradcheck(lambda x: F.layer_norm(x, (4,)) ** 3, _x(3, 4))


def test_gradcheck_group_norm():
    _gradcheck(lambda x, w, b: F.group_norm(x, 2, w, b) ** 2,
               _x(2, 4, 3), _x(4, seed=1), _x(4, seed=2))


@pytest.mark.oracle
def test_second_order_matches_torch():
    """d/dx of sum((dL/dx)^2) through layer_norm and batch_norm equals torch's."""
    x, w = _x(4, 5), _x(5, seed=3)

    def run(lib, fn):
        xt = lib.tensor(x, requires_grad=True)
        wt = lib.tensor(w, requires_grad=True)
        y = fn(lib, xt, wt)
        (gx,) = lib.autograd.grad((y ** 3).sum(), [xt], create_graph=True)
        return lib.autograd.grad((gx * gx).sum(), [xt, wt])

    def ln(lib, xt, wt):
        mod = F if lib is ember else torch.nn.functional
        return mod.layer_norm(xt, (5,), wt)

    def bn(lib, xt, wt):
        mod = F if lib is ember else torch.nn.functional
        return mod.batch_norm(xt, None, None, wt, None, training=True)

    for fn in (ln, bn):
        for e, t in zip(run(ember, fn), run(torch, fn)):
            np.testing.assert_allclose(e.numpy(), t.numpy(), rtol=1e-8, atol=1e-9)
