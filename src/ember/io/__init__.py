"""Safe checkpoints: the safetensors format, and ``ember.save`` / ``ember.load`` on top of it.

Matches: ``torch.save`` / ``torch.load(weights_only=True)`` and the ``safetensors`` library's
``save_file`` / ``load_file``. Nothing here pickles or executes anything from a file: a
checkpoint is raw arrays plus a JSON header, and every field is checked on loading
(:class:`CheckpointError` names the file and the problem).

    >>> import ember
    >>> ember.save(model.state_dict(), "ckpt.safetensors")          # doctest: +SKIP
    >>> model.load_state_dict(ember.load("ckpt.safetensors"))       # doctest: +SKIP
"""

from .checkpoint import FORMAT_VERSION, MAX_DEPTH, load, save
from .safetensors import (
    MAX_HEADER_SIZE,
    CheckpointError,
    load_safetensors,
    read_safetensors,
    save_safetensors,
)

__all__ = ["save", "load", "save_safetensors", "load_safetensors", "read_safetensors",
           "CheckpointError", "FORMAT_VERSION", "MAX_DEPTH", "MAX_HEADER_SIZE"]
