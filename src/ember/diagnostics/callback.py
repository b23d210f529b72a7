"""``DoctorCallback``: the training doctor as a :class:`~ember.train.Trainer` callback."""

from __future__ import annotations

import math

from ..train.callbacks import Callback
from .doctor import Doctor

__all__ = ["DoctorCallback"]


class DoctorCallback(Callback):
    """Watch the trainer's model: sampled layer statistics every ``every`` steps, the loss of
    every step and the epoch logs (validation curves); diagnose at the end of training.

    Args:
        every: sampling period in steps (see :class:`~ember.diagnostics.Doctor`).
        report_dir: if given, write the report folder there at the end of training.
        warn: issue :class:`~ember.diagnostics.DoctorWarning` as problems appear.
        verbose: print the text summary at the end of training; ``None`` follows the
            trainer's ``verbose``.
        plots: draw the PNG plots in ``report_dir`` (needs matplotlib).

    After training, ``callback.doctor`` holds the :class:`Doctor` and ``callback.findings``
    the findings. The trainer's checkpoints keep the doctor's record: a run resumed with
    ``resume=True`` is diagnosed as one run. The doctor reads the gradients in
    ``on_before_optimizer_step``, before gradient clipping (which runs after every user
    callback), so it sees the raw gradients.

    Example:
        >>> import ember
        >>> from ember.train import Trainer
        >>> model = ember.nn.Sequential(ember.nn.Linear(4, 8), ember.nn.ReLU(),
        ...                             ember.nn.Linear(8, 3))
        >>> data = [(ember.randn(16, 4), ember.randint(0, 3, (16,)))] * 5
        >>> doctor = DoctorCallback(every=2, verbose=0)
        >>> _ = Trainer(model, ember.optim.SGD(model.parameters(), lr=0.1)).fit(
        ...     data, epochs=2, callbacks=[doctor], verbose=0)
        >>> doctor.doctor.stats.sampled
        [0, 2, 4, 6, 8]
    """

    def __init__(self, every: int = 10, report_dir=None, warn: bool = True,
                 verbose: int | None = None, plots: bool = True):
        self.every, self.report_dir, self.warn = every, report_dir, warn
        self.verbose, self.plots = verbose, plots
        self.doctor = None
        self.findings = []

    def on_train_begin(self, logs=None):
        if self.doctor is None or self.doctor.model is not self.trainer.model:
            self.doctor = Doctor(self.trainer.model, every=self.every, warn=self.warn)
        self._epoch_sum, self._epoch_count = 0.0, 0

    def on_epoch_begin(self, epoch, logs=None):
        if self.trainer.batches_done == 0:  # (resumed mid-epoch: the loaded sums go on)
            self._epoch_sum, self._epoch_count = 0.0, 0

    def on_batch_begin(self, batch, logs=None):
        self.doctor.begin_step(self.trainer.global_step)

    def on_before_optimizer_step(self):
        self.doctor.record_gradients()

    def on_batch_end(self, batch, logs=None):
        self.doctor.end_step(self._step_loss(logs or {}))

    def _step_loss(self, logs: dict):
        """This step's loss, from the epoch's running mean in the logs and the batch size."""
        if "loss" not in logs:
            return None
        n = max(int(self.trainer.last_batch_size), 1)
        mean = float(logs["loss"])
        total = mean * (self._epoch_count + n)
        value = (total - self._epoch_sum) / n if math.isfinite(total) else mean
        self._epoch_sum, self._epoch_count = total, self._epoch_count + n
        return value

    def on_epoch_end(self, epoch, logs=None):
        self.doctor.record_epoch(epoch, logs or {})

    def state_dict(self) -> dict:
        """The doctor's record so far (saved in the trainer's checkpoints, so that a resumed
        run is diagnosed as the whole run)."""
        if self.doctor is None:
            return {}
        return {"doctor": self.doctor.state_dict(), "epoch_sum": self._epoch_sum,
                "epoch_count": self._epoch_count}

    def load_state_dict(self, state: dict) -> None:
        if state:  # (on_train_begin has made the doctor)
            self.doctor.load_state_dict(state["doctor"])
            self._epoch_sum, self._epoch_count = state["epoch_sum"], state["epoch_count"]

    def on_train_end(self, logs=None):
        self.doctor.close()
        self.findings = self.doctor.diagnose()
        if self.report_dir is not None:
            self.doctor.write_report(self.report_dir, plots=self.plots)
        verbose = self.trainer.verbose if self.verbose is None else self.verbose
        if verbose:
            print(self.doctor.summary(self.findings))
