"""The Doctor's recording: sampling, hooks on and off, functional activations, no effect on
training, no tensors kept, warnings as problems appear."""

import gc
import warnings
import weakref

import numpy as np
import pytest

import ember
from ember import nn
from ember.diagnostics import Doctor, DoctorCallback, DoctorWarning, watch
from ember.nn import functional as F
from ember.train import Trainer
from tests.train.helpers import assert_same_weights, fixed_batches, make_data, weights


def _batch(n=32, seed=0):
    g = np.random.default_rng(seed)
    return (ember.tensor(g.standard_normal((n, 4)).astype(np.float32)),
            ember.tensor(g.integers(0, 3, n)))


def _loop(model, doctor, steps=5, lr=0.1):
    opt = ember.optim.SGD(model.parameters(), lr=lr)
    x, y = _batch()
    for _ in range(steps):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if doctor is not None:
            doctor.step(loss)


def _mlp():
    return nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 16), nn.Tanh(),
                         nn.Linear(16, 3))


def test_standalone_watch_samples_every_k_and_records_every_quantity():
    model = _mlp()
    with watch(model, every=2) as doctor:
        _loop(model, doctor, steps=5)
    s = doctor.stats
    assert s.steps == 5 and s.sampled == [0, 2, 4]
    assert [k for k, _ in s.ordered_layers()] == ["0", "1", "2", "3", "4"]
    assert s.layers["1"]["kind"] == "relu" and s.layers["3"]["kind"] == "tanh"
    for key in ("0", "2", "4"):
        assert {"mean", "std", "finite", "out_grad_norm", "out_grad_rms", "grad_rms"} <= \
            set(s.layer_series[key])
    assert "dead_frac" in s.layer_series["1"] and "sat_frac" in s.layer_series["3"]
    assert [step for step, _ in s.layer_series["0"]["mean"]] == [0, 2, 4]
    for name in ("0.weight", "0.bias", "4.weight"):
        assert {"grad_norm", "update_ratio", "weight_norm"} <= set(s.param_series[name])
    assert len(s.loss) == 5 and {"mean", "std"} <= set(s.inputs)
    assert s.global_series["grad_norm"][0][0] == 0
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


def test_hooks_only_on_sampled_steps_and_removed_on_exit():
    model = _mlp()
    doctor = Doctor(model, every=3)
    doctor.begin_step(0)
    assert model[0]._forward_hooks and model._forward_pre_hooks
    doctor.end_step(1.0)
    doctor.begin_step()  # step 1: not sampled
    assert not model[0]._forward_hooks and not model._forward_pre_hooks
    doctor.end_step(1.0)
    doctor.begin_step(3)
    assert model[0]._forward_hooks
    doctor.close()
    assert not model[0]._forward_hooks and not model._forward_pre_hooks


def test_update_ratio_and_grad_norm_values():
    lin = nn.Linear(4, 3)
    model = nn.Sequential(lin)
    before = lin.weight.detach().clone()
    with watch(model, every=1) as doctor:
        _loop(model, doctor, steps=1, lr=0.5)
    s = doctor.stats
    expect = float((lin.weight.detach() - before).norm() / before.norm())
    assert s.param_series["0.weight"]["update_ratio"][0][1] == pytest.approx(expect, rel=1e-5)
    g = s.param_series["0.weight"]["grad_norm"][0][1]
    assert s.layer_series["0"]["grad_rms"][0][1] == pytest.approx(g / np.sqrt(12), rel=1e-5)
    assert s.param_series["0.weight"]["weight_norm"][0][1] == pytest.approx(
        float(before.norm()), rel=1e-6)


