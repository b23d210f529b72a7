import numpy as np
import pytest

import ember
from tests.oracle import FLOATS, check, rand, torch


@pytest.mark.oracle
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape,dim", [((7,), 0), ((3, 5), -1), ((3, 5), 0), ((2, 3, 4), 1)])
@pytest.mark.parametrize("descending", [False, True])
def test_sort_values_indices_and_grad(dtype, shape, dim, descending):
    a = rand(*shape, dtype=dtype)  # distinct values, so indices are unique
    check(lambda x: ember.sort(x, dim, descending=descending),
          lambda x: torch.sort(x, dim, descending=descending), [a])
    check(lambda x: ember.argsort(x, dim, descending=descending),
          lambda x: torch.argsort(x, dim, descending=descending), [a], grad=[])


@pytest.mark.oracle
@pytest.mark.parametrize("k,dim,largest", [(1, -1, True), (3, -1, True), (2, 0, False),
                                           (5, 1, True), (0, 1, True)])
def test_topk(k, dim, largest):
    a = rand(4, 5)
    check(lambda x: x.topk(k, dim, largest=largest),
          lambda x: x.topk(k, dim, largest=largest), [a])


@pytest.mark.oracle
def test_sort_ties_are_stable_and_nan_sorts_like_torch():
    a = np.array([2.0, 1.0, 2.0, np.nan, 1.0, 0.0])
    for desc in (False, True):
        e = ember.sort(ember.tensor(a), stable=True, descending=desc)
        t = torch.sort(torch.tensor(a), stable=True, descending=desc)
        np.testing.assert_array_equal(e.indices.numpy(), t.indices.numpy())
        np.testing.assert_array_equal(e.values.numpy(), t.values.numpy())


def test_topk_errors_and_unique():
    with pytest.raises(RuntimeError, match=r"topk: k \(6\) is out of range for dim -1 of size 5"):
        ember.randn(2, 5).topk(6)
    vals, counts = ember.unique(ember.tensor([3, 1, 3, 2, 3]), return_counts=True)
    assert vals.tolist() == [1, 2, 3] and counts.tolist() == [1, 1, 3]
