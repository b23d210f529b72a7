"""normalization functions of ember.nn.functional (see the package docstring)."""

__all__: list = []
