"""Per-op speed, ember vs PyTorch side by side: forward + backward of single ops.

Run: ``python benchmarks/ops_bench.py`` (needs torch). Small tensors show per-op overhead (the
Python cost around each NumPy call); large ones show the kernels themselves. Each case times
``y = op(inputs); y.backward(upstream)`` with fresh leaf gradients, median of many repetitions.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ember  # noqa: E402
from common import bench_threads, machine, time_call, write_json, write_results  # noqa: E402


def cases():
    """(name, shapes, op) where op takes the framework module and the input tensors."""
    small, large = (32, 32), (1000, 1000)
    idx_small = np.random.default_rng(0).integers(0, 32, 16)
    idx_large = np.random.default_rng(0).integers(0, 1000, 500)
    return [
        ("add", [small, small], lambda m, a, b: a + b),
        ("mul", [small, small], lambda m, a, b: a * b),
        ("matmul 64x64", [(64, 64), (64, 64)], lambda m, a, b: a @ b),
        ("sum", [small], lambda m, a: a.sum()),
        ("relu", [small], lambda m, a: m.relu(a)),
        ("indexing x[idx]", [small], lambda m, a: a[m.tensor(idx_small)]),
        ("add (1M)", [large, large], lambda m, a, b: a + b),
        ("mul (1M)", [large, large], lambda m, a, b: a * b),
        ("sum (1M)", [large], lambda m, a: a.sum()),
        ("relu (1M)", [large], lambda m, a: m.relu(a)),
        ("indexing x[idx] (1M)", [large], lambda m, a: a[m.tensor(idx_large)]),
        ("matmul 1024x1024", [(1024, 1024), (1024, 1024)], lambda m, a, b: a @ b),
    ]


def bench_one(m, shapes, op, min_time: float = 0.4):
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    inputs = [m.tensor(a, requires_grad=True) for a in arrays]
    out = op(m, *inputs)
    upstream = m.tensor(rng.standard_normal(tuple(out.shape)).astype(np.float32))

    def step():
        for t in inputs:
            t.grad = None
        y = op(m, *inputs)
        y.backward(upstream)

    return time_call(step, min_time=min_time, warmup=20 if min_time >= 0.1 else 3,
                     min_reps=30 if min_time >= 0.1 else 5)


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--time", type=float, default=0.4, help="seconds per measurement")
    parser.add_argument("--json", default=None, metavar="PATH",
                        help="write the raw seconds to PATH instead of results/ops.*")
    args = parser.parse_args()
    threads = bench_threads()
    torch.set_num_threads(threads)
    rows, raw = [], {}
    for name, shapes, op in cases():
        te = bench_one(ember, shapes, op, args.time)
        tt = bench_one(torch, shapes, op, args.time)
        raw[name] = {"shapes": " x ".join(str(s) for s in shapes), "ember": te, "torch": tt}
        rows.append([name, " x ".join(str(s) for s in shapes), f"{te * 1e6:.1f}",
                     f"{tt * 1e6:.1f}", f"{tt / te:.2f}x"])
        print(f"{name:24s} ember {te * 1e6:9.1f} us   torch {tt * 1e6:9.1f} us   "
              f"speed ember/torch {tt / te:.2f}x", flush=True)
    meta = {"machine": machine(), "threads": threads,
            "versions": f"ember {ember.__version__}, torch {torch.__version__}, "
                        f"numpy {np.__version__}"}
    if args.json:
        write_json(args.json, {"meta": meta, "seconds": raw})
        return
    table = write_results("ops", rows, ["op (forward+backward)", "shapes", "ember us",
                                        "PyTorch us", "speed (PyTorch time / ember time)"], meta)
    print("\n" + table)


if __name__ == "__main__":
    main()
