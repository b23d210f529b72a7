"""The built-in recipes on arrays (the perceptron, XOR, MNIST-1D, digits) and the helpers all
recipes share; the text recipes (tweets, numbers, pycode) are in :mod:`ember.recipes.text_tasks`.

Each class below documents its setup; ``ember recipes`` lists them, ``ember train NAME``
runs one (see :mod:`ember.recipes.registry` for the run directory it writes).
"""

from __future__ import annotations

import os
import re

import numpy as np

import ember
from ember.data import DataLoader, TensorDataset, load_dataset
from ember.nn import functional as F
from ember.train import CSVLogger, History, JSONLogger, Trainer
from ember.train import metrics as M
from ember.train.plots import plot_confusion_matrix, plot_history

from . import models
from .registry import (
    Recipe,
    RecipeError,
    checkpoint_path,
    load_weights,
    read_json,
    register,
    run_callbacks,
    write_json,
)

# ============================================================================ shared helpers


def _fit(trainer, train_loader, val_loader, epochs, out_dir, resume, verbose,
         checkpoint_every=None):
    """Trainer.fit with the run directory's checkpoints, CSV/JSON logs and learning curves."""
    callbacks = [CSVLogger(os.path.join(out_dir, "metrics.csv")),
                 JSONLogger(os.path.join(out_dir, "history.json")), *run_callbacks()]
    history = trainer.fit(train_loader, epochs=epochs, val_data=val_loader, callbacks=callbacks,
                          verbose=verbose, checkpoint_dir=out_dir,
                          checkpoint_every=checkpoint_every, resume=resume)
    history.save(os.path.join(out_dir, "history.json"))
    if len(history):
        plot_history(history, os.path.join(out_dir, "learning_curves.png"))
    return history


def _history_summary(history) -> dict:
    out = {"epochs_trained": len(history)}
    if "loss" in history and len(history):
        out["first_loss"], out["final_loss"] = history["loss"][0], history["loss"][-1]
    return out


@ember.no_grad()
def _logits_and_targets(model, loader, forward):
    model.eval()
    outs, targets = [], []
    for inputs, target in loader:
        outs.append(forward(model, inputs).numpy())
        targets.append(np.asarray(target.numpy() if hasattr(target, "numpy") else target))
    return np.concatenate(outs), np.concatenate(targets)


def _classifier_metrics(logits, target, classes, out_dir=None) -> dict:
    """Loss, accuracy, macro-F1 (and the confusion matrix plot, in ``out_dir``)."""
    pred = logits.argmax(-1)
    cm = M.confusion_matrix(target, pred, num_classes=len(classes))
    prf = M.precision_recall_f1(cm)
    loss = float(F.cross_entropy(ember.tensor(logits), ember.tensor(target)).item())
    result = {"loss": loss, "accuracy": float((pred == target).mean()),
              "macro_f1": float(prf["macro_f1"]), "n": int(len(target)),
              "confusion_matrix": cm.tolist()}
    if out_dir is not None:
        plot_confusion_matrix(cm, os.path.join(out_dir, "confusion_matrix.png"),
                              class_names=[str(c) for c in classes])
    return result


def _forward_plain(model, inputs):
    return model(*inputs) if isinstance(inputs, (tuple, list)) else model(inputs)


