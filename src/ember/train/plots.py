"""Learning curves and confusion matrices as PNG files (matplotlib, imported lazily).

Needs the optional dependency ``matplotlib`` (``pip install ember[plots]``). The figures are
drawn with matplotlib's object-oriented API on an Agg canvas, so no display, GUI backend or
global ``pyplot`` state is involved, and ``import ember`` never imports matplotlib.
"""

from __future__ import annotations

import os

import numpy as np

__all__ = ["plot_history", "plot_confusion_matrix"]


def new_figure(width: float, height: float, user: str = "ember.train.plots"):
    """A matplotlib Figure on the Agg canvas (no display needed); matplotlib is imported here,
    on first use, and its absence is a clear error naming ``user``."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(f"{user} needs matplotlib: pip install matplotlib (or "
                          "pip install 'ember[plots]')") from e
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _history_dict(history) -> dict:
    return history.history if hasattr(history, "history") else dict(history)


def plot_history(history, path, keys=None, title: str | None = None) -> str:
    """Plot train and validation curves per epoch, one panel per quantity, to a PNG file.

    Args:
        history: a :class:`~ember.train.History` (or its ``history`` dict).
        path: the PNG file to write.
        keys: quantities to plot (default: every key without a ``val_`` prefix, except
            ``lr``; ``val_<key>`` is drawn in the same panel when present).
        title: optional figure title.

    Returns:
        ``path``.
    """
    hist = _history_dict(history)
    if keys is None:
        keys = [k for k in hist if not k.startswith("val_") and k != "lr"]
        keys += [k[4:] for k in hist if k.startswith("val_") and k[4:] not in hist]
    if not keys:
        raise ValueError("plot_history: the history is empty (nothing to plot)")
    fig = new_figure(4.5 * len(keys), 3.5)
    for i, key in enumerate(keys):
        ax = fig.add_subplot(1, len(keys), i + 1)
        for name, label in ((key, "train"), (f"val_{key}", "validation")):
            values = hist.get(name)
            if values:
                ys = np.array([np.nan if v is None else v for v in values], dtype=float)
                ax.plot(np.arange(1, len(ys) + 1), ys, marker="o", label=label)
        ax.set_xlabel("epoch")
        ax.set_title(key)
        ax.grid(True, alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(os.fspath(path), format="png")
    return path


def plot_confusion_matrix(cm, path, class_names=None, normalize: bool = False,
                          title: str = "Confusion matrix") -> str:
    """Draw a confusion matrix (rows: true class, columns: predicted) as a PNG heat map.

    Args:
        cm: a square matrix of counts (see :func:`ember.train.metrics.confusion_matrix`).
        path: the PNG file to write.
        class_names: labels of the classes (default 0..C-1).
        normalize: divide each row by its total (recall per class on the diagonal).

    Returns:
        ``path``.
    """
    cm = np.asarray(cm, dtype=float)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"plot_confusion_matrix: expected a square matrix, got shape "
                         f"{cm.shape}")
    if normalize:
        rows = cm.sum(axis=1, keepdims=True)
        cm = np.divide(cm, rows, out=np.zeros_like(cm), where=rows != 0)
    n = cm.shape[0]
    names = [str(c) for c in (class_names if class_names is not None else range(n))]
    size = max(4.0, 0.5 * n + 2)
    fig = new_figure(size, size)
    ax = fig.add_subplot(1, 1, 1)
    image = ax.imshow(cm, cmap="Blues")
    fig.colorbar(image, ax=ax)
    ax.set(xticks=range(n), yticks=range(n), xticklabels=names, yticklabels=names,
           xlabel="predicted", ylabel="true", title=title)
    if n <= 30:
        high = cm.max() / 2 if cm.size else 0
        for i in range(n):
            for j in range(n):
                text = f"{cm[i, j]:.2f}" if normalize else f"{int(cm[i, j])}"
                ax.text(j, i, text, ha="center", va="center",
                        color="white" if cm[i, j] > high else "black")
    fig.tight_layout()
    fig.savefig(os.fspath(path), format="png")
    return path
