"""The diagnosis rules on hand-made statistics: each fires past its threshold, stays quiet
below it, and needs a minimum of evidence."""

import math

import pytest

from ember.diagnostics import THRESHOLDS, Finding, RunStats, diagnose
from ember.diagnostics import rules as R


def _stats(grad_rms_by_depth=(), steps=(0, 10, 20, 30), losses=None, every=10):
    s = RunStats(every, "Net")
    for i, g in enumerate(grad_rms_by_depth):
        key = f"layers.{i}"
        s.add_layer(key, {"path": key, "type": "Linear", "kind": "param"})
        s.params[f"{key}.weight"] = {"path": key, "shape": [8, 8]}
        for step in steps:
            s.layer_value(key, "grad_rms", step, g)
            s.param_value(f"{key}.weight", "grad_norm", step, 8 * g)
            s.param_value(f"{key}.weight", "update_ratio", step, 1e-3)
    s.sampled = list(steps)
    if losses is not None:
        s.loss = [[i, v] for i, v in enumerate(losses)]
        s.steps = len(losses)
    return s


def _kinds(stats):
    return {f.kind: f for f in diagnose(stats)}


def test_every_threshold_is_documented():
    for name, t in THRESHOLDS.items():
        assert t.value > 0 and len(t.reason) > 40, name


def test_vanishing_by_ratio_and_severity():
    f = _kinds(_stats([1e-7, 1e-5, 1e-3, 1e-2]))["vanishing_gradients"]
    assert f.severity == "error" and f.path == "layers.0"  # ratio 1e-5
    assert f.evidence["affected_layers"] == ["layers.0", "layers.1"]
    f = _kinds(_stats([3e-4, 1e-3, 1e-2, 5e-2]))["vanishing_gradients"]
    assert f.severity == "warning"
    assert f.evidence["ratio_early_to_late"] == pytest.approx(0.006)
    assert "vanishing_gradients" not in _kinds(_stats([2e-3, 1e-2, 1e-2, 5e-2]))


def test_vanishing_by_geometric_decay_over_six_layers():
    decay = [0.45 ** (6 - i) for i in range(7)]  # ratio early/late ~ 1/30: above 1e-2
    f = _kinds(_stats(decay))["vanishing_gradients"]
    assert f.evidence["decay_per_layer"] == pytest.approx(0.45, rel=1e-3)
    assert "vanishing_gradients" not in _kinds(_stats([0.6 ** (6 - i) for i in range(7)]))


def test_depth_profile_needs_three_layers():
    assert _kinds(_stats([1e-9, 1.0])) == {}


def test_exploding_by_depth():
    f = _kinds(_stats([1.0, 0.1, 1e-3]))["exploding_gradients"]
    assert f.severity == "warning" and "clip" in " ".join(f.remedies).lower()


def test_grad_spike():
    s = _stats()
    for step, g in enumerate([1.0, 0.9, 1.1, 0.8, 150.0]):
        s.global_value("grad_norm", step * 10, g)
    f = _kinds(s)["exploding_gradients"]
    assert f.evidence["at_step"] == 40 and f.evidence["spike_factor"] > 100
    s.global_series["grad_norm"][-1][1] = 50.0
    assert "exploding_gradients" not in _kinds(s)


def test_divergence_oscillation_and_short_runs():
    f = _kinds(_stats(losses=[2.3] * 5 + [4.0] * 30))["lr_too_high"]
    assert f.evidence["symptom"] == "divergence" and f.severity == "error"
    f = _kinds(_stats(losses=[2.3] + [1.6, 2.6, 1.2, 3.0] * 10))["lr_too_high"]
    assert f.evidence["symptom"] == "oscillation"
    assert "lr_too_high" not in _kinds(_stats(losses=[2.3] * 5 + [9.0] * 10))  # < 20 steps
    healthy = [2.3 * 0.99 ** i for i in range(200)]
    assert _kinds(_stats(losses=healthy)) == {}


def test_update_ratios_high_and_low():
    s = _stats([1e-2, 1e-2, 1e-2])
    for name in s.params:
        s.param_series[name]["update_ratio"] = [[i * 10, 0.3] for i in range(4)]
    f = _kinds(s)["lr_too_high"]
    assert f.evidence["symptom"] == "large_updates" and f.severity == "warning"
    for name in s.params:
        s.param_series[name]["update_ratio"] = [[i * 10, 1e-7] for i in range(4)]
    assert _kinds(s)["lr_too_low"].severity == "warning"
    for name in s.params:  # no gradient at all: not the learning rate
        s.param_series[name]["grad_norm"] = [[i * 10, 0.0] for i in range(4)]
    assert "lr_too_low" not in _kinds(s)


