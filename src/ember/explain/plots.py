"""Pictures of attributions: heatmaps over images, shading along 1-D signals, highlighted
words (PNG, or a self-contained HTML page) and attention matrices with token labels.

Needs matplotlib for the PNG files (imported lazily, drawn on an Agg canvas with the
object-oriented API, as :mod:`ember.train.plots` does); the HTML page needs nothing. Every
function writes the file the caller names and returns its path. Colours follow Captum's
``visualization`` module: green for evidence for the target, red against (diverging maps
centred on 0).
"""

from __future__ import annotations

import html
import os

from ..autograd import Tensor, creation
from ..train.plots import new_figure

__all__ = ["plot_image_attribution", "plot_signal_attribution", "plot_text_attribution",
           "text_attribution_html", "save_text_attribution_html", "plot_attention"]

DIVERGING = "RdYlGn"  # red (against) .. yellow (0) .. green (for)


def _figure(width: float, height: float):
    return new_figure(width, height, "ember.explain.plots")


def _tensor(where: str, name: str, x, dim=None) -> Tensor:
    t = x.detach() if isinstance(x, Tensor) else creation.tensor(x)
    t = t.double()
    while dim is not None and t.dim() > dim and t.shape[0] == 1:
        t = t.squeeze(0)
    if dim is not None and t.dim() != dim:
        raise ValueError(f"{where}: {name} must be {dim}-D (size-1 leading dims are dropped), "
                         f"got shape {tuple(x.shape) if hasattr(x, 'shape') else t.shape}")
    return t


def _with_attribution(where: str, name: str, x, attribution, dim: int, same: str) -> tuple:
    """``x`` and its attribution as ``dim``-D float64 tensors of one shape (else a clear error
    saying they must have the same ``same``)."""
    t = _tensor(where, name, x, dim)
    attr = _tensor(where, "attribution", attribution, dim)
    if tuple(t.shape) != tuple(attr.shape):
        raise ValueError(f"{where}: {name} {tuple(t.shape)} and attribution "
                         f"{tuple(attr.shape)} must have the same {same}")
    return t, attr


def _limit(scores: Tensor) -> float:
    """The symmetric colour limit: the largest |score| (1 when all are 0)."""
    m = float(scores.abs().max().item()) if scores.numel() else 0.0
    return m if m > 0 else 1.0


def _save(fig, path) -> str:
    path = os.fspath(path)
    fig.savefig(path, format="png", bbox_inches="tight")
    return path


def plot_image_attribution(image, attribution, path, title: str | None = None,
                           alpha: float = 0.9, cmap: str = DIVERGING) -> str:
    """The image, and the attribution as a heatmap with the image's outline drawn over it.

    Args:
        image: (H, W) or (1, H, W) values (e.g. an 8x8 digit).
        attribution: the same shape (e.g. Grad-CAM upsampled with ``interpolate``).
        path: the PNG file to write.
        title: a title above the two panels.
        alpha: the heatmap's opacity (on white).
        cmap: a diverging matplotlib colour map, centred on 0.

    Returns:
        ``path``.

    Example:
        >>> import ember, tempfile, os
        >>> from ember.explain.plots import plot_image_attribution
        >>> out = os.path.join(tempfile.mkdtemp(), "cam.png")
        >>> plot_image_attribution(ember.rand(8, 8), ember.randn(8, 8), out) == out
        True
    """
    where = "plot_image_attribution"
    img, attr = _with_attribution(where, "image", image, attribution, 2, "shape")
    lim = _limit(attr)
    fig = _figure(7.0, 3.4)
    ax0, ax1 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    ax0.imshow(img.numpy(), cmap="gray_r", interpolation="nearest")
    ax0.set_title("input")
    im = ax1.imshow(attr.numpy(), cmap=cmap, vmin=-lim, vmax=lim, alpha=alpha,
                    interpolation="nearest")
    lo, hi = float(img.min().item()), float(img.max().item())
    if hi > lo:  # the input's outline over the heatmap
        ax1.contour(img.numpy(), levels=[lo + 0.5 * (hi - lo)], colors="black",
                    linewidths=1.2)
    ax1.set_title("attribution (input outlined)")
    for ax in (ax0, ax1):
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(im, ax=ax1, fraction=0.046, pad=0.04)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_signal_attribution(signal, attribution, path, title: str | None = None,
                            cmap: str = DIVERGING) -> str:
    """A 1-D signal with the background of each position shaded by its attribution, and the
    attributions as bars below.

    Args:
        signal: (L,) values (e.g. an MNIST-1D example of length 40).
        attribution: (L,).
        path: the PNG file to write.
        title: the figure title.
        cmap: a diverging matplotlib colour map, centred on 0.

    Returns:
        ``path``.

    Example:
        >>> import ember, tempfile, os
        >>> from ember.explain.plots import plot_signal_attribution
        >>> out = os.path.join(tempfile.mkdtemp(), "ig.png")
        >>> plot_signal_attribution(ember.randn(40), ember.randn(40), out) == out
        True
    """
    where = "plot_signal_attribution"
    sig, attr = _with_attribution(where, "signal", signal, attribution, 1, "length")
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    lim = _limit(attr)
    norm, colors = Normalize(-lim, lim), colormaps[cmap]
    values, scores = sig.tolist(), attr.tolist()
    fig = _figure(8.0, 4.2)
    ax0 = fig.add_subplot(2, 1, 1)
    ax1 = fig.add_subplot(2, 1, 2, sharex=ax0)
    for i, s in enumerate(scores):
        ax0.axvspan(i - 0.5, i + 0.5, color=colors(norm(s)), alpha=0.8, linewidth=0)
    ax0.plot(range(len(values)), values, color="black", marker=".", linewidth=1.5)
    ax0.set_ylabel("input")
    ax1.bar(range(len(scores)), scores, color=[colors(norm(s)) for s in scores],
            edgecolor="0.3", linewidth=0.4)
    ax1.axhline(0.0, color="0.3", linewidth=0.6)
    ax1.set_ylabel("attribution")
    ax1.set_xlabel("position")
    ax0.set_xlim(-0.5, len(values) - 0.5)
    fig.colorbar(ScalarMappable(norm, colors), ax=[ax0, ax1], fraction=0.03, pad=0.02)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def _rgba(score: float, lim: float) -> tuple:
    """Captum's text colours: green for positive, red for negative, opacity ~ |score|."""
    strength = min(1.0, abs(score) / lim)
    rgb = (0, 160, 0) if score >= 0 else (220, 30, 30)
    return rgb, round(0.85 * strength, 3)


