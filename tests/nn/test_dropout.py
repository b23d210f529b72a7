"""Dropout layers: identity in eval, masks of the right rate and shape, exact scaling, gradient
equal to the mask, edge cases p=0 / p=1, reproducibility with ember.manual_seed."""

import math

import numpy as np
import pytest

import ember
from ember import nn
from ember.nn import functional as F

ALPHA_SAT = 1.7580993408473766  # SELU's negative saturation, -alpha * scale


def _x(*shape, seed=0):
    return np.random.default_rng(seed).uniform(0.5, 2.0, size=shape).astype(np.float32)


def _binom_bound(n, p):
    """Five standard deviations of a binomial proportion (flaky with probability < 1e-6)."""
    return 5 * math.sqrt(p * (1 - p) / n)


@pytest.mark.parametrize("layer,shape", [(nn.Dropout, (50, 40)), (nn.Dropout1d, (4, 6, 5)),
                                         (nn.Dropout2d, (2, 3, 4, 4)),
                                         (nn.Dropout3d, (2, 3, 2, 2, 2)),
                                         (nn.AlphaDropout, (10, 10)),
                                         (nn.FeatureAlphaDropout, (2, 3, 4))])
def test_eval_is_identity(layer, shape):
    m = layer(0.4).eval()
    x = ember.tensor(_x(*shape), requires_grad=True)
    y = m(x)
    np.testing.assert_array_equal(y.detach().numpy(), x.detach().numpy())


@pytest.mark.parametrize("p", [0.2, 0.5, 0.8])
def test_dropout_rate_scale_and_grad(p):
    x = ember.tensor(_x(200, 300), requires_grad=True)
    y = nn.Dropout(p)(x)
    yv, xv = y.detach().numpy(), x.detach().numpy()
    kept = yv != 0
    frac_dropped = 1 - kept.mean()
    assert abs(frac_dropped - p) < _binom_bound(kept.size, p)
    scale = np.float32(1.0 / (1.0 - p))
    np.testing.assert_allclose(yv[kept], xv[kept] * scale, rtol=1e-6)
    g = np.random.default_rng(1).standard_normal(yv.shape).astype(np.float32)
    y.backward(ember.tensor(g))
    np.testing.assert_allclose(x.grad.numpy(), np.where(kept, g * scale, 0), rtol=1e-6)


@pytest.mark.parametrize("layer,shape,unbatched", [
    (nn.Dropout1d, (30, 40, 7), (40, 7)), (nn.Dropout2d, (30, 40, 3, 3), None),
    (nn.Dropout3d, (20, 30, 2, 2, 3), (30, 2, 2, 3))])
def test_channel_dropout(layer, shape, unbatched):
    p = 0.3
    m = layer(p)
    x = ember.tensor(_x(*shape), requires_grad=True)
    y = m(x)
    yv = y.detach().numpy()
    flat = yv.reshape(shape[0], shape[1], -1)
    chan_zero = (flat == 0).all(-1)
    chan_kept = (flat != 0).all(-1)
    assert np.all(chan_zero | chan_kept), "channels must be dropped as a whole"
    assert abs(chan_zero.mean() - p) < _binom_bound(chan_zero.size, p)
    xv = x.detach().numpy().reshape(flat.shape)
    np.testing.assert_allclose(flat[chan_kept], xv[chan_kept] * np.float32(1 / (1 - p)),
                               rtol=1e-6)
    y.sum().backward()
    gv = x.grad.numpy().reshape(flat.shape)
    want = np.broadcast_to(np.where(chan_kept[..., None], 1 / (1 - p), 0.0), gv.shape)
    np.testing.assert_allclose(gv, want, rtol=1e-6)
    if unbatched is not None:  # (C, *) input: channel dim 0
        yu = m(ember.tensor(_x(*unbatched))).numpy().reshape(unbatched[0], -1)
        assert np.all((yu == 0).all(-1) | (yu != 0).all(-1))
        assert 0 < (yu == 0).all(-1).sum() < unbatched[0]


