"""Small models, data and loaders for the training tests (no dependency on ember.data)."""

from __future__ import annotations

import numpy as np

import ember
from ember.train import Callback, Trainer

N_IN, N_HID, N_CLASSES = 4, 16, 3


def make_data(n=64, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, N_IN)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.int64) + (x[:, 2] > 1).astype(np.int64)
    return x, y


def make_model(dropout=0.0):
    layers = [ember.nn.Linear(N_IN, N_HID), ember.nn.ReLU()]
    if dropout:
        layers.append(ember.nn.Dropout(dropout))
    return ember.nn.Sequential(*layers, ember.nn.Linear(N_HID, N_CLASSES))


class ShuffledLoader:
    """A minimal stateful loader: seeded reshuffle each epoch, resumable mid-epoch.

    Same interface as ember.data.DataLoader: ``__iter__``, ``__len__``, ``state_dict``,
    ``load_state_dict`` (a state taken after the last batch makes the next ``iter`` start a
    new epoch).
    """

    def __init__(self, x, y, batch_size=8, seed=0):
        self.x, self.y, self.batch_size = x, y, batch_size
        self.generator = ember.Generator().manual_seed(seed)
        self.perm, self.pos = None, 0

    def __len__(self):
        return -(-len(self.x) // self.batch_size)

    def __iter__(self):
        if self.perm is None or self.pos >= len(self):
            self.perm = ember.randperm(len(self.x), generator=self.generator).numpy()
            self.pos = 0
        while self.pos < len(self):
            idx = self.perm[self.pos * self.batch_size:(self.pos + 1) * self.batch_size]
            self.pos += 1
            yield ember.tensor(self.x[idx]), ember.tensor(self.y[idx])

    def state_dict(self):
        return {"generator": self.generator.get_state(), "pos": self.pos,
                "perm": None if self.perm is None else self.perm.copy()}

    def load_state_dict(self, state):
        self.generator.set_state(state["generator"])
        self.pos = state["pos"]
        self.perm = None if state["perm"] is None else np.asarray(state["perm"]).copy()


class DefaultRngLoader:
    """A stateless loader shuffling with ember's default generator at each iteration."""

    def __init__(self, x, y, batch_size=8):
        self.x, self.y, self.batch_size = x, y, batch_size

    def __iter__(self):
        perm = ember.randperm(len(self.x)).numpy()
        for i in range(0, len(self.x), self.batch_size):
            idx = perm[i:i + self.batch_size]
            yield ember.tensor(self.x[idx]), ember.tensor(self.y[idx])


def fixed_batches(x, y, batch_size=8):
    return [(ember.tensor(x[i:i + batch_size]), ember.tensor(y[i:i + batch_size]))
            for i in range(0, len(x), batch_size)]


def weights(model):
    return {k: v.numpy().copy() for k, v in model.state_dict().items()}


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype
        assert np.array_equal(a[k], b[k]), f"{k} differs"


class Crash(Callback):
    """Raises ``exc`` in ``hook`` when the trainer reaches global step ``step``."""

    def __init__(self, step, hook="on_batch_end", exc=None):
        self.step, self.hook = step, hook
        self.exc = RuntimeError("injected crash") if exc is None else exc

    def _maybe(self):
        done = self.trainer.global_step + (1 if self.hook == "on_batch_begin" else 0)
        if done == self.step:
            raise self.exc

    def on_batch_begin(self, batch, logs=None):
        if self.hook == "on_batch_begin":
            self._maybe()

    def on_batch_end(self, batch, logs=None):
        if self.hook == "on_batch_end":
            self._maybe()

    def on_before_optimizer_step(self):
        if self.hook == "on_before_optimizer_step" and self.trainer.global_step + 1 == self.step:
            raise self.exc


def build(seed=0, dropout=0.25, loader_seed=3, scheduler=True, metrics=("accuracy",),
          loader_cls=ShuffledLoader):
    """(trainer, train loader, val batches): Adam, a per-step StepLR, dropout (uses the RNG)."""
    ember.manual_seed(seed)
    model = make_model(dropout)
    opt = ember.optim.Adam(model.parameters(), lr=0.01)
    sched = ember.optim.lr_scheduler.StepLR(opt, step_size=5, gamma=0.7) if scheduler else None
    trainer = Trainer(model, opt, metrics=list(metrics), scheduler=sched,
                      scheduler_interval="step")
    x, y = make_data()
    if loader_cls is ShuffledLoader:
        loader = ShuffledLoader(x, y, 8, seed=loader_seed)
    else:
        loader = loader_cls(x, y, 8)
    xv, yv = make_data(24, seed=2)
    return trainer, loader, fixed_batches(xv, yv)
