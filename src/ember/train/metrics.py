"""Metrics computed in NumPy from predictions: functions, and streaming classes for the Trainer.

Functions (one call on whole arrays): :func:`accuracy`, :func:`top_k_accuracy`,
:func:`confusion_matrix`, :func:`precision_recall_f1`, :func:`perplexity`,
:func:`bits_per_character`, :func:`corpus_bleu`.

Streaming metrics (``reset`` / ``update(output, target)`` / ``compute``, with a ``state_dict``
so that a run resumed mid-epoch reports the same numbers): :class:`Accuracy`,
:class:`TopKAccuracy`, :class:`Precision`, :class:`Recall`, :class:`F1Score`,
:class:`Perplexity`, :class:`BitsPerCharacter`. The Trainer accepts them or their names
(``"accuracy"``, ``"top5_accuracy"``, ``"precision"``, ``"recall"``, ``"f1"``,
``"perplexity"``, ``"bpc"``).

Conventions: ``output`` holds scores (logits or probabilities) with a class dimension, either
dim 1 (``(N, C, ...)`` as ``cross_entropy`` takes them) or the last dim (``(N, T, V)`` language
model logits); ``target`` holds integer class indices. An ``output`` of the same shape as
``target`` is taken as labels (integers) or, for floats, as binary scores compared with
``threshold``. Entries of ``target`` equal to ``ignore_index`` (default -100, like
``cross_entropy``) are left out. Matches the definitions of ``torchmetrics`` / scikit-learn
(zero division gives 0).
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np

from ..autograd import Tensor

__all__ = ["accuracy", "top_k_accuracy", "confusion_matrix", "precision_recall_f1",
           "perplexity", "bits_per_character", "corpus_bleu", "Metric", "Accuracy",
           "TopKAccuracy", "Precision", "Recall", "F1Score", "Perplexity", "BitsPerCharacter",
           "get_metric"]

IGNORE_INDEX = -100


def to_numpy(x) -> np.ndarray:
    """An ember Tensor (detached), NumPy array, or array-like as a NumPy array."""
    if isinstance(x, Tensor):
        return x.detach().numpy()
    return np.asarray(x)


def _scores_last(output: np.ndarray, target: np.ndarray) -> np.ndarray | None:
    """Scores with the class dimension moved last, flattened to (M, C); None for labels."""
    if output.shape == target.shape:
        return None
    if output.ndim == target.ndim + 1:
        if output.shape[:-1] == target.shape:
            return output.reshape(-1, output.shape[-1])
        if output.shape[:1] + output.shape[2:] == target.shape:
            return np.moveaxis(output, 1, -1).reshape(-1, output.shape[1])
    raise ValueError(f"metrics: output of shape {output.shape} does not match target of shape "
                     f"{target.shape}; expected scores (N, C, ...) or (..., C) for targets "
                     f"(N, ...), or labels of the target's shape")


def _labels(output, target, threshold: float = 0.5, ignore_index: int = IGNORE_INDEX):
    """(predicted labels, true labels), flat, without ignored entries."""
    output, target = to_numpy(output), to_numpy(target)
    scores = _scores_last(output, target)
    if scores is not None:
        pred = scores.argmax(axis=-1)
    elif output.dtype.kind == "f":
        pred = (output > threshold).astype(np.int64)
    else:
        pred = output
    pred, true = pred.reshape(-1), target.reshape(-1).astype(np.int64)
    keep = true != ignore_index
    return pred[keep].astype(np.int64), true[keep]


def accuracy(output, target, threshold: float = 0.5, ignore_index: int = IGNORE_INDEX) -> float:
    """Fraction of correct predictions (argmax of scores, or thresholded binary scores).

    >>> accuracy([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]], [1, 0, 0])
    0.6666666666666666
    """
    pred, true = _labels(output, target, threshold, ignore_index)
    return float((pred == true).mean()) if true.size else 0.0


def _top_k_hits(output, target, k: int, ignore_index: int):
    output, target = to_numpy(output), to_numpy(target)
    scores = _scores_last(output, target)
    if scores is None:
        raise ValueError("top_k_accuracy: output must hold class scores, not labels")
    if not 1 <= k <= scores.shape[-1]:
        raise ValueError(f"top_k_accuracy: k must be in [1, {scores.shape[-1]}], got {k}")
    true = target.reshape(-1).astype(np.int64)
    keep = true != ignore_index
    scores, true = scores[keep], true[keep]
    # a hit when fewer than k classes score strictly higher than the true class
    true_score = np.take_along_axis(scores, true[:, None], axis=1)
    hits = (scores > true_score).sum(axis=1) < k
    return int(hits.sum()), int(true.size)


def top_k_accuracy(output, target, k: int = 5, ignore_index: int = IGNORE_INDEX) -> float:
    """Fraction of samples whose true class is among the ``k`` highest scores (ties count
    in the true class's favour).

    >>> top_k_accuracy([[0.5, 0.3, 0.2], [0.1, 0.2, 0.7]], [1, 0], k=2)
    0.5
    """
    hits, n = _top_k_hits(output, target, k, ignore_index)
    return hits / n if n else 0.0


def confusion_matrix(target, pred, num_classes: int | None = None) -> np.ndarray:
    """``cm[i, j]`` = number of samples of true class ``i`` predicted as ``j`` (int64).

    Matches ``sklearn.metrics.confusion_matrix`` (rows are true classes).

    >>> confusion_matrix([0, 1, 1], [0, 0, 1]).tolist()
    [[1, 0], [1, 1]]
    """
    true = to_numpy(target).reshape(-1).astype(np.int64)
    pred = to_numpy(pred).reshape(-1).astype(np.int64)
    if true.shape != pred.shape:
        raise ValueError(f"confusion_matrix: target has {true.size} entries, pred {pred.size}")
    if num_classes is None:
        num_classes = int(max(true.max(initial=-1), pred.max(initial=-1))) + 1
    for name, a in (("target", true), ("pred", pred)):
        if a.size and (a.min() < 0 or a.max() >= num_classes):
            raise ValueError(f"confusion_matrix: {name} labels must be in [0, {num_classes}), "
                             f"got range [{a.min()}, {a.max()}]")
    flat = np.bincount(true * num_classes + pred, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes).astype(np.int64)


def _safe_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.divide(a, b, out=np.zeros(np.shape(a), dtype=np.float64), where=b != 0)


def precision_recall_f1(cm) -> dict:
    """Per-class and macro precision, recall and F1 from a confusion matrix.

    Returns ``{"precision": array, "recall": array, "f1": array, "macro_precision": float,
    "macro_recall": float, "macro_f1": float, "support": array}``; a class never predicted
    (or never present) gets 0 rather than nan, like scikit-learn's ``zero_division=0``.
    Macro F1 is the mean of the per-class F1 scores (scikit-learn's definition).
    """
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)
    precision = _safe_div(tp, cm.sum(axis=0))
    recall = _safe_div(tp, cm.sum(axis=1))
    f1 = _safe_div(2 * precision * recall, precision + recall)
    return {"precision": precision, "recall": recall, "f1": f1,
            "macro_precision": float(precision.mean()), "macro_recall": float(recall.mean()),
            "macro_f1": float(f1.mean()), "support": cm.sum(axis=1).astype(np.int64)}


def _nll_sum(output, target, ignore_index: int):
    """Sum of the negative log-likelihoods (natural log) and the number of tokens."""
    output, target = to_numpy(output), to_numpy(target)
    scores = _scores_last(output, target)
    if scores is None:
        raise ValueError("perplexity: output must hold logits, not labels")
    scores = scores.astype(np.float64)
    true = target.reshape(-1).astype(np.int64)
    keep = true != ignore_index
    scores, true = scores[keep], true[keep]
    shifted = scores - scores.max(axis=1, keepdims=True)
    log_z = np.log(np.exp(shifted).sum(axis=1))
    nll = log_z - np.take_along_axis(shifted, true[:, None], axis=1)[:, 0]
    return float(nll.sum()), int(true.size)


def perplexity(logits, target, ignore_index: int = IGNORE_INDEX) -> float:
    """``exp`` of the mean cross-entropy (nats per token) of ``logits`` against ``target``.

    >>> round(perplexity([[0.0, 0.0, 0.0, 0.0]], [2]), 6)   # uniform over 4 tokens
    4.0
    """
    total, n = _nll_sum(logits, target, ignore_index)
    return math.exp(total / n) if n else math.nan


def bits_per_character(logits, target, ignore_index: int = IGNORE_INDEX) -> float:
    """Mean cross-entropy in bits (``nats / ln 2``) per character-level token.

    >>> bits_per_character([[0.0, 0.0, 0.0, 0.0]], [1])
    2.0
    """
    total, n = _nll_sum(logits, target, ignore_index)
    return total / n / math.log(2) if n else math.nan


# ---------------------------------------------------------------------------------- BLEU
def _ngrams(tokens, n: int) -> Counter:
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def corpus_bleu(references, hypotheses, max_n: int = 4, smoothing: str | None = None,
                epsilon: float = 0.1) -> float:
    """Corpus-level BLEU (Papineni et al., 2002) with the brevity penalty, in [0, 1].

    Args:
        references: for each hypothesis, one reference (a list of tokens, or a string split
            on whitespace) or several (a list of token lists).
        hypotheses: list of hypotheses (token lists or strings).
        max_n: highest n-gram order (4 for BLEU-4), uniform weights ``1/max_n``.
        smoothing: ``None`` (any zero n-gram precision gives 0), ``"epsilon"`` (a zero match
            count becomes ``epsilon``: NLTK's method1) or ``"add1"`` (add 1 to the matches and
            the totals of orders n >= 2: Lin and Och, 2004).

    Clipped n-gram counts and totals are summed over the corpus before dividing; the
    effective reference length of each sentence is the reference length closest to the
    hypothesis length (the shorter one on ties), and ``BP = exp(1 - r / c)`` when ``c <= r``.

    >>> corpus_bleu([["the", "cat", "sat"]], [["the", "cat", "sat"]], max_n=3)
    1.0
    """
    if len(references) != len(hypotheses):
        raise ValueError(f"corpus_bleu: {len(references)} references for {len(hypotheses)} "
                         f"hypotheses; give one entry (a reference or a list of them) each")
    if smoothing not in (None, "epsilon", "add1"):
        raise ValueError(f"corpus_bleu: smoothing must be None, 'epsilon' or 'add1', got "
                         f"{smoothing!r}")
    matches, totals = [0] * max_n, [0] * max_n
    hyp_len = ref_len = 0
    for refs, hyp in zip(references, hypotheses):
        hyp = hyp.split() if isinstance(hyp, str) else list(hyp)
        if isinstance(refs, str):
            refs = [refs.split()]
        elif not refs or not isinstance(refs[0], (list, tuple)):
            refs = [list(refs)]  # one tokenized reference
        refs = [list(r) for r in refs]
        hyp_len += len(hyp)
        ref_len += min((abs(len(r) - len(hyp)), len(r)) for r in refs)[1]
        for n in range(1, max_n + 1):
            counts = _ngrams(hyp, n)
            max_ref = Counter()
            for r in refs:
                max_ref |= _ngrams(r, n)
            matches[n - 1] += sum(min(c, max_ref[g]) for g, c in counts.items())
            totals[n - 1] += max(len(hyp) - n + 1, 0)
    if hyp_len == 0:
        return 0.0
    log_p = 0.0
    for n in range(max_n):
        m, t = float(matches[n]), float(totals[n])
        if smoothing == "add1" and n > 0:
            m, t = m + 1, t + 1
        elif smoothing == "epsilon" and m == 0:
            m = epsilon
        if m == 0 or t == 0:
            return 0.0
        log_p += math.log(m / t) / max_n
    bp = 1.0 if hyp_len > ref_len else math.exp(1 - ref_len / hyp_len)
    return bp * math.exp(log_p)


# ---------------------------------------------------------------------- streaming metrics
class Metric:
    """Base of the streaming metrics: accumulate with ``update``, read with ``compute``.

    Subclasses list their accumulator attributes in ``_state`` (numbers or NumPy arrays) and
    set ``name`` and ``higher_is_better``; ``state_dict`` / ``load_state_dict`` copy them.
    ``compute`` returns a float, or a dict of floats (logged under their own keys).
    """

    name = "metric"
    higher_is_better = True
    _state: tuple = ()

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def update(self, output, target) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def compute(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def state_dict(self) -> dict:
        return {k: getattr(self, k) for k in self._state}

    def load_state_dict(self, state: dict) -> None:
        for k in self._state:
            value = state[k]
            setattr(self, k, value.copy() if isinstance(value, np.ndarray) else value)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class Accuracy(Metric):
    """Streaming :func:`accuracy`. Matches ``torchmetrics.Accuracy`` (micro)."""

    name = "accuracy"
    _state = ("correct", "count")

    def __init__(self, threshold: float = 0.5, ignore_index: int = IGNORE_INDEX):
        self.threshold, self.ignore_index = threshold, ignore_index
        super().__init__()

    def reset(self) -> None:
        self.correct, self.count = 0, 0

    def update(self, output, target) -> None:
        pred, true = _labels(output, target, self.threshold, self.ignore_index)
        self.correct += int((pred == true).sum())
        self.count += int(true.size)

    def compute(self) -> float:
        return self.correct / self.count if self.count else 0.0


class TopKAccuracy(Accuracy):
    """Streaming :func:`top_k_accuracy`, logged as ``top{k}_accuracy``."""

    def __init__(self, k: int = 5, ignore_index: int = IGNORE_INDEX):
        self.k = k
        self.name = f"top{k}_accuracy"
        super().__init__(ignore_index=ignore_index)

    def update(self, output, target) -> None:
        hits, n = _top_k_hits(output, target, self.k, self.ignore_index)
        self.correct += hits
        self.count += n


class _ConfusionMetric(Metric):
    """Accumulates a confusion matrix (grown as new classes appear)."""

    _state = ("cm",)
    _key = "f1"

    def __init__(self, num_classes: int | None = None, average: str | None = "macro",
                 threshold: float = 0.5, ignore_index: int = IGNORE_INDEX):
        if average not in ("macro", None):
            raise ValueError(f"{type(self).__name__}: average must be 'macro' or None (per "
                             f"class), got {average!r}")
        self.num_classes, self.average = num_classes, average
        self.threshold, self.ignore_index = threshold, ignore_index
        super().__init__()

    def reset(self) -> None:
        n = self.num_classes or 0
        self.cm = np.zeros((n, n), dtype=np.int64)

    def update(self, output, target) -> None:
        out_np = to_numpy(output)
        pred, true = _labels(out_np, target, self.threshold, self.ignore_index)
        n = max(self.cm.shape[0], int(max(pred.max(initial=-1), true.max(initial=-1))) + 1)
        if out_np.shape != to_numpy(target).shape:
            n = max(n, _scores_last(out_np, to_numpy(target)).shape[-1])
        if n > self.cm.shape[0]:
            grown = np.zeros((n, n), dtype=np.int64)
            grown[:self.cm.shape[0], :self.cm.shape[0]] = self.cm
            self.cm = grown
        self.cm += confusion_matrix(true, pred, n)

    def compute(self):
        stats = precision_recall_f1(self.cm)
        if self.average == "macro":
            return stats[f"macro_{self._key}"]
        return {f"{self.name}_{i}": float(v) for i, v in enumerate(stats[self._key])}


class Precision(_ConfusionMetric):
    """Precision ``tp / (tp + fp)``, macro-averaged over classes (or per class with
    ``average=None``, logged as ``precision_0``, ``precision_1``, ...)."""

    name = "precision"
    _key = "precision"


class Recall(_ConfusionMetric):
    """Recall ``tp / (tp + fn)``, macro-averaged (or per class with ``average=None``)."""

    name = "recall"
    _key = "recall"


class F1Score(_ConfusionMetric):
    """F1 ``2 p r / (p + r)`` per class, macro-averaged (or per class with ``average=None``)."""

    name = "f1"
    _key = "f1"


class Perplexity(Metric):
    """Streaming :func:`perplexity` (token-weighted over the epoch)."""

    name = "perplexity"
    higher_is_better = False
    _state = ("nll", "count")

    def __init__(self, ignore_index: int = IGNORE_INDEX):
        self.ignore_index = ignore_index
        super().__init__()

    def reset(self) -> None:
        self.nll, self.count = 0.0, 0

    def update(self, output, target) -> None:
        total, n = _nll_sum(output, target, self.ignore_index)
        self.nll += total
        self.count += n

    def compute(self) -> float:
        return math.exp(self.nll / self.count) if self.count else math.nan


class BitsPerCharacter(Perplexity):
    """Streaming :func:`bits_per_character`, logged as ``bpc``."""

    name = "bpc"

    def compute(self) -> float:
        return self.nll / self.count / math.log(2) if self.count else math.nan


_BY_NAME = {"accuracy": Accuracy, "acc": Accuracy, "precision": Precision, "recall": Recall,
            "f1": F1Score, "perplexity": Perplexity, "bpc": BitsPerCharacter}


def get_metric(spec) -> Metric:
    """A Metric from itself or a name: ``"accuracy"``, ``"top5_accuracy"``, ``"precision"``,
    ``"recall"``, ``"f1"``, ``"perplexity"``, ``"bpc"``."""
    if isinstance(spec, Metric):
        return spec
    if isinstance(spec, str):
        if spec in _BY_NAME:
            return _BY_NAME[spec]()
        if spec.startswith("top") and spec.endswith("_accuracy") and spec[3:-9].isdigit():
            return TopKAccuracy(int(spec[3:-9]))
    raise ValueError(f"unknown metric {spec!r}; expected a Metric instance or one of "
                     f"{sorted(_BY_NAME)} or 'top<k>_accuracy'")
