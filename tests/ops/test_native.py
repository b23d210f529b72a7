"""The compiled kernels (``ember.ops._native``) against the plain NumPy path they replace.

The PyTorch-oracle tests of the recurrent layers and the optimizers run on both paths (the
``kernels`` fixture); here each kernel is compared with its NumPy twin directly, bit for bit
where both do the same float operations in the same order (the optimizer updates).
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import ember
from ember.ops import native
from ember.ops import optim_kernels as K

needs_native = pytest.mark.skipif(not native.available(), reason="compiled kernels not built")


def test_extension_is_built():
    # CI installs with a C compiler: a silent build failure must not pass unnoticed
    if os.environ.get("EMBER_NATIVE") == "0":
        assert not native.enabled()
        return
    assert native.available(), ("ember.ops._native did not build: reinstall with a C compiler "
                                "(pip install -e .), or set EMBER_NATIVE=0 to run without it")
    assert native.enabled()


def test_disabled_switches_to_numpy():
    with native.disabled():
        assert native.kernel("adam_many") is None and not native.enabled()
    assert native.enabled() == (native.available() and os.environ.get("EMBER_NATIVE") != "0")


def _both(update, arrays):
    """Run ``update(*arrays)`` three times on copies, natively and in NumPy; return both."""
    results = []
    for on in (True, False):
        arrs = [None if a is None else a.copy() for a in arrays]
        native.set_enabled(on)
        try:
            for _ in range(3):
                update(*arrs)
        finally:
            native.set_enabled(True)
        results.append(arrs)
    return results


def _opt_arrays(dtype, n=1000, amsgrad=False, seed=0):
    r = np.random.default_rng(seed)
    p, g = r.standard_normal(n).astype(dtype), r.standard_normal(n).astype(dtype)
    m = (r.standard_normal(n) * 0.1).astype(dtype)
    v = np.abs(r.standard_normal(n) * 0.01).astype(dtype)
    return [p, g, m, v, v * 1.5 if amsgrad else None]


ADAM = [dict(), dict(weight_decay=0.1), dict(weight_decay=0.1, decoupled=True),
        dict(maximize=True, weight_decay=0.05), dict(amsgrad=True), dict(beta1=0.3),
        dict(maximize=True, decoupled=True, weight_decay=0.2, amsgrad=True)]


@needs_native
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("opts", ADAM, ids=lambda o: ",".join(o) or "plain")
def test_adam_kernel_matches_numpy_bitwise(dtype, opts):
    opts = dict(opts)
    amsgrad = opts.pop("amsgrad", False)
    kw = dict(lr=1e-2, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, decoupled=False,
              maximize=False)
    kw.update(opts)
    ws = K.Workspace()

    def update(p, g, m, v, vmax):  # the compiled kernel (natively) or adam_step (NumPy)
        K.adam_many([(p, g, m, v, vmax, 3.0)], amsgrad=amsgrad, ws=ws, **kw)

    # 1000 is not a multiple of the kernel's 512-element block: the tail is covered
    nat, ref = _both(update, _opt_arrays(dtype, amsgrad=amsgrad))
    for a, b in zip(nat, ref):
        if a is not None:
            assert a.dtype == dtype
            np.testing.assert_array_equal(a, b)


SGD = [dict(), dict(momentum=0.9), dict(momentum=0.9, nesterov=True),
       dict(momentum=0.8, dampening=0.3, weight_decay=0.01),
       dict(momentum=0.5, maximize=True, weight_decay=0.1), dict(maximize=True)]


@needs_native
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("opts", SGD, ids=lambda o: ",".join(o) or "plain")
@pytest.mark.parametrize("first", [True, False])
def test_sgd_kernel_matches_numpy_bitwise(dtype, opts, first):
    kw = dict(lr=0.05, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False,
              maximize=False)
    kw.update(opts)
    ws = K.Workspace()

    def update(p, g, buf):  # the compiled kernel (natively) or sgd_step (NumPy)
        K.sgd_many([(p, g, buf if kw["momentum"] else None, first)], ws=ws, **kw)

    nat, ref = _both(update, _opt_arrays(dtype)[:3])
    for a, b in zip(nat, ref):
        np.testing.assert_array_equal(a, b)


@needs_native
def test_optimizer_kernels_fall_back_on_strided_and_mixed_arrays():
    # a transposed (non-contiguous) parameter and a float16 one take the NumPy path
    base = _opt_arrays(np.float32, n=60)
    strided = [None if a is None else a.reshape(6, 10).T for a in base]
    ws = K.Workspace()

    def update(p, g, m, v, vmax):
        K.adam_many([(p, g, m, v, vmax, 1.0)], lr=0.1, beta1=0.9, beta2=0.99, eps=1e-8,
                    weight_decay=0.0, decoupled=False, maximize=False, amsgrad=False, ws=ws)

    nat, ref = _both(update, strided)
    np.testing.assert_array_equal(nat[0], ref[0])
    half = [a.astype(np.float16) for a in _opt_arrays(np.float32, n=10)[:4]] + [None]
    nat, ref = _both(update, half)
    np.testing.assert_array_equal(nat[0], ref[0])
    assert nat[0].dtype == np.float16


def _lstm_run(dtype, bidirectional, proj, with_state, train, seed=0):
    ember.manual_seed(seed)
    lstm = ember.nn.LSTM(7, 12, num_layers=2, bidirectional=bidirectional, proj_size=proj,
                         dtype=ember.float64 if dtype == np.float64 else ember.float32)
    r = np.random.default_rng(seed)
    x = ember.tensor(r.standard_normal((5, 3, 7)).astype(dtype), requires_grad=train)
    D = 2 if bidirectional else 1
    Hout = proj or 12
    state = None
    if with_state:
        state = (ember.tensor(r.standard_normal((2 * D, 3, Hout)).astype(dtype)),
                 ember.tensor(r.standard_normal((2 * D, 3, 12)).astype(dtype)))
    if not train:
        with ember.no_grad():
            out, (h, c) = lstm(x, state)
        return [out.numpy(), h.numpy(), c.numpy()]
    out, (h, c) = lstm(x, state)
    (out.sum() * 0.5 + (h * h).sum() + (c * 1.5).sum()).backward()
    return [out.detach().numpy(), h.detach().numpy(), c.detach().numpy(), x.grad.numpy()] + \
        [p.grad.numpy() for p in lstm.parameters()]


@needs_native
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bidirectional,proj,with_state",
                         [(False, 0, False), (True, 0, True), (False, 5, True), (True, 4, False)])
@pytest.mark.parametrize("train", [True, False])
def test_lstm_cell_kernel_matches_numpy(dtype, bidirectional, proj, with_state, train):
    runs = []
    for on in (True, False):
        native.set_enabled(on)
        try:
            runs.append(_lstm_run(dtype, bidirectional, proj, with_state, train))
        finally:
            native.set_enabled(True)
    tol = dict(rtol=1e-12, atol=1e-13) if dtype == np.float64 else dict(rtol=2e-5, atol=2e-6)
    for a, b in zip(*runs):
        assert a.dtype == dtype
        np.testing.assert_allclose(a, b, **tol)


@needs_native
def test_kernel_argument_errors_are_clear():
    lib = native._lib
    p = np.zeros(8, np.float32)

    def sgd(param, grad):
        lib.sgd_many([param], [grad], None, [False], 0.1, 0.0, False, 0.0, 1.0, False)

    with pytest.raises(TypeError, match="grad has format 'd', expected 'f'"):
        sgd(p, np.zeros(8))
    with pytest.raises(ValueError, match="grad holds 7 items, expected 8"):
        sgd(p, np.zeros(7, np.float32))
    with pytest.raises(ValueError, match="not C-contiguous"):
        sgd(np.zeros((4, 4), np.float32).T, np.zeros(16, np.float32))
    with pytest.raises(TypeError, match="float32 or float64"):
        sgd(np.zeros(8, np.int64), np.zeros(8, np.int64))
    with pytest.raises(ValueError, match="read-only"):
        ro = np.zeros(8, np.float32)
        ro.flags.writeable = False
        sgd(ro, p)
    with pytest.raises(ValueError, match="lists of one length"):
        lib.sgd_many([p], [p, p], None, [False], 0.1, 0.0, False, 0.0, 1.0, False)


def _on_and_off(run):
    """``run()`` with the compiled kernels, then with the NumPy ones."""
    out = []
    for on in (True, False):
        native.set_enabled(on)
        try:
            out.append(run())
        finally:
            native.set_enabled(True)
    return out


def _close(runs, dtype):
    tol = dict(rtol=1e-12, atol=1e-13) if dtype == np.float64 else dict(rtol=2e-5, atol=2e-6)
    for a, b in zip(*runs):
        assert a.dtype == b.dtype
        np.testing.assert_allclose(a, b, **tol)


def _same_on_one_and_two_threads(run):
    """``run()`` with the compiled kernels on one thread and on two: the same bits (a kernel
    split in halves sums each half apart and adds the halves in a fixed order)."""
    before = ember.get_num_threads()
    outs = []
    try:
        for threads in (1, 2):
            ember.set_num_threads(threads)
            outs.append(run())
    finally:
        ember.set_num_threads(before)
    for a, b in zip(*outs):
        np.testing.assert_array_equal(a, b)


def _grad_run(make_inputs, f):
    def run():
        xs = make_inputs()
        y = f(*xs)
        (y * ember.tensor(np.linspace(-1, 1, y.numel()).reshape(y.shape).astype(
            y.numpy(force=True).dtype))).sum().backward()
        return [y.detach().numpy()] + [x.grad.numpy() for x in xs if x.requires_grad]
    return run


@needs_native
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", ["plain", "sum", "inf-row", "nan-row", "smoothing"])
@pytest.mark.parametrize("n, c", [(9, 13), (300, 700)])  # (300, 700): split in two halves
def test_cross_entropy_kernel_matches_numpy(dtype, case, n, c):
    r = np.random.default_rng(1)
    x0 = (r.standard_normal((n, c)) * 3).astype(dtype)
    if case == "inf-row":  # a non-finite row sends the whole batch to the NumPy path
        x0[2, 4] = np.inf
    if case == "nan-row":
        x0[n - 4, 0] = np.nan  # (in the second half when split)
    t = ember.tensor(r.integers(0, c, n))
    kw = dict(reduction="sum") if case == "sum" else dict(
        label_smoothing=0.1) if case == "smoothing" else {}

    def run():
        x = ember.tensor(x0.copy(), requires_grad=True)
        loss = ember.nn.functional.cross_entropy(x, t, **kw)
        (loss * 2.5).backward()
        return [loss.detach().numpy(), x.grad.numpy()]

    runs = _on_and_off(run)
    _same_on_one_and_two_threads(run)
    if case in ("inf-row", "nan-row"):  # the same NaN/inf pattern as the NumPy path
        for a, b in zip(*runs):
            np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
        return
    _close(runs, dtype)


@needs_native
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mask", ["none", "causal", "float", "float+causal", "hidden-row",
                                  "bool"])
@pytest.mark.parametrize("L", [6, 160])  # 160: the softmax rows split in two halves
def test_attention_softmax_kernel_matches_numpy(dtype, mask, L):
    r = np.random.default_rng(2)
    S = L
    arrays = [r.standard_normal((2, 3, L, 4)).astype(dtype) for _ in range(3)]
    m, causal = None, "causal" in mask
    if mask.startswith("float"):
        m = ember.tensor((r.standard_normal((L, S)) * 0.5).astype(dtype))
    if mask == "hidden-row":  # row 1 may attend to nothing: zeros there (the NumPy path)
        a = np.zeros((L, S), dtype)
        a[1] = -np.inf
        m = ember.tensor(a)
    if mask == "bool":
        m = ember.tensor(np.tril(np.ones((L, S), bool)))
    from ember.ops.attention import fused_attention

    def make():
        return [ember.tensor(a.copy(), requires_grad=True) for a in arrays]

    def f(q, k, v):  # the primitive: attention modules may pass a mask and is_causal together
        return fused_attention(q, k, v, m, scale=0.5, causal=causal)

    _close(_on_and_off(_grad_run(make, f)), dtype)
    _same_on_one_and_two_threads(_grad_run(make, f))


@needs_native
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("affine", ["both", "weight", "bias", "none"])
@pytest.mark.parametrize("rows", [5, 2000])  # 4 x 2000 rows: split in two halves
def test_layer_norm_kernel_matches_numpy(dtype, affine, rows):
    r = np.random.default_rng(3)
    x0 = (r.standard_normal((4, rows, 24)) * 2 + 1).astype(dtype)
    w0 = r.standard_normal(24).astype(dtype)
    b0 = r.standard_normal(24).astype(dtype)

    def make():
        xs = [ember.tensor(x0.copy(), requires_grad=True)]
        xs.append(ember.tensor(w0.copy(), requires_grad=True) if affine in ("both", "weight")
                  else None)
        xs.append(ember.tensor(b0.copy(), requires_grad=True) if affine in ("both", "bias")
                  else None)
        return xs

    def run():
        x, w, b = make()
        y = ember.nn.functional.layer_norm(x, (24,), w, b, eps=1e-5)
        (y * y * 0.5 + y).sum().backward()
        return [y.detach().numpy()] + [t.grad.numpy() for t in (x, w, b) if t is not None]

    _close(_on_and_off(run), dtype)
    _same_on_one_and_two_threads(run)


def test_every_kernel_is_built():
    # a stale build (an older .so) would silently run NumPy: all kernels must be there
    if not native.available():
        pytest.skip("compiled kernels not built (test_extension_is_built says why)")
    missing = [k for k in native.KERNELS if not hasattr(native._lib, k)]
    assert not missing, f"rebuild ember.ops._native (pip install -e .): missing {missing}"


@needs_native
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_kernel_matches_numpy_and_torch_conventions(dtype):
    x0 = np.array([[-2.0, -0.0, 0.0, 3.0], [np.nan, 1e-30, -1e-30, np.inf]], dtype)
    g0 = np.array([[1.0, 2.0, 3.0, np.inf], [5.0, -np.inf, np.inf, 8.0]], dtype)

    def run():
        x = ember.tensor(x0.copy(), requires_grad=True)
        y = ember.relu(x)
        y.backward(ember.tensor(g0))
        return [y.detach().numpy(), x.grad.numpy()]

    nat, ref = _on_and_off(run)
    # y: NaN kept, negatives to 0; the gradient passes only where y > 0 (0 for an inf g
    # at a dead unit, as PyTorch's threshold_backward)
    np.testing.assert_array_equal(nat[0], np.array([[0, 0, 0, 3], [np.nan, 1e-30, 0, np.inf]],
                                                   dtype))
    np.testing.assert_array_equal(nat[1], np.array([[0, 0, 0, np.inf], [0, -np.inf, 0, 8]],
                                                   dtype))
    for a, b in zip(nat, ref):
        np.testing.assert_array_equal(a, b)


@needs_native
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("conv", [
    dict(dims=2, kernel_size=3, padding=1), dict(dims=2, kernel_size=(2, 3), stride=2),
    dict(dims=2, kernel_size=3, dilation=2, padding=2), dict(dims=1, kernel_size=5, stride=2,
                                                              padding=1),
    dict(dims=3, kernel_size=2, padding=1)], ids=lambda c: "-".join(map(str, c.values())))
def test_conv_col2im_kernel_matches_numpy(dtype, conv):
    conv = dict(conv)
    nd = conv.pop("dims")
    r = np.random.default_rng(4)
    x0 = r.standard_normal((3, 4) + (7,) * nd).astype(dtype)
    F = ember.nn.functional
    fn = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[nd]
    ks = conv.pop("kernel_size")
    ks = (ks,) * nd if isinstance(ks, int) else ks
    w0 = r.standard_normal((5, 4) + tuple(ks)).astype(dtype)

    def make():
        return [ember.tensor(x0.copy(), requires_grad=True),
                ember.tensor(w0.copy(), requires_grad=True)]

    _close(_on_and_off(_grad_run(make, lambda x, w: fn(x, w, **conv))), dtype)


@needs_native
def test_scatter_add_kernel_checks_bounds():
    dst = np.zeros(10, np.float32)
    native._lib.scatter_add(dst, np.ones(6, np.float32), (2, 3), (4, 1), 1)
    np.testing.assert_array_equal(dst, [0, 1, 1, 1, 0, 1, 1, 1, 0, 0])
    native._lib.scatter_add(dst, np.ones(4, np.float32), (2, 2), (0, 2), 0)  # repeated hits
    np.testing.assert_array_equal(dst, [2, 1, 3, 1, 0, 1, 1, 1, 0, 0])
    with pytest.raises(IndexError, match=r"reaches \[3, 10\] outside dst of 10 items"):
        native._lib.scatter_add(dst, np.ones(6, np.float32), (2, 3), (5, 1), 3)
    with pytest.raises(ValueError, match="src holds 5 items, expected 6"):
        native._lib.scatter_add(dst, np.ones(5, np.float32), (2, 3), (4, 1), 0)


@needs_native
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("dims,k,size", [(2, 2, 9), (2, (2, 3), 8), (1, 3, 10), (2, 1, 4)])
def test_max_pool_kernel_matches_numpy(dtype, dims, k, size):
    r = np.random.default_rng(5)
    x0 = r.standard_normal((2, 3) + (size,) * dims).astype(dtype)
    x0.flat[::7] = x0.flat[1::7]  # ties: the first maximum of a window wins
    x0.flat[5] = np.nan  # a NaN window takes its (last) NaN
    pool = ember.nn.functional.max_pool1d if dims == 1 else ember.nn.functional.max_pool2d

    def run():
        x = ember.tensor(x0.copy(), requires_grad=True)
        y = pool(x, k)
        g = ember.tensor(np.linspace(-1, 1, y.numel()).reshape(y.shape).astype(dtype),
                         requires_grad=True)
        (gx,) = ember.autograd.grad(y, x, g, create_graph=True)
        (gg,) = ember.autograd.grad((gx * gx).sum(), g)  # double backward: through the masks
        return [y.detach().numpy(), gx.detach().numpy(), gg.numpy()]

    nat, ref = _on_and_off(run)
    for a, b in zip(nat, ref):
        np.testing.assert_array_equal(a, b)


@needs_native
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_embedding_gradient_kernel_matches_numpy_bitwise(dtype):
    r = np.random.default_rng(6)
    w0 = r.standard_normal((50, 7)).astype(dtype)
    idx = r.integers(0, 50, (40, 30))  # 1,200 lookups of 50 rows: many repeats
    g0 = r.standard_normal((40, 30, 7)).astype(dtype)

    def run():
        w = ember.tensor(w0.copy(), requires_grad=True)
        ember.nn.functional.embedding(ember.tensor(idx), w).backward(ember.tensor(g0))
        x = ember.tensor(w0.copy(), requires_grad=True)
        x[ember.tensor(np.r_[idx[0], -1, -1, -50])].backward(
            ember.tensor(np.ones((33, 7), dtype)))  # negative rows count from the end
        return [w.grad.numpy(), x.grad.numpy()]

    nat, ref = _on_and_off(run)
    for a, b in zip(nat, ref):
        np.testing.assert_array_equal(a, b)
    assert ref[1][49].tolist() == [2.0] * 7 and ref[1][0].tolist() == [
        float(np.sum(idx[0] == 0)) + 1.0] * 7


@needs_native
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", [
    (2, 1, 6, 5, dict(padding=2)), (2, 6, 16, 5, {}), (2, 3, 8, 3, dict(stride=2, padding=1)),
    (2, 9, 10, 3, dict(dilation=2, padding=3)), (2, 8, 40, (2, 3), dict(stride=(1, 2))),
    (1, 1, 25, 5, dict(stride=2, padding=1)), (1, 25, 25, 3, dict(stride=2, padding=1)),
    (1, 4, 33, 4, dict(dilation=3)), (2, 7, 600, 3, dict(padding=1))],
    ids=lambda c: f"{c[0]}d-{c[1]}to{c[2]}-k{c[3]}-{'-'.join(f'{k}{v}' for k, v in c[4].items())}")
@pytest.mark.parametrize("bias", [True, False])
def test_small_direct_conv_matches_gemm_path(dtype, case, bias):
    # no-grad convolutions of small problems (a batch-1 inference) run the compiled direct
    # kernel (over 512 output channels the GEMM path runs instead, also compared here)
    nd, c, o, k, kw = case
    r = np.random.default_rng(7)
    size = (12, 13) if nd == 2 else (23,)
    conv = (ember.nn.Conv2d if nd == 2 else ember.nn.Conv1d)(c, o, k, bias=bias, **kw)
    conv.to(ember.float64 if dtype == np.float64 else ember.float32)
    for n in (1, 3):
        x = ember.tensor(r.standard_normal((n, c) + size).astype(dtype))

        def run(x=x):
            with ember.no_grad():
                return [conv(x).numpy()]

        _close(_on_and_off(run), dtype)


@needs_native
@pytest.mark.parametrize("forward_on", [True, False])
def test_conv_switching_kernels_between_forward_and_backward(forward_on):
    # the compiled path unfolds on an exact grid, the NumPy path on a wider one: a graph made
    # under one and differentiated under the other keeps its own columns' geometry
    r = np.random.default_rng(8)
    x0 = r.standard_normal((2, 3, 9, 9))
    w0 = r.standard_normal((4, 3, 3, 3))

    def grads(switch):
        x = ember.tensor(x0.copy(), requires_grad=True)
        w = ember.tensor(w0.copy(), requires_grad=True)
        native.set_enabled(forward_on)
        try:
            y = ember.nn.functional.conv2d(x, w, padding=1)
            if switch:
                native.set_enabled(not forward_on)
            (gx, gw) = ember.autograd.grad((y * y).sum(), (x, w), create_graph=True)
            (ggx,) = ember.autograd.grad(gw.sum(), x)  # double backward re-uses the columns
        finally:
            native.set_enabled(True)
        return [gx.detach().numpy(), gw.detach().numpy(), ggx.numpy()]

    _close([grads(True), grads(False)], np.float64)


@needs_native
def test_gather_kernel_checks_bounds():
    src = np.arange(10, dtype=np.float32)
    dst = np.empty(6, np.float32)
    native._lib.gather(dst, src, (2, 3), (4, 1), 1)
    np.testing.assert_array_equal(dst, [1, 2, 3, 5, 6, 7])
    with pytest.raises(IndexError, match=r"gather reaches \[3, 10\] outside src of 10 items"):
        native._lib.gather(dst, src, (2, 3), (5, 1), 3)


@needs_native
@pytest.mark.parametrize("opts", ADAM, ids=lambda o: ",".join(o) or "plain")
def test_adam_over_many_parameters_matches_one_at_a_time_bitwise(opts):
    opts = dict(opts)
    amsgrad = opts.pop("amsgrad", False)
    kw = dict(lr=1e-2, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, decoupled=False,
              maximize=False)
    kw.update(opts)
    # float32 and float64 parameters of several sizes, one float16 (NumPy path) and one
    # strided (NumPy path) among them, each at its own step count
    items = [_opt_arrays(np.float32, 1000, amsgrad, 1), _opt_arrays(np.float64, 7, amsgrad, 2),
             _opt_arrays(np.float32, 1, amsgrad, 3),
             [None if a is None else a.astype(np.float16) for a in
              _opt_arrays(np.float32, 9, amsgrad, 4)],
             [None if a is None else a.reshape(6, 10).T for a in
              _opt_arrays(np.float32, 60, amsgrad, 5)]]
    steps = [1.0, 3.0, 10.0, 2.0, 5.0]
    ws = K.Workspace()
    many = [[None if a is None else a.copy() for a in it] for it in items]
    one = [[None if a is None else a.copy() for a in it] for it in items]
    K.adam_many([tuple(it) + (s,) for it, s in zip(many, steps)], amsgrad=amsgrad, ws=ws, **kw)
    for it, s in zip(one, steps):
        K.adam_step(*it, step=s, ws=ws, **kw)
    for a_many, a_one in zip(many, one):
        for a, b in zip(a_many, a_one):
            if a is not None:
                np.testing.assert_array_equal(a, b)


@needs_native
@pytest.mark.parametrize("opts", SGD, ids=lambda o: ",".join(o) or "plain")
def test_sgd_over_many_parameters_matches_one_at_a_time_bitwise(opts):
    kw = dict(lr=0.05, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False,
              maximize=False)
    kw.update(opts)
    items = [_opt_arrays(np.float32, 1000, seed=1)[:3], _opt_arrays(np.float64, 7, seed=2)[:3],
             [a.astype(np.float16) for a in _opt_arrays(np.float32, 9, seed=3)[:3]],
             [a.reshape(6, 10).T for a in _opt_arrays(np.float32, 60, seed=4)[:3]]]
    firsts = [True, False, False, True]
    ws = K.Workspace()
    many = [[a.copy() for a in it] for it in items]
    one = [[a.copy() for a in it] for it in items]
    mom = kw["momentum"] != 0
    K.sgd_many([(p, g, b if mom else None, f) for (p, g, b), f in zip(many, firsts)], ws=ws,
               **kw)
    for (p, g, b), f in zip(one, firsts):
        K.sgd_step(p, g, b if mom else None, first=f, ws=ws, **kw)
    for a_many, a_one in zip(many, one):
        for a, b in zip(a_many, a_one):
            np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------------------- dense layer
@needs_native
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rows", [1, 2, 3, 4])
@pytest.mark.parametrize("k, n", [(40, 256), (7, 5), (300, 261), (1, 3)])
@pytest.mark.parametrize("bias", [True, False])
def test_dense_rows_kernel_matches_numpy(dtype, rows, k, n, bias):
    r = np.random.default_rng(rows * 1000 + n)
    x, w = r.standard_normal((rows, k)).astype(dtype), r.standard_normal((n, k)).astype(dtype)
    b = r.standard_normal(n).astype(dtype) if bias else None
    ref = x.astype(np.float64) @ w.T.astype(np.float64) + (0 if b is None else b)
    outs = []
    before = ember.get_num_threads()
    for threads in (1, 2):  # (300, 261) is split between two threads
        ember.set_num_threads(threads)
        try:
            out = np.full((rows, n), np.nan, dtype)
            native.kernel("dense_rows")(x, w, b, out, rows, k, n)
        finally:
            ember.set_num_threads(before)
        outs.append(out)
    tol = dict(rtol=2e-5, atol=2e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(outs[0], ref, **tol)
    np.testing.assert_array_equal(outs[0], outs[1])  # the split keeps each output's sums


@needs_native
def test_dense_rows_threads_survive_many_calls_and_fork():
    # back-to-back calls of mixed sizes (the helper thread spinning, claiming, sleeping) and a
    # forked child, which has no helper thread and must start its own
    r = np.random.default_rng(0)
    k = native.kernel("dense_rows")
    cases = []
    for n in (256, 512, 17):
        w = r.standard_normal((n, 300)).astype(np.float32)
        x = r.standard_normal((1, 300)).astype(np.float32)
        cases.append((x, w, x.astype(np.float64) @ w.T.astype(np.float64)))
    for i in range(3000):
        x, w, ref = cases[i % 3]
        out = np.empty((1, w.shape[0]), np.float32)
        k(x, w, None, out, 1, 300, w.shape[0])
        np.testing.assert_allclose(out, ref, rtol=2e-5, atol=2e-4)
    pid = os.fork()
    if pid == 0:  # child: report by exit status only
        ok = True
        try:
            for x, w, ref in cases * 50:
                out = np.empty((1, w.shape[0]), np.float32)
                k(x, w, None, out, 1, 300, w.shape[0])
                ok = ok and np.allclose(out, ref, rtol=2e-5, atol=2e-4)
        finally:
            os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_num_threads_setting():
    before = ember.get_num_threads()
    try:
        ember.set_num_threads(1)
        assert ember.get_num_threads() == 1
        if native.available():
            assert native.kernel("get_threads")() == 1
        ember.set_num_threads(4)
        assert ember.get_num_threads() == 4
        if native.available():
            assert native.kernel("get_threads")() == 2  # one helper at most
    finally:
        ember.set_num_threads(before)
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="set_num_threads: expected a positive int"):
            ember.set_num_threads(bad)


@needs_native
def test_dense_rows_argument_errors():
    k = native.kernel("dense_rows")
    x, w = np.ones((2, 3), np.float32), np.ones((4, 3), np.float32)
    with pytest.raises(ValueError, match="sizes must be positive"):
        k(x, w, None, np.empty((2, 4), np.float32), 0, 3, 4)
    with pytest.raises(ValueError, match="weight"):
        k(x, np.ones((4, 2), np.float32), None, np.empty((2, 4), np.float32), 2, 3, 4)
    with pytest.raises((ValueError, TypeError), match="weight"):
        k(x, w.astype(np.float64), None, np.empty((2, 4), np.float32), 2, 3, 4)
    with pytest.raises((ValueError, BufferError), match="read-only"):
        out = np.empty((2, 4), np.float32)
        out.flags.writeable = False
        k(x, w, None, out, 2, 3, 4)


@pytest.mark.parametrize("shape", [(1, 300), (3, 300), (300,), (4, 300), (5, 300)])
@pytest.mark.usefixtures("kernels")
def test_linear_small_batches_match_torch(shape):
    torch = pytest.importorskip("torch")
    from tests.nn.harness import check_module

    x = np.random.default_rng(3).standard_normal(shape)
    check_module(lambda: ember.nn.Linear(300, 261), lambda: torch.nn.Linear(300, 261), [x])
    check_module(lambda: ember.nn.Linear(300, 6, bias=False),
                 lambda: torch.nn.Linear(300, 6, bias=False), [x], dtype=np.float64)


@needs_native
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("raw", [False, True], ids=["projection", "raw-input"])
def test_lstm_sequence_kernel_split_over_threads(dtype, batch, raw):
    # hidden size 70: each step is large enough to be split in two halves of 35 units (odd
    # sizes exercise the kernel's row remainders); the split must not change a bit, and the
    # result must match the NumPy recurrence. The input enters as its projection or raw (the
    # projection then made inside the kernel).
    r = np.random.default_rng(batch)
    T, I, H = 9, 16, 70
    x = r.standard_normal((T, batch, I)).astype(dtype)
    w_ih = (r.standard_normal((4 * H, I)) * 0.3).astype(dtype)
    w_hh = (r.standard_normal((4 * H, H)) * 0.2).astype(dtype)
    b = r.standard_normal(4 * H).astype(dtype)
    h0 = r.standard_normal((batch, H)).astype(dtype)
    c0 = r.standard_normal((batch, H)).astype(dtype)
    runs = []
    before = ember.get_num_threads()
    for threads in (1, 2):
        ember.set_num_threads(threads)
        try:
            hs = np.empty((T + 1, batch, H), dtype)
            hs[0] = h0
            c = c0.copy()
            if raw:
                native._lib.lstm_seq(None, w_hh, b, hs, c, T, batch, H, True, x, w_ih, I)
            else:
                native._lib.lstm_seq(x @ w_ih.T, w_hh, b, hs, c, T, batch, H, True)
        finally:
            ember.set_num_threads(before)
        runs.append((hs, c))
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    np.testing.assert_array_equal(runs[0][1], runs[1][1])
    # the reference: PyTorch's gate order i, f, g, o, the reverse direction
    h, cc = h0.astype(np.float64), c0.astype(np.float64)
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    for s in range(T):
        g = x[T - 1 - s] @ w_ih.T.astype(np.float64) + h @ w_hh.T.astype(np.float64) + b
        i, f, gg, o = np.split(g, 4, axis=1)
        cc = sig(f) * cc + sig(i) * np.tanh(gg)
        h = sig(o) * np.tanh(cc)
        tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-11, atol=1e-12)
        np.testing.assert_allclose(runs[0][0][s + 1], h, **tol)
    np.testing.assert_allclose(runs[0][1], cc, **tol)


class _Sub(np.ndarray):
    """An ndarray subclass: the kernels read it through the buffer protocol, not NumPy's API."""


