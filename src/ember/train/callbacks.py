"""Callbacks: code the Trainer runs at the begin and end of training, of each epoch and batch.

Matches: ``keras.callbacks`` (``Callback``, ``EarlyStopping``, ``ModelCheckpoint``,
``LearningRateScheduler``, ``CSVLogger``, ``LambdaCallback``), plus ``GradientClipping`` and
``JSONLogger``. A callback sees the trainer as ``self.trainer`` (model, optimizer, history,
``stop_training``). Callbacks with state that must survive a resume (EarlyStopping's best
value, ...) return it from ``state_dict`` (numbers, strings, lists, dicts, tensors); it is
saved in every checkpoint and given back to ``load_state_dict`` on resume.

Hooks run in the order of the list, except that callbacks with a higher ``priority`` run
later: ModelCheckpoint (priority 100) runs last, so the checkpoint it writes holds the state
every other callback has reached at that point.
"""

from __future__ import annotations

import math
import os

from ..nn.utils.clip_grad import clip_grad_norm_, clip_grad_value_
from .checkpointing import check_writable_dir, save_checkpoint
from .history import write_text_atomic

__all__ = ["Callback", "CallbackList", "EarlyStopping", "ModelCheckpoint",
           "LearningRateScheduler", "GradientClipping", "CSVLogger", "JSONLogger",
           "LambdaCallback", "infer_mode"]

HOOKS = ("on_train_begin", "on_train_end", "on_epoch_begin", "on_epoch_end", "on_batch_begin",
         "on_batch_end", "on_before_optimizer_step")


class Callback:
    """Base class: override any of the hooks; ``self.trainer`` is set before training.

    ``batch`` is the index of the batch in its epoch; ``logs`` holds the running values
    (``loss``, metrics) at batch end and the epoch's values (with ``val_*``) at epoch end.
    ``on_before_optimizer_step`` runs after ``backward`` and before ``optimizer.step()``.
    """

    priority = 0
    trainer = None

    def set_trainer(self, trainer) -> None:
        self.trainer = trainer

    def on_train_begin(self, logs=None): ...
    def on_train_end(self, logs=None): ...
    def on_epoch_begin(self, epoch, logs=None): ...
    def on_epoch_end(self, epoch, logs=None): ...
    def on_batch_begin(self, batch, logs=None): ...
    def on_batch_end(self, batch, logs=None): ...
    def on_before_optimizer_step(self): ...

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class CallbackList:
    """Dispatches each hook to the callbacks, lower ``priority`` first (stable)."""

    def __init__(self, callbacks, trainer):
        for cb in callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(f"Trainer.fit: callbacks must be ember.train.Callback "
                                f"instances, got {type(cb).__name__}")
        self.callbacks = sorted(callbacks, key=lambda c: c.priority)
        for cb in self.callbacks:
            cb.set_trainer(trainer)

    def call(self, hook: str, *args) -> None:
        for cb in self.callbacks:
            getattr(cb, hook)(*args)

    def find(self, kind):
        return next((cb for cb in self.callbacks if isinstance(cb, kind)), None)

    def state_dict(self) -> list:
        return [{"name": type(cb).__name__, "state": cb.state_dict()} for cb in self.callbacks]

    def load_state_dict(self, states: list) -> None:
        by_name: dict = {}
        for entry in states:
            by_name.setdefault(entry["name"], []).append(entry["state"])
        for cb in self.callbacks:  # the n-th callback of a class gets the n-th saved state
            saved = by_name.get(type(cb).__name__)
            if saved:
                cb.load_state_dict(saved.pop(0))


_MAX_HINTS = ("acc", "accuracy", "f1", "precision", "recall", "bleu", "auc")


def infer_mode(monitor: str, mode: str = "auto") -> str:
    """``"min"`` or ``"max"``; ``"auto"`` picks max for accuracy-like names, else min."""
    if mode in ("min", "max"):
        return mode
    if mode != "auto":
        raise ValueError(f"mode must be 'min', 'max' or 'auto', got {mode!r}")
    base = monitor[4:] if monitor.startswith("val_") else monitor
    return "max" if base.endswith(_MAX_HINTS) else "min"


