import math

import numpy as np
import pytest

import ember
from ember.train import metrics as M


def test_accuracy_argmax_and_binary_and_labels():
    logits = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    assert M.accuracy(logits, [1, 0, 0, 0]) == 0.75
    assert M.accuracy(ember.tensor(logits), ember.tensor([1, 1, 1, 1])) == 0.5
    assert M.accuracy(np.array([0.2, 0.7, 0.9]), np.array([0, 1, 0])) == pytest.approx(2 / 3)
    assert M.accuracy(np.array([0.2, 0.7]), np.array([1, 1]), threshold=0.1) == 1.0
    assert M.accuracy(np.array([2, 1, 0]), np.array([2, 1, 1])) == pytest.approx(2 / 3)


def test_accuracy_class_dim_one_or_last_and_ignore_index():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((2, 5, 3))           # (N, T, V): class dim last
    target = rng.integers(0, 3, (2, 5))
    expected = (logits.argmax(-1) == target).mean()
    assert M.accuracy(logits, target) == pytest.approx(expected)
    nct = np.moveaxis(logits, -1, 1)                  # (N, V, T): class dim 1
    assert M.accuracy(nct, target) == pytest.approx(expected)
    target[0, :] = -100
    keep = target != -100
    assert M.accuracy(logits, target) == pytest.approx(
        (logits.argmax(-1) == target)[keep].mean())
    with pytest.raises(ValueError, match="does not match"):
        M.accuracy(np.zeros((3, 4)), np.zeros(5))


def test_top_k_accuracy_by_hand():
    scores = np.array([[0.5, 0.3, 0.2], [0.1, 0.2, 0.7], [0.3, 0.4, 0.3]])
    target = [1, 0, 2]
    assert M.top_k_accuracy(scores, target, k=1) == 0.0
    assert M.top_k_accuracy(scores, target, k=2) == pytest.approx(2 / 3)
    assert M.top_k_accuracy(scores, target, k=3) == 1.0
    with pytest.raises(ValueError, match="k must be"):
        M.top_k_accuracy(scores, target, k=4)


def test_confusion_matrix_and_precision_recall_f1_by_hand():
    true = [0, 0, 1, 1, 1, 2]
    pred = [0, 1, 1, 1, 2, 2]
    cm = M.confusion_matrix(true, pred, 3)
    assert cm.tolist() == [[1, 1, 0], [0, 2, 1], [0, 0, 1]]
    s = M.precision_recall_f1(cm)
    np.testing.assert_allclose(s["precision"], [1, 2 / 3, 1 / 2])
    np.testing.assert_allclose(s["recall"], [1 / 2, 2 / 3, 1])
    f1 = [2 * 0.5 / 1.5, 2 / 3, 2 * 0.5 / 1.5]
    np.testing.assert_allclose(s["f1"], f1)
    assert s["macro_f1"] == pytest.approx(np.mean(f1))
    assert s["macro_precision"] == pytest.approx((1 + 2 / 3 + 1 / 2) / 3)
    assert s["support"].tolist() == [2, 3, 1]
    # a class never predicted and never present: 0, not nan
    s = M.precision_recall_f1(M.confusion_matrix([0, 1], [0, 1], 3))
    assert s["precision"][2] == 0 and s["f1"][2] == 0
    with pytest.raises(ValueError, match="labels must be in"):
        M.confusion_matrix([0, 3], [0, 1], 3)


def test_streaming_metrics_match_one_shot_and_round_trip_state():
    rng = np.random.default_rng(1)
    logits = rng.standard_normal((30, 4))
    target = rng.integers(0, 4, 30)
    ms = [M.Accuracy(), M.TopKAccuracy(2), M.Precision(), M.Recall(), M.F1Score(),
          M.F1Score(average=None), M.Perplexity(), M.BitsPerCharacter()]
    for m in ms:
        for i in range(0, 30, 7):
            m.update(ember.tensor(logits[i:i + 7]), ember.tensor(target[i:i + 7]))
    stats = M.precision_recall_f1(M.confusion_matrix(target, logits.argmax(1), 4))
    assert ms[0].compute() == pytest.approx(M.accuracy(logits, target))
    assert ms[1].compute() == pytest.approx(M.top_k_accuracy(logits, target, 2))
    assert ms[2].compute() == pytest.approx(stats["macro_precision"])
    assert ms[3].compute() == pytest.approx(stats["macro_recall"])
    assert ms[4].compute() == pytest.approx(stats["macro_f1"])
    assert ms[5].compute() == pytest.approx({f"f1_{i}": v for i, v in enumerate(stats["f1"])})
    assert ms[6].compute() == pytest.approx(M.perplexity(logits, target))
    assert ms[7].compute() == pytest.approx(M.bits_per_character(logits, target))
    for m in ms:
        fresh = type(m)(2) if isinstance(m, M.TopKAccuracy) else type(m)()
        if isinstance(m, M.F1Score) and m.average is None:
            fresh = M.F1Score(average=None)
        fresh.load_state_dict(m.state_dict())
        assert fresh.compute() == pytest.approx(m.compute())
        m.reset()
    assert M.get_metric("top3_accuracy").k == 3
    with pytest.raises(ValueError, match="unknown metric"):
        M.get_metric("nope")


