"""The doctor's demonstrations: each sick network gets its diagnosis, the cures and the healthy
reference recipes get none (no finding above "info")."""

import warnings

import pytest

import ember
from ember import nn, recipes
from ember.diagnostics import DoctorCallback, DoctorWarning, load_report
from ember.recipes.vanishing import ResidualReLUMLP, SigmoidMLP
from ember.train import Trainer

from .helpers import fit, kinds, mnist1d


@pytest.fixture(scope="module")
def sick():
    ember.manual_seed(0)
    return fit(SigmoidMLP(depth=20, init_std=0.1), steps=160, lr=3e-3)


@pytest.fixture(scope="module")
def cured():
    ember.manual_seed(0)
    return fit(ResidualReLUMLP(depth=20), steps=160, lr=3e-3)


def test_sick_20_layer_sigmoid_mlp_has_vanishing_gradients_in_the_first_layers(sick):
    cb, history, _ = sick
    vanishing = [f for f in cb.findings if f.kind == "vanishing_gradients"]
    assert len(vanishing) == 1
    f = vanishing[0]
    assert f.severity == "error" and f.path == "layers.0"
    assert f.evidence["ratio_early_to_late"] < 1e-6
    assert f.evidence["affected_layers"][:3] == ["layers.0", "layers.2", "layers.4"]
    assert f.evidence["decay_per_layer"] < 0.5
    assert any("ReLU" in r for r in f.remedies) and any("He" in r for r in f.remedies)
    assert any("residual" in r for r in f.remedies)
    assert history["val_accuracy"][-1] < 0.2  # chance level: 10 classes


def test_cured_model_is_healthy_and_trains_to_a_clearly_higher_accuracy(sick, cured):
    cb, history, caught = cured
    assert kinds(cb.findings) == set(), [str(f) for f in cb.findings]
    assert not caught
    assert history["val_accuracy"][-1] > sick[1]["val_accuracy"][-1] + 0.25


def test_learning_rate_100x_too_high_is_diagnosed_as_divergence():
    ember.manual_seed(0)
    cb, _, caught = fit(recipes.models.ResidualMLP(40, 256, 10), steps=120, lr=1.0)  # ref 1e-2
    lr = [f for f in cb.findings if f.kind == "lr_too_high"]
    assert lr and lr[0].severity == "error" and lr[0].evidence["symptom"] == "divergence"
    assert lr[0].evidence["max_loss"] > 10 * lr[0].evidence["initial_loss"]
    assert any("Lower the learning rate" in r for r in lr[0].remedies)
    assert "underfitting" not in kinds(cb.findings)
    # the warning came while training, at the first exploding step
    assert any("learning rate too high" in str(w.message) for w in caught)


def test_relu_network_with_negative_bias_init_has_dead_units():
    ember.manual_seed(0)
    model = nn.Sequential(nn.Linear(40, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(),
                          nn.Linear(128, 10))
    for i in (0, 2):
        nn.init.constant_(model[i].bias, -3.0)
    cb, _, _ = fit(model, steps=40, every=5)
    dead = {f.path: f for f in cb.findings if f.kind == "dead_units"}
    assert set(dead) == {"1", "3"}
    assert dead["1"].severity == "error" and dead["1"].evidence["dead_fraction"] > 0.9
    assert dead["1"].evidence["preactivation_mean"] < -2
    assert "bias initialization" in dead["1"].message
    assert "lr_too_low" not in kinds(cb.findings)  # no gradient at all is not a small lr


def test_overparameterized_model_on_a_small_subset_overfits():
    ember.manual_seed(0)
    model = nn.Sequential(nn.Linear(40, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(),
                          nn.Linear(512, 10))
    cb, history, _ = fit(model, epochs=25, n=200, batch_size=50, every=5, val_n=500)
    over = [f for f in cb.findings if f.kind == "overfitting"]
    assert over and over[0].severity == "warning"
    ev = over[0].evidence
    assert ev["final_val_loss"] > 1.1 * ev["best_val_loss"]
    assert ev["final_train_loss"] < ev["train_loss_at_best"]
    assert any("weight decay" in r for r in over[0].remedies)
    assert any("augment" in r for r in over[0].remedies)


@pytest.mark.parametrize("name,steps", [("mnist1d-mlp", 160), ("mnist1d-cnn", 160),
                                        ("digits-cnn", 90)])
def test_no_false_alarm_on_healthy_recipes(tmp_path, name, steps):
    with warnings.catch_warnings():
        warnings.simplefilter("error", DoctorWarning)
        summary = recipes.train(name, tmp_path / name, doctor=True, steps=steps)
    assert summary["doctor"]["error"] == summary["doctor"]["warning"] == 0, summary["doctor"]
    stats, findings = load_report(tmp_path / name / "doctor")
    assert all(f.severity == "info" for f in findings)
    assert stats.steps >= steps and len(stats.sampled) >= steps // 10
    assert summary["test"]["accuracy"] > 0.5


def test_unscaled_inputs_are_diagnosed():
    ember.manual_seed(0)
    x, y = mnist1d("train")
    data = [(ember.tensor(x[i:i + 100] * 80 + 120), ember.tensor(y[i:i + 100]))
            for i in range(0, 2000, 100)]  # like raw 0-255 pixel values
    model = nn.Sequential(nn.Linear(40, 64), nn.ReLU(), nn.Linear(64, 10))
    cb = DoctorCallback(every=5, verbose=0, warn=False)
    Trainer(model, ember.optim.SGD(model.parameters(), lr=1e-4)).fit(
        data, epochs=1, callbacks=[cb], verbose=0)
    f = [f for f in cb.findings if f.kind == "unnormalized_inputs"][0]
    assert f.path == "inputs" and f.evidence["std"] > 50 and f.evidence["mean"] > 100
    assert "Standardize" in f.remedies[0]


def test_tanh_network_with_large_weights_is_saturated():
    ember.manual_seed(0)
    model = nn.Sequential(nn.Linear(40, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(),
                          nn.Linear(64, 10))
    for i in (0, 2):
        nn.init.normal_(model[i].weight, std=2.0)  # pre-activations ~ N(0, 10^2)
    cb, _, _ = fit(model, steps=20, every=5, val_n=100)
    sat = {f.path: f for f in cb.findings if f.kind == "saturation"}
    assert set(sat) == {"1", "3"} and sat["3"].evidence["saturated_fraction"] > 0.8
    assert sat["3"].evidence["activation"] == "tanh"
    assert any("Xavier" in r for r in sat["3"].remedies)