def test_dropout2d_3d_input_warns_like_torch():
    x = ember.tensor(_x(20, 30, 5))
    with pytest.warns(UserWarning, match="3-D input"):
        y = nn.Dropout2d(0.5)(x).numpy()
    assert np.all((y == 0).all(-1) | (y != 0).all(-1))  # (N, C, L) channels


def test_channel_dropout_shape_errors():
    with pytest.raises(ValueError, match=r"Dropout1d: expected input of shape \(N, C, L\)"):
        nn.Dropout1d()(ember.zeros(2, 3, 4, 5))
    with pytest.raises(ValueError, match="Dropout2d"):
        nn.Dropout2d()(ember.zeros(2, 3))
    with pytest.raises(ValueError, match="between 0 and 1"):
        nn.Dropout(1.5)
    with pytest.raises(ValueError, match="between 0 and 1"):
        F.dropout(ember.zeros(2), -0.1)


@pytest.mark.parametrize("layer", [nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.AlphaDropout,
                                   nn.FeatureAlphaDropout])
def test_p_zero_and_one(layer):
    x = ember.tensor(_x(3, 4, 5, 2), requires_grad=True)
    if layer is nn.Dropout1d:
        x = ember.tensor(_x(3, 4, 5), requires_grad=True)
    y0 = layer(0.0)(x)
    np.testing.assert_array_equal(y0.detach().numpy(), x.detach().numpy())
    y1 = layer(1.0)(x)
    np.testing.assert_array_equal(y1.detach().numpy(), np.zeros(x.shape))
    y1.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.zeros(x.shape))


@pytest.mark.parametrize("layer", [nn.Dropout, nn.Dropout2d, nn.AlphaDropout])
def test_manual_seed_reproducible(layer):
    x = ember.tensor(_x(4, 5, 6, 6))
    m = layer(0.5)
    ember.manual_seed(123)
    a = m(x).numpy()
    b = m(x).numpy()
    ember.manual_seed(123)
    c = m(x).numpy()
    np.testing.assert_array_equal(a, c)
    assert not np.array_equal(a, b)


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_alpha_dropout_values_moments_and_grad(p):
    a = 1.0 / math.sqrt((ALPHA_SAT ** 2 * p + 1) * (1 - p))
    b = ALPHA_SAT * a * p
    x = ember.tensor(np.random.default_rng(0).standard_normal((400, 500)).astype(np.float32),
                     requires_grad=True)
    y = nn.AlphaDropout(p)(x)
    yv, xv = y.detach().numpy(), x.detach().numpy()
    dropped = np.isclose(yv, -ALPHA_SAT * a + b, rtol=0, atol=1e-6)
    assert abs(dropped.mean() - p) < _binom_bound(dropped.size, p)
    np.testing.assert_allclose(yv[~dropped], xv[~dropped] * a + b, rtol=1e-5, atol=1e-6)
    # keeps zero mean and unit variance of a standard normal input
    assert abs(yv.mean()) < 0.01 and abs(yv.std() - 1) < 0.01
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.where(dropped, 0.0, a), rtol=1e-6)


def test_feature_alpha_dropout_channels():
    x = ember.tensor(_x(40, 50, 6))
    y = nn.FeatureAlphaDropout(0.5)(x).numpy()
    same = np.ptp(y, axis=-1) == 0  # dropped channels are constant
    assert 0.3 < same.mean() < 0.7


def test_functional_defaults_and_repr():
    import torch

    x = ember.tensor(_x(5, 5))
    # F.alpha_dropout defaults to training=False like torch
    np.testing.assert_array_equal(F.alpha_dropout(x, 0.5).numpy(), x.numpy())
    assert not np.array_equal(F.dropout(x, 0.5).numpy(), x.numpy())
    for name in ("Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout",
                 "FeatureAlphaDropout"):
        assert repr(getattr(nn, name)(0.25)) == repr(getattr(torch.nn, name)(0.25))
