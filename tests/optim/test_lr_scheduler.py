"""Learning-rate schedulers: lr (and momentum) sequences equal PyTorch's; state dicts."""

from __future__ import annotations

import math

import numpy as np
import pytest

import ember
from ember import optim
from ember.optim import lr_scheduler as ls

from .helpers import torch

STEPS = 60


def _sgd(mod, p, momentum=0.9):
    return mod.optim.SGD([{"params": [p[0]]}, {"params": [p[1]], "lr": 0.01}], lr=0.1,
                         momentum=momentum)


def _adam(mod, p):
    return mod.optim.Adam([{"params": [p[0]]}, {"params": [p[1]], "lr": 0.01}], lr=0.1)


def _params(mod):
    return [mod.nn.Parameter(mod.ones(2)), mod.nn.Parameter(mod.ones(3))]


def _lambda_factor(epoch):
    return 0.95 ** epoch


def _mult_factor(epoch):
    return 0.9 if epoch % 3 else 1.05


# name -> (make optimizer, make scheduler(S, opt) with S the scheduler module)
SCHEDULERS = {
    "LambdaLR": (_sgd, lambda S, o: S.LambdaLR(o, _lambda_factor)),
    "LambdaLR-list": (_sgd, lambda S, o: S.LambdaLR(o, [_lambda_factor, lambda e: 1 / (e + 1)])),
    "MultiplicativeLR": (_sgd, lambda S, o: S.MultiplicativeLR(o, _mult_factor)),
    "StepLR": (_sgd, lambda S, o: S.StepLR(o, step_size=7, gamma=0.5)),
    "MultiStepLR": (_sgd, lambda S, o: S.MultiStepLR(o, milestones=[5, 20, 20, 41], gamma=0.3)),
    "ConstantLR": (_sgd, lambda S, o: S.ConstantLR(o, factor=0.25, total_iters=9)),
    "LinearLR": (_sgd, lambda S, o: S.LinearLR(o, start_factor=0.1, end_factor=0.8,
                                               total_iters=23)),
    "ExponentialLR": (_sgd, lambda S, o: S.ExponentialLR(o, gamma=0.93)),
    "PolynomialLR": (_sgd, lambda S, o: S.PolynomialLR(o, total_iters=40, power=2.0)),
    "CosineAnnealingLR": (_sgd, lambda S, o: S.CosineAnnealingLR(o, T_max=17, eta_min=0.001)),
    "CosineAnnealingWarmRestarts": (_sgd, lambda S, o: S.CosineAnnealingWarmRestarts(
        o, T_0=5, T_mult=2, eta_min=1e-4)),
    "CosineAnnealingWarmRestarts-1": (_sgd, lambda S, o: S.CosineAnnealingWarmRestarts(
        o, T_0=7)),
    "OneCycleLR-cos": (_sgd, lambda S, o: S.OneCycleLR(o, max_lr=[1.0, 0.1], total_steps=STEPS)),
    "OneCycleLR-linear-3phase": (_sgd, lambda S, o: S.OneCycleLR(
        o, max_lr=0.5, epochs=6, steps_per_epoch=10, anneal_strategy="linear",
        three_phase=True, pct_start=0.25)),
    "OneCycleLR-adam": (_adam, lambda S, o: S.OneCycleLR(o, max_lr=0.3, total_steps=STEPS,
                                                          div_factor=10.0)),
    "OneCycleLR-no-momentum": (_sgd, lambda S, o: S.OneCycleLR(o, max_lr=0.3, total_steps=STEPS,
                                                                cycle_momentum=False)),
    "CyclicLR-triangular": (_sgd, lambda S, o: S.CyclicLR(o, base_lr=0.01, max_lr=0.1,
                                                           step_size_up=7)),
    "CyclicLR-triangular2": (_sgd, lambda S, o: S.CyclicLR(
        o, base_lr=[0.01, 0.001], max_lr=[0.1, 0.05], step_size_up=5, step_size_down=8,
        mode="triangular2")),
    "CyclicLR-exp_range-adam": (_adam, lambda S, o: S.CyclicLR(
        o, base_lr=0.001, max_lr=0.01, step_size_up=6, mode="exp_range", gamma=0.97)),
    "SequentialLR": (_sgd, lambda S, o: S.SequentialLR(
        o, [S.LinearLR(o, start_factor=0.2, total_iters=5), S.ExponentialLR(o, gamma=0.9),
            S.StepLR(o, step_size=4)], milestones=[10, 30])),
    "ChainedScheduler": (_sgd, lambda S, o: S.ChainedScheduler(
        [S.ConstantLR(o, factor=0.5, total_iters=4), S.ExponentialLR(o, gamma=0.95)])),
}


