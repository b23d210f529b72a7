"""ember.nn.init: distributions by moments and bounds, gains, fans, orthogonal, dirac, and the
default initialization of layers (compared with PyTorch's distributions)."""

import math

import numpy as np
import pytest

import ember
from ember import nn
from ember.nn import init

torch = pytest.importorskip("torch")


def _np(t):
    return t.detach().numpy()


def _uniform_ok(a, lo, hi):
    """Bounds respected (and nearly reached), mean/std those of U(lo, hi) within 5 sigma."""
    assert a.min() >= lo and a.max() <= hi
    assert a.min() < lo + 0.01 * (hi - lo) and a.max() > hi - 0.01 * (hi - lo)
    sd = (hi - lo) / math.sqrt(12)
    assert abs(a.mean() - (lo + hi) / 2) < 5 * sd / math.sqrt(a.size)  # 5 sigma
    np.testing.assert_allclose(a.std(), sd, rtol=5 / math.sqrt(a.size))


def _normal_ok(a, mean, std):
    assert abs(a.mean() - mean) < 5 * std / math.sqrt(a.size)  # 5 sigma
    np.testing.assert_allclose(a.std(), std, rtol=5 / math.sqrt(2 * a.size))


def test_uniform_normal_constant():
    t = ember.empty(300, 400)
    _uniform_ok(_np(init.uniform_(t, -2.0, 3.0)), -2.0, 3.0)
    _uniform_ok(_np(init.uniform_(t)), 0.0, 1.0)
    _normal_ok(_np(init.normal_(t, 1.5, 0.3)), 1.5, 0.3)
    assert np.all(_np(init.constant_(t, 0.7)) == np.float32(0.7))
    assert np.all(_np(init.zeros_(t)) == 0) and np.all(_np(init.ones_(t)) == 1)
    assert init.uniform_(t) is t


def test_initializers_do_not_record_grad():
    p = nn.Parameter(ember.empty(3, 4))
    init.xavier_uniform_(p)
    assert p.grad_fn is None and p.requires_grad


@pytest.mark.parametrize("shape", [(200, 300), (64, 32, 3, 3), (100, 20, 5)])
def test_xavier(shape):
    fan_in = shape[1] * int(np.prod(shape[2:]))
    fan_out = shape[0] * int(np.prod(shape[2:]))
    gain = 1.7
    a = gain * math.sqrt(6 / (fan_in + fan_out))
    _uniform_ok(_np(init.xavier_uniform_(ember.empty(*shape), gain=gain)), -a, a)
    _normal_ok(_np(init.xavier_normal_(ember.empty(*shape), gain=gain)), 0,
               gain * math.sqrt(2 / (fan_in + fan_out)))


@pytest.mark.parametrize("shape", [(200, 300), (64, 32, 3, 3)])
@pytest.mark.parametrize("mode", ["fan_in", "fan_out"])
@pytest.mark.parametrize("nl,a", [("relu", 0), ("leaky_relu", 0.2), ("leaky_relu", math.sqrt(5)),
                                  ("tanh", 0)])
def test_kaiming(shape, mode, nl, a):
    fan_in, fan_out = init._calculate_fan_in_and_fan_out(ember.empty(*shape))
    fan = fan_in if mode == "fan_in" else fan_out
    std = torch.nn.init.calculate_gain(nl, a) / math.sqrt(fan)
    bound = math.sqrt(3) * std
    _uniform_ok(_np(init.kaiming_uniform_(ember.empty(*shape), a=a, mode=mode,
                                          nonlinearity=nl)), -bound, bound)
    _normal_ok(_np(init.kaiming_normal_(ember.empty(*shape), a=a, mode=mode, nonlinearity=nl)),
               0, std)


def test_kaiming_bad_mode():
    with pytest.raises(ValueError, match="fan_in"):
        init.kaiming_uniform_(ember.empty(3, 3), mode="fan")


@pytest.mark.parametrize("mean,std,a,b", [(0.0, 1.0, -2.0, 2.0), (0.5, 2.0, -1.0, 3.0),
                                          (0.0, 0.02, -0.04, 0.04)])
def test_trunc_normal_matches_torch_moments(mean, std, a, b):
    e = _np(init.trunc_normal_(ember.empty(400, 500), mean, std, a, b))
    t = torch.nn.init.trunc_normal_(torch.empty(400, 500), mean, std, a, b).numpy()
    assert e.min() >= a and e.max() <= b
    assert abs(e.mean() - t.mean()) < 0.02 * std
    np.testing.assert_allclose(e.std(), t.std(), rtol=0.02)


@pytest.mark.parametrize("nl", ["linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d",
                                "conv_transpose2d", "conv_transpose3d", "sigmoid", "tanh",
                                "relu", "leaky_relu", "selu"])
def test_calculate_gain_equals_torch(nl):
    assert init.calculate_gain(nl) == pytest.approx(torch.nn.init.calculate_gain(nl), rel=1e-15)
    if nl == "leaky_relu":
        for slope in (0, 0.2, 1, math.sqrt(5)):
            assert init.calculate_gain(nl, slope) == \
                pytest.approx(torch.nn.init.calculate_gain(nl, slope), rel=1e-15)


