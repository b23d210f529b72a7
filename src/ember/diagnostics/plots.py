"""The doctor's PNG plots (matplotlib, imported only when a plot is drawn).

Each function takes a :class:`~ember.diagnostics.stats.RunStats` and a file path. Layers are
coloured by depth (dark: near the input, light: near the output).
"""

from __future__ import annotations

import math
import os

from .stats import RunStats

__all__ = ["plot_all", "plot_gradient_flow", "plot_activations", "plot_gradients",
           "plot_update_ratios", "plot_dead_units", "plot_loss", "PLOTS"]


def _figure(width: float, height: float):
    from ..train.plots import new_figure as figure  # lazy: matplotlib on first use

    return figure(width, height)


def _colors(n: int):
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    return [cmap(0.9 * i / max(n - 1, 1)) for i in range(n)]


def _xy(series, positive: bool = False):
    pts = [(s, v) for s, v in series
           if isinstance(v, (int, float)) and math.isfinite(v) and (v > 0 or not positive)]
    return [p[0] for p in pts], [p[1] for p in pts]


def _save(fig, path, bottom: float = 0.13) -> str:
    # fixed margins: tight_layout would measure every tick label first (half the cost)
    fig.subplots_adjust(left=0.08, right=0.98, top=0.9, bottom=bottom, wspace=0.2)
    fig.savefig(os.fspath(path), format="png")
    return os.fspath(path)


def _legend(ax, n: int) -> None:
    if n <= 12:
        ax.legend(fontsize=7, loc="best")
    else:
        ax.text(0.01, 0.01, "colour: depth (dark = input side)", transform=ax.transAxes,
                fontsize=7, alpha=0.7)


def _per_layer(ax, stats: RunStats, quantity: str, title: str, log: bool = False,
               kinds=None) -> int:
    layers = [(k, i) for k, i in stats.ordered_layers() if quantity in
              stats.layer_series.get(k, {}) and (kinds is None or i["kind"] in kinds)]
    for (key, _), color in zip(layers, _colors(len(layers))):
        xs, ys = _xy(stats.layer_series[key][quantity], positive=log)
        ax.plot(xs, ys, color=color, label=key, lw=1.2)
    if log and layers:
        ax.set_yscale("log")
    ax.set_title(title)
    ax.set_xlabel("step")
    ax.grid(True, alpha=0.3)
    if not layers:
        ax.text(0.5, 0.5, "nothing measured", ha="center", va="center", transform=ax.transAxes)
    else:
        _legend(ax, len(layers))
    return len(layers)


def _flagged_layers(findings) -> set:
    flagged = set()
    for f in findings or ():
        if f.level >= 1:
            flagged.add(f.path)
            flagged.update(f.evidence.get("affected_layers", []) or [])
    return flagged


def plot_gradient_flow(stats: RunStats, path, findings=None) -> str:
    """Median gradient RMS of each layer's weights and output across depth (log scale), with
    the range over the run; layers named in a warning or error finding are marked red."""
    from .rules import median

    fig = _figure(min(13.0, max(6.0, 0.3 * len(stats.layers) + 2)), 4.5)
    ax = fig.add_subplot(1, 1, 1)
    keys = [k for k, _ in stats.ordered_layers()]
    flagged = _flagged_layers(findings)
    for quantity, label, marker in (("grad_rms", "weight gradient RMS", "o"),
                                    ("out_grad_rms", "output gradient RMS", "s")):
        xs, mids, lows, highs = [], [], [], []
        for i, key in enumerate(keys):
            _, vals = _xy(stats.layer_series_of(key, quantity), positive=True)
            if vals:
                xs.append(i)
                mids.append(median(vals))
                lows.append(min(vals))
                highs.append(max(vals))
        if xs:
            line = ax.plot(xs, mids, marker=marker, label=label)[0]
            ax.fill_between(xs, lows, highs, color=line.get_color(), alpha=0.15)
    for i, key in enumerate(keys):
        if key in flagged:
            ax.axvspan(i - 0.4, i + 0.4, color="red", alpha=0.12)
    ax.set_yscale("log")
    ax.set_xticks(range(len(keys)))
    ax.set_xticklabels(keys, rotation=60, ha="right", fontsize=7)
    ax.set_xlabel("layer (input -> output)")
    ax.set_title("Gradient flow across depth (median and range over sampled steps)")
    ax.grid(True, alpha=0.3)
    if keys:
        ax.legend(fontsize=8)
    longest = max((len(k) for k in keys), default=1)
    return _save(fig, path, bottom=min(0.45, 0.12 + 0.014 * longest))


