"""Pooling, unpooling and interpolation against PyTorch (values, indices, gradients)."""

import numpy as np
import pytest

import ember
from ember import nn
from ember.nn import functional as F
from tests.nn.harness import check_module, torch
from tests.oracle import check

pytestmark = pytest.mark.usefixtures("kernels")  # max pooling has a compiled kernel

RNG = np.random.default_rng(0)
TF = torch.nn.functional


def _x(*shape):
    return RNG.standard_normal(shape)


MAX2D = [
    dict(kernel_size=2),
    dict(kernel_size=3, stride=2, padding=1),
    dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 0), dilation=(1, 2)),
    dict(kernel_size=3, stride=2, ceil_mode=True),
    dict(kernel_size=2, stride=2, padding=1, ceil_mode=True),
    dict(kernel_size=3, stride=1, padding=1, dilation=1),  # overlapping windows
    dict(kernel_size=2, dilation=2, padding=1, stride=3, ceil_mode=True),
]


@pytest.mark.oracle
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kw", MAX2D, ids=str)
def test_max_pool2d(kw, dtype):
    x = _x(2, 3, 9, 8)
    check_module(lambda: nn.MaxPool2d(**kw), lambda: torch.nn.MaxPool2d(**kw), [x], dtype=dtype)
    e, ei = F.max_pool2d(ember.tensor(x), return_indices=True, **kw)
    t, ti = TF.max_pool2d(torch.tensor(x), return_indices=True, **kw)
    np.testing.assert_array_equal(ei.numpy(), ti.numpy())
    np.testing.assert_array_equal(e.numpy(), t.numpy())


@pytest.mark.oracle
def test_max_pool_ties_and_unbatched():
    x = np.zeros((2, 6, 6))
    x[0, :3, :3] = 1.0  # ties inside windows: first index wins
    check(lambda a: F.max_pool2d(a, 3, 1, return_indices=True),
          lambda a: TF.max_pool2d(a, 3, 1, return_indices=True), [x])
    check(lambda a: F.max_pool1d(a, 3, 2, 1, ceil_mode=True, return_indices=True),
          lambda a: TF.max_pool1d(a, 3, 2, 1, ceil_mode=True, return_indices=True),
          [_x(2, 3, 10)])


@pytest.mark.oracle
@pytest.mark.parametrize("kw", [dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1),
                                dict(kernel_size=4, stride=3, dilation=2, ceil_mode=True)],
                         ids=str)
def test_max_pool1d(kw):
    check_module(lambda: nn.MaxPool1d(**kw), lambda: torch.nn.MaxPool1d(**kw), [_x(3, 2, 13)])


AVG2D = [
    dict(kernel_size=2),
    dict(kernel_size=3, stride=2, padding=1),
    dict(kernel_size=3, stride=2, padding=1, count_include_pad=False),
    dict(kernel_size=3, stride=2, padding=1, ceil_mode=True),
    dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False),
    dict(kernel_size=(3, 2), stride=(1, 2), padding=(1, 1), divisor_override=5),
    dict(kernel_size=2, stride=3, ceil_mode=True),
]


@pytest.mark.oracle
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kw", AVG2D, ids=str)
def test_avg_pool2d(kw, dtype):
    check_module(lambda: nn.AvgPool2d(**kw), lambda: torch.nn.AvgPool2d(**kw),
                 [_x(2, 3, 9, 8)], dtype=dtype)


@pytest.mark.oracle
@pytest.mark.parametrize("kw", [dict(kernel_size=3), dict(kernel_size=4, stride=2, padding=2,
                                                          ceil_mode=True,
                                                          count_include_pad=False)], ids=str)
def test_avg_pool1d(kw):
    check_module(lambda: nn.AvgPool1d(**kw), lambda: torch.nn.AvgPool1d(**kw), [_x(2, 3, 11)])
    check_module(lambda: nn.AvgPool1d(**kw), lambda: torch.nn.AvgPool1d(**kw), [_x(3, 11)])


@pytest.mark.oracle
@pytest.mark.parametrize("size", [(3, 4), 1, (5, None), (7, 9), (9, 3)], ids=str)
def test_adaptive_pool2d(size):
    x = _x(2, 3, 7, 9)
    check_module(lambda: nn.AdaptiveAvgPool2d(size), lambda: torch.nn.AdaptiveAvgPool2d(size),
                 [x], dtype=np.float64)
    check_module(lambda: nn.AdaptiveMaxPool2d(size), lambda: torch.nn.AdaptiveMaxPool2d(size),
                 [x], dtype=np.float64)
    _, ei = F.adaptive_max_pool2d(ember.tensor(x), size, return_indices=True)
    _, ti = TF.adaptive_max_pool2d(torch.tensor(x), size, return_indices=True)
    np.testing.assert_array_equal(ei.numpy(), ti.numpy())