def _softmax_rows(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


def _predictions(logits: np.ndarray, classes) -> list:
    probs = _softmax_rows(logits)
    return [{"label": int(p.argmax()), "class": str(classes[int(p.argmax())]),
             "probability": float(p.max())} for p in probs]


def parse_numbers(inputs, n_features: int, recipe: str) -> np.ndarray:
    """Feature vectors from command-line inputs: each input a row of ``n_features`` numbers
    (comma or space separated), or all inputs together one row, or a CSV file of rows."""
    rows = []
    for item in inputs:
        if os.path.isfile(item):
            with open(item, encoding="utf-8") as f:
                for line in f:
                    if line.strip():
                        try:
                            rows.append(_numbers(line))
                        except RecipeError:
                            if rows:  # only a header line may fail to parse
                                raise
            continue
        rows.append(_numbers(item))
    if not rows:
        raise RecipeError(f"{recipe}: give {n_features} numbers (comma or space separated)")
    if any(len(r) != n_features for r in rows):
        flat = [v for r in rows for v in r]
        if len(flat) != n_features:
            raise RecipeError(f"{recipe} expects {n_features} feature values per input, got "
                              f"{len(flat)}; give them comma or space separated")
        rows = [flat]
    return np.array(rows, dtype=np.float32)


def _numbers(text: str) -> list:
    parts = [p for p in re.split(r"[,\s;]+", text.strip()) if p]
    try:
        return [float(p) for p in parts]
    except ValueError:
        bad = next(p for p in parts if not _is_float(p))
        raise RecipeError(f"not a number: {bad!r}; give feature values as numbers separated by "
                          f"commas or spaces") from None


def _is_float(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def _subset(n_total: int, limit) -> np.ndarray:
    """Indices of a subset of ``limit`` items spread evenly over a split (all of it when
    ``limit`` is None): classes stored in runs stay represented."""
    if not limit or int(limit) >= n_total:
        return np.arange(n_total)
    return np.unique(np.linspace(0, n_total - 1, int(limit)).round().astype(np.int64))


class _ClassifierMixin:
    """Serving for classifiers: ``predict`` and ``test`` from a run directory."""

    select = "best"  # the checkpoint evaluate/predict use by default

    def classes(self, cfg):
        return list(range(10))

    def test(self, run_dir, cfg, which="auto", write=False) -> dict:
        model, extra = self.load_model(run_dir, cfg, which)
        loader = self.test_loader(cfg, extra)
        logits, target = _logits_and_targets(model, loader, self.forward_fn)
        return _classifier_metrics(logits, target, self.classes(cfg),
                                   run_dir if write else None)

    forward_fn = staticmethod(_forward_plain)


# ============================================================================ perceptron, XOR


def separable_data(n: int, seed: int, margin: float = 0.1):
    """2-D points labelled by a random line through the square, keeping a ``margin``."""
    rng = np.random.default_rng(seed)
    w = rng.normal(size=2)
    w /= np.linalg.norm(w)
    b = rng.uniform(-0.3, 0.3)
    pts = []
    while len(pts) < n:
        p = rng.uniform(-1, 1, size=2)
        if abs(p @ w + b) >= margin:
            pts.append(p)
    x = np.array(pts, dtype=np.float32)
    return x, (x @ w + b > 0).astype(np.int64)


XOR_X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
XOR_Y = np.array([0, 1, 1, 0], dtype=np.int64)


def _plot_boundaries(panels, path):
    """``panels``: list of (title, predict_fn on (N, 2) arrays -> labels, x, y)."""
    from ember.train.plots import new_figure as _figure

    fig = _figure(4.2 * len(panels), 4.0)
    for i, (title, fn, x, y) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        lo, hi = x.min(0) - 0.5, x.max(0) + 0.5
        gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], 150), np.linspace(lo[1], hi[1], 150))
        grid = np.stack([gx.ravel(), gy.ravel()], 1).astype(np.float32)
        z = fn(grid).reshape(gx.shape)
        ax.contourf(gx, gy, z, levels=[-0.5, 0.5, 1.5], colors=["#f4c7c3", "#c6dbef"])
        ax.scatter(x[:, 0], x[:, 1], c=["#d62728" if t == 0 else "#1f77b4" for t in y],
                   edgecolors="k", s=30)
        ax.set_title(title)
    fig.tight_layout()
    fig.savefig(os.fspath(path), format="png")
    return path


def _perceptron_predict(model):
    def fn(x):
        with ember.no_grad():
            return model.predict(ember.tensor(x)).numpy()
    return fn


def _net_predict(model):
    def fn(x):
        with ember.no_grad():
            model.eval()
            return model(ember.tensor(x)).argmax(-1).numpy()
    return fn