def monitored_value(logs: dict, monitor: str, who: str) -> float:
    if monitor not in logs:
        raise ValueError(f"{who}: monitored metric {monitor!r} is not in the logs (available: "
                         f"{sorted(logs)}); pass val_data to fit() for 'val_*' metrics or "
                         f"choose another monitor")
    return float(logs[monitor])


class _Monitor:
    """Tracks the best value of a monitored metric."""

    def _init_monitor(self, monitor, mode, min_delta=0.0):
        self.monitor, self._mode_arg, self.min_delta = monitor, mode, abs(min_delta)
        self.best, self.best_epoch = None, -1

    def _resolve(self) -> str:
        if self.monitor is None:
            self.monitor = self.trainer.monitor
        self.mode = infer_mode(self.monitor, self._mode_arg)
        return self.monitor

    def _improved(self, current: float) -> bool:
        if math.isnan(current):
            return False
        if self.best is None:
            return True
        if self.mode == "min":
            return current < self.best - self.min_delta
        return current > self.best + self.min_delta


class EarlyStopping(_Monitor, Callback):
    """Stop training when ``monitor`` has not improved by more than ``min_delta`` for
    ``patience`` epochs. Matches ``keras.callbacks.EarlyStopping``.

    Args:
        monitor: a key of the epoch logs (default ``"val_loss"``).
        mode: ``"min"``, ``"max"`` or ``"auto"`` (max for accuracy-like names).
        patience: epochs without improvement before stopping.
        min_delta: smallest change that counts as an improvement.
        restore_best_weights: when stopping, load the weights of the best epoch.
    """

    def __init__(self, monitor: str = "val_loss", mode: str = "auto", patience: int = 0,
                 min_delta: float = 0.0, restore_best_weights: bool = False):
        self._init_monitor(monitor, mode, min_delta)
        self.patience, self.restore_best_weights = patience, restore_best_weights
        self.wait, self.stopped_epoch, self.best_weights = 0, -1, None

    def on_train_begin(self, logs=None):
        self._resolve()
        self.best, self.best_epoch, self.wait, self.stopped_epoch = None, -1, 0, -1
        self.best_weights = None

    def on_epoch_end(self, epoch, logs=None):
        current = monitored_value(logs, self.monitor, "EarlyStopping")
        if self._improved(current):
            self.best, self.best_epoch, self.wait = current, epoch, 0
            if self.restore_best_weights:
                self.best_weights = {k: v.detach().numpy().copy()
                                     for k, v in self.trainer.model.state_dict().items()}
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            self.trainer.stop_training = True
            if self.restore_best_weights and self.best_weights is not None:
                self.trainer.model.load_state_dict(self.best_weights)

    def state_dict(self) -> dict:
        return {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait,
                "stopped_epoch": self.stopped_epoch, "best_weights": self.best_weights}

    def load_state_dict(self, state: dict) -> None:
        for k, v in state.items():
            setattr(self, k, v)


class ModelCheckpoint(_Monitor, Callback):
    """Save the full training state to ``dirpath/last.safetensors`` (at every epoch end and
    every ``every_n_steps`` optimizer steps) and to ``dirpath/best.safetensors`` when
    ``monitor`` improves. Saves are atomic (``ember.save``): an interrupted or failed save
    leaves the previous file intact. Matches ``keras.callbacks.ModelCheckpoint`` with
    Lightning's ``save_last``.

    A checkpoint holds the model, optimizer, scheduler, RNG and data-loader state, counters,
    history and callback state; ``Trainer.fit(..., resume=True)`` continues from ``last``.
    Load only the weights with ``model.load_state_dict(ember.load(path)["model"])``.
    """

    priority = 100

    def __init__(self, dirpath, monitor: str | None = None, mode: str = "auto",
                 save_best: bool = True, save_last: bool = True,
                 every_n_steps: int | None = None):
        if every_n_steps is not None and every_n_steps < 1:
            raise ValueError(f"ModelCheckpoint: every_n_steps must be >= 1, got {every_n_steps}")
        self._init_monitor(monitor, mode)
        self.dirpath = os.fspath(dirpath)
        self.save_best, self.save_last, self.every_n_steps = save_best, save_last, every_n_steps

    @property
    def last_path(self) -> str:
        return os.path.join(self.dirpath, "last.safetensors")

    @property
    def best_path(self) -> str:
        return os.path.join(self.dirpath, "best.safetensors")

    def on_train_begin(self, logs=None):
        self._resolve()
        check_writable_dir(self.dirpath)

    def on_batch_end(self, batch, logs=None):
        if self.every_n_steps and self.trainer.global_step % self.every_n_steps == 0:
            self.save(self.last_path)

    def on_epoch_end(self, epoch, logs=None):
        if self.save_best and self.monitor in logs:
            current = float(logs[self.monitor])
            if self._improved(current):
                self.best, self.best_epoch = current, epoch
                self.save(self.best_path)
        if self.save_last:
            self.save(self.last_path)

    def save(self, path) -> None:
        save_checkpoint(path, self.trainer.state_dict())

    def state_dict(self) -> dict:
        return {"best": self.best, "best_epoch": self.best_epoch}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.best_epoch = state["best"], state["best_epoch"]