def test_calculate_gain_errors():
    with pytest.raises(ValueError, match="unsupported nonlinearity"):
        init.calculate_gain("swishy")
    with pytest.raises(ValueError, match="not a number"):
        init.calculate_gain("leaky_relu", "x")


@pytest.mark.parametrize("shape", [(5, 3), (8, 4, 3), (16, 3, 5, 5), (4, 2, 3, 3, 3), (7, 1)])
def test_fan_in_fan_out_equals_torch(shape):
    assert init._calculate_fan_in_and_fan_out(ember.empty(*shape)) == \
        torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(shape))


def test_fan_needs_two_dims():
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        init.xavier_uniform_(ember.empty(5))


@pytest.mark.parametrize("shape", [(6, 6), (4, 9), (9, 4), (3, 2, 2, 2)])
def test_orthogonal(shape):
    w = _np(init.orthogonal_(ember.empty(*shape, dtype=ember.float64), gain=2.0))
    flat = w.reshape(shape[0], -1) / 2.0
    if flat.shape[0] <= flat.shape[1]:
        np.testing.assert_allclose(flat @ flat.T, np.eye(flat.shape[0]), atol=1e-12)
    else:
        np.testing.assert_allclose(flat.T @ flat, np.eye(flat.shape[1]), atol=1e-12)


@pytest.mark.parametrize("shape,groups", [((4, 4, 3, 3), 1), ((6, 3, 3), 2), ((4, 2, 1, 3, 3), 2),
                                          ((2, 5, 3, 3), 1), ((5, 3, 4, 4), 1)])
def test_dirac_equals_torch_and_is_identity_conv(shape, groups):
    w = init.dirac_(ember.empty(*shape), groups)
    t = torch.nn.init.dirac_(torch.empty(shape), groups)
    np.testing.assert_array_equal(_np(w), t.numpy())
    if len(shape) == 4 and shape[0] == shape[1] and groups == 1:  # an identity convolution
        x = torch.randn(2, shape[1], 7, 7)
        y = torch.nn.functional.conv2d(x, torch.tensor(_np(w)), padding=shape[-1] // 2)
        np.testing.assert_allclose(y.numpy(), x.numpy(), rtol=1e-6, atol=1e-6)


def test_eye_and_sparse():
    np.testing.assert_array_equal(_np(init.eye_(ember.empty(3, 5))), np.eye(3, 5))
    with pytest.raises(ValueError, match="2-D"):
        init.eye_(ember.empty(3))
    w = _np(init.sparse_(ember.empty(100, 30), sparsity=0.3, std=0.5))
    assert np.all((w == 0).sum(0) >= 30)
    nz = w[w != 0]
    np.testing.assert_allclose(nz.std(), 0.5, rtol=0.1)


# ---------------------------------------------------------------------------- layer defaults
def _compare_samples(e, t, rel=0.03, bounded=True):
    """Same support (min/max within 3% of the range, if bounded) and moments as PyTorch's."""
    span = max(t.max() - t.min(), 1e-12)
    if bounded:
        assert abs(e.min() - t.min()) < rel * span and abs(e.max() - t.max()) < rel * span
    assert abs(e.mean() - t.mean()) < rel * span
    np.testing.assert_allclose(e.std(), t.std(), rtol=rel)


def test_linear_default_init_matches_torch():
    e, t = nn.Linear(400, 300), torch.nn.Linear(400, 300)
    _compare_samples(_np(e.weight), t.weight.detach().numpy())
    bound = 1 / math.sqrt(400)
    assert np.abs(_np(e.weight)).max() <= bound and np.abs(_np(e.bias)).max() <= bound
    eb = np.concatenate([_np(nn.Linear(400, 300).bias) for _ in range(20)])
    _uniform_ok(eb, -bound, bound)


def test_bilinear_embedding_layernorm_prelu_defaults():
    e, t = nn.Bilinear(30, 40, 50), torch.nn.Bilinear(30, 40, 50)
    _compare_samples(_np(e.weight), t.weight.detach().numpy())
    _compare_samples(_np(nn.Embedding(500, 100).weight),
                     torch.nn.Embedding(500, 100).weight.detach().numpy(), bounded=False)
    ln, tln = nn.LayerNorm((3, 4)), torch.nn.LayerNorm((3, 4))
    np.testing.assert_array_equal(_np(ln.weight), tln.weight.detach().numpy())
    np.testing.assert_array_equal(_np(ln.bias), tln.bias.detach().numpy())
    for n in (1, 5):
        p, tp = nn.PReLU(n), torch.nn.PReLU(n)
        np.testing.assert_array_equal(_np(p.weight), tp.weight.detach().numpy())
        assert p.weight.dtype == ember.float32
    assert nn.PReLU(3, init=0.1).weight.detach().numpy().tolist() == pytest.approx([0.1] * 3)
