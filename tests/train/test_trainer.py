import numpy as np
import pytest

import ember
from ember.nn.utils.clip_grad import clip_grad_norm_
from ember.train import History, LambdaCallback, Trainer

from .helpers import assert_same_weights, fixed_batches, make_data, make_model, weights


def _setup(lr=0.1, opt="sgd", **kw):
    ember.manual_seed(0)
    model = make_model()
    optimizer = (ember.optim.SGD if opt == "sgd" else ember.optim.Adam)(model.parameters(), lr=lr)
    x, y = make_data(32)
    return Trainer(model, optimizer, **kw), fixed_batches(x, y)


def test_fit_learns_and_logs_history():
    trainer, data = _setup(metrics=["accuracy", "top2_accuracy", "f1"])
    history = trainer.fit(data, epochs=5, val_data=data, verbose=0)
    assert isinstance(history, History) and history is trainer.history
    assert sorted(history.keys()) == ["accuracy", "f1", "loss", "lr", "top2_accuracy",
                                      "val_accuracy", "val_f1", "val_loss",
                                      "val_top2_accuracy"]
    assert history.epoch == [0, 1, 2, 3, 4]
    assert history["loss"][-1] < history["loss"][0]
    assert History.from_dict(history.to_dict()).history == history.history
    assert trainer.model.training
    ev = trainer.evaluate(data)
    assert ev["loss"] == pytest.approx(history["val_loss"][-1])
    assert trainer.model.training


def test_training_matches_a_hand_written_loop():
    trainer, data = _setup()
    trainer.fit(data, epochs=2, verbose=0)
    ember.manual_seed(0)
    model = make_model()
    opt = ember.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(2):
        for x, y in data:
            loss = ember.nn.functional.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    assert_same_weights(weights(trainer.model), weights(model))


def test_epoch_loss_is_the_sample_weighted_mean():
    trainer, data = _setup(lr=0.0)
    data = data[:3] + [(data[3][0][:2], data[3][1][:2])]  # a short last batch
    losses, sizes = [], []
    for x, y in data:
        losses.append(ember.nn.functional.cross_entropy(trainer.model(x), y).item())
        sizes.append(len(y))
    h = trainer.fit(data, epochs=1, verbose=0)
    assert h["loss"][0] == pytest.approx(np.average(losses, weights=sizes))


def test_validation_runs_in_eval_mode_without_grad():
    modes = []

    class Spy(ember.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = make_model()

        def forward(self, x):
            modes.append((self.training, ember.is_grad_enabled()))
            return self.inner(x)

    ember.manual_seed(0)
    model = Spy()
    x, y = make_data(16)
    data = fixed_batches(x, y)
    Trainer(model, ember.optim.SGD(model.parameters(), lr=0.1)).fit(
        data, epochs=1, val_data=data, verbose=0)
    assert modes == [(True, True)] * 2 + [(False, False)] * 2


def test_custom_train_step_and_extra_logs():
    class L2Trainer(Trainer):
        def train_step(self, batch):
            x, y = self.unpack(batch)
            out = self.model(x)
            ce = self.loss_fn(out, y)
            l2 = sum((p ** 2).sum() for p in self.model.parameters()) * 1e-3
            loss = ce + l2
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            return {"loss": loss, "l2": l2, "output": out, "target": y}

    ember.manual_seed(0)
    model = make_model()
    x, y = make_data(32)
    h = L2Trainer(model, ember.optim.SGD(model.parameters(), lr=0.1), metrics=["accuracy"]).fit(
        fixed_batches(x, y), epochs=2, verbose=0)
    assert {"loss", "l2", "accuracy"} <= set(h.keys())
    assert h["l2"][0] > 0


def test_per_step_and_per_epoch_schedulers():
    # the logged lr is the optimizer's at the end of the epoch, before an epoch-level step
    for interval, logged, final in (("step", [0.1 * 0.5 ** 4, 0.1 * 0.5 ** 8], 0.1 * 0.5 ** 8),
                                    ("epoch", [0.1, 0.05], 0.025)):
        ember.manual_seed(0)
        model = make_model()
        opt = ember.optim.SGD(model.parameters(), lr=0.1)
        sched = ember.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
        x, y = make_data(32)
        h = Trainer(model, opt, scheduler=sched, scheduler_interval=interval).fit(
            fixed_batches(x, y), epochs=2, verbose=0)
        assert h["lr"] == pytest.approx(logged)
        assert opt.param_groups[0]["lr"] == pytest.approx(final)
    with pytest.raises(ValueError, match="scheduler_interval"):
        Trainer(model, opt, scheduler_interval="batch")


def test_reduce_lr_on_plateau_is_fed_the_monitored_metric():
    seen = []

    class Scripted(Trainer):
        def eval_step(self, batch):
            out = super().eval_step(batch)
            out["loss"] = 1.0  # never improves after the first epoch
            return out

    ember.manual_seed(0)
    model = make_model()
    opt = ember.optim.SGD(model.parameters(), lr=0.1)
    sched = ember.optim.lr_scheduler.ReduceLROnPlateau(opt, patience=1, factor=0.5)
    orig = sched.step
    sched.step = lambda metrics, epoch=None: (seen.append(metrics), orig(metrics))
    x, y = make_data(16)
    data = fixed_batches(x, y)
    h = Scripted(model, opt, scheduler=sched).fit(data, epochs=4, val_data=data, verbose=0)
    assert seen == [1.0] * 4
    assert h["lr"] == pytest.approx([0.1, 0.1, 0.1, 0.05])
    with pytest.raises(ValueError, match="ReduceLROnPlateau monitors 'val_f1'"):
        Trainer(model, opt, scheduler=sched, monitor="val_f1").fit(data, epochs=1, verbose=0)


def test_gradient_clipping_matches_clip_grad_norm():
    trainer, data = _setup(grad_clip_norm=0.05)
    norms = []
    trainer.fit(data, epochs=1, verbose=0,
                callbacks=[LambdaCallback(on_batch_end=lambda b, logs: norms.append(
                    trainer._clipper.last_norm))])
    assert all(n > 0.05 for n in norms)
    ember.manual_seed(0)
    model = make_model()
    opt = ember.optim.SGD(model.parameters(), lr=0.1)
    for x, y in data:
        loss = ember.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        clip_grad_norm_(model.parameters(), 0.05)
        opt.step()
    assert_same_weights(weights(trainer.model), weights(model))
    trainer, data = _setup(grad_clip_value=1e-3)
    trainer.fit(data, epochs=1, verbose=0)


def test_predict_and_bad_batches():
    trainer, data = _setup()
    out = trainer.predict(data)
    assert out.shape == (32, 3)
    assert trainer.predict([x for x, _ in data]).shape == (32, 3)
    with pytest.raises(TypeError, match=r"tuple \(inputs, target\)"):
        trainer.fit([ember.zeros(2, 4)], epochs=1, verbose=0)
    with pytest.raises(TypeError, match="Callback"):
        trainer.fit(data, epochs=1, verbose=0, callbacks=[object()])


def test_generator_without_len_and_tuple_inputs():
    class TwoInputs(ember.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = make_model()

        def forward(self, a, b):
            return self.net(a + b)

    ember.manual_seed(0)
    model = TwoInputs()
    x, y = make_data(16)

    class Stream:
        def __iter__(self):
            for xb, yb in fixed_batches(x, y):
                yield (xb, xb * 0), yb

    h = Trainer(model, ember.optim.SGD(model.parameters(), lr=0.1)).fit(Stream(), epochs=2,
                                                                        verbose=0)
    assert len(h["loss"]) == 2