def test_underfitting_needs_100_flat_steps():
    assert "underfitting" in _kinds(_stats(losses=[2.3] * 120))
    assert "underfitting" not in _kinds(_stats(losses=[2.3] * 60))
    assert "underfitting" not in _kinds(_stats(losses=[2.3 * 0.99 ** i for i in range(120)]))


def _epochs(train, val):
    return [{"epoch": i, "step": 10 * (i + 1), "loss": t, "val_loss": v}
            for i, (t, v) in enumerate(zip(train, val))]


def test_overfitting_rule():
    s = _stats()
    s.epochs = _epochs([2.0, 1.5, 1.0, 0.7, 0.5, 0.3], [2.0, 1.6, 1.4, 1.5, 1.7, 1.9])
    f = _kinds(s)["overfitting"]
    assert f.evidence["best_epoch"] == 2 and f.evidence["final_val_loss"] == 1.9
    s.epochs = _epochs([2.0, 1.5, 1.0, 0.7, 0.5], [2.0, 1.6, 1.4, 1.45, 1.5])  # < 10% rise
    assert "overfitting" not in _kinds(s)
    s.epochs = _epochs([2.0, 1.5, 1.0, 0.7], [2.0, 1.6, 1.4, 1.9])  # best too recent
    assert "overfitting" not in _kinds(s)
    s.epochs = _epochs([2.0, 1.5, 1.0, 1.2, 1.4], [2.0, 1.6, 1.4, 1.9, 2.2])  # train rising
    assert "overfitting" not in _kinds(s)


@pytest.mark.parametrize("mean,std,ratio,expect", [
    (0.0, 1.0, 2.0, False), (0.3, 0.4, None, False), (120.0, 70.0, 1.5, True),
    (50.0, 5.0, 1.0, True), (0.0, 1e-3, 1.0, True), (0.0, 1.0, 500.0, True)])
def test_unnormalized_inputs(mean, std, ratio, expect):
    s = _stats()
    for step in (0, 10):
        s.input_value("mean", step, mean)
        s.input_value("std", step, std)
        if ratio is not None:
            s.input_value("feature_std_ratio", step, ratio)
    f = _kinds(s).get("unnormalized_inputs")
    assert (f is not None) == expect
    if f:
        assert "Standardize" in f.remedies[0]


def test_dead_and_saturated_thresholds():
    s = _stats()
    for key, kind, q, v in (("a", "relu", "dead_frac", 0.6), ("b", "relu", "dead_frac", 0.95),
                            ("c", "relu", "dead_frac", 0.3), ("d", "relu", "dead_frac", 0.1),
                            ("e", "sigmoid", "sat_frac", 0.7), ("f", "tanh", "sat_frac", 0.2)):
        s.add_layer(key, {"path": key, "type": "X", "kind": kind})
        for step in (0, 10, 20):
            s.layer_value(key, q, step, v)
    found = {(f.kind, f.path): f.severity for f in diagnose(s)}
    assert found[("dead_units", "a")] == "warning" and found[("dead_units", "b")] == "error"
    assert found[("dead_units", "c")] == "info" and ("dead_units", "d") not in found
    assert found[("saturation", "e")] == "warning" and ("saturation", "f") not in found
    s.layers["a"]["residual_branch"] = True
    assert {(f.kind, f.path): f.severity for f in diagnose(s)}[("dead_units", "a")] == "info"


def test_nan_loss_and_ordering():
    s = _stats([1e-5, 1e-4, 1e-3, 1e-2], losses=[2.3, 2.2, math.nan, math.nan] + [2.3] * 30)
    findings = diagnose(s)
    assert findings[0].kind == "nan_inf" and findings[0].evidence["first_nonfinite_loss_step"] == 2
    levels = [f.level for f in findings]
    assert levels == sorted(levels, reverse=True)


def test_acute_checks():
    assert R.acute_loss(math.inf, [], 0).kind == "nan_inf"
    assert R.acute_loss(30.0, [2.3], 1).kind == "lr_too_high"
    assert R.acute_loss(3.0, [2.3], 1) is None
    assert R.acute_grad_norm(500.0, [1.0, 1.2, 0.9], 5).kind == "exploding_gradients"
    assert R.acute_grad_norm(5.0, [1.0, 1.2, 0.9], 5) is None
    assert isinstance(R.acute_grad_norm(math.nan, [], 0), Finding)
