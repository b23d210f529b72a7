"""Convolution layers and functions against PyTorch (values, input/weight/bias gradients)."""

import numpy as np
import pytest

import ember
from ember import nn
from ember.nn import functional as F
from tests.nn.harness import check_module, torch
from tests.oracle import check

RNG = np.random.default_rng(0)
# PyTorch warns that it copies the input for even kernels with padding="same"
pytestmark = [pytest.mark.filterwarnings("ignore:Using padding='same':UserWarning"),
              pytest.mark.usefixtures("kernels")]  # col2im has a compiled kernel


def _x(*shape):
    return RNG.standard_normal(shape)


CONV2D_CASES = [
    # in, out, k, kwargs, input shape
    (3, 4, 3, {}, (2, 3, 7, 6)),
    (3, 4, 3, dict(stride=2, padding=1), (2, 3, 9, 8)),
    (3, 4, (3, 2), dict(stride=(2, 1), padding=(1, 0), dilation=(1, 2)), (2, 3, 8, 7)),
    (4, 6, 3, dict(groups=2, bias=False), (2, 4, 6, 6)),
    (4, 4, 3, dict(groups=4, padding=1), (3, 4, 5, 5)),  # depthwise
    (3, 5, 4, dict(padding="same"), (2, 3, 7, 6)),  # even kernel: asymmetric padding
    (3, 5, 3, dict(padding="same", dilation=2), (2, 3, 7, 6)),
    (3, 5, 3, dict(padding="valid"), (2, 3, 5, 5)),
    (2, 3, 1, {}, (2, 2, 4, 3)),  # 1x1
    (2, 3, 5, dict(padding=2), (1, 2, 5, 5)),
    (3, 4, 3, dict(padding=1), (3, 5, 5)),  # unbatched
    (2, 3, 3, dict(padding=2, padding_mode="reflect"), (2, 2, 5, 6)),
    (2, 3, 3, dict(padding=1, padding_mode="replicate"), (2, 2, 5, 6)),
    (2, 3, 3, dict(padding=(1, 2), padding_mode="circular"), (2, 2, 5, 6)),
]


@pytest.mark.oracle
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CONV2D_CASES, ids=lambda c: str(c[3]) + str(c[4]))
def test_conv2d_module(case, dtype):
    cin, cout, k, kw, shape = case
    check_module(lambda: nn.Conv2d(cin, cout, k, **kw), lambda: torch.nn.Conv2d(cin, cout, k, **kw),
                 [_x(*shape)], dtype=dtype)


CONV1D_CASES = [
    (1, 25, 5, dict(stride=2, padding=1), (4, 1, 40)),
    (25, 25, 3, dict(stride=2, padding=1), (4, 25, 19)),
    (4, 6, 3, dict(groups=2, dilation=2, bias=False), (2, 4, 11)),
    (3, 3, 4, dict(padding="same"), (2, 3, 9)),
    (3, 2, 3, dict(padding=2, padding_mode="reflect"), (2, 3, 8)),
    (3, 2, 3, {}, (3, 8)),
]


@pytest.mark.oracle
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CONV1D_CASES, ids=lambda c: str(c[3]) + str(c[4]))
def test_conv1d_module(case, dtype):
    cin, cout, k, kw, shape = case
    check_module(lambda: nn.Conv1d(cin, cout, k, **kw), lambda: torch.nn.Conv1d(cin, cout, k, **kw),
                 [_x(*shape)], dtype=dtype)


TRANSPOSE_CASES = [
    (3, 4, 3, {}, (2, 3, 5, 4)),
    (3, 4, 3, dict(stride=2, padding=1, output_padding=1), (2, 3, 4, 5)),
    (4, 6, (3, 2), dict(stride=(2, 3), groups=2, bias=False), (2, 4, 3, 4)),
    (2, 3, 3, dict(dilation=2, padding=2, stride=2, output_padding=(1, 0)), (1, 2, 4, 4)),
    (2, 2, 2, dict(stride=2), (2, 3, 3)),  # unbatched
    (4, 4, 3, dict(groups=4, stride=2, padding=1), (2, 4, 3, 3)),
]


@pytest.mark.oracle
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", TRANSPOSE_CASES, ids=lambda c: str(c[3]) + str(c[4]))
def test_conv_transpose2d_module(case, dtype):
    cin, cout, k, kw, shape = case
    check_module(lambda: nn.ConvTranspose2d(cin, cout, k, **kw),
                 lambda: torch.nn.ConvTranspose2d(cin, cout, k, **kw), [_x(*shape)], dtype=dtype)