@needs_native
@pytest.mark.parametrize("wrap", [lambda a: a, lambda a: a.view(_Sub)], ids=["ndarray", "sub"])
def test_array_arguments_read_directly_or_as_buffers(wrap):
    # plain arrays are read through NumPy's C API, anything else through the buffer protocol:
    # the same results and the same errors either way
    lib = native._lib
    r = np.random.default_rng(0)
    x = r.standard_normal((2, 5)).astype(np.float32)
    w = r.standard_normal((3, 5)).astype(np.float32)
    out = wrap(np.empty((2, 3), np.float32))
    lib.dense_rows(wrap(x), wrap(w), None, out, 2, 5, 3)
    np.testing.assert_allclose(np.asarray(out), x @ w.T, rtol=2e-6, atol=2e-6)
    mv = np.empty((2, 3), np.float32)
    lib.dense_rows(memoryview(x), memoryview(w), None, memoryview(mv), 2, 5, 3)
    np.testing.assert_array_equal(mv, np.asarray(out))

    def sgd(param, grad):
        lib.sgd_many([param], [grad], None, [False], 0.1, 0.0, False, 0.0, 1.0, False)

    p = wrap(np.zeros(8, np.float32))
    with pytest.raises(TypeError, match="grad has format 'd', expected 'f'"):
        sgd(p, wrap(np.zeros(8)))
    with pytest.raises(ValueError, match="grad holds 7 items, expected 8"):
        sgd(p, wrap(np.zeros(7, np.float32)))
    with pytest.raises(ValueError, match="not C-contiguous"):
        sgd(wrap(np.zeros((4, 4), np.float32)).T, wrap(np.zeros(16, np.float32)))
    with pytest.raises(TypeError, match="float32 or float64"):
        sgd(wrap(np.zeros(8, np.int64)), wrap(np.zeros(8, np.int64)))
    ro = np.zeros(8, np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        sgd(wrap(ro), p)
    swapped = np.zeros(8, np.dtype(np.float32).newbyteorder())  # not native order: a buffer
    with pytest.raises((TypeError, ValueError)):
        sgd(swapped, p)


@needs_native
def test_dense_rows_from_two_python_threads_at_once():
    # the kernels release the GIL: two callers at once share one helper (the second one runs
    # its job alone while the first holds it); every result must still be right
    import threading

    r = np.random.default_rng(5)
    k = native.kernel("dense_rows")
    jobs = []
    for _ in range(2):
        w = r.standard_normal((512, 300)).astype(np.float32)
        x = r.standard_normal((2, 300)).astype(np.float32)
        jobs.append((x, w, x.astype(np.float64) @ w.T.astype(np.float64)))
    errors = []

    def work(x, w, ref):
        for _ in range(1500):
            out = np.empty((2, 512), np.float32)
            k(x, w, None, out, 2, 300, 512)
            if not np.allclose(out, ref, rtol=2e-5, atol=2e-4):
                errors.append(np.abs(out - ref).max())
                return

    threads = [threading.Thread(target=work, args=job) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


@needs_native
def test_which_convolutions_take_a_direct_kernel():
    # the oracle tests of these shapes (tests/nn/test_conv.py) pass on both paths; here: which
    # convolutions the direct kernels take, and their sizes
    from ember.ops import conv_plans

    def choose(xs, ws, stride=(1, 1), pads=((0, 0), (0, 0)), dilation=(1, 1), groups=1):
        d = conv_plans._direct(np.zeros(xs, np.float32), np.zeros(ws, np.float32), None,
                               stride, pads, dilation, groups, None)
        return None if d is None else (d.forward, d.dims, d.out_shape)

    lenet1 = ((4, 1, 28, 28), (6, 1, 5, 5))
    assert choose(*lenet1, pads=((2, 2), (2, 2))) == (
        "conv2d_direct", (4, 1, 28, 28, 6, 5, 5, 2, 2, 28, 28), (4, 6, 28, 28))
    # 150 taps, 16 outputs: the channel-vectorized kernel
    assert choose((4, 6, 14, 14), (16, 6, 5, 5)) == (
        "conv2d_chan", (4, 6, 14, 14, 16, 5, 5, 1, 1, 0, 0, 1, 1, 10, 10), (4, 16, 10, 10))
    # stride or dilation: not conv2d_direct, but conv2d_chan (few output channels)
    assert choose(*lenet1, stride=(2, 2))[0] == "conv2d_chan"
    assert choose(*lenet1, dilation=(2, 1))[1] == (4, 1, 28, 28, 6, 5, 5, 1, 1, 0, 0, 2, 1,
                                                   20, 24)
    # 1-D as one row
    assert choose((3, 4, 40), (8, 4, 5), stride=(2,), pads=((1, 1),)) == (
        "conv2d_chan", (3, 4, 1, 40, 8, 1, 5, 1, 2, 0, 1, 1, 1, 1, 19), (3, 8, 19))
    assert choose((4, 6, 14, 14), (17, 6, 5, 5)) is None  # many outputs and taps: the GEMM
    assert choose((4, 6, 14, 14), (16, 3, 5, 5), groups=2) is None
    assert choose((4, 6, 4, 4, 4), (16, 6, 3, 3, 3), stride=(1, 1, 1),
                  pads=((0, 0),) * 3, dilation=(1, 1, 1)) is None  # 3-D
    with native.disabled():
        assert choose(*lenet1) is None


def _conv_ref(x, w, b, stride, pads, dilation):
    """A 2-D convolution in float64 by the NumPy unfold (the reference of the kernels)."""
    from ember.ops import conv

    ksize = w.shape[2:]
    out_size = conv.conv_out_size(x.shape[2:], ksize, stride, pads, dilation)
    cols = conv.im2col(x.astype(np.float64), ksize, stride, pads, dilation, out_size)
    n, o = x.shape[0], w.shape[0]
    y = np.einsum("ok,nkp->nop", w.reshape(o, -1).astype(np.float64),
                  cols.reshape(n, -1, int(np.prod(out_size))))
    if b is not None:
        y += b[:, None]
    return y.reshape((n, o) + tuple(out_size)), cols.reshape(n, -1, y.shape[-1])


@needs_native
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", [
    ((64, 6, 14, 14), (16, 6, 5, 5), (1, 1), (0, 0), (1, 1)),  # LeNet's second layer
    ((3, 5, 9, 11), (13, 5, 3, 3), (2, 2), (1, 1), (2, 2)),  # stride, padding, dilation
    ((2, 3, 7, 8), (40, 3, 3, 3), (1, 1), (1, 1), (1, 1)),  # two channel blocks (4 + 1)
    ((3, 2, 6, 9), (24, 2, 4, 2), (1, 3), (2, 0), (1, 2)),  # 3 vectors, uneven geometry
    ((1, 1, 1, 30), (1, 1, 1, 7), (1, 2), (0, 3), (1, 1)),  # 1 channel, one row
    ((5, 4, 9, 9), (9, 4, 3, 3), (3, 3), (0, 0), (1, 1)),  # rows of x never read
    ((7, 2, 12, 13), (32, 2, 3, 3), (1, 1), (1, 1), (1, 1)),  # runs split mid-image
    ((2, 3, 2, 2), (4, 3, 1, 1), (10, 10), (3, 3), (1, 1)),  # only padding is read
    ((2, 3, 4, 5), (4, 3, 2, 2), (5, 1), (3, 0), (1, 1)),  # only padding rows are read
], ids=lambda c: "x{}-w{}-s{}-p{}-d{}".format(*c))
@pytest.mark.parametrize("bias", [True, False])
def test_conv2d_chan_kernel_matches_reference(dtype, case, bias):
    # any geometry and channel count the kernel takes (ember.ops.conv routes only up to 16
    # output channels to it), on one thread and on two: the same bits either way, the weight
    # gradient's two halves summed in a fixed order
    xs, ws, stride, pad, dil = case
    r = np.random.default_rng(sum(xs) + sum(ws))
    x, w = r.standard_normal(xs).astype(dtype), r.standard_normal(ws).astype(dtype)
    b = r.standard_normal(ws[0]).astype(dtype) if bias else None
    pads = tuple((p, p) for p in pad)
    ref, cols = _conv_ref(x, w, b, stride, pads, dil)
    g = r.standard_normal(ref.shape).astype(dtype)
    ref_gw = np.einsum("nop,nkp->ok", g.reshape(g.shape[0], g.shape[1], -1).astype(np.float64),
                       cols).reshape(ws)
    dims = xs + (ws[0],) + ws[2:] + stride + pad + dil + ref.shape[2:]
    outs = []
    before = ember.get_num_threads()
    for threads in (1, 2):
        ember.set_num_threads(threads)
        try:
            out, gw = np.full(ref.shape, np.nan, dtype), np.full(ws, np.nan, dtype)
            native.kernel("conv2d_chan")(x, w, b, out, dims)
            native.kernel("conv2d_chan_wgrad")(x, g, gw, dims)
        finally:
            ember.set_num_threads(before)
        outs.append((out, gw))
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-11)
    np.testing.assert_allclose(outs[0][0], ref, **tol)
    np.testing.assert_allclose(outs[0][1], ref_gw, **tol)
    for a, b2 in zip(outs[0], outs[1]):
        np.testing.assert_array_equal(a, b2)


