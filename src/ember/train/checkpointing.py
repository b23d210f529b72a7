"""Saving and loading training checkpoints (``ember.save`` / ``ember.load``, atomic, no pickle).

A checkpoint is the dict ``Trainer.state_dict()`` returns; see :class:`~ember.train.Trainer`.
Errors name the file, say what went wrong and that the previous checkpoint is intact.
"""

from __future__ import annotations

import errno
import os
import secrets

from ..io import CheckpointError, load, save

__all__ = ["save_checkpoint", "load_checkpoint", "check_writable_dir", "CHECKPOINT_FORMAT"]

#: Version tag of the training-checkpoint layout (inside the ember.save format).
CHECKPOINT_FORMAT = "ember.train/1"


def save_checkpoint(path, state: dict) -> None:
    """Atomically write ``state`` to ``path``; on failure the previous file stays as it was.

    Raises:
        OSError (same subclass and errno): the file could not be written, e.g. a full disk
            (``ENOSPC``) or a read-only directory; the message says the last good checkpoint
            is untouched.
    """
    path = os.fspath(path)
    try:
        save(state, path)
    except OSError as e:
        hint = ("free some disk space" if e.errno == errno.ENOSPC else
                "check that the directory exists and is writable")
        kept = ("the previous checkpoint there is intact" if os.path.exists(path) else
                "no checkpoint existed there yet")
        err = type(e)(f"Trainer: could not save the checkpoint '{path}' ({e}); {kept}. To fix: "
                      f"{hint}, or pass another checkpoint directory, then resume with "
                      f"fit(..., resume=True)")
        err.errno = e.errno
        raise err from e


def load_checkpoint(path) -> dict:
    """Read a checkpoint written by :func:`save_checkpoint` (checking its format tag)."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(errno.ENOENT, f"Trainer: no checkpoint at '{path}' to resume "
                                f"from; train without resume first (or pass resume=False)")
    state = load(path)
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        got = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(f"Trainer: '{path}' is not a training checkpoint (format "
                              f"{got!r}, expected {CHECKPOINT_FORMAT!r}); load model weights "
                              f"with model.load_state_dict(ember.load(path)) instead")
    return state


def check_writable_dir(dirpath) -> None:
    """Create ``dirpath`` if needed and probe it with a small file: fail before training
    starts rather than at the first checkpoint."""
    dirpath = os.fspath(dirpath)
    probe = os.path.join(dirpath, f".write-test-{secrets.token_hex(4)}")
    try:
        os.makedirs(dirpath, exist_ok=True)
        with open(probe, "wb") as f:
            f.write(b"ok")
        os.unlink(probe)
    except OSError as e:
        err = type(e)(f"Trainer: the checkpoint directory '{dirpath}' is not writable ({e}); "
                      f"choose a writable directory (checkpoint_dir=... or "
                      f"ModelCheckpoint(dirpath=...))")
        err.errno = e.errno
        raise err from e
