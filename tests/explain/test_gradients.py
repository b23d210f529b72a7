"""Saliency, input x gradient, SmoothGrad and integrated gradients: against Captum on twin
models, and their own properties (completeness, zero noise, restored model state)."""

import numpy as np
import pytest

import ember
from ember import explain
from ember.explain.gradients import approximation_parameters

from .twins import both, close, inputs, twins

captum_attr = pytest.importorskip("captum.attr")

TOL = {np.float32: 1e-4, np.float64: 1e-5}
KINDS = ["mlp", "cnn2d", "cnn1d"]


@pytest.mark.oracle
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("abs_", [True, False])
def test_saliency_matches_captum(kind, dtype, abs_):
    e_mod, t_mod = twins(kind, dtype)
    ex, tx = both(inputs(kind, dtype=dtype))
    target = [0, 3, 1]
    ours = explain.saliency(e_mod, ex, target=target, abs=abs_)
    theirs = captum_attr.Saliency(t_mod).attribute(tx, target=target, abs=abs_)
    close(ours, theirs, TOL[dtype], f"saliency {kind}")
    assert ours.dtype == ex.dtype


@pytest.mark.oracle
@pytest.mark.parametrize("kind", KINDS)
def test_input_x_gradient_matches_captum(kind):
    e_mod, t_mod = twins(kind)
    ex, tx = both(inputs(kind))
    ours = explain.input_x_gradient(e_mod, ex, target=2)
    theirs = captum_attr.InputXGradient(t_mod).attribute(tx, target=2)
    close(ours, theirs, 1e-9, f"input x gradient {kind}")


@pytest.mark.oracle
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("method,n_steps", [("gausslegendre", 50), ("gausslegendre", 7),
                                            ("riemann_trapezoid", 20), ("riemann_left", 16),
                                            ("riemann_right", 16), ("riemann_middle", 16)])
def test_integrated_gradients_matches_captum_float64(kind, method, n_steps):
    e_mod, t_mod = twins(kind)
    ex, tx = both(inputs(kind))
    ours, delta = explain.integrated_gradients(e_mod, ex, target=[1, 0, 3], n_steps=n_steps,
                                               method=method, return_convergence_delta=True)
    ig = captum_attr.IntegratedGradients(t_mod)
    theirs, t_delta = ig.attribute(tx, target=[1, 0, 3], n_steps=n_steps, method=method,
                                   return_convergence_delta=True)
    # Captum's riemann points come from a float32 linspace, its step sizes are cast to
    # float32: ~1e-7 relative, well inside 1e-5
    close(ours, theirs, 1e-5, f"IG {kind} {method}")
    scale = float(theirs.detach().abs().max())
    np.testing.assert_allclose(delta.numpy(), t_delta.detach().numpy(), atol=1e-5 * scale)


@pytest.mark.oracle
@pytest.mark.parametrize("kind", KINDS)
def test_integrated_gradients_matches_captum_float32_with_baselines(kind):
    e_mod, t_mod = twins(kind, np.float32)
    x = inputs(kind, dtype=np.float32)
    base = inputs(kind, n=1, dtype=np.float32, seed=9) * 0.1
    ex, tx = both(x)
    eb, tb = both(base)
    ig = captum_attr.IntegratedGradients(t_mod)
    for e_base, t_base in ((0.5, 0.5), (eb, tb)):
        ours = explain.integrated_gradients(e_mod, ex, target=2, baselines=e_base, n_steps=30)
        theirs = ig.attribute(tx, baselines=t_base, target=2, n_steps=30)
        close(ours, theirs, 1e-4, f"IG float32 {kind}")


