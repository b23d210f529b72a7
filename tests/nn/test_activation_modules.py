"""Activation modules and simple layers vs PyTorch (check_module) and their reprs."""

import numpy as np
import pytest

from ember import nn
from tests.nn.harness import check_module, torch

tnn = torch.nn


def _x(*shape, seed=0):
    a = np.random.default_rng(seed).uniform(-3, 3, size=shape)
    # keep away from the kinks at 0, +-0.5, +-1, +-3 and the threshold 0.1
    for k in (0.0, 0.1, 0.5, -0.5, 1.0, -1.0, 3.0, -3.0, 2.0, -2.0):
        close = np.abs(a - k) < 0.05
        a[close] += 0.12
    return a


CASES = [
    ("ReLU", (), {}), ("ReLU6", (), {}), ("LeakyReLU", (), {}), ("LeakyReLU", (0.2,), {}),
    ("ELU", (), {}), ("ELU", (0.5,), {}), ("SELU", (), {}), ("CELU", (1.5,), {}),
    ("GELU", (), {}), ("GELU", (), {"approximate": "tanh"}), ("SiLU", (), {}), ("Mish", (), {}),
    ("Sigmoid", (), {}), ("Tanh", (), {}), ("Softplus", (), {}),
    ("Softplus", (), {"beta": 2.0, "threshold": 1.0}), ("Softsign", (), {}),
    ("Tanhshrink", (), {}), ("LogSigmoid", (), {}), ("Hardtanh", (), {}),
    ("Hardtanh", (-2.0, 2.0), {}), ("Hardsigmoid", (), {}), ("Hardswish", (), {}),
    ("Hardshrink", (), {}), ("Softshrink", (0.3,), {}), ("Threshold", (0.1, 20.0), {}),
    ("Softmax", (), {"dim": 1}), ("Softmax", (), {"dim": -1}), ("LogSoftmax", (), {"dim": 1}),
    ("Softmin", (), {"dim": 0}), ("GLU", (), {}), ("GLU", (), {"dim": 1}), ("Identity", (), {}),
    ("Flatten", (), {}), ("Flatten", (0, 1), {}), ("Unflatten", (1, (2, 2)), {}),
    ("Hardsigmoid", (), {"inplace": False}),
]


@pytest.mark.oracle
@pytest.mark.parametrize("name,args,kw", CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_activation_module_vs_torch(name, args, kw, dtype):
    # torch's float64 hardsigmoid/hardswish backward uses a float32 1/6 (rel. error 3e-8)
    rtol = 1e-7 if name in ("Hardsigmoid", "Hardswish") and dtype == np.float64 else None
    check_module(lambda: getattr(nn, name)(*args, **kw), lambda: getattr(tnn, name)(*args, **kw),
                 [_x(3, 4, 2)], dtype=dtype, rtol=rtol)


@pytest.mark.oracle
@pytest.mark.parametrize("name,args,kw", CASES + [
    ("PReLU", (), {}), ("PReLU", (3,), {}), ("Bilinear", (2, 3, 4), {}),
    ("Bilinear", (2, 3, 4), {"bias": False}), ("Linear", (2, 3), {}),
    ("Hardswish", (), {"inplace": True}), ("ELU", (), {"inplace": True}),
    ("LeakyReLU", (0.1, True), {}), ("Softmax", (), {})])
def test_repr_equals_torch(name, args, kw):
    assert repr(getattr(nn, name)(*args, **kw)) == repr(getattr(tnn, name)(*args, **kw))


@pytest.mark.oracle
@pytest.mark.parametrize("n,shape", [(1, (4, 3)), (3, (4, 3)), (3, (2, 3, 5)), (1, (5,)),
                                     (3, (2, 3, 2, 2))])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_prelu(n, shape, dtype):
    def t_mod():
        m = tnn.PReLU(n)
        with torch.no_grad():
            m.weight.copy_(torch.linspace(-0.5, 0.7, n))
        return m

    check_module(lambda: nn.PReLU(n), t_mod, [_x(*shape)], dtype=dtype)


def test_prelu_channel_error():
    import ember

    with pytest.raises(ValueError, match=r"PReLU: expected input with 3 channels in dim 1"):
        nn.PReLU(3)(ember.zeros(2, 4))


@pytest.mark.oracle
@pytest.mark.parametrize("bias", [True, False])
def test_bilinear(bias):
    rng = np.random.default_rng(3)
    check_module(lambda: nn.Bilinear(2, 3, 4, bias=bias), lambda: tnn.Bilinear(2, 3, 4, bias=bias),
                 [rng.standard_normal((5, 2)), rng.standard_normal((5, 3))], dtype=np.float64)