class LearningRateScheduler(Callback):
    """Set the learning rate of every parameter group to ``schedule(epoch, lr)`` at the start
    of each epoch. Matches ``keras.callbacks.LearningRateScheduler``."""

    def __init__(self, schedule):
        self.schedule = schedule
        self.last_epoch = -1

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.last_epoch:  # resumed mid-epoch: the lr was already set and restored
            return
        groups = self.trainer.optimizer.param_groups
        lr = float(self.schedule(epoch, float(groups[0]["lr"])))
        for group in groups:
            group["lr"] = lr
        self.last_epoch = epoch

    def state_dict(self) -> dict:
        return {"last_epoch": self.last_epoch}

    def load_state_dict(self, state: dict) -> None:
        self.last_epoch = state["last_epoch"]


class GradientClipping(Callback):
    """Clip gradients before each optimizer step: their total ``norm_type``-norm to
    ``max_norm`` and/or each entry to ``[-max_value, max_value]``. Matches calling
    ``clip_grad_norm_`` / ``clip_grad_value_`` between ``backward`` and ``step``.
    ``self.last_norm`` is the total norm before the last clipping."""

    def __init__(self, max_norm: float | None = None, max_value: float | None = None,
                 norm_type: float = 2.0):
        if max_norm is None and max_value is None:
            raise ValueError("GradientClipping: give max_norm and/or max_value")
        self.max_norm, self.max_value, self.norm_type = max_norm, max_value, norm_type
        self.last_norm = None

    def on_before_optimizer_step(self):
        params = list(self.trainer.model.parameters())
        if self.max_value is not None:
            clip_grad_value_(params, self.max_value)
        if self.max_norm is not None:
            self.last_norm = float(clip_grad_norm_(params, self.max_norm, self.norm_type).item())


def _format_csv_value(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v)
    return str(v)


class CSVLogger(Callback):
    """Write the history to a CSV file (``epoch`` then the sorted log keys) at each epoch end.

    The whole file is rewritten atomically from ``trainer.history`` each time (tiny files),
    so a resumed run never leaves duplicated or missing rows. Matches
    ``keras.callbacks.CSVLogger``.
    """

    def __init__(self, path, separator: str = ","):
        self.path, self.separator = os.fspath(path), separator

    def on_epoch_end(self, epoch, logs=None):
        hist = self.trainer.history
        keys = sorted(hist.keys())
        lines = [self.separator.join(["epoch", *keys])]
        for i, e in enumerate(hist.epoch):
            row = [str(e)] + [_format_csv_value(hist[k][i]) for k in keys]
            lines.append(self.separator.join(row))
        write_text_atomic(self.path, "\n".join(lines) + "\n")


class JSONLogger(Callback):
    """Write the history as JSON (``History.to_dict``) at each epoch end, atomically."""

    def __init__(self, path):
        self.path = os.fspath(path)

    def on_epoch_end(self, epoch, logs=None):
        self.trainer.history.save(self.path)


class LambdaCallback(Callback):
    """A callback from functions: ``LambdaCallback(on_epoch_end=lambda epoch, logs: ...)``.
    Matches ``keras.callbacks.LambdaCallback``."""

    def __init__(self, **hooks):
        for name, fn in hooks.items():
            if name not in HOOKS:
                raise ValueError(f"LambdaCallback: unknown hook {name!r}; expected one of "
                                 f"{HOOKS}")
            setattr(self, name, fn)

