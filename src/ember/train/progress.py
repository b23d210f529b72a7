"""The progress bar: loss, metrics, throughput (samples/s) and ETA for each epoch.

Matches: Keras' ``verbose`` argument of ``fit``: 0 prints nothing; 1 draws a bar updated in
place (``\\r``) when stdout is a terminal, and one plain line per epoch when it is not (logs,
CI, notebooks redirected to files); 2 always prints one line per epoch.
"""

from __future__ import annotations

import sys
import time

from .callbacks import Callback

__all__ = ["ProgressBar", "format_logs"]


def _fmt(value) -> str:
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return str(value)
        return f"{value:.4f}" if value == 0 or 1e-3 <= abs(value) < 1e5 else f"{value:.3e}"
    return str(value)


def format_logs(logs: dict) -> str:
    """``"loss: 0.1234 - accuracy: 0.9000"`` (learning rate and per-class keys included)."""
    return " - ".join(f"{k}: {_fmt(v)}" for k, v in logs.items())


def _fmt_time(seconds: float) -> str:
    seconds = max(seconds, 0.0)
    if seconds < 60:
        return f"{seconds:.0f}s" if seconds >= 10 else f"{seconds:.1f}s"
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class ProgressBar(Callback):
    """Prints progress to ``stream`` (``sys.stdout`` at the time of printing by default)."""

    priority = 50  # after user callbacks (which may add to the logs), before checkpoints

    def __init__(self, verbose: int = 1, width: int = 30, stream=None, interval: float = 0.1):
        if verbose not in (0, 1, 2):
            raise ValueError(f"ProgressBar: verbose must be 0, 1 or 2, got {verbose!r}")
        self.verbose, self.width, self._stream, self.interval = verbose, width, stream, interval

    @property
    def stream(self):
        return self._stream if self._stream is not None else sys.stdout

    def _live(self) -> bool:
        isatty = getattr(self.stream, "isatty", None)
        return self.verbose == 1 and bool(isatty and isatty())

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch, self.start, self.samples, self.last_draw = epoch, time.perf_counter(), 0, 0.0
        self.first_batch = self.trainer.batches_done
        self.total = self.trainer.steps_per_epoch
        if self._live():
            self._write(f"Epoch {epoch + 1}/{self.trainer.epochs}\n")

    def on_batch_end(self, batch, logs=None):
        self.samples += self.trainer.last_batch_size
        now = time.perf_counter()
        if self._live() and (now - self.last_draw >= self.interval or batch + 1 == self.total):
            self.last_draw = now
            self._write("\r" + self._bar(batch + 1, now, logs or {}) + "\033[K")

    def _rate(self, now: float):
        elapsed = now - self.start
        return elapsed, (self.samples / elapsed if elapsed > 0 else 0.0)

    def _bar(self, done: int, now: float, logs: dict) -> str:
        elapsed, rate = self._rate(now)
        parts = []
        if self.total:
            frac = min(done / self.total, 1.0)
            filled = int(self.width * frac)
            arrow = ">" if filled < self.width else ""
            bar = "=" * filled + arrow + "." * (self.width - filled - len(arrow))
            parts.append(f"{done}/{self.total} [{bar}]")
            per_batch = elapsed / max(done - self.first_batch, 1)
            if done < self.total:
                parts.append(f"ETA: {_fmt_time(per_batch * (self.total - done))}")
            else:
                parts.append(_fmt_time(elapsed))
        else:
            parts.append(f"{done} batches - {_fmt_time(elapsed)}")
        parts.append(f"{rate:.0f} samples/s")
        if logs:
            parts.append(format_logs(logs))
        return " - ".join(parts)

    def on_epoch_end(self, epoch, logs=None):
        if self.verbose == 0:
            return
        now = time.perf_counter()
        done = self.total if self.total else self.trainer.batches_in_last_epoch
        if self._live():
            self._write("\r" + self._bar(done, now, logs or {}) + "\033[K\n")
            return
        elapsed, rate = self._rate(now)
        head = f"Epoch {epoch + 1}/{self.trainer.epochs} - {done}/{self.total or done}"
        tail = f" - {format_logs(logs)}" if logs else ""
        self._write(f"{head} - {_fmt_time(elapsed)} - {rate:.0f} samples/s{tail}\n")
