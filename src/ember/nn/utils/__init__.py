"""``ember.nn.utils``: gradient clipping, parameter vectors, model summaries, RNN packing."""

from .summary import summary  # noqa: F401
