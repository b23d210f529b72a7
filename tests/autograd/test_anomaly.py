"""ember.autograd.detect_anomaly: the first op that makes NaN/Inf, forward or backward, is named
with its module, input shapes and the user's line; off, nothing is checked."""

import math

import pytest

import ember
from ember import nn
from ember.autograd import AnomalyError, detect_anomaly, is_anomaly_enabled, set_detect_anomaly

THIS_FILE = __file__


class LogHead(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))

    def forward(self, x):
        h = self.features(x)
        return ember.log(h)  # negative inputs: NaN


class BadLayer(nn.Module):
    def forward(self, x):
        return ember.sqrt(x)  # finite at 0, infinite gradient there


def test_modes_and_restore():
    assert not is_anomaly_enabled()
    with detect_anomaly():
        assert is_anomaly_enabled()
        with detect_anomaly(check_nan=False):
            assert not is_anomaly_enabled()
        assert is_anomaly_enabled()
    assert not is_anomaly_enabled()
    set_detect_anomaly(True)
    try:
        assert is_anomaly_enabled()
    finally:
        set_detect_anomaly(False)
    with set_detect_anomaly(True):
        assert is_anomaly_enabled()
    assert not is_anomaly_enabled()

    @detect_anomaly()
    def inside():
        return is_anomaly_enabled()

    assert inside() and not is_anomaly_enabled()


def test_forward_nan_names_op_module_shapes_and_user_line():
    model = LogHead()
    x = ember.randn(5, 4)
    with detect_anomaly(), pytest.raises(AnomalyError) as info:
        model(x)
    e = info.value
    assert isinstance(e, RuntimeError)
    assert e.op == "log" and e.phase == "forward" and "NaN" in e.produced
    assert e.module == "LogHead (root module)"
    assert e.input_shapes == [(5, 2)]
    assert e.location.startswith(THIS_FILE + ":")
    msg = str(e)
    assert "'log' produced NaN in the forward pass" in msg
    assert "return ember.log(h)" in msg and "input shapes: (5, 2)" in msg
    assert not is_anomaly_enabled()  # restored by the context manager despite the error


def test_forward_inside_a_submodule_reports_its_path():
    model = nn.Sequential(nn.Linear(3, 3), nn.Sequential(nn.Identity(), BadLayer()))
    with detect_anomaly(), pytest.raises(AnomalyError) as info:
        model(ember.full((2, 3), -50.0))
    # sqrt of a negative number; the innermost module is BadLayer '1.1'
    assert info.value.op == "sqrt" and info.value.module == "BadLayer '1.1'"


def test_backward_inf_names_the_backward_op_and_where_forward_was_created():
    model = nn.Sequential(BadLayer())
    x = ember.zeros(3, requires_grad=True)
    with detect_anomaly():
        y = model(x).sum()  # sqrt(0) = 0: the forward is fine
        with pytest.raises(AnomalyError) as info:
            y.backward()
    e = info.value
    assert e.phase == "backward" and e.op == "SqrtBackward" and e.produced == "Inf"
    assert e.module == "BadLayer '0'" and e.input_shapes == [(3,)]
    assert e.location.startswith(THIS_FILE + ":")
    assert "y = model(x).sum()" in str(e) or "return ember.sqrt(x)" in str(e)


def test_backward_nan_from_a_hook_is_reported_as_arriving():
    x = ember.ones(2, requires_grad=True)
    with detect_anomaly():
        y = x * 2
        y.register_hook(lambda g: ember.full_like(g, float("nan")))
        with pytest.raises(AnomalyError, match="arriving at 'MulBackward'"):
            y.sum().backward()


def test_nan_in_a_parameter_is_reported_at_the_first_op_using_it():
    lin = nn.Linear(2, 2)
    with ember.no_grad():
        lin.weight[0, 0] = float("nan")
    with detect_anomaly(), pytest.raises(AnomalyError, match="leaf tensor"):
        lin(ember.ones(1, 2))


def test_deliberate_inf_masks_pass():
    """-inf masks propagate through masked_fill, add and softmax without an error."""
    scores = ember.randn(2, 4, 4, requires_grad=True)
    mask = nn.Transformer.generate_square_subsequent_mask(4)
    with detect_anomaly():
        p = ember.softmax(scores + mask, dim=-1)
        q = ember.softmax(scores.masked_fill(mask < 0, float("-inf")), dim=-1)
        (p.sum() + q.sum()).backward()
    assert math.isfinite(float(scores.grad.abs().sum()))


def test_small_transformer_trains_under_anomaly_mode():
    layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True)
    x = ember.randn(2, 5, 8)
    mask = nn.Transformer.generate_square_subsequent_mask(5)
    with detect_anomaly():
        layer(x, src_mask=mask, is_causal=True).pow(2).mean().backward()


def test_no_grad_path_is_checked_too():
    with ember.no_grad(), detect_anomaly(), pytest.raises(AnomalyError, match="'div'"):
        ember.ones(2) / ember.zeros(2)


def test_off_means_unchecked():
    y = ember.log(ember.tensor([-1.0]))  # NaN, silently, like PyTorch
    assert math.isnan(y.item())
    x = ember.zeros(1, requires_grad=True)
    ember.sqrt(x).sum().backward()
    assert math.isinf(x.grad.item())
