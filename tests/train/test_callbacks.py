import io
import json
import types

import pytest

import ember
from ember.train import (
    Callback,
    CSVLogger,
    EarlyStopping,
    JSONLogger,
    LearningRateScheduler,
    ModelCheckpoint,
    ProgressBar,
    Trainer,
    load_checkpoint,
)

from .helpers import assert_same_weights, fixed_batches, make_data, make_model, weights


def _trainer(lr=0.1, cls=Trainer, **kw):
    ember.manual_seed(0)
    model = make_model()
    x, y = make_data(16)
    return cls(model, ember.optim.SGD(model.parameters(), lr=lr), **kw), fixed_batches(x, y)


class Recorder(Callback):
    def __init__(self):
        self.calls = []

    def on_train_begin(self, logs=None):
        self.calls.append("train_begin")

    def on_train_end(self, logs=None):
        self.calls.append("train_end")

    def on_epoch_begin(self, epoch, logs=None):
        self.calls.append(f"epoch_begin {epoch}")

    def on_epoch_end(self, epoch, logs=None):
        self.calls.append(f"epoch_end {epoch} {sorted(logs)}")

    def on_batch_begin(self, batch, logs=None):
        self.calls.append(f"batch_begin {batch}")

    def on_batch_end(self, batch, logs=None):
        self.calls.append(f"batch_end {batch} {sorted(logs)}")

    def on_before_optimizer_step(self):
        self.calls.append("before_step")


def test_callbacks_fire_in_order():
    trainer, data = _trainer(metrics=["accuracy"])
    rec = Recorder()
    trainer.fit(data, epochs=2, val_data=data[:1], callbacks=[rec], verbose=0)
    epoch = []
    for b in range(2):
        epoch += [f"batch_begin {b}", "before_step", f"batch_end {b} ['accuracy', 'loss']"]
    end = "['accuracy', 'loss', 'lr', 'val_accuracy', 'val_loss']"
    assert rec.calls == (["train_begin", "epoch_begin 0", *epoch, f"epoch_end 0 {end}",
                          "epoch_begin 1", *epoch, f"epoch_end 1 {end}", "train_end"])


def test_checkpoint_callbacks_run_last():
    order = []

    class A(Callback):
        def on_epoch_end(self, epoch, logs=None):
            order.append("user")

    class Ckpt(ModelCheckpoint):
        def on_epoch_end(self, epoch, logs=None):
            order.append("checkpoint")

    trainer, data = _trainer()
    trainer.fit(data, epochs=1, callbacks=[Ckpt("unused"), A()], verbose=0)
    assert order == ["user", "checkpoint"]


class Scripted(Trainer):
    """val_loss follows a script, one value per epoch."""

    script = [1.0, 0.5, 0.6, 0.7, 0.4, 0.3]

    def evaluate(self, data):
        return {"loss": self.script[self.epochs_done]}


def test_early_stopping_patience_and_restore_best_weights():
    trainer, data = _trainer(cls=Scripted)
    snapshots = []
    snap = type("Snap", (Callback,), {"on_epoch_end": lambda self, e, logs:
                                      snapshots.append(weights(self.trainer.model))})()
    es = EarlyStopping(patience=2, restore_best_weights=True)
    h = trainer.fit(data, epochs=6, val_data=data, callbacks=[snap, es], verbose=0)
    assert h["val_loss"] == [1.0, 0.5, 0.6, 0.7]
    assert es.stopped_epoch == 3 and es.best == 0.5 and es.best_epoch == 1
    assert_same_weights(weights(trainer.model), snapshots[1])


