"""Occlusion against Captum; permutation importance on a model where one feature matters."""

import numpy as np
import pytest

import ember
from ember import explain

from .twins import both, close, inputs, twins

captum_attr = pytest.importorskip("captum.attr")


@pytest.mark.oracle
@pytest.mark.parametrize("kind,window,strides,baselines", [
    ("cnn2d", (1, 3, 3), (1, 2, 2), 0.0),
    ("cnn2d", (1, 2, 2), 1, 0.5),
    ("cnn2d", (1, 8, 8), 1, -1.0),
    ("cnn1d", (1, 5), (1, 3), 0.0),  # the last window is cropped at the border
    ("mlp", (2,), 2, 0.25),
    ("mlp", (3,), 1, None),
])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_occlusion_matches_captum(kind, window, strides, baselines, dtype):
    e_mod, t_mod = twins(kind, dtype)
    ex, tx = both(inputs(kind, dtype=dtype))
    ours = explain.occlusion(e_mod, ex, window, strides, baselines=baselines, target=[1, 3, 0],
                             perturbations_per_eval=4)
    theirs = captum_attr.Occlusion(t_mod).attribute(
        tx, sliding_window_shapes=window, strides=strides,
        baselines=baselines if baselines is not None else 0.0, target=[1, 3, 0],
        perturbations_per_eval=16)
    # Captum divides by the window counts in float32 (``single_attrib.float() / weight``),
    # so its float64 results carry float32 rounding (~6e-8 relative); ember keeps float64
    close(ours, theirs, 1e-4 if dtype == np.float32 else 1e-6, f"occlusion {kind} {window}")


@pytest.mark.oracle
def test_occlusion_with_a_tensor_baseline_matches_captum():
    e_mod, t_mod = twins("cnn2d")
    x = inputs("cnn2d")
    base = inputs("cnn2d", n=1, seed=4)
    (ex, tx), (eb, tb) = both(x), both(base)
    ours = explain.occlusion(e_mod, ex, (1, 4, 4), (1, 2, 2), baselines=eb, target=2)
    theirs = captum_attr.Occlusion(t_mod).attribute(tx, (1, 4, 4), (1, 2, 2), baselines=tb,
                                                    target=2, perturbations_per_eval=16)
    close(ours, theirs, 1e-6, "occlusion, tensor baseline")


def test_occlusion_of_token_ids_by_hand():
    """Integer inputs: each token replaced by the baseline id, one at a time."""
    e_mod, t_mod = twins("bag")
    ids = ember.tensor([[3, 5, 7, 1]])
    attr = explain.occlusion(e_mod, ids, (1,), baselines=2, target=1)
    with ember.no_grad():
        full = float(e_mod(ids)[0, 1])
        expected = []
        for i in range(4):
            occluded = ids.clone()
            occluded[0, i] = 2
            expected.append(full - float(e_mod(occluded)[0, 1]))
    np.testing.assert_allclose(attr[0].numpy(), expected, rtol=1e-12, atol=1e-15)


def test_occlusion_errors():
    model, _ = twins("cnn2d")
    x = ember.tensor(inputs("cnn2d"))
    with pytest.raises(ValueError, match="exceeds the input's non-batch shape"):
        explain.occlusion(model, x, (1, 9, 9))
    with pytest.raises(ValueError, match="stride .* is larger than the sliding window"):
        explain.occlusion(model, x, (1, 2, 2), (1, 3, 3))
    with pytest.raises(ValueError, match="tuple of 3 positive ints"):
        explain.occlusion(model, x, (2, 2))
    with pytest.raises(ValueError, match="do not broadcast"):
        explain.occlusion(model, x, (1, 2, 2), baselines=ember.zeros(2, 8, 8))


def _one_feature_model(n_features=5, important=2):
    model = ember.nn.Linear(n_features, 2).double()
    with ember.no_grad():
        model.weight.zero_()
        model.bias.zero_()
        model.weight[0, important] = -4.0
        model.weight[1, important] = 4.0
    return model


def test_permutation_importance_finds_the_one_feature_that_matters():
    model = _one_feature_model()
    x = ember.randn(300, 5, dtype=ember.float64, generator=ember.Generator().manual_seed(1))
    y = (x[:, 2] > 0).long()
    result = explain.permutation_importance(model, x, y, n_repeats=4,
                                            generator=ember.Generator().manual_seed(0))
    assert result.baseline_score == 1.0
    mean = result.importances_mean.numpy()
    assert mean[2] > 0.3
    np.testing.assert_array_equal(np.delete(mean, 2), 0.0)
    assert tuple(result.importances.shape) == (4, 5)
    np.testing.assert_allclose(result.importances_std.numpy(),
                               result.importances.numpy().std(0), atol=1e-12)
    again = explain.permutation_importance(model, x, y, n_repeats=4,
                                           generator=ember.Generator().manual_seed(0))
    np.testing.assert_array_equal(again.importances.numpy(), result.importances.numpy())


def test_permutation_importance_metrics_and_feature_shapes():
    model = _one_feature_model(6, 4)
    x = ember.randn(100, 2, 3, dtype=ember.float64)
    y = (x[:, 1, 1] > 0).long()  # flat feature 4

    def flat_model(t):
        return model(t.reshape(t.shape[0], -1))

    for metric in ("accuracy", "neg_cross_entropy", lambda out, t: float(
            (out.argmax(1) == t).double().mean())):
        r = explain.permutation_importance(flat_model, x, y, metric=metric, n_repeats=2)
        assert tuple(r.importances_mean.shape) == (2, 3)
        flat = r.importances_mean.reshape(-1).numpy()
        assert flat[4] > 0 and np.all(np.delete(flat, 4) == 0)
    reg = ember.nn.Linear(3, 1).double()
    xr = ember.randn(50, 3, dtype=ember.float64)
    with ember.no_grad():
        yr = reg(xr).reshape(-1)
    r = explain.permutation_importance(reg, xr, yr, metric="neg_mean_squared_error")
    assert r.baseline_score == pytest.approx(0.0, abs=1e-12)
    assert np.all(r.importances_mean.numpy() >= 0)
    with pytest.raises(ValueError, match="unknown metric 'f2'; valid: accuracy"):
        explain.permutation_importance(model, x.reshape(100, 6), y, metric="f2")
    with pytest.raises(ValueError, match="one label per example"):
        explain.permutation_importance(model, x.reshape(100, 6), y[:10])


@pytest.mark.oracle
def test_permutation_importance_agrees_with_scikit_learn_on_a_clear_case():
    """Not the same shuffles, but the same definition: the important feature's drop is near
    scikit-learn's, the others are exactly 0 in both."""
    inspection = pytest.importorskip("sklearn.inspection")
    model = _one_feature_model()
    x = ember.randn(400, 5, dtype=ember.float64, generator=ember.Generator().manual_seed(3))
    y = (x[:, 2] > 0).long()

    class Wrapped:
        def fit(self, *a):
            return self

        def score(self, xs, ys):
            with ember.no_grad():
                return float((model(ember.tensor(xs)).argmax(1).numpy() == ys).mean())

    sk = inspection.permutation_importance(Wrapped(), x.numpy(), y.numpy(), n_repeats=20,
                                           random_state=0)
    ours = explain.permutation_importance(model, x, y, n_repeats=20,
                                          generator=ember.Generator().manual_seed(0))
    assert abs(ours.importances_mean[2].item() - sk.importances_mean[2]) < 0.05
    np.testing.assert_array_equal(np.delete(sk.importances_mean, 2), 0.0)