@pytest.mark.oracle
@pytest.mark.parametrize("size", [1, 3, 4, 10])
def test_adaptive_pool1d(size):
    x = _x(2, 3, 10)
    check_module(lambda: nn.AdaptiveAvgPool1d(size), lambda: torch.nn.AdaptiveAvgPool1d(size),
                 [x])
    check_module(lambda: nn.AdaptiveMaxPool1d(size, return_indices=True),
                 lambda: torch.nn.AdaptiveMaxPool1d(size, return_indices=True), [x],
                 compare_outputs=[0])


@pytest.mark.oracle
def test_max_unpool2d():
    x = _x(2, 3, 6, 6)
    _, idx = TF.max_pool2d(torch.tensor(x), 2, return_indices=True)
    y = _x(2, 3, 3, 3)
    check(lambda a: F.max_unpool2d(a, ember.tensor(idx.numpy()), 2),
          lambda a: TF.max_unpool2d(a, idx, 2), [y])
    check(lambda a: nn.MaxUnpool2d(2)(a, ember.tensor(idx.numpy()), output_size=(7, 7)),
          lambda a: torch.nn.MaxUnpool2d(2)(a, idx, output_size=(7, 7)), [y])


INTERP2D = [
    dict(size=(7, 5), mode="nearest"),
    dict(scale_factor=2, mode="nearest"),
    dict(scale_factor=1.7, mode="nearest"),
    dict(size=(3, 2), mode="nearest"),
    dict(size=(8, 9), mode="nearest-exact"),
    dict(size=(7, 11), mode="bilinear"),
    dict(size=(7, 11), mode="bilinear", align_corners=True),
    dict(scale_factor=(1.5, 2.5), mode="bilinear"),
    dict(scale_factor=0.6, mode="bilinear", align_corners=True),
    dict(scale_factor=1.5, mode="bilinear", recompute_scale_factor=True),
    dict(size=(2, 3), mode="bilinear"),
    dict(size=(2, 3), mode="area"),
]


@pytest.mark.oracle
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kw", INTERP2D, ids=str)
def test_interpolate2d(kw, dtype):
    check(lambda a: F.interpolate(a, **kw), lambda a: TF.interpolate(a, **kw),
          [_x(2, 3, 4, 5).astype(dtype)])


@pytest.mark.oracle
@pytest.mark.parametrize("kw", [dict(size=9, mode="linear"), dict(scale_factor=3, mode="linear"),
                                dict(size=9, mode="linear", align_corners=True),
                                dict(size=1, mode="linear", align_corners=True),
                                dict(scale_factor=2.5, mode="nearest")], ids=str)
def test_interpolate1d_and_upsample(kw):
    x = _x(2, 3, 6)
    check(lambda a: F.interpolate(a, **kw), lambda a: TF.interpolate(a, **kw), [x])
    check_module(lambda: nn.Upsample(**kw), lambda: torch.nn.Upsample(**kw), [x])


@pytest.mark.oracle
def test_upsampling_aliases():
    x = _x(1, 2, 3, 4)
    check_module(lambda: nn.UpsamplingBilinear2d(scale_factor=2),
                 lambda: torch.nn.UpsamplingBilinear2d(scale_factor=2), [x])
    check_module(lambda: nn.UpsamplingNearest2d(size=(5, 7)),
                 lambda: torch.nn.UpsamplingNearest2d(size=(5, 7)), [x])


def _t(a):
    return ember.tensor(a, requires_grad=True)


def test_gradgradcheck_pools():
    x = _t(_x(2, 2, 5, 6))
    assert ember.autograd.gradgradcheck(lambda a: F.max_pool2d(a, 3, 2, 1) ** 2, (x,))
    assert ember.autograd.gradgradcheck(lambda a: F.avg_pool2d(a, 3, 2, 1, ceil_mode=True) ** 2,
                                        (x,))
    assert ember.autograd.gradgradcheck(
        lambda a: F.interpolate(a, scale_factor=1.5, mode="bilinear") ** 2, (x,))


def test_errors():
    with pytest.raises(ValueError, match="pad should be at most half"):
        F.max_pool2d(ember.zeros(1, 1, 5, 5), 2, padding=2)
    with pytest.raises(ValueError, match=r"MaxPool2d: expected input of shape \(N, C, H, W\)"):
        nn.MaxPool2d(2)(ember.zeros(5, 5))
    with pytest.raises(RuntimeError, match="too small"):
        F.max_pool2d(ember.zeros(1, 1, 2, 2), 3)
    with pytest.raises(NotImplementedError, match="bilinear mode needs 4D"):
        F.interpolate(ember.zeros(1, 1, 5), size=3, mode="bilinear")
    with pytest.raises(ValueError, match="align_corners option"):
        F.interpolate(ember.zeros(1, 1, 5), size=3, mode="nearest", align_corners=True)
    with pytest.raises(ValueError, match="exactly one"):
        F.interpolate(ember.zeros(1, 1, 5))


