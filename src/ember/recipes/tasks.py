"""The built-in recipes: the perceptron, XOR, MNIST-1D, digits, tweets, numbers, pycode.

Each class below documents its setup; ``ember recipes`` lists them, ``ember train NAME``
runs one (see :mod:`ember.recipes.registry` for the run directory it writes).
"""

from __future__ import annotations

import math
import os
import re
import warnings

import numpy as np

import ember
from ember.data import DataLoader, RandomSampler, TensorDataset, Tokenizer, load_dataset
from ember.data.text import SequenceDataset
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


# ============================================================================ text classifiers


def _tfidf_baseline(train_texts, train_y, test_texts, test_y) -> dict:
    """TF-IDF (word 1-2 grams) + logistic regression, from scikit-learn, on the same split."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        vec = TfidfVectorizer(ngram_range=(1, 2), min_df=2 if len(train_texts) > 2000 else 1,
                              sublinear_tf=True)
        xtr = vec.fit_transform(train_texts)
        clf = LogisticRegression(max_iter=1000, C=4.0)
        clf.fit(xtr, train_y)
        pred = clf.predict(vec.transform(test_texts))
    return {"model": "TF-IDF (1-2 grams) + logistic regression (scikit-learn)",
            "accuracy": float(accuracy_score(test_y, pred)),
            "macro_f1": float(f1_score(test_y, pred, average="macro"))}


class _TweetsBase(_ClassifierMixin, Recipe):
    """Sentiment of tweets about self-driving cars (3 classes), word tokenizer fitted on the
    training split (tokenizer.json); the summary compares with a TF-IDF + logistic
    regression baseline on the same split. The best validation-loss checkpoint is tested, or
    the last one after a one-cycle schedule."""

    task = "classify"
    input_kind = "text"
    common = {"epochs": 4, "lr": 2e-3, "batch_size": 64, "max_length": 48,
              "vocab_size": 20000, "min_freq": 2, "subset": None, "test_subset": None,
              "dropout": 0.3, "schedule": "constant", "label_smoothing": 0.0,
              "weight_decay": 0.0}
    quick_common = {"epochs": 2, "subset": 384, "test_subset": 128, "vocab_size": 2000,
                    "min_freq": 1, "batch_size": 64}

    def check_config(self, cfg):
        super().check_config(cfg)
        if cfg.get("schedule") not in ("constant", "onecycle"):
            raise RecipeError(f"schedule must be 'constant' or 'onecycle', got "
                              f"{cfg.get('schedule')!r}")
        if not 0.0 <= float(cfg.get("label_smoothing", 0.0)) < 1.0:
            raise RecipeError(f"label_smoothing must be in [0, 1), got "
                              f"{cfg['label_smoothing']}")

    def classes(self, cfg):
        from ember.data.datasets import TWEETS_CLASSES
        return list(TWEETS_CLASSES)

    def split(self, name, cfg):
        ds = load_dataset("tweets", name)
        idx = _subset(len(ds), cfg.get("subset") if name == "train" else cfg.get("test_subset"))
        return [ds.texts[i] for i in idx], ds.labels[idx]

    def collate(self, tok, cfg):
        unk = tok.vocab.unk_id

        def fn(items):
            texts = [t for t, _ in items]
            ids, lengths = tok.encode_batch(texts, max_length=int(cfg["max_length"]),
                                            as_tensors=False)
            if ids.shape[1] == 0:
                ids = np.zeros((len(texts), 1), np.int64)
            empty = lengths == 0
            ids[empty, 0], lengths[empty] = unk, 1
            y = ember.tensor(np.array([label for _, label in items], np.int64))
            return (ember.tensor(ids), ember.tensor(lengths)), y
        return fn

    def loader(self, texts, labels, tok, cfg, shuffle=False):
        items = list(zip(texts, (int(v) for v in labels)))
        return DataLoader(items, batch_size=int(cfg["batch_size"]), shuffle=shuffle,
                          collate_fn=self.collate(tok, cfg))

    def train_run(self, out_dir, cfg, resume, verbose):
        texts, y = self.split("train", cfg)
        vtexts, vy = self.split("validation", cfg)
        tok_path = os.path.join(out_dir, "tokenizer.json")
        if resume and os.path.isfile(tok_path):
            tok = Tokenizer.load(tok_path)
        else:
            tok = Tokenizer("word").fit(texts, min_freq=int(cfg["min_freq"]),
                                        max_size=int(cfg["vocab_size"]))
            tok.save(tok_path)
        model = self.build(cfg, len(tok.vocab))
        train_loader = self.loader(texts, y, tok, cfg, shuffle=True)
        epochs = self.epochs_for(cfg, len(train_loader))
        lr, wd = float(cfg["lr"]), float(cfg.get("weight_decay", 0.0))
        opt = (ember.optim.AdamW(model.parameters(), lr=lr, weight_decay=wd) if wd
               else ember.optim.Adam(model.parameters(), lr=lr))
        # one-cycle: a short warm-up to ``lr``, then cosine annealing over the whole run
        sched = (ember.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, pct_start=0.1,
                                                     total_steps=epochs * len(train_loader))
                 if cfg.get("schedule") == "onecycle" else None)
        loss_fn = ember.nn.CrossEntropyLoss(label_smoothing=float(cfg.get("label_smoothing", 0.0)))
        trainer = Trainer(model, opt, loss_fn=loss_fn, metrics=["accuracy"], grad_clip_norm=1.0,
                          scheduler=sched, scheduler_interval="step")
        history = _fit(trainer, train_loader, self.loader(vtexts, vy, tok, cfg), epochs,
                       out_dir, resume, verbose)
        test = self.test(out_dir, cfg, write=True)
        ttexts, ty = self.split("test", cfg)
        baseline = _tfidf_baseline(texts, y, ttexts, ty)
        return {"test": test, "baseline": baseline, "vocab_size": len(tok.vocab),
                "steps_done": trainer.global_step, **_history_summary(history)}

    def load_model(self, run_dir, cfg, which="auto"):
        path = os.path.join(run_dir, "tokenizer.json")
        if not os.path.isfile(path):
            raise RecipeError(f"run directory {run_dir!r} has no tokenizer.json")
        tok = Tokenizer.load(path)
        model = self.build(cfg, len(tok.vocab))
        # a one-cycle run ends annealed to a near-zero learning rate: its last weights are the
        # result (its label-smoothed validation loss bottoms out epochs earlier than accuracy)
        prefer = "last" if cfg.get("schedule") == "onecycle" else self.select
        return load_weights(model, checkpoint_path(run_dir, which, prefer)), {"tok": tok}

    def test_loader(self, cfg, extra):
        texts, y = self.split("test", cfg)
        return self.loader(texts, y, extra["tok"], cfg)

    def predict(self, run_dir, cfg, inputs):
        texts = [t for t in inputs if t.strip()]
        if not texts:
            raise RecipeError(f"{self.name}: give the text(s) to classify")
        model, extra = self.load_model(run_dir, cfg)
        (ids, lengths), _ = self.collate(extra["tok"], cfg)([(t, 0) for t in texts])
        with ember.no_grad():
            logits = model(ids, lengths).numpy()
        return _predictions(logits, self.classes(cfg))


class TweetsLSTM(_TweetsBase):
    name = "tweets-lstm"
    description = "Tweet sentiment (3 classes), bidirectional LSTM vs a TF-IDF baseline"
    defaults = {**_TweetsBase.common, "epochs": 6, "lr": 3e-3, "embed": 100, "hidden": 64,
                "dropout": 0.5, "embed_dropout": 0.3, "schedule": "onecycle",
                "label_smoothing": 0.1, "weight_decay": 0.01}
    quick = {**_TweetsBase.quick_common, "embed": 16, "hidden": 16, "embed_dropout": 0.0}

    def build(self, cfg, vocab):
        return models.LSTMClassifier(vocab, 3, int(cfg["embed"]), int(cfg["hidden"]),
                                     float(cfg["dropout"]),
                                     embed_dropout=float(cfg.get("embed_dropout", 0.0)))


class TweetsTransformer(_TweetsBase):
    name = "tweets-transformer"
    description = "Tweet sentiment (3 classes), Transformer encoder vs a TF-IDF baseline"
    defaults = {**_TweetsBase.common, "d_model": 64, "nhead": 4, "layers": 2, "ff": 128,
                "dropout": 0.1, "lr": 1e-3}
    quick = {**_TweetsBase.quick_common, "d_model": 16, "nhead": 2, "layers": 1, "ff": 32}

    def build(self, cfg, vocab):
        return models.TransformerClassifier(vocab, 3, int(cfg["d_model"]), int(cfg["nhead"]),
                                            int(cfg["layers"]), int(cfg["ff"]),
                                            float(cfg["dropout"]),
                                            max_len=int(cfg["max_length"]) + 1)


# ============================================================================ translation


def _detok(tokens) -> str:
    return " ".join(tokens).replace(" - ", "-").replace(" ,", ",")


def _cut_eos(ids, eos, pad):
    out = []
    for t in ids:
        if t == eos:
            break
        if t != pad:
            out.append(int(t))
    return out


class _SeqLoss:
    def __init__(self, label_smoothing: float):
        self.label_smoothing = label_smoothing

    def __call__(self, output, target):
        return F.cross_entropy(output.reshape(-1, output.shape[-1]), target.reshape(-1),
                               ignore_index=-100, label_smoothing=self.label_smoothing)


class NumbersEnFr(Recipe):
    """English number phrases -> French (num2words, 0..9,999; train/validation/test numbers
    are disjoint). An encoder-decoder Transformer with word-level source and target
    vocabularies (tokenizer_src.json, tokenizer_tgt.json), trained with teacher forcing and
    label smoothing 0.1. Evaluation: exact-match accuracy of greedy decoding on the held-out
    test numbers, and corpus BLEU-4. ``translate`` decodes greedily or with a beam."""

    name = "numbers-en-fr"
    description = "Numbers in English words -> French words, seq2seq Transformer (BLEU, exact)"
    task = "translate"
    defaults = {"epochs": 30, "lr": 5e-4, "batch_size": 64, "d_model": 128, "nhead": 4,
                "layers": 2, "ff": 256, "dropout": 0.1, "label_smoothing": 0.1,
                "subset": None, "test_subset": None, "max_decode": 40}
    quick = {"epochs": 2, "subset": 256, "test_subset": 32, "d_model": 32, "nhead": 2,
             "layers": 1, "ff": 64, "batch_size": 32, "lr": 2e-3, "max_decode": 24}

    def split(self, name, cfg):
        ds = load_dataset("numbers-en-fr", name)
        idx = _subset(len(ds), cfg.get("subset") if name == "train" else cfg.get("test_subset"))
        return [ds.sources[i] for i in idx], [ds.targets[i] for i in idx]

    def build(self, cfg, src_vocab, tgt_vocab):
        return models.Seq2SeqTransformer(src_vocab, tgt_vocab, int(cfg["d_model"]),
                                         int(cfg["nhead"]), int(cfg["layers"]), int(cfg["ff"]),
                                         float(cfg["dropout"]), max_len=64)

    def collate(self, src_tok, tgt_tok):
        def fn(items):
            src, _ = src_tok.encode_batch([s for s, _ in items], max_length=60)
            tgt, _ = tgt_tok.encode_batch([t for _, t in items], max_length=61, add_bos=True,
                                          add_eos=True, as_tensors=False)
            out = tgt[:, 1:].copy()
            out[out == tgt_tok.vocab.pad_id] = -100
            return (src, ember.tensor(tgt[:, :-1])), ember.tensor(out)
        return fn

    def train_run(self, out_dir, cfg, resume, verbose):
        src, tgt = self.split("train", cfg)
        vsrc, vtgt = self.split("validation", cfg)
        paths = [os.path.join(out_dir, f"tokenizer_{k}.json") for k in ("src", "tgt")]
        if resume and all(os.path.isfile(p) for p in paths):
            src_tok, tgt_tok = (Tokenizer.load(p) for p in paths)
        else:
            src_tok = Tokenizer("word").fit(src)
            tgt_tok = Tokenizer("word").fit(tgt)
            src_tok.save(paths[0])
            tgt_tok.save(paths[1])
        model = self.build(cfg, len(src_tok.vocab), len(tgt_tok.vocab))
        collate = self.collate(src_tok, tgt_tok)
        loader = DataLoader(list(zip(src, tgt)), batch_size=int(cfg["batch_size"]),
                            shuffle=True, collate_fn=collate)
        val = DataLoader(list(zip(vsrc, vtgt)), batch_size=256, collate_fn=collate)
        trainer = Trainer(model, ember.optim.Adam(model.parameters(), lr=float(cfg["lr"]),
                                                  betas=(0.9, 0.98)),
                          loss_fn=_SeqLoss(float(cfg["label_smoothing"])), metrics=["accuracy"],
                          grad_clip_norm=1.0)
        history = _fit(trainer, loader, val, self.epochs_for(cfg, len(loader)), out_dir, resume,
                       verbose)
        test = self.test(out_dir, cfg)
        return {"test": test, "steps_done": trainer.global_step,
                "vocab_sizes": [len(src_tok.vocab), len(tgt_tok.vocab)],
                **_history_summary(history)}

    def load_model(self, run_dir, cfg, which="auto"):
        paths = [os.path.join(run_dir, f"tokenizer_{k}.json") for k in ("src", "tgt")]
        if not all(os.path.isfile(p) for p in paths):
            raise RecipeError(f"run directory {run_dir!r} has no tokenizer_src/tgt.json")
        src_tok, tgt_tok = (Tokenizer.load(p) for p in paths)
        model = self.build(cfg, len(src_tok.vocab), len(tgt_tok.vocab))
        model = load_weights(model, checkpoint_path(run_dir, which))
        return model, {"src": src_tok, "tgt": tgt_tok}

    def _greedy(self, model, toks, sources, cfg):
        src_tok, tgt_tok = toks["src"], toks["tgt"]
        v = tgt_tok.vocab
        hyps = []
        for i in range(0, len(sources), 200):
            ids, _ = src_tok.encode_batch(sources[i:i + 200], max_length=60)
            out = model.greedy(ids, v.bos_id, v.eos_id, int(cfg["max_decode"]))
            hyps += [_cut_eos(row, v.eos_id, v.pad_id) for row in out.tolist()]
        return hyps

    def test(self, run_dir, cfg, which="auto", write=False) -> dict:
        model, toks = self.load_model(run_dir, cfg, which)
        src, tgt = self.split("test", cfg)
        hyps = self._greedy(model, toks, src, cfg)
        tv = toks["tgt"].vocab
        refs = [tv.decode(toks["tgt"].encode(t)) for t in tgt]
        hyp_tokens = [tv.decode(h) for h in hyps]
        exact = float(np.mean([h == r for h, r in zip(hyp_tokens, refs)]))
        bleu = M.corpus_bleu([[r] for r in refs], hyp_tokens)
        examples = [{"en": s, "fr": t, "predicted": _detok(h)}
                    for s, t, h in list(zip(src, tgt, hyp_tokens))[:5]]
        return {"exact_match": exact, "bleu": float(bleu), "n": len(src), "examples": examples}

    def translate(self, run_dir, cfg, text: str, beam: int = 0) -> str:
        if not text.strip():
            raise RecipeError("translate: give an English number phrase, e.g. 'four hundred "
                              "and twelve'")
        model, toks = self.load_model(run_dir, cfg)
        tv = toks["tgt"].vocab
        if beam and beam > 1:
            ids = ember.tensor([toks["src"].encode(text)[:60]])
            out = model.beam_search(ids, tv.bos_id, tv.eos_id, beam=int(beam),
                                    max_len=int(cfg["max_decode"]))
            out = _cut_eos(out, tv.eos_id, tv.pad_id)
        else:
            out = self._greedy(model, toks, [text], cfg)[0]
        return _detok(tv.decode(out))


# ============================================================================ char LMs


class _LMTrainer(Trainer):
    def forward(self, inputs):
        return self.model(inputs)[0]


class _CharLM(Recipe):
    """A character-level language model of Python standard-library source (pycode; the
    validation split is two held-out files). Metric: bits per character on validation.
    Training draws ``steps_per_epoch`` random windows per epoch; ``generate`` samples with
    temperature and top-k."""

    task = "generate"
    common = {"epochs": None, "steps": 3000, "steps_per_epoch": 100, "lr": 2e-3,
              "batch_size": 32, "block": 128, "train_chars": None, "val_chars": 60000,
              "checkpoint_every": 100}
    quick_common = {"steps": 6, "steps_per_epoch": 3, "batch_size": 8, "block": 32,
                    "train_chars": 20000, "val_chars": 2000, "checkpoint_every": None}

    def texts(self, cfg):
        train = load_dataset("pycode", "train").text
        val = load_dataset("pycode", "validation").text
        if cfg.get("train_chars"):
            train = train[:int(cfg["train_chars"])]
        if cfg.get("val_chars"):
            val = val[:int(cfg["val_chars"])]
        return train, val

    def check_config(self, cfg):
        if cfg.get("steps") is None and cfg.get("epochs") is None:
            cfg["steps"] = 3000
        super().check_config(cfg)

    def train_run(self, out_dir, cfg, resume, verbose):
        train, val = self.texts(cfg)
        path = os.path.join(out_dir, "tokenizer.json")
        if resume and os.path.isfile(path):
            tok = Tokenizer.load(path)
        else:
            tok = Tokenizer("char", lower=False).fit([train], specials=("<unk>",))
            tok.save(path)
        block, bs = int(cfg["block"]), int(cfg["batch_size"])
        train_ds = SequenceDataset(tok.encode(train), block, stride=max(1, block // 2))
        val_ds = SequenceDataset(tok.encode(val), block)
        per_epoch = int(cfg["steps_per_epoch"])
        sampler = RandomSampler(train_ds, num_samples=per_epoch * bs)
        loader = DataLoader(train_ds, batch_size=bs, sampler=sampler, drop_last=True)
        model = self.build(cfg, len(tok.vocab))
        trainer = _LMTrainer(model, ember.optim.AdamW(model.parameters(), lr=float(cfg["lr"]),
                                                      weight_decay=0.01),
                             loss_fn=_SeqLoss(0.0), metrics=["bpc"], grad_clip_norm=1.0)
        epochs = self.epochs_for(cfg, per_epoch)
        history = _fit(trainer, loader, DataLoader(val_ds, batch_size=64), epochs, out_dir,
                       resume, verbose, checkpoint_every=cfg.get("checkpoint_every"))
        test = self.test(out_dir, cfg)
        sample_text = self.generate(out_dir, cfg, "def ", length=80, temperature=0.8, top_k=10)
        return {"test": test, "sample": sample_text, "vocab_size": len(tok.vocab),
                "steps_done": trainer.global_step, **_history_summary(history)}

    def load_model(self, run_dir, cfg, which="auto"):
        path = os.path.join(run_dir, "tokenizer.json")
        if not os.path.isfile(path):
            raise RecipeError(f"run directory {run_dir!r} has no tokenizer.json")
        tok = Tokenizer.load(path)
        model = self.build(cfg, len(tok.vocab))
        return load_weights(model, checkpoint_path(run_dir, which)), {"tok": tok}

    @ember.no_grad()
    def test(self, run_dir, cfg, which="auto", write=False) -> dict:
        model, extra = self.load_model(run_dir, cfg, which)
        _, val = self.texts(cfg)
        ds = SequenceDataset(extra["tok"].encode(val), int(cfg["block"]))
        total = count = 0.0
        for x, y in DataLoader(ds, batch_size=64):
            logits = model(x)[0]
            nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1),
                                  reduction="sum")
            total += float(nll.item())
            count += y.numel()
        bpc = total / max(count, 1) / math.log(2)
        return {"bpc": bpc, "perplexity": math.exp(total / max(count, 1)), "chars": int(count)}

    def generate(self, run_dir, cfg, prompt: str, length: int = 200, temperature: float = 1.0,
                 top_k: int = 0, seed: int | None = None) -> str:
        if length < 0:
            raise RecipeError(f"--length must be >= 0, got {length}")
        if temperature <= 0:
            raise RecipeError(f"--temperature must be > 0, got {temperature}")
        if top_k < 0:
            raise RecipeError(f"--top-k must be >= 0, got {top_k}")
        model, extra = self.load_model(run_dir, cfg)
        tok = extra["tok"]
        ids = tok.encode(prompt) or [tok.vocab.unk_id]
        gen = ember.Generator().manual_seed(int(cfg["seed"] if seed is None else seed))
        out = models.sample(model, ids, int(length), float(temperature), int(top_k),
                            generator=gen)
        return prompt + tok.decode(out[len(ids):])


class PycodeLSTM(_CharLM):
    name = "pycode-lstm"
    description = "Character-level LSTM language model of Python source (bits per character)"
    defaults = {**_CharLM.common, "embed": 64, "hidden": 256, "layers": 2, "dropout": 0.2}
    quick = {**_CharLM.quick_common, "embed": 16, "hidden": 32, "layers": 1, "dropout": 0.0,
             "lr": 1e-2}

    def build(self, cfg, vocab):
        return models.CharLSTM(vocab, int(cfg["embed"]), int(cfg["hidden"]), int(cfg["layers"]),
                               float(cfg["dropout"]))


class PycodeGPT(_CharLM):
    name = "pycode-gpt"
    description = "Character-level GPT (decoder-only Transformer) of Python source (bpc)"
    defaults = {**_CharLM.common, "d_model": 128, "nhead": 4, "layers": 3, "ff": 512,
                "dropout": 0.1, "lr": 1e-3}
    quick = {**_CharLM.quick_common, "d_model": 32, "nhead": 2, "layers": 1, "ff": 64,
             "dropout": 0.0, "lr": 1e-2}

    def build(self, cfg, vocab):
        return models.CharGPT(vocab, int(cfg["block"]), int(cfg["d_model"]), int(cfg["nhead"]),
                              int(cfg["layers"]), int(cfg["ff"]), float(cfg["dropout"]))


for _cls in (PerceptronRecipe, XorRecipe, Mnist1dLogReg, Mnist1dMLP, Mnist1dCNN, Mnist1dGRU,
             DigitsMLP, DigitsCNN, TweetsLSTM, TweetsTransformer, NumbersEnFr, PycodeLSTM,
             PycodeGPT):
    register(_cls())

__all__ = ["parse_numbers", "separable_data", "read_json", "write_json"]
