"""``Trainer``: the fit loop (train, validate, log, checkpoint, resume) around a model.

Matches: Keras' ``model.fit`` / ``evaluate`` / ``predict`` contract (overridable
``train_step``, callbacks, History, ``verbose``), with PyTorch Lightning's fault tolerance
(full-state checkpoints, ``resume``). Any iterable of ``(inputs, target)`` batches works as
data; a loader with ``state_dict`` / ``load_state_dict`` (like ``ember.data.DataLoader``) is
resumed mid-epoch from its own state, any other iterable by replaying its epoch from the saved
random state and skipping the batches already done.

    >>> import ember
    >>> from ember.train import Trainer
    >>> model = ember.nn.Linear(4, 3)
    >>> data = [(ember.randn(8, 4), ember.randint(0, 3, (8,))) for _ in range(4)]
    >>> trainer = Trainer(model, ember.optim.SGD(model.parameters(), lr=0.1),
    ...                   metrics=["accuracy"])
    >>> history = trainer.fit(data, epochs=2, val_data=data, verbose=0)
    >>> sorted(history.keys())
    ['accuracy', 'loss', 'lr', 'val_accuracy', 'val_loss']

Fault tolerance: with ``checkpoint_dir`` (or a :class:`ModelCheckpoint`), the whole training
state is saved atomically at every epoch end and every ``checkpoint_every`` steps;
``fit(..., resume=True)`` continues from ``last.safetensors`` and ends with the same weights,
bit for bit, as a run that was never interrupted. Ctrl-C stops at the next batch boundary,
saves ``last`` and returns (``trainer.interrupted`` is then True; press Ctrl-C twice to stop
at once, which keeps the previous checkpoint).
"""

from __future__ import annotations

import copy
import logging
import os
import signal
import sys
import threading

from ..autograd import Tensor, no_grad
from ..nn.functional import cross_entropy
from ..ops import concatenate
from ..ops.random import default_generator
from ..optim.lr_scheduler import ReduceLROnPlateau
from .callbacks import CallbackList, GradientClipping, ModelCheckpoint
from .checkpointing import CHECKPOINT_FORMAT, load_checkpoint
from .history import History
from .metrics import get_metric
from .progress import ProgressBar

__all__ = ["Trainer"]

logger = logging.getLogger("ember.train")


def _is_stateful(loader) -> bool:
    return callable(getattr(loader, "state_dict", None)) and \
        callable(getattr(loader, "load_state_dict", None))


def _length(data):
    try:
        return len(data)
    except TypeError:
        return None


class _Accumulator:
    """The running, sample-weighted means of an epoch's step outputs, and its metrics."""

    def __init__(self, metrics):
        self.metrics = metrics
        self.reset()

    def reset(self) -> None:
        self.sums, self.count = {}, 0
        for m in self.metrics:
            m.reset()

    def update(self, out: dict, n: int) -> None:
        for key, value in out.items():
            if key in ("output", "target"):
                continue
            value = float(value.item() if isinstance(value, Tensor) else value)
            self.sums[key] = self.sums.get(key, 0.0) + value * n
        self.count += n
        if out.get("output") is not None and out.get("target") is not None:
            for m in self.metrics:
                m.update(out["output"], out["target"])

    def logs(self) -> dict:
        logs = {k: s / self.count for k, s in self.sums.items()} if self.count else {}
        for m in self.metrics:
            value = m.compute()
            logs.update(value if isinstance(value, dict) else {m.name: value})
        return logs

    def state_dict(self) -> dict:
        return {"sums": dict(self.sums), "count": self.count,
                "metrics": [m.state_dict() for m in self.metrics]}

    def load_state_dict(self, state: dict) -> None:
        self.sums, self.count = dict(state["sums"]), state["count"]
        for m, s in zip(self.metrics, state["metrics"]):
            m.load_state_dict(s)


class _DeferredSigint:
    """Turns the first Ctrl-C into a flag checked at batch boundaries (a second one raises
    KeyboardInterrupt at once). Only in the main thread, where Python delivers signals."""

    def __init__(self):
        self.requested, self._previous, self._installed = False, None, False

    def _handler(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handler)
            self._installed = True
        return self

    def __exit__(self, *exc):
        if self._installed:
            signal.signal(signal.SIGINT, self._previous if self._previous is not None
                          else signal.default_int_handler)
        return False


