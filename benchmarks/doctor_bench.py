"""What the training doctor costs: ms per training step on the mnist1d-mlp workload.

Run: ``python benchmarks/doctor_bench.py [--steps 200] [--repeats 5] [--threads 1]``.

The workload is the ``mnist1d-mlp`` recipe's: the residual MLP 40-256-256-10, Adam (lr 1e-2),
batches of 100 consecutive MNIST-1D examples, through ``Trainer.fit`` (no validation). It is
timed without the doctor, with the doctor measuring every step (``every=1``, the worst case)
and every 10 steps (``every=10``, the default), and the standalone ``watch`` API every 10
steps. Modes are interleaved and each is run ``--repeats`` times; the table shows the median
ms per step and the overhead over no doctor. ``--threads 1`` (the default) pins BLAS to one
thread, which makes the numbers steadier on a shared machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time


def _limit_threads(n: int):
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(limits=n, user_api="blas")


def workload(steps: int):
    import ember
    from ember.data import DataLoader, TensorDataset, load_dataset
    from ember.recipes.models import ResidualMLP

    x, y = (t.numpy() for t in load_dataset("mnist1d", "train").tensors)
    n = min(len(x), 100 * steps)
    loader = DataLoader(TensorDataset(x[:n], y[:n]), batch_size=100, shuffle=False)

    def make():
        ember.manual_seed(0)
        model = ResidualMLP(40, 256, 10)
        return model, ember.optim.Adam(model.parameters(), lr=1e-2)

    return loader, make


def run_trainer(loader, make, every, steps):
    from ember.diagnostics import DoctorCallback
    from ember.train import Trainer

    model, opt = make()
    callbacks = [] if every is None else [DoctorCallback(every=every, verbose=0, warn=False)]
    epochs = max(1, steps // len(loader))
    start = time.perf_counter()
    Trainer(model, opt).fit(loader, epochs=epochs, callbacks=callbacks, verbose=0)
    return (time.perf_counter() - start) / (epochs * len(loader))


def run_standalone(loader, make, every, steps):
    from ember.diagnostics import watch
    from ember.nn import functional as F

    model, opt = make()
    epochs = max(1, steps // len(loader))
    start = time.perf_counter()
    with watch(model, every=every, warn=False) as doctor:
        for _ in range(epochs):
            for x, y in loader:
                loss = F.cross_entropy(model(x), y)
                opt.zero_grad()
                loss.backward()
                opt.step()
                doctor.step(loss)
    return (time.perf_counter() - start) / (epochs * len(loader))


MODES = [("no doctor", run_trainer, None), ("DoctorCallback every=1", run_trainer, 1),
         ("DoctorCallback every=10", run_trainer, 10), ("watch() every=10", run_standalone, 10)]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=1, help="BLAS threads (0: leave as is)")
    args = p.parse_args(argv)
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
    import platform

    loader, make = workload(args.steps)
    times = {name: [] for name, _, _ in MODES}
    ctx = _limit_threads(args.threads) if args.threads else None
    if ctx is not None:
        ctx.__enter__()
    try:
        run_trainer(loader, make, None, 20)  # warm-up
        for _ in range(args.repeats):
            for name, fn, every in MODES:
                times[name].append(fn(loader, make, every, args.steps))
    finally:
        if ctx is not None:
            ctx.__exit__(None, None, None)
    base = statistics.median(times["no doctor"])
    print(f"mnist1d-mlp training step, {args.steps} steps x {args.repeats} repeats, "
          f"BLAS threads {args.threads or 'default'}, Python {platform.python_version()}, "
          f"{os.cpu_count()} cores")
    print(f"| {'mode':<26} | {'ms/step':>8} | {'overhead':>8} |")
    print(f"|{'-' * 28}|{'-' * 10}|{'-' * 10}|")
    for name, _, _ in MODES:
        t = statistics.median(times[name])
        print(f"| {name:<26} | {1e3 * t:8.2f} | {100 * (t / base - 1):+7.1f}% |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
