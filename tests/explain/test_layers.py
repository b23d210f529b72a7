"""Grad-CAM, Grad-CAM++, layer integrated gradients and layer gradient x activation: against
Captum (and a hand computation for Grad-CAM++) on twin models."""

import numpy as np
import pytest

import ember
from ember import explain

from .twins import both, close, inputs, torch, twins

captum_attr = pytest.importorskip("captum.attr")

# conv layers of the twin CNNs (same paths in both frameworks)
LAYERS = {"cnn2d": ["0", "2"], "cnn1d": ["0", "2"]}


@pytest.mark.oracle
@pytest.mark.parametrize("kind,layer", [(k, p) for k, ps in LAYERS.items() for p in ps])
@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_grad_cam_matches_captum(kind, layer, relu, dtype):
    e_mod, t_mod = twins(kind, dtype)
    ex, tx = both(inputs(kind, dtype=dtype))
    ours = explain.grad_cam(e_mod, ex, layer, target=[1, 4, 0], relu_attributions=relu)
    cam = captum_attr.LayerGradCam(t_mod, t_mod.get_submodule(layer))
    theirs = cam.attribute(tx, target=[1, 4, 0], relu_attributions=relu)
    close(ours, theirs, 1e-4 if dtype == np.float32 else 1e-9, f"grad-cam {kind} {layer}")


@pytest.mark.oracle
@pytest.mark.parametrize("kind", ["cnn2d", "cnn1d"])
def test_grad_cam_options_match_captum(kind):
    e_mod, t_mod = twins(kind)
    ex, tx = both(inputs(kind))
    e_layer = e_mod[2]  # a Module works as well as its path
    cam = captum_attr.LayerGradCam(t_mod, t_mod[2])
    for kwargs in (dict(attr_dim_summation=False), dict(attribute_to_layer_input=True)):
        ours = explain.grad_cam(e_mod, ex, e_layer, target=2, **kwargs)
        theirs = cam.attribute(tx, target=2, **kwargs)
        close(ours, theirs, 1e-9, f"grad-cam {kind} {kwargs}")


@pytest.mark.oracle
@pytest.mark.parametrize("kind,size,modes", [
    ("cnn2d", (8, 8), ["nearest", "bilinear", "area"]),
    ("cnn1d", (40,), ["nearest", "linear"])])
def test_interpolated_grad_cam_matches_captum(kind, size, modes):
    e_mod, t_mod = twins(kind)
    ex, tx = both(inputs(kind))
    cam = captum_attr.LayerGradCam(t_mod, t_mod[2]).attribute(tx, target=1)
    for mode in modes:
        ours = explain.grad_cam(e_mod, ex, "2", target=1, interpolate_dims=size,
                                interpolate_mode=mode)
        theirs = captum_attr.LayerAttribution.interpolate(cam, size, mode)
        assert tuple(ours.shape) == (3, 1) + size
        close(ours, theirs, 1e-9, f"interpolated grad-cam {kind} {mode}")


def _torch_activation_and_gradient(t_mod, layer, x, target):
    store = {}

    def hook(module, args, out):
        out.retain_grad()
        store["act"] = out

    handle = t_mod.get_submodule(layer).register_forward_hook(hook)
    try:
        out = t_mod(torch.tensor(x))
        out[torch.arange(len(target)), torch.tensor(target)].sum().backward()
    finally:
        handle.remove()
    return store["act"].detach().numpy(), store["act"].grad.numpy()


@pytest.mark.oracle
@pytest.mark.parametrize("kind", ["cnn2d", "cnn1d"])
def test_grad_cam_plus_plus_closed_form(kind):
    """Eq. 19 of Chattopadhay et al. with the activations and gradients PyTorch computes."""
    e_mod, t_mod = twins(kind)
    x = inputs(kind)
    target = [0, 2, 4]
    a, g = _torch_activation_and_gradient(t_mod, "2", x, target)
    spatial = tuple(range(2, a.ndim))
    denom = 2 * g ** 2 + a.sum(spatial, keepdims=True) * g ** 3
    alpha = np.divide(g ** 2, denom, out=np.zeros_like(g), where=denom != 0)
    weights = (alpha * np.maximum(g, 0)).sum(spatial, keepdims=True)
    expected = np.maximum((weights * a).sum(1, keepdims=True), 0)
    ours = explain.grad_cam_plus_plus(e_mod, ember.tensor(x), "2", target=target)
    np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-9, atol=1e-12)
    assert expected.max() > 0  # not trivially zero
    up = explain.grad_cam_plus_plus(e_mod, ember.tensor(x), "2", target=target,
                                    interpolate_dims=x.shape[2:])
    assert tuple(up.shape) == (3, 1) + x.shape[2:]


def test_grad_cam_plus_plus_single_position_by_hand():
    """With a single position the coefficient is g^2 / (2 g^2 + a g^3); check by hand."""
    act = ember.tensor([[[2.0]]], dtype=ember.float64)  # (N=1, K=1, S=1)
    model = ember.nn.Sequential(ember.nn.Conv1d(1, 1, 1, bias=False), ember.nn.Flatten())
    model.double()
    with ember.no_grad():
        model[0].weight.fill_(3.0)
    out = explain.grad_cam_plus_plus(model, act, "0", target=0)
    # A = 6, g = dS/dA = 1: alpha = 1 / (2 + 6) and the map is alpha * relu(g) * A = 0.75
    np.testing.assert_allclose(out.numpy(), [[[0.75]]])


