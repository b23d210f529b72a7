"""JAX with ``jit`` as a second reference on workloads 1, 2 and 4 of ``train_bench.py``.

Run with an interpreter that has JAX (it needs only ``jax`` and NumPy, not ember or torch):
``/work/venvs/jax/bin/python benchmarks/jax_bench.py [--time S] [--json PATH]``; ``suite.py``
finds that interpreter itself (see ``find_jax_python`` there).

The models are written by hand with ``jax.numpy``, with the shapes, batch sizes, inputs
(``train_bench.WORKLOADS``, same seed), float32 and optimizers of ``train_bench.py``:
PyTorch's default initialization (weights and biases uniform in +-1/sqrt(fan_in)), Adam with
PyTorch's update (lr 1e-3, bias corrections, eps outside the square root), SGD with PyTorch's
momentum (lr 0.01, momentum 0.9, ``buf = 0.9 buf + g``). A train step is one jitted function
(forward, cross-entropy, ``jax.grad``, optimizer update) with the parameters and optimizer
state donated, timed until its loss is ready; inference is a jitted forward on one example.
XLA's CPU backend runs with its defaults, which use every core (as train_bench does for
NumPy's BLAS and for torch).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import time_call, write_json  # noqa: E402
from train_bench import WORKLOADS  # noqa: E402  (imports neither ember nor torch)

JAX_WORKLOADS = ("mnist1d-mlp", "mnist1d-cnn", "mlp-784")


def _uniform(rng, shape, fan_in):
    bound = 1.0 / np.sqrt(fan_in)
    return rng.uniform(-bound, bound, shape).astype(np.float32)


def linear_params(rng, fan_in, fan_out):
    # stored (in, out) as flax does: XLA's CPU dot is ~2x slower on a transposed weight
    return {"w": _uniform(rng, (fan_in, fan_out), fan_in), "b": _uniform(rng, (fan_out,), fan_in)}


def conv_params(rng, c_in, c_out, k):
    return {"w": _uniform(rng, (c_out, c_in, k), c_in * k), "b": _uniform(rng, (c_out,), c_in * k)}


def build(name, rng):
    """``(params, forward)`` of workload ``name``; ``forward(params, x)`` returns logits."""
    import jax
    import jax.numpy as jnp

    def linear(p, x):
        return x @ p["w"] + p["b"]

    def conv1d(p, x):  # stride 2, padding 1, NCH like torch.nn.Conv1d
        y = jax.lax.conv_general_dilated(x, p["w"], window_strides=(2,), padding=[(1, 1)],
                                         dimension_numbers=("NCH", "OIH", "NCH"))
        return y + p["b"][None, :, None]

    relu = jax.nn.relu
    if name == "mnist1d-mlp":
        params = {"fc1": linear_params(rng, 40, 256), "fc2": linear_params(rng, 256, 256),
                  "out": linear_params(rng, 256, 10)}

        def forward(p, x):
            h = relu(linear(p["fc1"], x))
            h = h + relu(linear(p["fc2"], h))
            return linear(p["out"], h)
    elif name == "mnist1d-cnn":
        params = {"c1": conv_params(rng, 1, 25, 5), "c2": conv_params(rng, 25, 25, 3),
                  "c3": conv_params(rng, 25, 25, 3), "out": linear_params(rng, 125, 10)}

        def forward(p, x):
            h = relu(conv1d(p["c1"], x[:, None, :]))
            h = relu(conv1d(p["c2"], h))
            h = relu(conv1d(p["c3"], h))
            return linear(p["out"], h.reshape(h.shape[0], -1))
    elif name == "mlp-784":
        params = {"l1": linear_params(rng, 784, 512), "l2": linear_params(rng, 512, 512),
                  "l3": linear_params(rng, 512, 10)}

        def forward(p, x):
            h = relu(linear(p["l1"], x))
            h = relu(linear(p["l2"], h))
            return linear(p["l3"], h)
    else:
        raise ValueError(f"jax_bench: no JAX model for {name!r}; valid: {JAX_WORKLOADS}")
    return jax.tree_util.tree_map(jnp.asarray, params), forward


def make_train_step(forward, optimizer: str):
    """A jitted ``step(params, state, x, y) -> (params, state, loss)`` and the initial state."""
    import jax
    import jax.numpy as jnp

    def loss_fn(p, x, y):
        logp = jax.nn.log_softmax(forward(p, x))
        return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))

    if optimizer == "adam":
        lr, b1, b2, eps = 1e-3, 0.9, 0.999, 1e-8

        def init(p):  # distinct buffers for m and v: donated arguments must not alias
            return {"t": jnp.zeros((), jnp.float32),
                    "m": jax.tree_util.tree_map(jnp.zeros_like, p),
                    "v": jax.tree_util.tree_map(jnp.zeros_like, p)}

        def step(p, s, x, y):
            loss, g = jax.value_and_grad(loss_fn)(p, x, y)
            t = s["t"] + 1
            m = jax.tree_util.tree_map(lambda m, g: b1 * m + (1 - b1) * g, s["m"], g)
            v = jax.tree_util.tree_map(lambda v, g: b2 * v + (1 - b2) * g * g, s["v"], g)
            c1, c2 = 1 - b1 ** t, 1 - b2 ** t
            p = jax.tree_util.tree_map(
                lambda p, m, v: p - lr * (m / c1) / (jnp.sqrt(v / c2) + eps), p, m, v)
            return p, {"t": t, "m": m, "v": v}, loss
    else:
        lr, momentum = 0.01, 0.9

        def init(p):
            return jax.tree_util.tree_map(jnp.zeros_like, p)

        def step(p, buf, x, y):
            loss, g = jax.value_and_grad(loss_fn)(p, x, y)
            buf = jax.tree_util.tree_map(lambda b, g: momentum * b + g, buf, g)
            p = jax.tree_util.tree_map(lambda p, b: p - lr * b, p, buf)
            return p, buf, loss

    return jax.jit(step, donate_argnums=(0, 1)), init


def run(name: str, reps_time: float = 1.0) -> dict:
    """Median seconds of a train step and of a batch-1 inference, and the first-call times."""
    import jax
    import jax.numpy as jnp

    _, make, batch, opt_name = WORKLOADS[name]
    x, y = make(batch, np.random.default_rng(0))
    x, y = jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.int32)
    params, forward = build(name, np.random.default_rng(0))
    step, init = make_train_step(forward, opt_name)
    carry = [params, init(params)]

    def train_step():
        carry[0], carry[1], loss = step(carry[0], carry[1], x, y)
        loss.block_until_ready()

    t0 = time.perf_counter()
    train_step()
    compile_train = time.perf_counter() - t0
    infer_fn = jax.jit(forward)
    x1 = x[:1]

    def infer():
        infer_fn(carry[0], x1).block_until_ready()

    t0 = time.perf_counter()
    infer()
    compile_infer = time.perf_counter() - t0
    return {"jax_train": time_call(train_step, warmup=5, min_reps=10, min_time=reps_time),
            "jax_infer": time_call(infer, warmup=10, min_reps=30, min_time=reps_time / 2),
            "first_train_call": compile_train, "first_infer_call": compile_infer}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="*", default=None, help="workload names")
    parser.add_argument("--time", type=float, default=1.5, help="seconds per measurement")
    parser.add_argument("--json", default=None, metavar="PATH", help="write the raw seconds")
    args = parser.parse_args()
    import jax

    raw = {}
    for name in args.only or JAX_WORKLOADS:
        r = raw[name] = run(name, args.time)
        print(f"jax {name:12s} train {r['jax_train'] * 1e3:8.3f} ms   infer "
              f"{r['jax_infer'] * 1e3:7.3f} ms   (first calls {r['first_train_call']:.2f} s, "
              f"{r['first_infer_call']:.2f} s)", flush=True)
    meta = {"jax": jax.__version__, "jaxlib": getattr(jax.lib, "__version__", None)
            or jax.__version__, "numpy": np.__version__, "python": sys.version.split()[0],
            "devices": [str(d) for d in jax.devices()], "executable": sys.executable,
            "xla_flags": os.environ.get("XLA_FLAGS", "")}
    if args.json:
        write_json(args.json, {"meta": meta, "seconds": raw})
    else:
        print(json.dumps(meta))


if __name__ == "__main__":
    main()