@pytest.mark.oracle
@pytest.mark.parametrize("kw", [dict(), dict(stride=3, padding=1, output_padding=2),
                                dict(groups=3, dilation=2)])
def test_conv_transpose1d_module(kw):
    check_module(lambda: nn.ConvTranspose1d(3, 6, 3, **kw),
                 lambda: torch.nn.ConvTranspose1d(3, 6, 3, **kw), [_x(2, 3, 7)],
                 dtype=np.float64)


@pytest.mark.oracle
def test_conv_transpose2d_output_size():
    x = _x(2, 3, 5, 5)
    for size in [(9, 9), (10, 9), [2, 4, 10, 10]]:
        check_module(lambda: nn.ConvTranspose2d(3, 4, 3, stride=2, padding=1),
                     lambda: torch.nn.ConvTranspose2d(3, 4, 3, stride=2, padding=1), [x],
                     forward_kwargs=dict(output_size=size), dtype=np.float64)
    with pytest.raises(ValueError, match="ConvTranspose2d.*valid sizes"):
        nn.ConvTranspose2d(3, 4, 3, stride=2, padding=1)(ember.tensor(x), output_size=(11, 9))


@pytest.mark.oracle
def test_functional_conv_and_transpose():
    x, w, b = _x(2, 4, 6, 5), _x(6, 2, 3, 3), _x(6)
    check(lambda x, w, b: F.conv2d(x, w, b, stride=(1, 2), padding=(2, 1), groups=2),
          lambda x, w, b: torch.nn.functional.conv2d(x, w, b, stride=(1, 2), padding=(2, 1),
                                                     groups=2), [x, w, b])
    g, wt, bt = _x(2, 6, 4, 3), _x(6, 2, 3, 3), _x(4)
    check(lambda g, w, b: F.conv_transpose2d(g, w, b, stride=2, padding=1, output_padding=1,
                                             groups=2, dilation=1),
          lambda g, w, b: torch.nn.functional.conv_transpose2d(g, w, b, 2, 1, 1, 2, 1),
          [g, wt, bt])
    check(lambda x, w: F.conv1d(x, w, padding="same", dilation=3),
          lambda x, w: torch.nn.functional.conv1d(x, w, padding="same", dilation=3),
          [_x(2, 3, 10), _x(4, 3, 2)])
    check(lambda x, w: F.conv3d(x, w, stride=2, padding=1),
          lambda x, w: torch.nn.functional.conv3d(x, w, stride=2, padding=1),
          [_x(1, 2, 5, 4, 5), _x(3, 2, 3, 2, 3)])
    check(lambda x, w: F.conv_transpose1d(x, w, stride=2),
          lambda x, w: torch.nn.functional.conv_transpose1d(x, w, stride=2),
          [_x(2, 3, 5), _x(3, 2, 4)])


def _t(a):
    return ember.tensor(a, requires_grad=True)


def test_gradcheck_conv2d_second_order():
    x, w, b = _t(_x(2, 4, 5, 5)), _t(_x(4, 2, 3, 2)), _t(_x(4))

    def f(x, w, b):
        return F.conv2d(x, w, b, stride=(2, 1), padding=(1, 2), dilation=(1, 2), groups=2)

    assert ember.autograd.gradcheck(f, (x, w, b))
    assert ember.autograd.gradgradcheck(f, (x, w, b))


def test_gradcheck_conv_transpose2d_second_order():
    x, w, b = _t(_x(2, 4, 3, 3)), _t(_x(4, 3, 3, 2)), _t(_x(6))

    def f(x, w, b):
        return F.conv_transpose2d(x, w, b, stride=2, padding=1, output_padding=1, groups=2)

    assert ember.autograd.gradcheck(f, (x, w, b))
    assert ember.autograd.gradgradcheck(f, (x, w, b))