def test_perplexity_and_bpc_closed_forms():
    assert M.perplexity(np.zeros((5, 7)), np.arange(5)) == pytest.approx(7.0)
    assert M.bits_per_character(np.zeros((3, 256)), [1, 2, 3]) == pytest.approx(8.0)
    # one token with p = 0.5: perplexity 2, 1 bit
    logits = np.log(np.array([[0.5, 0.25, 0.25]]))
    assert M.perplexity(logits, [0]) == pytest.approx(2.0)
    assert M.bits_per_character(logits, [0]) == pytest.approx(1.0)


@pytest.mark.oracle
def test_perplexity_against_torch_cross_entropy():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    logits = rng.standard_normal((2, 6, 11)).astype(np.float32) * 3
    target = rng.integers(0, 11, (2, 6))
    target[1, 4] = -100
    ce = torch.nn.functional.cross_entropy(torch.tensor(logits).permute(0, 2, 1),
                                           torch.tensor(target), ignore_index=-100)
    assert M.perplexity(logits, target) == pytest.approx(math.exp(ce.item()), rel=1e-5)
    assert M.bits_per_character(logits, target) == pytest.approx(ce.item() / math.log(2),
                                                                 rel=1e-5)


REF = "the cat is on the mat".split()
HYP = "the cat sat on the mat".split()


def test_bleu_hand_computed():
    # clipped n-gram precisions: 5/6, 3/5, 1/4, 0/3; equal lengths so BP = 1
    assert M.corpus_bleu([REF], [HYP]) == 0.0
    eps = (5 / 6 * 3 / 5 * 1 / 4 * (0.1 / 3)) ** 0.25
    assert M.corpus_bleu([REF], [HYP], smoothing="epsilon") == pytest.approx(eps)
    add1 = (5 / 6 * 4 / 6 * 2 / 5 * 1 / 4) ** 0.25
    assert M.corpus_bleu([REF], [HYP], smoothing="add1") == pytest.approx(add1)
    assert M.corpus_bleu([REF], [HYP], max_n=2) == pytest.approx((5 / 6 * 3 / 5) ** 0.5)
    assert M.corpus_bleu([" ".join(REF)], [" ".join(HYP)], max_n=3) == pytest.approx(
        (5 / 6 * 3 / 5 * 1 / 4) ** (1 / 3))
    assert M.corpus_bleu([REF], [REF]) == pytest.approx(1.0)


def test_bleu_clipping_brevity_penalty_and_corpus_aggregation():
    # Papineni et al.'s example: clipped unigram precision 2/7, closest ref length 7
    refs = [["the cat is on the mat".split(), "there is a cat on the mat".split()]]
    assert M.corpus_bleu(refs, ["the the the the the the the".split()],
                         max_n=1) == pytest.approx(2 / 7)
    # short hypothesis: c = 2, r = 6, BP = exp(1 - 6/2)
    assert M.corpus_bleu([REF], [["the", "cat"]], max_n=2) == pytest.approx(math.exp(-2))
    # counts are pooled over the corpus (3/6), not averaged per sentence (0.625)
    assert M.corpus_bleu([["a", "b"], ["c", "x", "y", "z"]],
                         [["a", "b"], ["c", "d", "e", "f"]], max_n=1) == pytest.approx(0.5)
    assert M.corpus_bleu([REF], [[]]) == 0.0
    with pytest.raises(ValueError, match="references for"):
        M.corpus_bleu([REF, REF], [HYP])
    with pytest.raises(ValueError, match="smoothing"):
        M.corpus_bleu([REF], [HYP], smoothing="magic")
