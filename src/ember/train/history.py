"""``History``: the per-epoch logs of a training run, a JSON-serializable dict of lists.

Matches: the ``History`` object Keras' ``fit`` returns (``history.history["val_loss"]``,
``history.epoch``).
"""

from __future__ import annotations

import json
import math
import os

__all__ = ["History"]


class History:
    """Per-epoch logs: ``history["loss"]`` is the list of the training losses, one per epoch.

    ``history.history`` is the dict itself, ``history.epoch`` the epoch indices; ``to_dict`` /
    ``from_dict`` and ``save`` / ``load`` round-trip it through JSON (nan and inf as strings).

    >>> h = History()
    >>> h.append(0, {"loss": 0.5, "val_loss": 0.7})
    >>> h["loss"], h.epoch
    ([0.5], [0])
    """

    def __init__(self) -> None:
        self.history: dict[str, list] = {}
        self.epoch: list[int] = []

    def append(self, epoch: int, logs: dict) -> None:
        """Record one epoch's logs (keys first seen later are padded with None before)."""
        self.epoch.append(int(epoch))
        for key, value in logs.items():
            column = self.history.setdefault(key, [None] * (len(self.epoch) - 1))
            column.append(float(value) if isinstance(value, (int, float)) else value)
        for column in self.history.values():
            if len(column) < len(self.epoch):
                column.append(None)

    def __getitem__(self, key: str) -> list:
        return self.history[key]

    def __contains__(self, key: str) -> bool:
        return key in self.history

    def __len__(self) -> int:
        return len(self.epoch)

    def keys(self):
        return self.history.keys()

    def last(self) -> dict:
        """The last epoch's logs."""
        return {k: v[-1] for k, v in self.history.items()} if self.epoch else {}

    def to_dict(self) -> dict:
        """``{"epoch": [...], "history": {key: [...]}}`` with non-finite floats as strings."""
        return {"epoch": list(self.epoch),
                "history": {k: [_encode(v) for v in col] for k, col in self.history.items()}}

    @classmethod
    def from_dict(cls, data: dict) -> History:
        h = cls()
        h.epoch = [int(e) for e in data.get("epoch", [])]
        h.history = {k: [_decode(v) for v in col] for k, col in data.get("history", {}).items()}
        return h

    def to_json(self, **kwargs) -> str:
        return json.dumps(self.to_dict(), allow_nan=False, **kwargs)

    def save(self, path) -> None:
        """Write the history as JSON (atomically: a temporary file renamed over ``path``)."""
        write_text_atomic(path, self.to_json(indent=1))

    @classmethod
    def load(cls, path) -> History:
        with open(path, encoding="utf-8") as f:
            return cls.from_dict(json.load(f))

    def __repr__(self) -> str:
        return f"History(epochs={len(self.epoch)}, keys={list(self.history)})"


def _encode(v):
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)  # 'nan', 'inf', '-inf'
    return v


def _decode(v):
    return float(v) if v in ("nan", "inf", "-inf") else v


def write_text_atomic(path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and ``os.replace``."""
    path = os.fspath(path)
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