class Functional(nn.Module):
    """ReLU and sigmoid applied functionally, a residual sum, a reused activation module."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(4, 8)
        self.fc2 = nn.Linear(8, 8)
        self.fc3 = nn.Linear(8, 8)
        self.act = nn.ReLU()
        self.out = nn.Linear(8, 3)

    def forward(self, x):
        h = F.relu(self.fc1(x))
        h = h + F.relu(self.fc2(h))
        h = self.act(h)
        g = ember.sigmoid(self.fc3(h))
        return self.out(self.act(g))


def test_functional_activations_are_credited_to_the_layer_before_them():
    model = Functional()
    with watch(model, every=1) as doctor:
        _loop(model, doctor, steps=1)
    s = doctor.stats
    assert s.layers["fc1"]["activation"] == "relu (functional)"
    assert "residual_branch" not in s.layers["fc1"]
    assert s.layers["fc2"]["residual_branch"] is True
    assert s.layers["fc3"]["activation"] == "sigmoid (functional)"
    assert {"dead_frac"} <= set(s.layer_series["fc1"]) and "sat_frac" in s.layer_series["fc3"]
    # the reused ReLU module: one entry per call, in execution order
    keys = [k for k, _ in s.ordered_layers()]
    assert keys.index("act") < keys.index("fc3") < keys.index("act#2") < keys.index("out")


def test_dead_fraction_needs_a_big_enough_batch():
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    doctor = Doctor(model, every=1)
    doctor.begin_step(0)
    model(ember.randn(4, 4)).sum().backward()
    doctor.end_step()
    assert "dead_frac" not in doctor.stats.layer_series["1"]


def test_validation_forward_inside_a_sampled_step_is_ignored():
    model = _mlp()
    doctor = Doctor(model, every=1)
    doctor.begin_step(0)
    with ember.no_grad():
        model(ember.randn(8, 4))
    assert doctor.stats.layers == {}
    doctor.close()


def test_no_tensor_is_kept_after_the_step():
    model = _mlp()
    doctor = Doctor(model, every=1)
    x, y = _batch()
    doctor.begin_step(0)
    out = model(x)
    ref = weakref.ref(out)
    loss = F.cross_entropy(out, y)
    loss.backward()
    doctor.end_step(loss)
    del out, loss
    gc.collect()
    assert ref() is None
    assert doctor._snapshot is None and doctor._units_alive == {} and doctor._producers == {}

    def tensors(obj, depth=0):
        if isinstance(obj, ember.Tensor):
            return 1
        if depth > 6:
            return 0
        if isinstance(obj, dict):
            return sum(tensors(v, depth + 1) for v in obj.values())
        if isinstance(obj, (list, tuple)):
            return sum(tensors(v, depth + 1) for v in obj)
        return 0

    assert tensors(doctor.stats.to_dict()) == 0


def test_statistics_record_no_graph():
    model = _mlp()
    doctor = Doctor(model, every=1)
    doctor.begin_step(0)
    out = model(ember.randn(16, 4))
    # the graph of the output is the model's own: no statistics op is recorded into it
    assert out.grad_fn.name() == "LinearBackward" or out.grad_fn.name() == "AddmmBackward"
    nodes, stack = set(), [out.grad_fn]
    while stack:
        n = stack.pop()
        if n is None or id(n) in nodes or not hasattr(n, "edges"):
            continue
        nodes.add(id(n))
        stack.extend(e[0] for e in n.edges if e is not None)
    assert len(nodes) <= 12  # 3 linears and 2 activations, nothing else
    doctor.close()


def test_training_with_the_doctor_gives_identical_weights():
    def train(with_doctor):
        ember.manual_seed(3)
        model = nn.Sequential(nn.Linear(4, 16), nn.BatchNorm1d(16), nn.ReLU(),
                              nn.Dropout(0.3), nn.Linear(16, 3))
        trainer = Trainer(model, ember.optim.Adam(model.parameters(), lr=0.01),
                          grad_clip_norm=1.0)
        x, y = make_data(64)
        cbs = [DoctorCallback(every=1, verbose=0)] if with_doctor else []
        trainer.fit(fixed_batches(x, y, 16), epochs=3, callbacks=cbs, verbose=0)
        return weights(model)

    assert_same_weights(train(False), train(True))


def test_callback_records_per_step_loss_and_epoch_logs():
    ember.manual_seed(0)
    model = _mlp()
    x, y = make_data(64)
    batches = fixed_batches(x, y, 16)
    cb = DoctorCallback(every=2, verbose=0)
    history = Trainer(model, ember.optim.SGD(model.parameters(), lr=0.1)).fit(
        batches, epochs=2, val_data=batches, callbacks=[cb], verbose=0)
    s = cb.doctor.stats
    assert [step for step, _ in s.loss] == list(range(8))
    epoch_mean = sum(v for _, v in s.loss[:4]) / 4
    assert epoch_mean == pytest.approx(history["loss"][0], rel=1e-5)
    assert [e["epoch"] for e in s.epochs] == [0, 1] and "val_loss" in s.epochs[0]
    assert s.epochs[1]["step"] == 8


def test_callback_prints_the_summary_when_verbose(capsys):
    model = _mlp()
    data = [_batch()] * 3
    Trainer(model, ember.optim.SGD(model.parameters(), lr=0.1)).fit(
        data, epochs=1, callbacks=[DoctorCallback(every=1, verbose=1)], verbose=0)
    assert "ember doctor: Sequential, 3 steps" in capsys.readouterr().out
    Trainer(model, ember.optim.SGD(model.parameters(), lr=0.1)).fit(
        data, epochs=1, callbacks=[DoctorCallback(every=1)], verbose=0)
    assert capsys.readouterr().out == ""  # verbose=None follows the trainer's verbose=0


def test_nan_loss_warns_at_once_and_only_once():
    model = _mlp()
    doctor = Doctor(model, every=1)
    with pytest.warns(DoctorWarning, match="NaN or Inf") as caught:
        for _ in range(3):
            doctor.begin_step()
            doctor.end_step(float("nan"))
    assert len([w for w in caught if "NaN" in str(w.message)]) == 1
    findings = doctor.diagnose()
    assert findings[0].kind == "nan_inf" and findings[0].severity == "error"
    assert "detect_anomaly" in " ".join(findings[0].remedies)


def test_nonfinite_activations_name_the_first_layer():
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 3))
    with ember.no_grad():
        model[2].weight[0, 0] = float("inf")
    doctor = Doctor(model, every=1)
    doctor.begin_step(0)
    with warnings.catch_warnings(record=True) as caught, np.errstate(all="ignore"):
        warnings.simplefilter("always", DoctorWarning)
        loss = model(ember.randn(8, 4)).sum()
        loss.backward()
        doctor.end_step(loss)
    assert any("layer 2" in str(w.message) for w in caught)
    nan = [f for f in doctor.diagnose() if f.kind == "nan_inf"][0]
    assert nan.path == "2" and nan.evidence["first_nonfinite_layer"] == "2"


def test_warn_false_is_silent():
    doctor = Doctor(_mlp(), every=1, warn=False)
    doctor.begin_step()
    doctor.end_step(float("inf"))  # no warning (pytest turns warnings into errors)
    assert doctor.diagnose()[0].kind == "nan_inf"


def test_bad_arguments():
    with pytest.raises(TypeError, match="Module"):
        Doctor(object())
    with pytest.raises(ValueError, match="every"):
        Doctor(_mlp(), every=0)


@pytest.mark.parametrize("crash_step", [4, 10, 16])  # (checkpoints every 3 steps, 8 an epoch)
def test_resumed_run_keeps_the_doctors_record(tmp_path, crash_step):
    # the trainer's checkpoints keep the doctor's record: crash, resume, and the record (loss of
    # every step, sampled statistics, epoch logs) equals an uninterrupted run's
    from tests.train.helpers import Crash, build

    def fit(folder, callbacks=(), resume=False, seed=0):
        trainer, loader, val = build(seed=seed)
        cb = DoctorCallback(every=2, verbose=0, warn=False)
        trainer.fit(loader, epochs=3, val_data=val, callbacks=[cb, *callbacks], verbose=0,
                    checkpoint_dir=folder, checkpoint_every=3, resume=resume)
        return cb

    reference = fit(tmp_path / "ref").doctor.stats.to_dict()
    with pytest.raises(RuntimeError, match="injected"):
        fit(tmp_path / "run", callbacks=[Crash(crash_step)])
    resumed = fit(tmp_path / "run", resume=True, seed=99)
    assert resumed.doctor.stats.to_dict() == reference
    assert resumed.doctor.stats.steps == 24 and len(resumed.doctor.stats.loss) == 24


def test_doctor_state_needs_the_same_sampling_period():
    model = _mlp()
    state = Doctor(model, every=2).state_dict()
    with pytest.raises(ValueError, match="every 2 steps, this doctor every 3"):
        Doctor(model, every=3).load_state_dict(state)