def _check_tokens(where: str, tokens, scores) -> tuple:
    words = [str(t) for t in tokens]
    values = _tensor(where, "scores", scores, 1).tolist() if words else []
    if len(words) != len(values):
        raise ValueError(f"{where}: got {len(words)} tokens but {len(values)} scores")
    return words, values


def plot_text_attribution(tokens, scores, path, title: str | None = None,
                          width: float = 8.0) -> str:
    """Words on coloured backgrounds (green: for the target, red: against; stronger colour,
    larger |score|), wrapped to ``width`` inches.

    Args:
        tokens: the words (strings) in order.
        scores: one attribution per word.
        path: the PNG file to write.
        title: a line above the words (e.g. the predicted class).
        width: the figure width in inches.

    Returns:
        ``path``.

    Example:
        >>> import tempfile, os
        >>> from ember.explain.plots import plot_text_attribution
        >>> out = os.path.join(tempfile.mkdtemp(), "words.png")
        >>> plot_text_attribution(["what", "a", "great", "ride"], [0.1, 0.0, 0.9, 0.2],
        ...                       out) == out
        True
    """
    words, values = _check_tokens("plot_text_attribution", tokens, scores)
    lim = _limit(creation.tensor(values or [0.0], dtype="float64"))
    fig = _figure(width, 1.0)
    renderer = fig.canvas.get_renderer()
    dpi, line_h, pad = fig.dpi, 0.42, 0.12
    x, y, placed = pad, 0.0, []
    for word, value in zip(words, values):
        text = fig.text(0, 0, word, fontsize=13, family="DejaVu Sans")
        w = text.get_window_extent(renderer).width / dpi + 0.16
        if x + w > width - pad and x > pad:
            x, y = pad, y + line_h
        placed.append((text, x, y, value))
        x += w + 0.06
    height = y + line_h + (0.55 if title else 0.25) + 0.3  # + the legend line
    fig.set_size_inches(width, height)
    top = 0.45 if title else 0.15
    for text, tx, ty, value in placed:
        rgb, a = _rgba(value, lim)
        text.set_position((tx / width, 1 - (top + ty + 0.28) / height))
        text.set_bbox({"facecolor": tuple(c / 255 for c in rgb) + (a,), "edgecolor": "none",
                       "boxstyle": "round,pad=0.25"})
    if title:
        fig.text(pad / width, 1 - 0.3 / height, title, fontsize=11, weight="bold")
    fig.text(pad / width, 0.12 / height, "green: for the class, red: against it (stronger "
             "colour, larger |attribution|)", fontsize=8.5, color="0.35")
    path = os.fspath(path)
    fig.savefig(path, format="png")
    return path


