"""Small models built twice, in ember and in PyTorch with the same weights (through the state
dict, as tests/nn/harness.py does), for comparing attributions with Captum."""

from __future__ import annotations

import numpy as np
import pytest

import ember
from tests.nn.harness import load_from_torch

torch = pytest.importorskip("torch")
tnn = torch.nn
enn = ember.nn

DTYPES = {np.float32: (ember.float32, torch.float32), np.float64: (ember.float64, torch.float64)}


def _mlp(nn):
    return nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 16), nn.Tanh(),
                         nn.Linear(16, 4))


def _cnn2d(nn):
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(4, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(6 * 4 * 4, 5))


def _cnn1d(nn):
    return nn.Sequential(nn.Conv1d(1, 4, 5, padding=2), nn.Tanh(),
                         nn.Conv1d(4, 6, 3, stride=2, padding=1), nn.ReLU(),
                         nn.Flatten(), nn.Linear(6 * 20, 5))


class _Bag:
    """Token ids -> embedding -> tanh -> mean over tokens -> linear (the same in both)."""

    @staticmethod
    def build(nn, base):
        class Bag(base):
            def __init__(self):
                super().__init__()
                self.embedding = nn.Embedding(12, 5, padding_idx=0)
                self.out = nn.Linear(5, 3)

            def forward(self, ids):
                return self.out(self.embedding(ids).tanh().mean(1))

        return Bag()


BUILDERS = {"mlp": (_mlp, (6,)), "cnn2d": (_cnn2d, (1, 8, 8)), "cnn1d": (_cnn1d, (1, 40))}


def twins(kind: str, dtype=np.float64, seed: int = 0):
    """(ember model, torch model) in evaluation mode with identical weights."""
    torch.manual_seed(seed)
    if kind == "bag":
        t_mod, e_mod = _Bag.build(tnn, tnn.Module), _Bag.build(enn, enn.Module)
    else:
        build = BUILDERS[kind][0]
        t_mod, e_mod = build(tnn), build(enn)
    if dtype == np.float64:
        t_mod, e_mod = t_mod.double(), e_mod.double()
    load_from_torch(e_mod, t_mod)
    return e_mod.eval(), t_mod.eval()


def inputs(kind: str, n: int = 3, dtype=np.float64, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n,) + BUILDERS[kind][1]).astype(dtype)


def both(a: np.ndarray):
    """The same array as an ember and a torch tensor (floats requiring grad, as Captum
    expects: it warns otherwise)."""
    return ember.tensor(a.copy()), torch.tensor(a.copy(), requires_grad=a.dtype.kind == "f")


def close(e, t, rtol: float, what: str = "") -> float:
    """Assert |e - t| <= rtol * (|t| + max|t|) elementwise (relative to each value and to the
    attribution's scale, so near-zero entries do not need absolute agreement); returns the
    largest error relative to the scale."""
    ev = e.detach().numpy() if isinstance(e, ember.Tensor) else np.asarray(e)
    tv = t.detach().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)
    assert ev.shape == tv.shape, f"{what}: shape {ev.shape} vs captum {tv.shape}"
    scale = float(np.max(np.abs(tv))) or 1.0
    np.testing.assert_allclose(ev, tv, rtol=rtol, atol=rtol * scale, err_msg=what)
    return float(np.max(np.abs(ev - tv)) / scale)