# ------------------------------------------------------------------ non-overlapping fast path
BLOCK = [
    ((4, 6, 28, 28), dict(kernel_size=2)),  # LeNet-5
    ((4, 16, 10, 10), dict(kernel_size=2, stride=2)),
    ((2, 3, 9, 7), dict(kernel_size=2)),  # odd sizes: the last row/column is dropped
    ((2, 3, 9, 8), dict(kernel_size=(3, 2))),
    ((2, 3, 8, 6), dict(kernel_size=2, ceil_mode=True)),  # exact tiling in ceil mode
    ((2, 3, 9, 7), dict(kernel_size=2, ceil_mode=True)),  # partial windows: general path
    ((2, 3, 8, 8), dict(kernel_size=2, padding=1)),  # padding: general path
    ((3, 5, 8), dict(kernel_size=2)),  # unbatched
]


@pytest.mark.oracle
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,kw", BLOCK, ids=str)
def test_max_pool2d_block(shape, kw, dtype):
    x = _x(*shape)
    x[..., ::3, :] = np.maximum(x[..., ::3, :], 0.0)  # some zeros: ties inside windows
    x = np.maximum(x, -0.5).round(1)  # many exact ties
    check_module(lambda: nn.MaxPool2d(**kw), lambda: torch.nn.MaxPool2d(**kw), [x], dtype=dtype)
    check(lambda a: F.max_pool2d(a, **kw), lambda a: TF.max_pool2d(a, **kw), [x.astype(dtype)])
    e, ei = F.max_pool2d(ember.tensor(x), return_indices=True, **kw)
    t, ti = TF.max_pool2d(torch.tensor(x), return_indices=True, **kw)
    np.testing.assert_array_equal(ei.numpy(), ti.numpy())
    np.testing.assert_array_equal(e.numpy(), t.numpy())


@pytest.mark.oracle
def test_max_pool_block_ties_nan_inf():
    x = np.zeros((2, 2, 4, 6))
    x[0, 0, 0, 1] = x[0, 0, 1, 0] = 1.0  # tie between offsets 1 and 2: the first wins
    x[0, 1, :2, :2] = [[np.nan, 2.0], [np.nan, 3.0]]  # two NaNs: PyTorch keeps the last
    x[1, 0, 2:, 2:4] = [[5.0, np.nan], [np.nan, np.nan]]
    x[1, 1, 0, :2] = [-np.inf, -np.inf]
    x[1, 1, 1, :2] = [-np.inf, -np.inf]  # an all -inf window
    x[1, 1, 2, 4] = np.inf
    for kw in (dict(kernel_size=2), dict(kernel_size=(2, 3)), dict(kernel_size=(1, 2))):
        e, ei = F.max_pool2d(ember.tensor(x), return_indices=True, **kw)
        t, ti = TF.max_pool2d(torch.tensor(x), return_indices=True, **kw)
        np.testing.assert_array_equal(ei.numpy(), ti.numpy())
        np.testing.assert_array_equal(e.numpy(), t.numpy())
        check(lambda a, kw=kw: nn.MaxPool2d(**kw)(a),
              lambda a, kw=kw: torch.nn.MaxPool2d(**kw)(a), [x])
    # a non-finite upstream gradient lands only on the argmax (never inf * 0 = NaN)
    ex, tx = ember.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    g = np.ones((2, 2, 2, 3))
    g[0, 0, 0, 0] = np.inf
    F.max_pool2d(ex, 2).backward(ember.tensor(g))
    TF.max_pool2d(tx, 2).backward(torch.tensor(g))
    np.testing.assert_array_equal(ex.grad.numpy(), tx.grad.numpy())


@pytest.mark.oracle
def test_max_pool_block_1d_3d_and_strided_input():
    check_module(lambda: nn.MaxPool1d(2), lambda: torch.nn.MaxPool1d(2), [_x(3, 4, 11)])
    check_module(lambda: nn.MaxPool3d(2), lambda: torch.nn.MaxPool3d(2), [_x(2, 2, 4, 5, 6)])
    x = _x(2, 3, 8, 10)
    check(lambda a: F.max_pool2d(a.transpose(2, 3), 2),  # a non-contiguous input
          lambda a: TF.max_pool2d(a.transpose(2, 3), 2), [x])
    check(lambda a: F.max_pool2d(a[:, :, 1:, ::2], 2), lambda a: TF.max_pool2d(a[:, :, 1:, ::2], 2),
          [x])


def test_max_pool_block_double_backward():
    x = ember.tensor(_x(2, 3, 6, 4), requires_grad=True)
    assert ember.autograd.gradcheck(lambda a: F.max_pool2d(a, 2), (x,))
    assert ember.autograd.gradgradcheck(lambda a: F.max_pool2d(a, 2) ** 2, (x,))
    assert ember.autograd.gradgradcheck(lambda a: nn.MaxPool2d(2)(a) ** 2, (x,))


def test_max_pool_module_attribute_change():
    m = nn.MaxPool2d(2)
    x = ember.tensor(_x(1, 2, 6, 6))
    assert m(x).shape == (1, 2, 3, 3)
    m.stride, m.padding = 1, 1  # overlapping windows now: the general path
    np.testing.assert_array_equal(m(x).numpy(), TF.max_pool2d(torch.tensor(x.numpy()), 2, 1, 1))
    with pytest.raises(RuntimeError, match="MaxPool2d.*too small"):
        nn.MaxPool2d(3)(ember.tensor(_x(1, 2, 2, 6)))