def text_attribution_html(tokens, scores, title: str | None = None) -> str:
    """A self-contained HTML page (inline styles, no scripts or external files) with each
    word on a background coloured by its score, the score in its tooltip, and a legend.

    Args:
        tokens: the words in order.
        scores: one attribution per word.
        title: a heading (e.g. the predicted class); HTML-escaped like the words.

    Returns:
        The page as a string.

    Example:
        >>> from ember.explain.plots import text_attribution_html
        >>> page = text_attribution_html(["good", "<car>"], [1.0, -0.5])
        >>> "background-color: rgba(0, 160, 0, 0.85)" in page, "&lt;car&gt;" in page
        (True, True)
    """
    words, values = _check_tokens("text_attribution_html", tokens, scores)
    lim = _limit(creation.tensor(values or [0.0], dtype="float64"))
    spans = []
    for word, value in zip(words, values):
        rgb, a = _rgba(value, lim)
        spans.append(f'<span title="{value:+.4f}" style="background-color: rgba({rgb[0]}, '
                     f'{rgb[1]}, {rgb[2]}, {a}); padding: 2px 4px; margin: 1px; '
                     f'border-radius: 4px; line-height: 2em">{html.escape(word)}</span>')
    head = html.escape(title) if title else "Word attributions"
    legend = ('<p style="font-size: 0.85em; color: #555">Background: '
              '<span style="background-color: rgba(0, 160, 0, 0.6); padding: 1px 4px">'
              'for the class</span> '
              '<span style="background-color: rgba(220, 30, 30, 0.6); padding: 1px 4px">'
              'against it</span>; stronger colour = larger |attribution| (hover for the '
              'value).</p>')
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{head}</title>\n</head>\n<body style=\"font-family: sans-serif; "
            f"max-width: 46em; margin: 2em auto\">\n<h3>{head}</h3>\n<p>{' '.join(spans)}</p>\n"
            f"{legend}\n</body>\n</html>\n")


def save_text_attribution_html(tokens, scores, path, title: str | None = None) -> str:
    """Write :func:`text_attribution_html` to ``path`` (UTF-8) and return ``path``.

    Example:
        >>> import tempfile, os
        >>> from ember.explain.plots import save_text_attribution_html
        >>> out = os.path.join(tempfile.mkdtemp(), "words.html")
        >>> save_text_attribution_html(["fine"], [0.3], out) == out
        True
    """
    path = os.fspath(path)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text_attribution_html(tokens, scores, title))
    return path


def plot_attention(weights, path, x_labels=None, y_labels=None, title: str | None = None,
                   xlabel: str = "source (keys)", ylabel: str = "target (queries)",
                   cmap: str = "viridis") -> str:
    """An attention matrix: one row per query (e.g. each translated word), one column per key
    (each source word), with the tokens as tick labels.

    Args:
        weights: (L, S) attention weights (average or pick the heads first).
        path: the PNG file to write.
        x_labels: S key/source tokens; y_labels: L query/target tokens.
        title, xlabel, ylabel: the texts around the matrix.
        cmap: a sequential matplotlib colour map.

    Returns:
        ``path``.

    Example:
        >>> import ember, tempfile, os
        >>> from ember.explain.plots import plot_attention
        >>> out = os.path.join(tempfile.mkdtemp(), "attn.png")
        >>> w = ember.tensor([[0.9, 0.1], [0.2, 0.8]])
        >>> plot_attention(w, out, ["two", "cats"], ["deux", "chats"]) == out
        True
    """
    where = "plot_attention"
    w = _tensor(where, "weights", weights, 2)
    rows, cols = w.shape
    for labels, n, name in ((x_labels, cols, "x_labels"), (y_labels, rows, "y_labels")):
        if labels is not None and len(labels) != n:
            raise ValueError(f"{where}: {name} has {len(labels)} labels for {n} "
                             f"{'columns' if name == 'x_labels' else 'rows'} of weights")
    fig = _figure(max(4.0, 0.45 * cols + 2.2), max(3.0, 0.4 * rows + 1.6))
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(w.numpy(), cmap=cmap, vmin=0.0, aspect="auto", interpolation="nearest")
    ax.set_xticks(range(cols))
    ax.set_yticks(range(rows))
    ax.set_xticklabels([str(t) for t in x_labels] if x_labels is not None else range(cols),
                       rotation=45, ha="right")
    ax.set_yticklabels([str(t) for t in y_labels] if y_labels is not None else range(rows))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    if title:
        ax.set_title(title)
    return _save(fig, path)
