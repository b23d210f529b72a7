"""Fault tolerance: interrupted runs resume to the same weights, bit for bit."""

import errno
import os
import random
import signal

import numpy as np
import pytest

import ember
from ember.train import EarlyStopping, load_checkpoint

from .helpers import (
    Crash,
    DefaultRngLoader,
    assert_same_weights,
    build,
    fixed_batches,
    make_data,
    weights,
)

EPOCHS, EVERY = 3, 3   # 8 batches per epoch: 24 steps, checkpoints every 3 steps


def _fit(tmp_path, callbacks=(), resume=False, seed=0, loader_cls=None, **kw):
    extra = {} if loader_cls is None else {"loader_cls": loader_cls}
    trainer, loader, val = build(seed=seed, **extra)
    cbs = [EarlyStopping(monitor="val_loss", patience=50), *callbacks]
    trainer.fit(loader, epochs=EPOCHS, val_data=val, callbacks=cbs, verbose=0,
                checkpoint_dir=tmp_path, checkpoint_every=EVERY, resume=resume, **kw)
    return trainer


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    ember.manual_seed(0)
    trainer = _fit(tmp_path_factory.mktemp("ref"))
    return weights(trainer.model), trainer.history.to_dict()


def test_same_seed_gives_bit_identical_weights(tmp_path, reference):
    trainer = _fit(tmp_path)
    assert_same_weights(weights(trainer.model), reference[0])
    assert trainer.history.to_dict() == reference[1]


_rng = random.Random(1234)
STEPS = sorted({1, 8, 9, 24, *(_rng.randrange(1, 25) for _ in range(4))})


@pytest.mark.parametrize("hook", ["on_batch_end", "on_batch_begin", "on_before_optimizer_step"])
@pytest.mark.parametrize("step", STEPS)
def test_crash_at_any_step_then_resume_is_bit_identical(tmp_path, reference, step, hook):
    with pytest.raises(RuntimeError, match="injected"):
        _fit(tmp_path, callbacks=[Crash(step, hook)])
    # a restarted script rebuilds everything; when a checkpoint exists, initialize with
    # another seed to prove that the checkpoint restores it all
    seed = 99 if (tmp_path / "last.safetensors").exists() else 0
    resumed = _fit(tmp_path, resume=True, seed=seed)
    assert_same_weights(weights(resumed.model), reference[0])
    assert resumed.history.to_dict() == reference[1]
    assert resumed.global_step == EPOCHS * 8


def test_resume_from_explicit_path_and_twice(tmp_path, reference):
    with pytest.raises(RuntimeError):
        _fit(tmp_path, callbacks=[Crash(5)])
    with pytest.raises(RuntimeError):
        _fit(tmp_path, callbacks=[Crash(17)], resume=True)
    resumed = _fit(tmp_path, resume=str(tmp_path / "last.safetensors"), seed=7)
    assert_same_weights(weights(resumed.model), reference[0])


def test_resume_with_stateless_loader_replays_the_epoch(tmp_path):
    ember.manual_seed(0)
    ref = _fit(tmp_path / "a", loader_cls=DefaultRngLoader)
    with pytest.raises(RuntimeError):
        _fit(tmp_path / "b", callbacks=[Crash(13)], loader_cls=DefaultRngLoader)
    resumed = _fit(tmp_path / "b", resume=True, seed=5, loader_cls=DefaultRngLoader)
    assert_same_weights(weights(resumed.model), weights(ref.model))


def test_keyboard_interrupt_saves_last_and_resumes(tmp_path, reference, capsys):
    trainer, loader, val = build()
    history = trainer.fit(loader, epochs=EPOCHS, val_data=val, verbose=1,
                          checkpoint_dir=tmp_path, callbacks=[
                              EarlyStopping(patience=50), Crash(11, exc=KeyboardInterrupt())])
    assert trainer.interrupted and history is trainer.history
    err = capsys.readouterr().err
    assert "resume=True" in err and "last.safetensors" in err
    ckpt = load_checkpoint(tmp_path / "last.safetensors")
    assert ckpt["progress"]["global_step"] == 11 and ckpt["progress"]["batches_done"] == 3
    resumed = _fit(tmp_path, resume=True, seed=3)
    assert_same_weights(weights(resumed.model), reference[0])


def test_keyboard_interrupt_inside_a_step_keeps_previous_checkpoint(tmp_path, reference, capsys):
    trainer, loader, val = build()
    trainer.fit(loader, epochs=EPOCHS, val_data=val, verbose=2, checkpoint_dir=tmp_path,
                checkpoint_every=EVERY, callbacks=[
                    EarlyStopping(patience=50),
                    Crash(11, "on_before_optimizer_step", exc=KeyboardInterrupt())])
    assert trainer.interrupted
    assert "partial step was not saved" in capsys.readouterr().err
    assert load_checkpoint(tmp_path / "last.safetensors")["progress"]["global_step"] == 9
    resumed = _fit(tmp_path, resume=True, seed=3)
    assert_same_weights(weights(resumed.model), reference[0])


