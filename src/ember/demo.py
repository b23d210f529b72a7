"""The engine demo: a two-layer network learns a 3-class spiral with hand-written SGD.

Run ``python -m ember demo``. Everything here is ember tensors and autograd: no layer library yet,
just parameters, a forward pass, ``loss.backward()`` and an update under ``no_grad``.
"""

from __future__ import annotations

import math
import time

import numpy as np

import ember


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


def main(steps: int = 1500, hidden: int = 64, lr: float = 0.5, seed: int = 0) -> float:
    ember.manual_seed(seed)
    x_np, y_np = spiral(seed=seed)
    x, y = ember.tensor(x_np), ember.tensor(y_np)
    n, classes = x.shape[0], 3
    # He initialization for the ReLU layer, Xavier-like for the output layer
    w1 = (ember.randn(2, hidden) * math.sqrt(2.0 / 2)).requires_grad_()
    b1 = ember.zeros(hidden, requires_grad=True)
    w2 = (ember.randn(hidden, classes) * math.sqrt(1.0 / hidden)).requires_grad_()
    b2 = ember.zeros(classes, requires_grad=True)
    params = [w1, b1, w2, b2]
    print(f"ember {ember.__version__}: 2-{hidden}-{classes} MLP on a {n}-point spiral, "
          f"full-batch SGD, lr {lr}")
    start = time.perf_counter()
    for step in range(1, steps + 1):
        logits = ember.relu(x @ w1 + b1) @ w2 + b2
        logp = logits - logits.logsumexp(dim=1, keepdim=True)
        loss = -logp[ember.arange(n), y].mean()
        for p in params:
            p.grad = None
        loss.backward()
        with ember.no_grad():
            for p in params:
                p -= lr * p.grad
        if step % 300 == 0 or step == 1:
            acc = (logits.argmax(dim=1) == y).float().mean().item()
            print(f"step {step:5d}  loss {loss.item():.4f}  accuracy {acc:.3f}")
    with ember.no_grad():
        logits = ember.relu(x @ w1 + b1) @ w2 + b2
        acc = (logits.argmax(dim=1) == y).float().mean().item()
    print(f"final training accuracy {acc:.3f} in {time.perf_counter() - start:.1f} s")
    return acc


if __name__ == "__main__":
    main()