def test_early_stopping_min_delta_mode_and_missing_monitor():
    fake = types.SimpleNamespace(monitor="loss", stop_training=False, model=None)
    es = EarlyStopping(monitor="val_accuracy", min_delta=0.1, patience=1)
    es.set_trainer(fake)
    es.on_train_begin()
    assert es.mode == "max"
    es.on_epoch_end(0, {"val_accuracy": 0.5})
    es.on_epoch_end(1, {"val_accuracy": 0.55})  # not better by more than min_delta
    assert fake.stop_training and es.best == 0.5
    with pytest.raises(ValueError, match="'val_accuracy' is not in the logs"):
        es.on_epoch_end(2, {"loss": 1.0})
    assert EarlyStopping(monitor="loss", mode="max").state_dict()["best"] is None


def test_model_checkpoint_keeps_best_and_last(tmp_path):
    trainer, data = _trainer(cls=Scripted)
    snapshots = []
    snap = type("Snap", (Callback,), {"on_epoch_end": lambda self, e, logs:
                                      snapshots.append(weights(self.trainer.model))})()
    mc = ModelCheckpoint(tmp_path)
    trainer.fit(data, epochs=4, val_data=data, callbacks=[snap, mc], verbose=0)
    best = load_checkpoint(tmp_path / "best.safetensors")
    last = load_checkpoint(tmp_path / "last.safetensors")
    assert best["progress"]["epochs_done"] == 2 and last["progress"]["epochs_done"] == 4
    assert mc.best == 0.5 and mc.best_epoch == 1
    model = make_model()
    model.load_state_dict(ember.load(tmp_path / "best.safetensors")["model"])
    assert_same_weights(weights(model), snapshots[1])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.safetensors", "last.safetensors"]
    with pytest.raises(ValueError, match="every_n_steps"):
        ModelCheckpoint(tmp_path, every_n_steps=0)


def test_learning_rate_scheduler_callback():
    trainer, data = _trainer()
    h = trainer.fit(data, epochs=3, verbose=0,
                    callbacks=[LearningRateScheduler(lambda epoch, lr: 0.1 / (epoch + 1))])
    assert h["lr"] == pytest.approx([0.1, 0.05, 0.1 / 3])


def test_csv_and_json_loggers(tmp_path):
    trainer, data = _trainer(metrics=["accuracy"])
    csv, js = tmp_path / "log.csv", tmp_path / "log.json"
    trainer.fit(data, epochs=2, val_data=data, callbacks=[CSVLogger(csv), JSONLogger(js)],
                verbose=0)
    lines = csv.read_text().splitlines()
    assert lines[0] == "epoch,accuracy,loss,lr,val_accuracy,val_loss"
    assert len(lines) == 3 and lines[2].startswith("1,")
    assert float(lines[1].split(",")[2]) == trainer.history["loss"][0]
    assert json.loads(js.read_text()) == trainer.history.to_dict()


def test_progress_plain_lines_when_not_a_terminal(capsys):
    trainer, data = _trainer(metrics=["accuracy"])
    trainer.fit(data, epochs=2, val_data=data, verbose=1)
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2
    assert out[0].startswith("Epoch 1/2 - 2/2 - ")
    for part in ("samples/s", "loss: ", "accuracy: ", "val_loss: ", "lr: 0.1000"):
        assert part in out[0]
    assert "\r" not in "".join(out)
    trainer.fit(data, epochs=1, verbose=2)
    assert capsys.readouterr().out.startswith("Epoch 1/1 - 2/2")
    trainer.fit(data, epochs=1, verbose=0)
    assert capsys.readouterr().out == ""


class FakeTTY(io.StringIO):
    def isatty(self):
        return True


def test_progress_bar_on_a_terminal():
    trainer, data = _trainer()
    stream = FakeTTY()
    trainer.fit(data * 2, epochs=1, verbose=0,
                callbacks=[ProgressBar(verbose=1, stream=stream, interval=0)])
    text = stream.getvalue()
    assert text.startswith("Epoch 1/1\n")
    assert "\r1/4 [=======>" in text and "ETA: " in text and "samples/s" in text
    assert "\r4/4 [==============================]" in text and text.endswith("\n")
    with pytest.raises(ValueError, match="verbose"):
        ProgressBar(verbose=3)
