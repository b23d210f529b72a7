import numpy as np
import pytest

from tests.nn.harness import check_module, torch

from ember import nn


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
