import numpy as np
import pytest

import ember
from ember import nn
from ember.nn import functional as F
from tests.nn.harness import check_module, torch
from tests.oracle import check


@pytest.mark.oracle
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(5, 4), (2, 3, 4), (4,)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear(dtype, shape, bias):
    x = np.random.default_rng(0).standard_normal(shape)
    check_module(lambda: nn.Linear(4, 3, bias=bias), lambda: torch.nn.Linear(4, 3, bias=bias),
                 [x], dtype=dtype)


@pytest.mark.oracle
def test_sequential_mlp():
    x = np.random.default_rng(1).standard_normal((6, 4))
    check_module(lambda: nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2),
                                       nn.LayerNorm(2)),
                 lambda: torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(),
                                             torch.nn.Linear(8, 2), torch.nn.LayerNorm(2)),
                 [x], dtype=np.float64)


# ---------------------------------------------------------------------------- functional forms


@pytest.mark.oracle
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_functional_layer_norm_group_norm(dtype):
    rng = np.random.default_rng(4)
    x, w, b = (rng.standard_normal(s).astype(dtype) for s in ((3, 2, 4), (2, 4), (2, 4)))
    check(lambda x, w, b: F.layer_norm(x, (2, 4), w, b, 1e-3),
          lambda x, w, b: torch.nn.functional.layer_norm(x, (2, 4), w, b, 1e-3), [x, w, b])
    c = rng.standard_normal((2, 6, 3)).astype(dtype)
    wc, bc = rng.standard_normal(6).astype(dtype), rng.standard_normal(6).astype(dtype)
    check(lambda x, w, b: F.group_norm(x, 3, w, b),
          lambda x, w, b: torch.nn.functional.group_norm(x, 3, w, b), [c, wc, bc])
    check(lambda x: F.instance_norm(x), lambda x: torch.nn.functional.instance_norm(x), [c])
    check(lambda x, w: F.rms_norm(x, (3,), w), lambda x, w: torch.nn.functional.rms_norm(
        x, (3,), w), [c, rng.standard_normal(3).astype(dtype)])


@pytest.mark.oracle
def test_functional_normalize_cosine_pairwise():
    rng = np.random.default_rng(5)
    a, b = rng.standard_normal((4, 5)), rng.standard_normal((4, 5))
    check(lambda x: F.normalize(x, dim=1), lambda x: torch.nn.functional.normalize(x, dim=1), [a])
    check(lambda x: F.normalize(x, p=1.0, dim=0),
          lambda x: torch.nn.functional.normalize(x, p=1.0, dim=0), [a])
    check(F.cosine_similarity, torch.nn.functional.cosine_similarity, [a, b])
    check(F.pairwise_distance, torch.nn.functional.pairwise_distance, [a, b])


def test_functional_errors():
    with pytest.raises(RuntimeError, match=r"layer_norm: expected input with shape \(\*, 3\)"):
        F.layer_norm(ember.zeros(2, 4), (3,))
    with pytest.raises(ValueError, match=r"group_norm: the number of channels \(5\)"):
        F.group_norm(ember.zeros(2, 5, 3), 2)
    with pytest.raises(RuntimeError, match="batch_norm: expected weight of shape"):
        F.batch_norm(ember.zeros(2, 3), None, None, ember.ones(4), training=True)
