"""The demo: a small network learns a 3-class spiral, is saved, and is loaded back.

Run ``python -m ember demo``. It uses the whole stack: tensors and autograd, ``ember.nn`` layers,
``ember.optim.Adam``, the cross-entropy loss, and ``ember.save``/``ember.load`` (safetensors).
"""

from __future__ import annotations

import os
import tempfile
import time

import numpy as np

import ember
from ember import nn
from ember.nn import functional as F


def spiral(n_per_class: int = 200, classes: int = 3, seed: int = 0):
    """The classic interleaved spiral arms, generated locally."""
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for c in range(classes):
        r = np.linspace(0.05, 1.0, n_per_class)
        theta = np.linspace(c * 4.0, (c + 1) * 4.0, n_per_class) + rng.normal(0, 0.2, n_per_class)
        xs.append(np.stack([r * np.sin(theta), r * np.cos(theta)], axis=1))
        ys.append(np.full(n_per_class, c))
    return np.concatenate(xs).astype(np.float32), np.concatenate(ys).astype(np.int64)


def make_model(hidden: int = 64) -> nn.Module:
    return nn.Sequential(nn.Linear(2, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                         nn.Linear(hidden, 3))


def accuracy(model: nn.Module, x, y) -> float:
    with ember.no_grad():
        return (model(x).argmax(dim=1) == y).float().mean().item()


def main(epochs: int = 60, batch_size: int = 32, lr: float = 1e-2, seed: int = 0) -> float:
    ember.manual_seed(seed)
    x_np, y_np = spiral(seed=seed)
    x, y = ember.tensor(x_np), ember.tensor(y_np)
    n = len(y)
    model = make_model()
    opt = ember.optim.Adam(model.parameters(), lr=lr)
    print(f"ember {ember.__version__}: MLP 2-64-64-3 on a {n}-point spiral, Adam lr {lr}, "
          f"batch {batch_size}")
    print(nn.utils.summary(model, x[:1]))
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        order = ember.randperm(n)
        total = 0.0
        for i in range(0, n, batch_size):
            idx = order[i:i + batch_size]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        if epoch % 10 == 0 or epoch == 1:
            print(f"epoch {epoch:3d}  loss {total / n:.4f}  accuracy {accuracy(model, x, y):.3f}")
    acc = accuracy(model, x, y)
    print(f"final training accuracy {acc:.3f} in {time.perf_counter() - start:.1f} s")

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "spiral.safetensors")
        ember.save(model.state_dict(), path)
        restored = make_model()
        restored.load_state_dict(ember.load(path))
        same = accuracy(restored, x, y)
        print(f"saved to {os.path.basename(path)} ({os.path.getsize(path):,} bytes, "
              f"safetensors) and reloaded: accuracy {same:.3f}")
        if same != acc:
            raise RuntimeError("the reloaded model does not reproduce the trained one")
    return acc


if __name__ == "__main__":
    main()