def _momenta(opt):
    return [g["betas"][0] if "betas" in g else g["momentum"] for g in opt.param_groups]


def _fractional(name):
    return name.startswith("CosineAnnealingWarmRestarts")


def _run(mod, S, name, steps=STEPS, metrics=None):
    make_opt, make_sched = SCHEDULERS[name] if metrics is None else (_sgd, None)
    opt = make_opt(mod, _params(mod))
    sched = make_sched(S, opt) if metrics is None else S.ReduceLROnPlateau(opt, **metrics[0])
    lrs, moms = [], []
    for i in range(steps):
        lrs.append([g["lr"] for g in opt.param_groups])
        moms.append(_momenta(opt))
        opt.step()
        if metrics is not None:
            sched.step(metrics[1][i])
        elif _fractional(name) and i >= 20:
            sched.step(i + (i % 4) / 4)  # fractional epochs
        else:
            sched.step()
        assert list(sched.get_last_lr()) == [g["lr"] for g in opt.param_groups]
    return np.array(lrs), np.array(moms)


@pytest.mark.oracle
@pytest.mark.parametrize("name", sorted(SCHEDULERS))
def test_schedule_matches_torch(name):
    steps = STEPS - 1 if name.startswith("OneCycle") else STEPS
    e_lr, e_mom = _run(ember, ls, name, steps)
    t_lr, t_mom = _run(torch, torch.optim.lr_scheduler, name, steps)
    np.testing.assert_allclose(e_lr, t_lr, rtol=1e-13, atol=0)
    np.testing.assert_allclose(e_mom, t_mom, rtol=1e-13, atol=0)
    assert len(np.unique(e_lr[:, 0])) > 1


PLATEAU = [
    (dict(patience=2), [1.0, 0.9, 0.9, 0.9, 0.9, 0.95, 0.8, 0.8, 0.8, 0.8] * 6),
    (dict(mode="max", factor=0.5, patience=1, threshold=0.1, threshold_mode="abs",
          cooldown=2, min_lr=[0.02, 0.001]),
     [0.1, 0.15, 0.3, 0.31, 0.32, 0.5, 0.5, 0.4, 0.45, 0.7, 0.6, 0.65] * 5),
    (dict(factor=0.5, patience=0, threshold=0.05, eps=0.02),
     list(np.linspace(1.0, 0.5, 30)) + [0.6] * 30),
]


@pytest.mark.oracle
@pytest.mark.parametrize("case", range(len(PLATEAU)))
def test_reduce_lr_on_plateau_matches_torch(case):
    e_lr, _ = _run(ember, ls, None, metrics=PLATEAU[case])
    t_lr, _ = _run(torch, torch.optim.lr_scheduler, None, metrics=PLATEAU[case])
    np.testing.assert_allclose(e_lr, t_lr, rtol=1e-13, atol=0)
    assert len(np.unique(e_lr[:, 0])) > 1


@pytest.mark.parametrize("name", ["StepLR", "CosineAnnealingLR", "OneCycleLR-adam",
                                  "CyclicLR-triangular2", "SequentialLR", "ChainedScheduler",
                                  "LambdaLR", "CosineAnnealingWarmRestarts"])