@pytest.mark.parametrize("method", ["gausslegendre", "riemann_middle"])
def test_integrated_gradients_completeness(method):
    """Attributions add up to f(x) - f(baseline) (smooth model, enough steps). Not checked
    for riemann_trapezoid: Captum's weights for it sum to (n - 1) / n, an O(1/n) error that
    ember reproduces."""
    e_mod, _ = twins("mlp")
    x = ember.tensor(inputs("mlp", n=4))
    attr, delta = explain.integrated_gradients(e_mod, x, target=None, baselines=-0.3,
                                               n_steps=200, method=method,
                                               return_convergence_delta=True)
    with ember.no_grad():
        out = e_mod(x)
        pred = out.argmax(1)
        diff = out.gather(1, pred.reshape(-1, 1)) - e_mod(ember.full_like(x, -0.3)).gather(
            1, pred.reshape(-1, 1))
    np.testing.assert_allclose(attr.sum(1).numpy(), diff.reshape(-1).numpy(), atol=1e-4)
    assert float(delta.abs().max()) < (1e-9 if method == "gausslegendre" else 1e-4)


def test_integrated_gradients_internal_batch_size_gives_the_same_result():
    e_mod, _ = twins("cnn2d")
    x = ember.tensor(inputs("cnn2d"))
    whole = explain.integrated_gradients(e_mod, x, target=1, n_steps=10)
    chunked = explain.integrated_gradients(e_mod, x, target=1, n_steps=10,
                                           internal_batch_size=7)
    np.testing.assert_allclose(whole.numpy(), chunked.numpy(), rtol=1e-12, atol=1e-14)


def test_approximation_parameters_match_captum():
    from captum.attr._utils.approximation_methods import approximation_parameters as cap

    for method in ("gausslegendre", "riemann_left", "riemann_right", "riemann_middle",
                   "riemann_trapezoid"):
        for n in (2, 5, 50):
            steps, alphas = approximation_parameters(method, n)
            c_steps, c_alphas = cap(method)
            np.testing.assert_allclose(steps, c_steps(n), rtol=1e-7, atol=1e-15)
            np.testing.assert_allclose(alphas, c_alphas(n), rtol=1e-6, atol=1e-7)
            assert abs(sum(steps) - 1.0) < 1e-12 or method == "riemann_trapezoid"


@pytest.mark.oracle
def test_smoothgrad_without_noise_is_saliency_like_captum_noise_tunnel():
    e_mod, t_mod = twins("cnn1d")
    ex, tx = both(inputs("cnn1d"))
    ours = explain.smoothgrad(e_mod, ex, target=3, nt_samples=4, stdevs=0.0)
    np.testing.assert_allclose(ours.numpy(), explain.saliency(e_mod, ex, target=3).numpy(),
                               rtol=1e-12)
    nt = captum_attr.NoiseTunnel(captum_attr.Saliency(t_mod))
    theirs = nt.attribute(tx, nt_type="smoothgrad", nt_samples=4, stdevs=0.0, target=3)
    close(ours, theirs, 1e-9, "smoothgrad, stdevs=0")
    vargrad = explain.smoothgrad(e_mod, ex, target=3, nt_samples=4, stdevs=0.0,
                                 nt_type="vargrad")
    assert float(vargrad.abs().max()) < 1e-12


@pytest.mark.parametrize("nt_type", ["smoothgrad", "smoothgrad_sq", "vargrad"])
def test_smoothgrad_is_the_mean_over_the_seeded_noisy_samples(nt_type):
    e_mod, _ = twins("mlp")
    x = ember.tensor(inputs("mlp", n=2))
    ours = explain.smoothgrad(e_mod, x, target=[0, 2], nt_samples=6, stdevs=0.2,
                              nt_type=nt_type, abs=False,
                              generator=ember.Generator().manual_seed(5))
    noise = ember.randn(6, 2, 6, generator=ember.Generator().manual_seed(5),
                        dtype=ember.float64) * 0.2
    grads = np.stack([explain.saliency(e_mod, x + noise[s], target=[0, 2], abs=False).numpy()
                      for s in range(6)])
    expected = {"smoothgrad": grads.mean(0), "smoothgrad_sq": (grads ** 2).mean(0),
                "vargrad": grads.var(0)}[nt_type]
    np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-9, atol=1e-12)
    again = explain.smoothgrad(e_mod, x, target=[0, 2], nt_samples=6, stdevs=0.2,
                               nt_type=nt_type, abs=False,
                               generator=ember.Generator().manual_seed(5))
    np.testing.assert_array_equal(ours.numpy(), again.numpy())