class Trainer:
    """Trains ``model`` with ``optimizer`` on ``loss_fn``; see :meth:`fit`.

    Args:
        model: an ``ember.nn.Module``.
        optimizer: an ``ember.optim`` optimizer over the model's parameters.
        loss_fn: ``loss_fn(output, target) -> scalar Tensor`` (default
            ``ember.nn.functional.cross_entropy``).
        metrics: :class:`~ember.train.metrics.Metric` instances or names (``"accuracy"``,
            ``"top5_accuracy"``, ``"f1"``, ``"perplexity"`` ...), computed on train and
            validation data each epoch.
        scheduler: an ``ember.optim.lr_scheduler`` scheduler, stepped every epoch, or every
            batch with ``scheduler_interval="step"``; ``ReduceLROnPlateau`` is stepped each
            epoch with the value of ``monitor``.
        monitor: the log key that ReduceLROnPlateau (and callbacks given ``monitor=None``)
            watch; default ``"val_loss"`` when fit gets ``val_data``, else ``"loss"``.
        grad_clip_norm / grad_clip_value: clip gradients before each step (adds a
            :class:`GradientClipping` callback).

    Override :meth:`train_step` / :meth:`eval_step` for custom steps (GANs, multiple losses):
    they return a dict with ``"loss"``, optionally ``"output"`` and ``"target"`` (fed to the
    metrics) and any other scalars (averaged per epoch and logged under their key).
    """

    def __init__(self, model, optimizer, loss_fn=None, metrics=(), scheduler=None,
                 scheduler_interval: str = "epoch", monitor: str | None = None,
                 grad_clip_norm: float | None = None, grad_clip_value: float | None = None):
        if scheduler_interval not in ("epoch", "step"):
            raise ValueError(f"Trainer: scheduler_interval must be 'epoch' or 'step', got "
                             f"{scheduler_interval!r}")
        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler
        self.loss_fn = cross_entropy if loss_fn is None else loss_fn
        self.metrics = [get_metric(m) for m in metrics]
        self.val_metrics = copy.deepcopy(self.metrics)
        self.scheduler_interval, self._monitor_arg = scheduler_interval, monitor
        self.monitor = monitor or "loss"
        self._clipper = None
        if grad_clip_norm is not None or grad_clip_value is not None:
            self._clipper = GradientClipping(grad_clip_norm, grad_clip_value)
        self._callbacks = CallbackList([], self)
        self._acc = _Accumulator(self.metrics)
        self._sigint = _DeferredSigint()
        self._train_data = None
        self.history = History()
        self._reset_progress()

    def _reset_progress(self) -> None:
        self.epochs_done = self.batches_done = self.global_step = 0
        self.train_done = self.stop_training = self.interrupted = False
        self.last_batch_size = self.batches_in_last_epoch = 0
        self._rng_epoch_start = self._resume_rng = None
        self.history = History()
        self._acc.reset()

    # ------------------------------------------------------------------ steps (overridable)
    def unpack(self, batch):
        """Split a batch into ``(inputs, target)``; override for other batch layouts."""
        if isinstance(batch, (tuple, list)) and len(batch) == 2:
            return batch[0], batch[1]
        raise TypeError(f"Trainer: a batch must be a tuple (inputs, target), got "
                        f"{type(batch).__name__}; override Trainer.unpack for other layouts")

    def forward(self, inputs):
        return self.model(*inputs) if isinstance(inputs, (tuple, list)) else self.model(inputs)

    def train_step(self, batch) -> dict:
        """One optimization step: forward, loss, backward, clipping callbacks, step."""
        inputs, target = self.unpack(batch)
        output = self.forward(inputs)
        loss = self.loss_fn(output, target)
        self.optimizer.zero_grad()
        loss.backward()
        self._callbacks.call("on_before_optimizer_step")
        self.optimizer.step()
        return {"loss": loss, "output": output, "target": target}

    def eval_step(self, batch) -> dict:
        """Forward and loss on one batch (run under ``no_grad`` in eval mode)."""
        inputs, target = self.unpack(batch)
        output = self.forward(inputs)
        return {"loss": self.loss_fn(output, target), "output": output, "target": target}

    # ------------------------------------------------------------------ fit
    def fit(self, train_data, epochs: int = 1, val_data=None, callbacks=(), verbose: int = 1,
            checkpoint_dir=None, checkpoint_every: int | None = None, resume=False) -> History:
        """Train for ``epochs`` epochs (in total, counting those of a resumed run).

        Args:
            train_data: an iterable of ``(inputs, target)`` batches, re-iterated each epoch.
            epochs: the epoch to stop after.
            val_data: optional iterable of validation batches, evaluated each epoch end.
            callbacks: :class:`~ember.train.Callback` instances.
            verbose: 0 silent, 1 progress bar (plain lines when stdout is not a terminal),
                2 one line per epoch.
            checkpoint_dir: adds ``ModelCheckpoint(checkpoint_dir,
                every_n_steps=checkpoint_every)`` (``last`` and ``best`` checkpoints).
            resume: False; True to continue from the ModelCheckpoint's ``last`` file when it
                exists; or the path of a checkpoint.

        Returns:
            The :class:`History` (also ``trainer.history``).
        """
        self.epochs = int(epochs)
        self.monitor = self._monitor_arg or ("val_loss" if val_data is not None else "loss")
        cbs = list(callbacks) + ([self._clipper] if self._clipper else [])
        if checkpoint_dir is not None:
            cbs.append(ModelCheckpoint(checkpoint_dir, every_n_steps=checkpoint_every))
        if verbose:
            cbs.append(ProgressBar(verbose))
        self._callbacks, self.verbose, self._train_data = CallbackList(cbs, self), verbose, \
            train_data
        self.steps_per_epoch = _length(train_data)
        ckpt = self._checkpoint_to_resume(resume)
        self._reset_progress()
        if ckpt is not None:
            self._load_training_state(ckpt)
        with _DeferredSigint() as self._sigint:
            try:
                self._consistent = True
                self._callbacks.call("on_train_begin", {})
                if ckpt is not None:
                    self._callbacks.load_state_dict(ckpt["callbacks"])
                while self.epochs_done < self.epochs and not self.stop_training:
                    self._run_epoch(train_data, val_data)
            except KeyboardInterrupt:
                self._handle_interrupt()
                return self.history
        self._callbacks.call("on_train_end", self.history.last())
        return self.history

    def _check_interrupt(self) -> None:
        if self._sigint.requested:
            self._sigint.requested = False
            raise KeyboardInterrupt

    def _run_epoch(self, train_data, val_data) -> None:
        epoch = self.epochs_done
        resumed_mid_epoch = self.batches_done > 0 or self.train_done
        self._callbacks.call("on_epoch_begin", epoch, {})
        if not self.train_done:
            self.model.train()
            self._train_batches(self._epoch_iterator(train_data, resumed_mid_epoch))
            self.train_done = True
        self._check_interrupt()
        logs = self._acc.logs()
        if val_data is not None:
            logs.update({f"val_{k}": v for k, v in self.evaluate(val_data).items()})
        logs["lr"] = float(self.optimizer.param_groups[0]["lr"])
        self._consistent = False  # end-of-epoch bookkeeping: not a point to save at
        self.history.append(epoch, logs)
        self._step_scheduler_on_epoch(logs)
        self.batches_in_last_epoch = self.batches_done
        self.epochs_done, self.batches_done, self.train_done = epoch + 1, 0, False
        self._acc.reset()
        self._consistent = True
        self._callbacks.call("on_epoch_end", epoch, logs)
        self._check_interrupt()

    def _epoch_iterator(self, train_data, resumed_mid_epoch: bool):
        if not resumed_mid_epoch:
            self._rng_epoch_start = default_generator.get_state()
            return iter(train_data)
        if self._loader_state_restored:
            it = iter(train_data)  # the loader continues from its restored position
        else:
            # replay the epoch's order from the random state at its start, skip what was done
            default_generator.set_state(self._rng_epoch_start)
            it = iter(train_data)
            for _ in range(self.batches_done):
                next(it)
        default_generator.set_state(self._resume_rng)
        return it

    def _train_batches(self, it) -> None:
        while True:
            self._check_interrupt()
            self._consistent = False  # from fetching a batch until its step is complete
            try:
                batch = next(it)
            except StopIteration:
                self._consistent = True
                return
            self._callbacks.call("on_batch_begin", self.batches_done, {})
            out = self.train_step(batch)
            if self.scheduler is not None and self.scheduler_interval == "step":
                self.scheduler.step()
            self.last_batch_size = _batch_size(self, batch, out)
            self._acc.update(out, self.last_batch_size)
            self.batches_done += 1
            self.global_step += 1
            if self.steps_per_epoch is not None and self.batches_done >= self.steps_per_epoch:
                self.train_done = True
            self._consistent = True
            self._callbacks.call("on_batch_end", self.batches_done - 1, self._acc.logs())

    def _step_scheduler_on_epoch(self, logs: dict) -> None:
        if self.scheduler is None:
            return
        if isinstance(self.scheduler, ReduceLROnPlateau):
            if self.monitor not in logs:
                raise ValueError(f"Trainer: ReduceLROnPlateau monitors {self.monitor!r}, which "
                                 f"is not in the logs {sorted(logs)}; pass val_data or "
                                 f"monitor='loss'")
            self.scheduler.step(logs[self.monitor])
        elif self.scheduler_interval == "epoch":
            self.scheduler.step()

    # ------------------------------------------------------------------ evaluate / predict
    def evaluate(self, data) -> dict:
        """Mean loss and metrics over ``data`` (eval mode, ``no_grad``); keys without
        ``val_``. Matches Keras' ``model.evaluate(..., return_dict=True)``."""
        was_training = self.model.training
        acc = _Accumulator(self.val_metrics)
        self.model.eval()
        try:
            with no_grad():
                for batch in data:
                    self._check_interrupt()
                    out = self.eval_step(batch)
                    acc.update(out, _batch_size(self, batch, out))
        finally:
            self.model.train(was_training)
        return acc.logs()

    def predict(self, data) -> Tensor:
        """The model's outputs over ``data`` (batches ``(inputs, target)`` or inputs alone),
        concatenated along dim 0, in eval mode under ``no_grad``."""
        was_training = self.model.training
        outputs = []
        self.model.eval()
        try:
            with no_grad():
                for batch in data:
                    inputs = self.unpack(batch)[0] if isinstance(batch, (tuple, list)) \
                        else batch
                    outputs.append(self.forward(inputs))
        finally:
            self.model.train(was_training)
        if not outputs:
            raise ValueError("Trainer.predict: data yielded no batches")
        return concatenate(outputs, 0)

    # ------------------------------------------------------------------ checkpoint state
    def state_dict(self) -> dict:
        """The whole training state, as saved in checkpoints (``ember.save``-able)."""
        loader = self._train_data
        return {
            "format": CHECKPOINT_FORMAT,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "rng": default_generator.get_state(),
            "rng_epoch_start": self._rng_epoch_start,
            "loader": loader.state_dict() if _is_stateful(loader) else None,
            "progress": {"epochs_done": self.epochs_done, "batches_done": self.batches_done,
                         "global_step": self.global_step, "train_done": self.train_done,
                         "stop_training": self.stop_training},
            "accumulator": self._acc.state_dict(),
            "history": self.history.to_dict(),
            "callbacks": self._callbacks.state_dict(),
        }

    def _load_training_state(self, ckpt: dict) -> None:
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        if (ckpt["scheduler"] is None) != (self.scheduler is None):
            has = "has" if ckpt["scheduler"] is not None else "has no"
            raise ValueError(f"Trainer: the checkpoint {has} LR scheduler state but this "
                             f"Trainer was given scheduler={self.scheduler!r}; resume with the "
                             f"same configuration")
        if self.scheduler is not None:
            self.scheduler.load_state_dict(ckpt["scheduler"])
        progress = ckpt["progress"]
        self.epochs_done, self.batches_done = progress["epochs_done"], progress["batches_done"]
        self.global_step, self.train_done = progress["global_step"], progress["train_done"]
        self.stop_training = progress["stop_training"]
        self._acc.load_state_dict(ckpt["accumulator"])
        self.history = History.from_dict(ckpt["history"])
        self._rng_epoch_start, self._resume_rng = ckpt["rng_epoch_start"], ckpt["rng"]
        default_generator.set_state(ckpt["rng"])
        self._loader_state_restored = ckpt["loader"] is not None and \
            _is_stateful(self._train_data)
        if self._loader_state_restored:
            self._train_data.load_state_dict(ckpt["loader"])
        elif (self.batches_done and not self.train_done and self._rng_epoch_start is None):
            raise ValueError("Trainer: cannot resume mid-epoch: the checkpoint has neither the "
                             "loader's state nor the epoch's random state")

    def _checkpoint_to_resume(self, resume):
        self._loader_state_restored = False
        if resume is False or resume is None:
            return None
        if resume is True:
            cb = self._callbacks.find(ModelCheckpoint)
            if cb is None:
                raise ValueError("Trainer.fit: resume=True needs checkpoint_dir=... or a "
                                 "ModelCheckpoint callback (or pass the checkpoint's path)")
            if not os.path.exists(cb.last_path):
                logger.info("no checkpoint at %s: starting a new run", cb.last_path)
                return None
            resume = cb.last_path
        return load_checkpoint(resume)

    def _handle_interrupt(self) -> None:
        self.interrupted = True
        cb = self._callbacks.find(ModelCheckpoint)
        where = f"epoch {self.epochs_done + 1}, step {self.global_step}"
        if cb is None:
            msg = (f"Training interrupted at {where}; nothing saved (pass checkpoint_dir=... "
                   f"to fit to be able to resume).")
        elif self._consistent:
            cb.save(cb.last_path)
            msg = (f"Training interrupted at {where}; saved '{cb.last_path}'. Resume with "
                   f"trainer.fit(..., resume=True).")
        else:
            msg = (f"Training interrupted inside a step at {where}; the partial step was not "
                   f"saved. Resume from the last checkpoint '{cb.last_path}' with "
                   f"trainer.fit(..., resume=True).")
        logger.info(msg)
        if self.verbose:
            print(msg, file=sys.stderr)
        self.interrupt_message = msg


def _batch_size(trainer, batch, out) -> int:
    target = out.get("target")
    if target is None and isinstance(batch, (tuple, list)) and batch:
        target = batch[-1]
    shape = getattr(target, "shape", None)
    if shape:
        return int(shape[0])
    try:
        return len(target)
    except TypeError:
        return 1
