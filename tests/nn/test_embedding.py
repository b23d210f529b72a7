"""Embedding vs PyTorch: lookup, gradients (padding_idx, duplicates), max_norm, pretrained."""

import numpy as np
import pytest

import ember
from ember import nn
from ember.nn import functional as F
from tests.nn.harness import check_module, torch

IDX = np.array([[1, 3, 3, 0], [2, 3, 1, 1]], dtype=np.int64)


@pytest.mark.oracle
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kw", [{}, {"padding_idx": 3}, {"padding_idx": -2}])
def test_embedding_vs_torch(dtype, kw):
    check_module(lambda: nn.Embedding(5, 4, **kw), lambda: torch.nn.Embedding(5, 4, **kw), [IDX],
                 dtype=dtype)


def test_padding_row_zero_and_no_grad_and_duplicates_accumulate():
    emb = nn.Embedding(5, 3, padding_idx=1)
    np.testing.assert_array_equal(emb.weight.detach().numpy()[1], np.zeros(3))
    out = emb(ember.tensor(IDX))
    g = np.arange(np.prod(out.shape), dtype=np.float32).reshape(out.shape)
    out.backward(ember.tensor(g))
    want = np.zeros((5, 3), np.float32)
    np.add.at(want, IDX.reshape(-1), g.reshape(-1, 3))
    want[1] = 0
    np.testing.assert_allclose(emb.weight.grad.numpy(), want)


@pytest.mark.oracle
@pytest.mark.parametrize("norm_type", [2.0, 1.0])
def test_max_norm_renormalizes_like_torch(norm_type):
    w = np.random.default_rng(0).standard_normal((6, 4)) * 3
    e = nn.Embedding.from_pretrained(ember.tensor(w), freeze=False, max_norm=1.5,
                                     norm_type=norm_type)
    t = torch.nn.Embedding.from_pretrained(torch.tensor(w), freeze=False, max_norm=1.5,
                                           norm_type=norm_type)
    idx = np.array([0, 2, 2, 5], dtype=np.int64)
    eo, to = e(ember.tensor(idx)), t(torch.tensor(idx))
    np.testing.assert_allclose(eo.detach().numpy(), to.detach().numpy(), rtol=1e-9)
    # rows looked up were renormalized in place, others untouched
    np.testing.assert_allclose(e.weight.detach().numpy(), t.weight.detach().numpy(), rtol=1e-9)
    assert np.allclose(e.weight.detach().numpy()[1], w[1])
    g = np.random.default_rng(1).standard_normal(eo.shape)
    eo.backward(ember.tensor(g))
    to.backward(torch.tensor(g))
    np.testing.assert_allclose(e.weight.grad.numpy(), t.weight.grad.numpy(), rtol=1e-9)


def test_from_pretrained_freeze():
    w = ember.tensor(np.arange(12, dtype=np.float32).reshape(4, 3))
    e = nn.Embedding.from_pretrained(w)
    assert not e.weight.requires_grad
    np.testing.assert_array_equal(e(ember.tensor(np.array([2]))).numpy(), [[6, 7, 8]])
    assert nn.Embedding.from_pretrained(w, freeze=False).weight.requires_grad
    e2 = nn.Embedding.from_pretrained(w, padding_idx=0)
    assert e2.padding_idx == 0 and e2.num_embeddings == 4 and e2.embedding_dim == 3


def test_embedding_errors_and_repr():
    e = nn.Embedding(4, 2)
    with pytest.raises(TypeError, match="Embedding: expected an integer index tensor"):
        e(ember.zeros(3))
    with pytest.raises(IndexError, match="out of range"):
        e(ember.tensor(np.array([4])))
    with pytest.raises(ValueError, match="padding_idx"):
        nn.Embedding(4, 2, padding_idx=4)
    assert repr(nn.Embedding(3, 4)) == repr(torch.nn.Embedding(3, 4))
    assert repr(nn.Embedding(3, 4, padding_idx=0, max_norm=1.0)) == \
        repr(torch.nn.Embedding(3, 4, padding_idx=0, max_norm=1.0))


def test_default_init_normal():
    w = nn.Embedding(1000, 200).weight.detach().numpy()
    assert abs(w.mean()) < 0.01 and abs(w.std() - 1) < 0.01


@pytest.mark.oracle
def test_functional_embedding():
    w = np.random.default_rng(2).standard_normal((5, 3))
    ew, tw = ember.tensor(w, requires_grad=True), torch.tensor(w, requires_grad=True)
    eo = F.embedding(ember.tensor(IDX), ew, padding_idx=0)
    to = torch.nn.functional.embedding(torch.tensor(IDX), tw, padding_idx=0)
    np.testing.assert_allclose(eo.detach().numpy(), to.detach().numpy())
    eo.sum().backward()
    to.sum().backward()
    np.testing.assert_allclose(ew.grad.numpy(), tw.grad.numpy())