@needs_native
@pytest.mark.parametrize("name", ["conv2d_chan", "conv2d_chan_wgrad"])
def test_conv2d_chan_arguments(name):
    k = native.kernel(name)
    x = np.zeros((2, 3, 6, 6), np.float32)
    w = np.zeros((4, 3, 3, 3), np.float32)
    y = np.zeros((2, 4, 4, 4), np.float32)
    dims = (2, 3, 6, 6, 4, 3, 3, 1, 1, 0, 0, 1, 1, 4, 4)
    args = (x, w, None, y) if name == "conv2d_chan" else (x, y, w)
    k(*args, dims)
    with pytest.raises(ValueError, match="15 sizes"):
        k(*args, dims[:-1])
    with pytest.raises(ValueError, match="bad convolution sizes"):
        k(*args, dims[:7] + (0,) + dims[8:])  # a zero stride
    with pytest.raises(ValueError):  # an output larger than the array given
        k(*args, dims[:-2] + (5, 5))
    with pytest.raises((TypeError, ValueError)):  # mixed dtypes
        k(x.astype(np.float64), *args[1:], dims)


@needs_native
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("size", [(28, 28), (6, 37), (4, 16)])
def test_max_pool_2x2_vector_rows_match_numpy(dtype, size):
    # 2x2 windows run L at a time (8 floats, 4 doubles) with the scalar loop for the rest of
    # each row: ties, NaNs, infs and all-equal windows in both parts give the same outputs
    # and gradients (argmax positions) as the NumPy path
    r = np.random.default_rng(7)
    x0 = r.standard_normal((2, 3) + size).astype(dtype)
    x0[..., 1::2] = np.round(x0[..., 1::2])  # many ties
    x0[0, 0, :2, :2] = 1.5  # an all-equal window: the first element wins
    flat = x0.reshape(-1)
    flat[3::41] = np.nan
    flat[11::53] = np.inf
    flat[17::59] = -np.inf
    flat[19::43] = np.nan

    def run():
        x = ember.tensor(x0.copy(), requires_grad=True)
        y = ember.nn.functional.max_pool2d(x, 2)
        g = np.linspace(-1, 1, y.numel()).reshape(y.shape).astype(dtype)
        y.backward(ember.tensor(g))
        return [y.detach().numpy(), x.grad.numpy()]

    nat, ref = _on_and_off(run)
    for a, b in zip(nat, ref):
        np.testing.assert_array_equal(a, b)