@pytest.mark.oracle
def test_double_backward_matches_torch():
    x, w = _x(2, 3, 6, 6), _x(4, 3, 3, 3)
    ex, ew = _t(x), _t(w)
    tx, tw = (torch.tensor(a, requires_grad=True) for a in (x, w))
    ey = (F.conv2d(ex, ew, stride=2, padding=1) ** 2).sum()
    ty = (torch.nn.functional.conv2d(tx, tw, stride=2, padding=1) ** 2).sum()
    (egx,) = ember.autograd.grad([ey], [ex], create_graph=True)
    (tgx,) = torch.autograd.grad(ty, tx, create_graph=True)
    (egx * egx).sum().backward()
    (tgx * tgx).sum().backward()
    np.testing.assert_allclose(ew.grad.numpy(), tw.grad.numpy(), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(ex.grad.numpy(), tx.grad.numpy(), rtol=1e-9, atol=1e-9)


def test_parameters_and_init():
    m = nn.Conv2d(6, 16, 5, groups=2)
    assert m.weight.shape == (16, 3, 5, 5) and m.bias.shape == (16,)
    bound = 1 / np.sqrt(3 * 25)
    w, b = m.weight.detach().numpy(), m.bias.detach().numpy()
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.8 * bound
    assert np.abs(b).max() <= bound and np.abs(b).std() > 0
    t = nn.ConvTranspose2d(4, 6, 3, groups=2)
    assert t.weight.shape == (4, 3, 3, 3)
    assert np.abs(t.bias.detach().numpy()).max() <= 1 / np.sqrt(27)
    assert "stride=(2, 2)" in repr(nn.Conv2d(1, 2, 3, stride=2))
    assert m.weight.dtype == ember.float32


def test_errors():
    conv = nn.Sequential(nn.Conv2d(3, 8, 3))
    with pytest.raises(ValueError) as e:
        conv(ember.zeros(32, 28, 28))
    assert "Conv2d '0': expected input of shape (N, 3, H, W) or (3, H, W), got (32, 28, 28)" \
        in str(e.value)
    with pytest.raises(ValueError, match=r"Conv1d.*\(N, 2, L\)"):
        nn.Conv1d(2, 2, 3)(ember.zeros(1, 3, 8))
    with pytest.raises(RuntimeError, match="kernel size"):
        nn.Conv2d(3, 8, 5)(ember.zeros(1, 3, 4, 4))
    with pytest.raises(ValueError, match="divisible by groups"):
        nn.Conv2d(3, 8, 3, groups=2)
    with pytest.raises(ValueError, match="padding='same' is not supported for strided"):
        nn.Conv2d(3, 8, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match="padding='same' is not supported for strided"):
        F.conv2d(ember.zeros(1, 3, 5, 5), ember.zeros(2, 3, 3, 3), stride=2, padding="same")
    with pytest.raises(ValueError, match="invalid padding string"):
        F.conv1d(ember.zeros(1, 3, 5), ember.zeros(2, 3, 3), padding="full")
    with pytest.raises(RuntimeError, match="channels"):
        F.conv2d(ember.zeros(1, 4, 5, 5), ember.zeros(2, 3, 3, 3))
    with pytest.raises(RuntimeError, match="4-D"):
        F.conv2d(ember.zeros(5, 5), ember.zeros(2, 3, 3, 3))
    with pytest.raises(ValueError, match="output padding must be smaller"):
        F.conv_transpose2d(ember.zeros(1, 2, 3, 3), ember.zeros(2, 2, 3, 3), stride=2,
                           output_padding=2)


# ------------------------------------------------------------------ fast ("wide") im2col path
@pytest.mark.oracle
@pytest.mark.parametrize("case", [
    # LeNet-5 and MNIST-1D shapes (large enough to use the pooled buffers)
    (2, dict(stride=1, padding=2), (16, 1, 28, 28), (6, 1, 5, 5)),
    (2, dict(stride=1), (16, 6, 14, 14), (16, 6, 5, 5)),
    (1, dict(stride=2, padding=1), (100, 1, 40), (25, 1, 5)),
    (1, dict(stride=2, padding=1), (100, 25, 19), (25, 25, 3)),
    # strides that do not divide the padded width, dilation, asymmetric sizes
    (2, dict(stride=(2, 3), padding=(1, 2), dilation=(2, 1)), (3, 4, 13, 17), (5, 4, 3, 4)),
    (1, dict(stride=3, dilation=2), (4, 3, 23), (2, 3, 4)),
    (3, dict(stride=(1, 2, 2), padding=1), (2, 2, 5, 6, 7), (3, 2, 2, 3, 3)),
], ids=str)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv_wide_path(case, dtype):
    nd, kw, xs, ws = case
    ef, tf = getattr(F, f"conv{nd}d"), getattr(torch.nn.functional, f"conv{nd}d")
    # float32 weight gradients sum thousands of terms: only the summation order differs
    tol = dict(grad_rtol=1e-3, grad_atol=1e-3) if dtype == np.float32 else {}
    check(lambda x, w, b: ef(x, w, b, **kw), lambda x, w, b: tf(x, w, b, **kw),
          [_x(*xs).astype(dtype), _x(*ws).astype(dtype), _x(ws[0]).astype(dtype)], **tol)


@pytest.mark.oracle
@pytest.mark.parametrize("bad", ["x_inf", "x_nan", "w_inf", "g_nan"])
def test_conv_non_finite_matches_torch(bad):
    """A garbage column of the wide layout must not leak a NaN/inf into the gradients."""
    x, w, g = _x(2, 3, 7, 6), _x(4, 3, 3, 3), _x(2, 4, 7, 6)
    if bad == "x_inf":
        x[0, 1, 2, 5] = np.inf  # last column: read by the garbage columns of other rows
    elif bad == "x_nan":
        x[1, 0, 0, 0] = np.nan
    elif bad == "w_inf":
        w[1, 2, 0, 2] = -np.inf
    else:
        g[0, 3, 1, 5] = np.nan
    ex, ew = _t(x), _t(w)
    tx, tw = (torch.tensor(a, requires_grad=True) for a in (x, w))
    ey = F.conv2d(ex, ew, padding=1)
    ty = torch.nn.functional.conv2d(tx, tw, padding=1)
    np.testing.assert_allclose(ey.detach().numpy(), ty.detach().numpy(), rtol=1e-12)
    ey.backward(ember.tensor(g))
    ty.backward(torch.tensor(g))
    np.testing.assert_allclose(ex.grad.numpy(), tx.grad.numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ew.grad.numpy(), tw.grad.numpy(), rtol=1e-9, atol=1e-12)


def test_conv_buffer_reuse_is_safe():
    """Pooled column/result buffers are never handed out while a graph or tensor holds them."""
    m = nn.Conv2d(3, 8, 3, padding=1)
    x1 = ember.tensor(_x(8, 3, 32, 32).astype(np.float32), requires_grad=True)
    x2 = ember.tensor(_x(8, 3, 32, 32).astype(np.float32), requires_grad=True)
    y1, y2 = m(x1), m(x2)  # two graphs alive at once, same shapes
    y1_before = y1.detach().numpy().copy()
    y3 = m(x2)  # a third call while y1 and y2 are alive
    np.testing.assert_array_equal(y1.detach().numpy(), y1_before)
    np.testing.assert_array_equal(y3.detach().numpy(), y2.detach().numpy())
    y1.sum().backward()
    g1 = m.weight.grad.numpy().copy()
    m.weight.grad = None
    (y2 * 2).sum().backward()
    tm = torch.nn.Conv2d(3, 8, 3, padding=1)
    with torch.no_grad():
        tm.weight.copy_(torch.tensor(m.weight.detach().numpy()))
        tm.bias.copy_(torch.tensor(m.bias.detach().numpy()))
    tx1, tx2 = (torch.tensor(x.detach().numpy(), requires_grad=True) for x in (x1, x2))
    tm(tx1).sum().backward()
    np.testing.assert_allclose(g1, tm.weight.grad.numpy(), rtol=1e-4, atol=1e-4)
    tm.weight.grad = None
    (tm(tx2) * 2).sum().backward()
    np.testing.assert_allclose(m.weight.grad.numpy(), tm.weight.grad.numpy(), rtol=1e-4,
                               atol=1e-4)
    np.testing.assert_allclose(x1.grad.numpy(), tx1.grad.numpy(), rtol=1e-4, atol=1e-5)


def test_conv_module_lean_path_checks():
    """The module's lean path still rejects what the full path rejects."""
    m = nn.Conv2d(3, 4, 5)
    with pytest.raises(ValueError, match="Conv2d.*expected input"):
        m(ember.zeros(1, 2, 8, 8))  # wrong channel count
    with pytest.raises(RuntimeError, match="Conv2d.*kernel size"):
        m(ember.zeros(1, 3, 4, 8))  # smaller than the kernel
    with pytest.raises(RuntimeError, match="dtype"):
        m(ember.zeros(1, 3, 8, 8, dtype=ember.float64))
    m.stride = (2, 2)  # attributes changed after construction are honoured
    assert m(ember.zeros(1, 3, 9, 9)).shape == (1, 4, 3, 3)
    m.weight = nn.Parameter(ember.zeros(4, 3, 3, 3))
    assert m(ember.zeros(1, 3, 9, 9)).shape == (1, 4, 4, 4)


@pytest.mark.oracle
def test_conv_settings_changed_after_a_call_take_effect():
    # the layer caches the primitive's arguments after its first call; setting an attribute
    # drops that cache
    x = np.random.default_rng(5).standard_normal((2, 3, 9, 9)).astype(np.float32)
    e, t = nn.Conv2d(3, 4, 3), torch.nn.Conv2d(3, 4, 3)
    e.load_state_dict({k: v.detach().numpy() for k, v in t.state_dict().items()})
    for stride, dilation in [((1, 1), (1, 1)), ((2, 2), (1, 1)), ((2, 1), (2, 2))]:
        e.stride, t.stride = stride, stride
        e.dilation, t.dilation = dilation, dilation
        with ember.no_grad():
            out = e(ember.tensor(x))
        np.testing.assert_allclose(out.numpy(), t(torch.tensor(x)).detach().numpy(),
                                   rtol=1e-4, atol=1e-5)


# few input taps (C * kh * kw <= 32), stride 1, no dilation: the direct kernel (conv2d_direct)
DIRECT_CASES = [
    ((2, 1, 28, 28), (6, 1, 5, 5), dict(padding=2)),  # LeNet's first layer
    ((3, 2, 9, 11), (7, 2, 3, 3), dict(padding=1)),
    ((2, 3, 6, 40), (4, 3, 3, 3), dict()),  # output rows longer than one block
    ((2, 8, 5, 7), (5, 8, 1, 1), dict()),  # 1x1: the generic tap loop
    ((2, 1, 8, 9), (3, 1, 4, 4), dict(padding="same")),  # padding (1, 2): asymmetric
    ((1, 2, 7, 6), (4, 2, 3, 5), dict(padding=(1, 2))),  # a 3x5 kernel
    ((2, 1, 3, 3), (2, 1, 3, 3), dict()),  # a 1x1 output
]


# few output channels (<= 16) and more taps: the channel-vectorized kernel (conv2d_chan)
CHAN_CASES = [
    ((3, 6, 14, 14), (16, 6, 5, 5), dict()),  # LeNet's second layer
    ((2, 3, 11, 12), (9, 3, 3, 3), dict(stride=2, padding=1)),
    ((2, 4, 13, 10), (5, 4, 3, 3), dict(dilation=(2, 1), padding="same")),
    ((2, 1, 28, 28), (6, 1, 5, 5), dict(stride=(1, 2), padding=(2, 0))),
    ((1, 40, 5, 5), (3, 40, 1, 1), dict()),  # 1x1 over many channels
    ((2, 5, 9, 9), (16, 5, 4, 4), dict(stride=3)),  # input rows never read
    ((2, 3, 2, 2), (4, 3, 1, 1), dict(stride=10, padding=3)),  # only padding is read
]


@pytest.mark.oracle
@pytest.mark.parametrize("kw", [dict(stride=2, padding=1), dict(dilation=3), dict(padding=2)])
def test_conv1d_few_outputs_chan_path(kw):
    args = [_x(3, 4, 40), _x(8, 4, 5), _x(8)]
    check(lambda *a: F.conv1d(*a, **kw), lambda *a: torch.nn.functional.conv1d(*a, **kw),
          args, grad_rtol=1e-3, grad_atol=1e-3)


@pytest.mark.oracle
@pytest.mark.parametrize("case", DIRECT_CASES + CHAN_CASES,
                         ids=lambda c: f"{c[0]}-{c[1]}-{'-'.join(map(str, c[2].values()))}")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bias", [True, False])
def test_conv2d_direct_kernel_paths(case, dtype, bias):
    xs, ws, kw = case
    tol = dict(grad_rtol=1e-3, grad_atol=1e-3) if dtype == np.float32 else {}
    args = [_x(*xs).astype(dtype), _x(*ws).astype(dtype)]
    if bias:
        args.append(_x(ws[0]).astype(dtype))
    check(lambda *a: F.conv2d(*a, **kw), lambda *a: torch.nn.functional.conv2d(*a, **kw),
          args, **tol)