def test_layer_errors_name_the_valid_layers():
    model, _ = twins("cnn2d")
    x = ember.tensor(inputs("cnn2d"))
    with pytest.raises(ValueError, match=r"Sequential has no layer 'features\.3'; conv layers: "
                                         r"'0', '2'"):
        explain.grad_cam(model, x, "features.3")
    with pytest.raises(ValueError, match="not a submodule"):
        explain.grad_cam(model, x, ember.nn.Conv2d(1, 1, 1))
    with pytest.raises(TypeError, match="dotted path"):
        explain.grad_cam(model, x, 3)
    with pytest.raises(ValueError, match="no spatial dim|at least one spatial dim"):
        explain.interpolate(ember.zeros(2, 3), (4,))
    with pytest.raises(ValueError, match="expected \\(N, channels"):
        explain.grad_cam_plus_plus(model, x, "6")  # Linear: (N, C) activation
    assert explain.conv_layer_paths(model) == ["0", "2"]


def test_a_layer_run_twice_is_an_error():
    conv = ember.nn.Conv1d(1, 1, 1)

    class Twice(ember.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = conv

        def forward(self, x):
            return self.conv(self.conv(x)).flatten(1)

    with pytest.raises(ValueError, match="ran 2 times"):
        explain.grad_cam(Twice(), ember.randn(2, 1, 4), "conv", target=0)


@pytest.mark.oracle
@pytest.mark.parametrize("method,n_steps", [("gausslegendre", 32), ("riemann_trapezoid", 25)])
def test_layer_integrated_gradients_matches_captum(method, n_steps):
    e_mod, t_mod = twins("bag")
    ids = np.array([[3, 5, 7, 1], [2, 2, 9, 11]])
    e_ids, t_ids = ember.tensor(ids), torch.tensor(ids)
    base = np.zeros_like(ids)
    ours, delta = explain.layer_integrated_gradients(
        e_mod, e_ids, "embedding", target=[2, 0], baselines=ember.tensor(base),
        n_steps=n_steps, method=method, return_convergence_delta=True)
    lig = captum_attr.LayerIntegratedGradients(t_mod, t_mod.embedding)
    theirs, t_delta = lig.attribute(t_ids, baselines=torch.tensor(base), target=[2, 0],
                                    n_steps=n_steps, method=method,
                                    return_convergence_delta=True)
    close(ours, theirs, 1e-5, "layer IG")
    scale = float(theirs.detach().abs().max())
    np.testing.assert_allclose(delta.numpy(), t_delta.detach().numpy(), atol=1e-5 * scale)
    chunked = explain.layer_integrated_gradients(
        e_mod, e_ids, e_mod.embedding, target=[2, 0], baselines=0, n_steps=n_steps,
        method=method, internal_batch_size=10)
    np.testing.assert_allclose(chunked.numpy(), ours.numpy(), rtol=1e-12, atol=1e-15)


@pytest.mark.oracle
@pytest.mark.parametrize("multiply", [True, False])
def test_layer_gradient_x_activation_matches_captum(multiply):
    e_mod, t_mod = twins("bag")
    ids = np.array([[3, 5, 7, 1], [2, 2, 9, 11]])
    ours = explain.layer_gradient_x_activation(e_mod, ember.tensor(ids), "embedding", target=1,
                                               multiply_by_inputs=multiply)
    lga = captum_attr.LayerGradientXActivation(t_mod, t_mod.embedding,
                                               multiply_by_inputs=multiply)
    close(ours, lga.attribute(torch.tensor(ids), target=1), 1e-9, "layer grad x act")
    e_cnn, t_cnn = twins("cnn2d")
    ex, tx = both(inputs("cnn2d"))
    ours = explain.layer_gradient_x_activation(e_cnn, ex, "2", target=3,
                                               multiply_by_inputs=multiply)
    lga = captum_attr.LayerGradientXActivation(t_cnn, t_cnn[2], multiply_by_inputs=multiply)
    close(ours, lga.attribute(tx, target=3), 1e-9, "layer grad x act, conv")


def test_layer_integrated_gradients_completeness_with_a_mask_argument():
    """The path ends are evaluated with the inputs' own extra arguments, so the attributions
    add up exactly even when the model also reads the ids (here: a padding mask)."""

    class Masked(ember.nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = ember.nn.Embedding(12, 4, padding_idx=0)
            self.out = ember.nn.Linear(4, 3)

        def forward(self, ids, keep):
            h = self.embedding(ids).tanh() * keep.unsqueeze(-1)
            return self.out(h.sum(1) / keep.sum(1, keepdim=True))

    model = Masked().double()
    ids = ember.tensor([[4, 6, 0], [7, 0, 0]])
    keep = (ids != 0).double()
    attr, delta = explain.layer_integrated_gradients(
        model, ids, "embedding", target=1, baselines=0, additional_forward_args=keep,
        n_steps=40, return_convergence_delta=True)
    assert tuple(attr.shape) == (2, 3, 4)
    assert float(delta.abs().max()) < 1e-10
    assert float(attr[1, 1:].abs().max()) == 0.0  # masked positions get nothing