class SendSigint(Crash):
    def on_batch_end(self, batch, logs=None):
        if self.trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGINT)


def test_sigint_stops_at_the_batch_boundary_saves_and_resumes(tmp_path, reference):
    before = signal.getsignal(signal.SIGINT)
    trainer, loader, val = build()
    trainer.fit(loader, epochs=EPOCHS, val_data=val, verbose=0, checkpoint_dir=tmp_path,
                callbacks=[EarlyStopping(patience=50), SendSigint(14)])
    assert trainer.interrupted and trainer.global_step == 14
    assert signal.getsignal(signal.SIGINT) is before
    assert load_checkpoint(tmp_path / "last.safetensors")["progress"]["global_step"] == 14
    resumed = _fit(tmp_path, resume=True, seed=3)
    assert_same_weights(weights(resumed.model), reference[0])


def _fail_writes(monkeypatch):
    import ember.io.safetensors as st

    class Full:
        def __init__(self, f):
            self.f = f

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    real = st._open_for_writing
    monkeypatch.setattr(st, "_open_for_writing", lambda path: Full(real(path)))


def test_disk_full_is_a_clear_error_and_keeps_the_last_checkpoint(tmp_path, monkeypatch,
                                                                  reference):
    trainer, loader, val = build()
    trainer.fit(loader, epochs=1, val_data=val, verbose=0, checkpoint_dir=tmp_path,
                callbacks=[EarlyStopping(patience=50)])
    last = tmp_path / "last.safetensors"
    good = last.read_bytes()
    _fail_writes(monkeypatch)
    with pytest.raises(OSError, match="No space left") as info:
        _fit(tmp_path, resume=True)
    assert info.value.errno == errno.ENOSPC
    assert "intact" in str(info.value) and "last.safetensors" in str(info.value)
    assert last.read_bytes() == good
    assert sorted(os.listdir(tmp_path)) == ["best.safetensors", "last.safetensors"]
    monkeypatch.undo()
    resumed = _fit(tmp_path, resume=True, seed=4)
    assert_same_weights(weights(resumed.model), reference[0])


def test_unwritable_checkpoint_dir_fails_before_training(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    trainer, loader, val = build()
    before = weights(trainer.model)
    with pytest.raises(OSError, match="not writable"):
        trainer.fit(loader, epochs=1, verbose=0, checkpoint_dir=blocker / "ckpt")
    assert_same_weights(weights(trainer.model), before)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="root ignores directory permissions")
def test_read_only_checkpoint_dir(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        trainer, loader, _ = build()
        with pytest.raises(OSError, match="not writable"):
            trainer.fit(loader, epochs=1, verbose=0, checkpoint_dir=ro)
    finally:
        ro.chmod(0o700)


def test_resume_errors(tmp_path):
    trainer, loader, _ = build()
    with pytest.raises(ValueError, match="resume=True needs"):
        trainer.fit(loader, epochs=1, verbose=0, resume=True)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        trainer.fit(loader, epochs=1, verbose=0, resume=tmp_path / "missing.safetensors")
    ember.save({"w": ember.zeros(2)}, tmp_path / "weights.safetensors")
    with pytest.raises(ember.io.CheckpointError, match="not a training checkpoint"):
        trainer.fit(loader, epochs=1, verbose=0, resume=tmp_path / "weights.safetensors")
    # resume=True with an empty directory starts a new run
    trainer.fit(loader, epochs=1, verbose=0, checkpoint_dir=tmp_path / "new", resume=True)
    assert trainer.epochs_done == 1
    x, y = make_data()
    other, _, _ = build(scheduler=False)
    with pytest.raises(ValueError, match="scheduler"):
        other.fit(fixed_batches(x, y), epochs=2, verbose=0,
                  resume=tmp_path / "new" / "last.safetensors")


def test_finished_run_resumes_to_nothing_and_can_be_extended(tmp_path, reference):
    trainer = _fit(tmp_path)
    again = _fit(tmp_path, resume=True, seed=8)
    assert again.global_step == trainer.global_step
    assert_same_weights(weights(again.model), reference[0])
    trainer, loader, val = build(seed=8)
    trainer.fit(loader, epochs=EPOCHS + 1, val_data=val, verbose=0, checkpoint_dir=tmp_path,
                resume=True, callbacks=[EarlyStopping(patience=50)])
    assert trainer.epochs_done == EPOCHS + 1 and len(trainer.history) == EPOCHS + 1
    assert np.isfinite(trainer.history["loss"]).all()
