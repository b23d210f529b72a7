"""ember's random number generator: one seeded NumPy ``Generator`` behind every random op.

Matches: ``torch.manual_seed``, ``torch.Generator`` (``manual_seed``, ``get_state``/``set_state``),
``torch.rand``/``randn``/``randint``/``randperm``. The numbers differ from PyTorch's (a different
bit generator, PCG64), but the same seed always gives the same numbers in ember.
"""

from __future__ import annotations

import numpy as np

# Like PyTorch, a fresh process starts from a fixed seed: runs are reproducible by default.
DEFAULT_SEED = 67280421310721


class Generator:
    """A random-number stream; ``ember.manual_seed`` reseeds the default one.

    Its state is a plain dict of numbers (``get_state``/``set_state``), so checkpoints can store
    it as JSON.
    """

    def __init__(self, device: str = "cpu"):
        self.manual_seed(DEFAULT_SEED)

    def manual_seed(self, seed: int) -> Generator:
        seed = int(seed)
        self._seed = seed
        self._rng = np.random.Generator(np.random.PCG64(seed % (2**64)))
        return self

    def seed(self) -> int:
        return self.manual_seed(np.random.SeedSequence().entropy % (2**63)).initial_seed()

    def initial_seed(self) -> int:
        return self._seed

    def get_state(self) -> dict:
        state = self._rng.bit_generator.state
        return {"bit_generator": state["bit_generator"],
                "state": int(state["state"]["state"]), "inc": int(state["state"]["inc"]),
                "has_uint32": int(state["has_uint32"]), "uinteger": int(state["uinteger"]),
                "seed": self._seed}

    def set_state(self, state: dict) -> None:
        if not isinstance(state, dict) or state.get("bit_generator") != "PCG64":
            raise ValueError("Generator.set_state: expected a state dict from get_state()")
        self._rng.bit_generator.state = {
            "bit_generator": "PCG64",
            "state": {"state": int(state["state"]), "inc": int(state["inc"])},
            "has_uint32": int(state["has_uint32"]), "uinteger": int(state["uinteger"])}
        self._seed = int(state.get("seed", self._seed))

    @property
    def numpy_generator(self) -> np.random.Generator:
        return self._rng


default_generator = Generator()


def manual_seed(seed: int) -> Generator:
    """Seed the default generator (and return it), for reproducible runs."""
    return default_generator.manual_seed(seed)


def _rng(generator) -> np.random.Generator:
    return (generator or default_generator)._rng


def uniform(shape, low, high, dtype, generator=None) -> np.ndarray:
    out = _rng(generator).random(shape, dtype=np.float64 if dtype != np.float32 else np.float32)
    if low != 0.0 or high != 1.0:
        out = out * (high - low) + low
    return out.astype(dtype, copy=False)


def normal(shape, mean, std, dtype, generator=None) -> np.ndarray:
    kind = np.float32 if dtype == np.float32 else np.float64
    out = _rng(generator).standard_normal(shape, dtype=kind)
    if std != 1.0:
        out *= std
    if mean != 0.0:
        out += mean
    return out.astype(dtype, copy=False)


def randint(low, high, shape, dtype, generator=None) -> np.ndarray:
    if high <= low:
        raise ValueError(f"randint: expected low < high, got low={low}, high={high}")
    return _rng(generator).integers(low, high, size=shape, dtype=np.int64).astype(dtype,
                                                                                   copy=False)


def randperm(n, dtype, generator=None) -> np.ndarray:
    return _rng(generator).permutation(n).astype(dtype, copy=False)


def bernoulli(shape, p, dtype, generator=None) -> np.ndarray:
    return (_rng(generator).random(shape) < p).astype(dtype)


def exponential(shape, lambd, dtype, generator=None) -> np.ndarray:
    return _rng(generator).exponential(1.0 / lambd, size=shape).astype(dtype)


def bernoulli_from(p: np.ndarray, generator=None) -> np.ndarray:
    """Draws of 0/1 with per-element probabilities ``p`` (same dtype as ``p``)."""
    return (_rng(generator).random(p.shape, dtype=np.float32) < p).astype(p.dtype)


def multinomial(probs: np.ndarray, num_samples: int, replacement: bool, generator=None):
    rng = _rng(generator)
    p = np.atleast_2d(probs).astype(np.float64)
    if (p < 0).any() or not np.isfinite(p).all():
        raise ValueError("multinomial: probabilities must be finite and non-negative")
    sums = p.sum(-1, keepdims=True)
    if (sums <= 0).any():
        raise ValueError("multinomial: each row of probabilities must have a positive sum")
    p = p / sums
    out = np.empty((p.shape[0], num_samples), dtype=np.int64)
    for r in range(p.shape[0]):
        out[r] = rng.choice(p.shape[1], size=num_samples, replace=replacement, p=p[r])
    return out if probs.ndim == 2 else out[0]