def test_scheduler_state_dict_round_trip(name):
    make_opt, make_sched = SCHEDULERS[name]
    ref_opt = make_opt(ember, _params(ember))
    ref = make_sched(ls, ref_opt)
    first_opt = make_opt(ember, _params(ember))
    first = make_sched(ls, first_opt)
    expected = []
    for _ in range(40):
        ref_opt.step()
        ref.step()
        expected.append(list(ref.get_last_lr()))
    for _ in range(20):
        first_opt.step()
        first.step()
    osd, ssd = first_opt.state_dict(), first.state_dict()
    assert "optimizer" not in ssd
    opt = make_opt(ember, _params(ember))
    sched = make_sched(ls, opt)
    opt.load_state_dict(osd)
    sched.load_state_dict(ssd)
    got = []
    for _ in range(20):
        opt.step()
        sched.step()
        got.append(list(sched.get_last_lr()))
    assert got == expected[20:]


def test_reduce_lr_on_plateau_state_dict():
    opt = _sgd(ember, _params(ember))
    s = ls.ReduceLROnPlateau(opt, patience=1)
    for m in [1.0, 1.0, 1.0]:
        s.step(m)
    sd = s.state_dict()
    s2 = ls.ReduceLROnPlateau(_sgd(ember, _params(ember)), patience=5)
    s2.load_state_dict(sd)
    assert s2.patience == 1 and s2.num_bad_epochs == s.num_bad_epochs and s2.best == 1.0


def test_scheduler_records_initial_lr_and_resume_needs_it():
    opt = _sgd(ember, _params(ember))
    ls.StepLR(opt, step_size=2)
    assert [g["initial_lr"] for g in opt.param_groups] == [0.1, 0.01]
    with pytest.raises(KeyError, match="initial_lr"):
        ls.StepLR(_sgd(ember, _params(ember)), step_size=2, last_epoch=3)


def test_step_with_epoch_uses_closed_form():
    opt = _sgd(ember, _params(ember))
    s = ls.StepLR(opt, step_size=3, gamma=0.5)
    s.step(7)
    assert s.get_last_lr() == [0.1 * 0.25, 0.01 * 0.25]


def test_scheduler_errors():
    opt = _sgd(ember, _params(ember))
    with pytest.raises(TypeError, match="Optimizer"):
        ls.StepLR("not an optimizer", step_size=2)
    with pytest.raises(ValueError, match="expected 2 lr_lambdas"):
        ls.LambdaLR(opt, [_lambda_factor])
    with pytest.raises(ValueError, match="factor"):
        ls.ConstantLR(opt, factor=2.0)
    with pytest.raises(ValueError, match="T_0"):
        ls.CosineAnnealingWarmRestarts(opt, T_0=0)
    with pytest.raises(ValueError, match="total_steps"):
        ls.OneCycleLR(opt, max_lr=0.1)
    with pytest.raises(ValueError, match="momentum"):
        ls.OneCycleLR(optim.Adagrad(_params(ember)), max_lr=0.1, total_steps=10)
    with pytest.raises(ValueError, match="factor should be < 1.0"):
        ls.ReduceLROnPlateau(opt, factor=1.5)
    with pytest.raises(ValueError, match="mode"):
        ls.ReduceLROnPlateau(opt, mode="middle")
    with pytest.raises(ValueError, match="ReduceLROnPlateau"):
        ls.ChainedScheduler([ls.ReduceLROnPlateau(opt)])
    with pytest.raises(ValueError, match="milestone"):
        ls.SequentialLR(opt, [ls.StepLR(opt, 2), ls.StepLR(opt, 3)], milestones=[])
    s = ls.OneCycleLR(_sgd(ember, _params(ember)), max_lr=0.1, total_steps=3)
    s.step()
    s.step()
    s.step()
    with pytest.raises(ValueError, match="total steps is 3"):
        s.step()


def test_cosine_closed_form_agrees_with_recursive_form():
    opt = _sgd(ember, _params(ember))
    s = ls.CosineAnnealingLR(opt, T_max=10, eta_min=0.0)
    for t in range(1, 25):
        s.step()
        expected = 0.1 * (1 + math.cos(math.pi * t / 10)) / 2
        assert abs(s.get_last_lr()[0] - expected) < 1e-12
