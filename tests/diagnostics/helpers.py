"""Shared pieces of the doctor's tests: MNIST-1D loaders and a fit with the doctor."""

from __future__ import annotations

import functools
import warnings

import ember
from ember.data import DataLoader, TensorDataset, load_dataset
from ember.diagnostics import DoctorCallback, DoctorWarning
from ember.train import Trainer


@functools.cache
def mnist1d(split: str):
    x, y = (t.numpy() for t in load_dataset("mnist1d", split).tensors)
    return x, y


def loader(split="train", n=None, batch_size=100, shuffle=False):
    x, y = mnist1d(split)
    n = len(x) if n is None else n
    return DataLoader(TensorDataset(x[:n], y[:n]), batch_size=batch_size, shuffle=shuffle)


def fit(model, steps=None, epochs=None, lr=1e-3, n=None, batch_size=100, every=10,
        val_n=1000, optimizer=None):
    """Train ``model`` on MNIST-1D with the doctor; ``(callback, history, doctor warnings)``."""
    data = loader("train", n, batch_size)
    if epochs is None:
        epochs = -(-steps // len(data))
    opt = optimizer or ember.optim.Adam(model.parameters(), lr=lr)
    cb = DoctorCallback(every=every, verbose=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DoctorWarning)
        history = Trainer(model, opt, metrics=["accuracy"]).fit(
            data, epochs=epochs, val_data=loader("test", val_n, 500), callbacks=[cb],
            verbose=0)
    return cb, history, [w for w in caught if issubclass(w.category, DoctorWarning)]


def kinds(findings, min_level=1) -> set:
    return {f.kind for f in findings if f.level >= min_level}