def plot_activations(stats: RunStats, path) -> str:
    """Mean and standard deviation over time of the activation modules' outputs (of every
    layer's output when the model has no activation modules)."""
    acts = {i["kind"] for i in stats.layers.values()} - {"param", "embedding"}
    kinds, what = (acts, "activation outputs") if acts else (None, "layer outputs")
    fig = _figure(11, 4)
    _per_layer(fig.add_subplot(1, 2, 1), stats, "mean", f"Mean of the {what}", kinds=kinds)
    _per_layer(fig.add_subplot(1, 2, 2), stats, "std", f"Standard deviation of the {what}",
               log=True, kinds=kinds)
    return _save(fig, path)


def plot_gradients(stats: RunStats, path) -> str:
    """Gradient RMS of each layer's weights and of its output over time (log scale)."""
    fig = _figure(11, 4)
    _per_layer(fig.add_subplot(1, 2, 1), stats, "grad_rms", "Weight gradient RMS", log=True)
    _per_layer(fig.add_subplot(1, 2, 2), stats, "out_grad_rms", "Output gradient RMS",
               log=True)
    return _save(fig, path)


def plot_update_ratios(stats: RunStats, path) -> str:
    """||dW|| / ||W|| of each weight matrix over time, with the doctor's thresholds."""
    from .rules import T

    fig = _figure(7, 4.2)
    ax = fig.add_subplot(1, 1, 1)
    names = [n for n, info in stats.params.items() if len(info.get("shape", [])) >= 2]
    for name, color in zip(names, _colors(len(names))):
        xs, ys = _xy(stats.param_series_of(name, "update_ratio"), positive=True)
        ax.plot(xs, ys, color=color, label=name, lw=1.2)
    ax.axhline(T["update_ratio_high"], color="red", ls="--", lw=1, label="too high")
    ax.axhline(1e-3, color="gray", ls=":", lw=1, label="rule of thumb 1e-3")
    ax.axhline(T["update_ratio_low"], color="orange", ls="--", lw=1, label="too low")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_title("Update-to-weight ratio ||dW|| / ||W|| per step")
    ax.grid(True, alpha=0.3)
    _legend(ax, len(names) + 3)
    return _save(fig, path)


def plot_dead_units(stats: RunStats, path) -> str:
    """Dead-unit fraction (ReLU layers) and saturated fraction (sigmoid/tanh) over time."""
    fig = _figure(11, 4)
    for i, (q, title) in enumerate((("dead_frac", "Dead units (ReLU): fraction"),
                                    ("sat_frac", "Saturated units (sigmoid/tanh): fraction"))):
        ax = fig.add_subplot(1, 2, i + 1)
        _per_layer(ax, stats, q, title)
        ax.set_ylim(-0.02, 1.02)
    return _save(fig, path)


def plot_loss(stats: RunStats, path) -> str:
    """The loss of every step, and the per-epoch training and validation losses."""
    fig = _figure(7, 4.2)
    ax = fig.add_subplot(1, 1, 1)
    xs, ys = _xy(stats.loss)
    ax.plot(xs, ys, lw=0.8, alpha=0.6, label="loss (each step)")
    for key, style in (("loss", "o-"), ("val_loss", "s-")):
        pts = [(e["step"], e[key]) for e in stats.epochs
               if key in e and math.isfinite(e[key])]
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], style, ms=3,
                    label=f"{key} (epoch)")
    if ys and min(ys) > 0:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_title("Loss")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


PLOTS = {"gradient_flow.png": plot_gradient_flow, "activations.png": plot_activations,
         "gradients.png": plot_gradients, "update_ratios.png": plot_update_ratios,
         "dead_units.png": plot_dead_units, "loss.png": plot_loss}


def plot_all(stats: RunStats, folder, findings=None) -> list:
    """Draw every plot into ``folder``; returns the paths."""
    folder = os.fspath(folder)
    paths = []
    for name, fn in PLOTS.items():
        target = os.path.join(folder, name)
        paths.append(fn(stats, target, findings) if fn is plot_gradient_flow
                     else fn(stats, target))
    return paths