def _train_perceptron(model, x, y, epochs, lr, history: History):
    xt = ember.tensor(x)
    for epoch in range(epochs):
        mistakes = model.learn(xt, y, lr=lr)
        acc = float((model.predict(xt).numpy() == y).mean())
        history.append(epoch, {"mistakes": mistakes, "accuracy": acc})
        if mistakes == 0:
            break
    return float((model.predict(xt).numpy() == y).mean())


def _write_history(history, out_dir):
    history.save(os.path.join(out_dir, "history.json"))
    keys = sorted(history.keys())
    lines = [",".join(["epoch", *keys])]
    for i, e in enumerate(history.epoch):
        lines.append(",".join([str(e)] + [repr(history[k][i]) for k in keys]))
    with open(os.path.join(out_dir, "metrics.csv"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    plot_history(history, os.path.join(out_dir, "learning_curves.png"))


class PerceptronRecipe(_ClassifierMixin, Recipe):
    """Rosenblatt's perceptron learning rule (not gradient descent) on linearly separable 2-D
    points generated locally: the perceptron convergence theorem promises 100% in finitely
    many passes. Writes decision_boundary.png."""

    name = "perceptron"
    description = "Rosenblatt's perceptron rule on separable 2-D points (converges to 100%)"
    task = "classify"
    defaults = {"epochs": 100, "lr": 1.0, "n_train": 200, "n_test": 200, "margin": 0.1}
    quick = {"n_train": 100, "n_test": 100}
    n_features = 2
    supports_doctor = False  # the perceptron rule, not a Trainer

    def classes(self, cfg):
        return [0, 1]

    def _data(self, cfg):
        x, y = separable_data(cfg["n_train"] + cfg["n_test"], cfg["seed"], cfg["margin"])
        n = cfg["n_train"]
        return (x[:n], y[:n]), (x[n:], y[n:])

    def train_run(self, out_dir, cfg, resume, verbose):
        (x, y), (xt, yt) = self._data(cfg)
        model = models.Perceptron(2)
        history = History()
        train_acc = _train_perceptron(model, x, y, int(cfg["epochs"]), float(cfg["lr"]), history)
        if verbose:
            print(f"perceptron: {len(history)} passes, mistakes per pass "
                  f"{history['mistakes']}, train accuracy {train_acc:.3f}")
        for name in ("last", "best"):
            ember.save({"model": model.state_dict()}, os.path.join(out_dir, f"{name}.safetensors"))
        _write_history(history, out_dir)
        _plot_boundaries([("perceptron (train)", _perceptron_predict(model), x, y)],
                         os.path.join(out_dir, "decision_boundary.png"))
        test = self.test(out_dir, cfg, write=True)
        return {"test": test, "train_accuracy": train_acc, "converged":
                history["mistakes"][-1] == 0, **_history_summary(history)}

    def load_model(self, run_dir, cfg, which="auto"):
        return load_weights(models.Perceptron(2), checkpoint_path(run_dir, which)), {}

    def test_loader(self, cfg, extra):
        _, (xt, yt) = self._data(cfg)
        return [(ember.tensor(xt), ember.tensor(yt))]

    @staticmethod
    def forward_fn(model, x):
        s = model(x)  # one score: as two-class logits (-s/2, s/2)
        return ember.stack([-s / 2, s / 2], dim=-1)

    def predict(self, run_dir, cfg, inputs):
        model, _ = self.load_model(run_dir, cfg)
        x = parse_numbers(inputs, 2, self.name)
        with ember.no_grad():
            logits = self.forward_fn(model, ember.tensor(x)).numpy()
        return _predictions(logits, self.classes(cfg))


class XorRecipe(PerceptronRecipe):
    """XOR: no line separates it, so the perceptron rule cycles forever and gets at most 3 of
    the 4 points (<= 75%), while a two-layer tanh network trained by gradient descent (Adam)
    gets all four (100%). Writes decision_boundary.png with both boundaries; the checkpoints
    hold the two-layer network, perceptron.safetensors the perceptron."""

    name = "xor"
    description = "XOR: the perceptron fails (<= 75%), a two-layer tanh net succeeds (100%)"
    defaults = {"epochs": 20, "steps_per_epoch": 25, "lr": 0.05, "hidden": 8,
                "perceptron_epochs": 50}
    quick = {"epochs": 8}
    supports_doctor = True

    def _data(self, cfg):
        return (XOR_X, XOR_Y), (XOR_X, XOR_Y)

    def _net(self, cfg):
        return models.TwoLayerNet(2, int(cfg["hidden"]), 2, "tanh")

    def train_run(self, out_dir, cfg, resume, verbose):
        x, y = XOR_X, XOR_Y
        perceptron = models.Perceptron(2)
        p_acc = _train_perceptron(perceptron, x, y, int(cfg["perceptron_epochs"]), 1.0,
                                  History())
        ember.save({"model": perceptron.state_dict()},
                   os.path.join(out_dir, "perceptron.safetensors"))
        net = self._net(cfg)
        batch = (ember.tensor(x), ember.tensor(y))
        loader = [batch] * int(cfg["steps_per_epoch"])
        trainer = Trainer(net, ember.optim.Adam(net.parameters(), lr=float(cfg["lr"])),
                          metrics=["accuracy"])
        history = _fit(trainer, loader, [batch], int(cfg["epochs"]), out_dir, resume, verbose)
        _plot_boundaries([(f"perceptron: {p_acc:.0%}", _perceptron_predict(perceptron), x, y),
                          ("two-layer tanh net", _net_predict(net), x, y)],
                         os.path.join(out_dir, "decision_boundary.png"))
        test = self.test(out_dir, cfg, which="last", write=True)
        if verbose:
            print(f"xor: perceptron accuracy {p_acc:.2f}, two-layer net {test['accuracy']:.2f}")
        return {"test": test, "perceptron_accuracy": p_acc, **_history_summary(history)}

    def load_model(self, run_dir, cfg, which="auto"):
        return load_weights(self._net(cfg), checkpoint_path(run_dir, which, "last")), {}

    forward_fn = staticmethod(_forward_plain)

    def predict(self, run_dir, cfg, inputs):
        model, _ = self.load_model(run_dir, cfg)
        x = parse_numbers(inputs, 2, self.name)
        with ember.no_grad():
            return _predictions(model(ember.tensor(x)).numpy(), self.classes(cfg))


# ============================================================================ array classifiers


class ArrayClassifier(_ClassifierMixin, Recipe):
    """A classifier of fixed-size numeric inputs from a built-in dataset, trained with Adam."""

    dataset = ""
    input_shape: tuple = ()
    shuffle = True
    select = "best"

    @property
    def n_features(self) -> int:
        return int(np.prod(self.input_shape))

    def arrays(self, split, cfg):
        ds = load_dataset(self.dataset, split)
        x, y = (t.numpy() for t in ds.tensors)
        idx = _subset(len(y), cfg.get("subset") if split == "train" else cfg.get("test_subset"))
        return x[idx].reshape(len(idx), *self.input_shape), y[idx]

    def build(self, cfg):
        raise NotImplementedError

    def train_run(self, out_dir, cfg, resume, verbose):
        x, y = self.arrays("train", cfg)
        model = self.build(cfg)
        loader = DataLoader(TensorDataset(x, y), batch_size=int(cfg["batch_size"]),
                            shuffle=self.shuffle)
        opt = ember.optim.Adam(model.parameters(), lr=float(cfg["lr"]),
                               weight_decay=float(cfg.get("weight_decay", 0.0)))
        trainer = Trainer(model, opt, metrics=["accuracy"])
        epochs = self.epochs_for(cfg, len(loader))
        history = _fit(trainer, loader, self.test_loader(cfg, {}), epochs, out_dir, resume,
                       verbose)
        # the final model (the MNIST-1D protocol reports the end of training)
        test = self.test(out_dir, cfg, which="last", write=True)
        return {"test": test, "steps_done": trainer.global_step, **_history_summary(history)}

    def test_loader(self, cfg, extra):
        xt, yt = self.arrays("test", cfg)
        return DataLoader(TensorDataset(xt, yt), batch_size=500)

    def load_model(self, run_dir, cfg, which="auto"):
        return load_weights(self.build(cfg), checkpoint_path(run_dir, which, self.select)), {}

    def predict(self, run_dir, cfg, inputs):
        model, _ = self.load_model(run_dir, cfg)
        x = parse_numbers(inputs, self.n_features, self.name)
        with ember.no_grad():
            logits = model(ember.tensor(x.reshape(len(x), *self.input_shape))).numpy()
        return _predictions(logits, self.classes(cfg))


_MNIST1D_DOC = ("The MNIST-1D reference setup (Greydanus, 2020): Adam lr 1e-2, batch 100, "
                "8,000 steps = 200 epochs of 40 consecutive (unshuffled) batches through the "
                "4,000 training examples; the test split is the validation curve, and the "
                "reported figure is the final model's test accuracy.")
_MNIST1D_DEFAULTS = {"epochs": 200, "steps": 8000, "lr": 1e-2, "batch_size": 100, "seed": 0,
                     "subset": None, "test_subset": None, "weight_decay": 0.0}
_MNIST1D_QUICK = {"steps": 12, "subset": 300, "test_subset": 200}


class _Mnist1d(ArrayClassifier):
    dataset = "mnist1d"
    input_shape = (40,)
    shuffle = False
    select = "last"
    defaults = _MNIST1D_DEFAULTS
    quick = _MNIST1D_QUICK
    doc = _MNIST1D_DOC


class Mnist1dLogReg(_Mnist1d):
    name = "mnist1d-logreg"
    description = "MNIST-1D, logistic regression (reference ~32% test accuracy)"

    def build(self, cfg):
        return models.LogisticRegression(40, 10)


class Mnist1dMLP(_Mnist1d):
    name = "mnist1d-mlp"
    description = "MNIST-1D, MLP 40-256-256 with a residual layer (reference ~68%)"

    def build(self, cfg):
        return models.ResidualMLP(40, 256, 10)


class Mnist1dCNN(_Mnist1d):
    name = "mnist1d-cnn"
    description = "MNIST-1D, three-layer 1-D CNN (reference ~94%)"

    def build(self, cfg):
        return models.CNN1d(40, 25, 10)


class Mnist1dGRU(_Mnist1d):
    name = "mnist1d-gru"
    description = "MNIST-1D, bidirectional GRU with 6 hidden units (reference ~91%)"

    def build(self, cfg):
        return models.GRUClassifier(40, 6, 10)


class DigitsMLP(ArrayClassifier):
    name = "digits-mlp"
    description = "scikit-learn 8x8 digits, MLP 64-128-128-10 with dropout (~97%)"
    dataset = "digits"
    input_shape = (1, 8, 8)
    select = "last"
    defaults = {"epochs": 60, "lr": 1e-3, "batch_size": 32, "weight_decay": 1e-4,
                "subset": None, "test_subset": None}
    quick = {"epochs": 2, "subset": 256, "test_subset": 100}

    def build(self, cfg):
        return models.MLP(64, (128, 128), 10, dropout=0.1)


class DigitsCNN(DigitsMLP):
    name = "digits-cnn"
    description = "scikit-learn 8x8 digits, small CNN with batch norm (target >= 98%)"
    defaults = {"epochs": 40, "lr": 2e-3, "batch_size": 32, "weight_decay": 1e-4,
                "subset": None, "test_subset": None}

    def build(self, cfg):
        return models.SmallCNN(10, 32)


for _cls in (PerceptronRecipe, XorRecipe, Mnist1dLogReg, Mnist1dMLP, Mnist1dCNN, Mnist1dGRU,
             DigitsMLP, DigitsCNN):
    register(_cls())

__all__ = ["parse_numbers", "separable_data", "read_json", "write_json"]