def test_smoothgrad_noise_level_scales_with_each_examples_range():
    model = ember.nn.Linear(3, 2).double()
    x = ember.tensor([[0.0, 1.0, 2.0], [0.0, 10.0, 20.0]], dtype=ember.float64)
    # a linear model's gradient ignores the noise: any noise level returns the weights
    out = explain.smoothgrad(model, x, target=1, nt_samples=3, noise_level=0.2, abs=False)
    np.testing.assert_allclose(out.numpy(), np.tile(model.weight.detach().numpy()[1], (2, 1)))
    with pytest.raises(ValueError, match="nt_type"):
        explain.smoothgrad(model, x, nt_type="mean")
    with pytest.raises(ValueError, match="nt_samples"):
        explain.smoothgrad(model, x, nt_samples=0)


def test_model_state_is_restored_and_no_hooks_stay():
    model, _ = twins("cnn2d")
    model.train()
    model[1].eval()
    model[0].weight.requires_grad_(False)
    flags = [p.requires_grad for p in model.parameters()]
    modes = [m.training for m in model.modules()]
    x = ember.tensor(inputs("cnn2d"))
    explain.saliency(model, x)
    explain.integrated_gradients(model, x, n_steps=4)
    explain.grad_cam(model, x, "2", target=0)
    explain.occlusion(model, x, (1, 4, 4), 4)
    with pytest.raises(ValueError, match="out of range"):
        explain.integrated_gradients(model, x, target=9)
    with pytest.raises(ValueError, match="no layer"):
        explain.grad_cam(model, x, "7", target=0)
    assert [p.requires_grad for p in model.parameters()] == flags
    assert [m.training for m in model.modules()] == modes
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
    assert all(p.grad is None for p in model.parameters())


def test_targets_and_input_errors_are_clear():
    model, _ = twins("mlp")
    x = ember.tensor(inputs("mlp"))
    with pytest.raises(ValueError, match=r"target 4 is out of range for a model with 4 "
                                         r"classes \(valid: 0\.\.3\)"):
        explain.saliency(model, x, target=4)
    with pytest.raises(ValueError, match="got 2 targets for 3 examples"):
        explain.saliency(model, x, target=[0, 1])
    with pytest.raises(TypeError, match="class index"):
        explain.saliency(model, x, target="cat")
    with pytest.raises(TypeError, match="floating point"):
        explain.saliency(model, ember.tensor([[1, 2, 3, 4, 5, 6]]))
    with pytest.raises(TypeError, match="ember Tensor"):
        explain.saliency(model, np.zeros((1, 6)))
    with pytest.raises(ValueError, match="do not broadcast"):
        explain.integrated_gradients(model, x, baselines=ember.zeros(3, 5, dtype=ember.float64))
    with pytest.raises(ValueError, match="unknown integration method"):
        explain.integrated_gradients(model, x, method="simpson")
    with pytest.raises(ValueError, match=r"expected the model to return scores of shape"):
        explain.saliency(lambda t: t.reshape(3, 2, 3), x)


def test_predicted_class_is_the_default_target_and_scalar_outputs_need_none():
    model, _ = twins("mlp")
    x = ember.tensor(inputs("mlp"))
    with ember.no_grad():
        pred = model(x).argmax(1).tolist()
    np.testing.assert_array_equal(explain.saliency(model, x).numpy(),
                                  explain.saliency(model, x, target=pred).numpy())
    scalar = explain.saliency(lambda t: model(t)[:, 1], x)
    np.testing.assert_array_equal(scalar.numpy(), explain.saliency(model, x, target=1).numpy())
