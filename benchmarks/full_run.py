"""The MNIST-1D CNN recipe's whole training run, ember vs a PyTorch twin, end to end.

Run: ``python benchmarks/full_run.py [--steps N] [--only MODE ...]`` (``suite.py`` calls
``run_all``). Each mode runs in its own fresh interpreter; the parent times the whole child
process (interpreter start, imports, data, training, evaluation, checkpoints) and the child
reports its import time and the time of the run proper (everything after the imports). With
``EMBER_BENCH_CLOCK=cpu`` all three are CPU times (the child's ``process_time``; for the whole
process, its user + system time from ``getrusage(RUSAGE_CHILDREN)``).

Modes:
- ``ember-recipe``: ``ember.recipes.train("mnist1d-cnn", <temp dir>, verbose=0)``, i.e.
  ``ember train mnist1d-cnn``: its DataLoader, Trainer (train loss and accuracy per batch),
  test-split evaluation each epoch, ``last``/``best`` checkpoints each epoch, CSV/JSON logs,
  and at the end the learning-curve and confusion-matrix plots (matplotlib) and the test of
  the reloaded last checkpoint.
- ``torch-loop``: the PyTorch twin, ``training_run`` below: the recipe's model (the MNIST-1D
  CNN), initialization (framework default, seed 0), data (ember's ``mnist1d`` arrays, saved by
  the parent to a ``.npz`` that the child loads, so the child imports PyTorch alone), Adam
  lr 1e-2, batch 100, the recipe's 8,000 steps as 200 epochs of 40 consecutive unshuffled
  batches, train loss and accuracy read every batch, test-split loss and accuracy (batches of
  500) after every epoch, a ``last`` checkpoint (model + optimizer state) every epoch and a
  ``best`` one when the test loss improves, and the final model's test accuracy. Batches are
  slices of the training tensors, as in the MNIST-1D reference code: ``torch.utils.data``'s
  DataLoader would add ~0.5 ms per batch here (about 4 s per run), so this is PyTorch's
  faster way. No plots (they are matplotlib's time, not the framework's).
- ``ember-loop``: the very same ``training_run`` code with ``m = ember``: the framework-only
  comparison.
Threads: ``torch.set_num_threads(bench_threads())`` (every core unless ``EMBER_BENCH_THREADS``)
and NumPy's defaults, as in train_bench.py.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from common import bench_clock, bench_threads  # noqa: E402

MODES = ("ember-recipe", "ember-loop", "torch-loop")
RECIPE = "mnist1d-cnn"


def cnn(m):
    """The recipe's model (ember.recipes.models.CNN1d), written against ``m``: the same network
    as workload 2 of train_bench.py."""
    from train_bench import cnn1d

    return cnn1d(m)


def evaluate(m, model, x, y, batch: int = 500) -> tuple[float, float]:
    """Mean cross-entropy and accuracy over ``(x, y)`` in eval mode, without gradients."""
    F = m.nn.functional
    model.eval()
    total = correct = 0.0
    with m.no_grad():
        for i in range(0, len(y), batch):
            out = model(x[i:i + batch])
            total += F.cross_entropy(out, y[i:i + batch], reduction="sum").item()
            correct += (out.argmax(1) == y[i:i + batch]).sum().item()
    model.train()
    return total / len(y), correct / len(y)


def training_run(m, data_path: str, out_dir: str, steps: int, lr: float, batch: int,
                 seed: int = 0) -> dict:
    """The recipe's training, written once against ``m`` (``ember`` or ``torch``)."""
    import numpy as np

    F = m.nn.functional
    with np.load(data_path) as z:
        x, y, xt, yt = (m.tensor(z[k]) for k in ("x", "y", "x_test", "y_test"))
    m.manual_seed(seed)
    model = cnn(m)
    opt = m.optim.Adam(model.parameters(), lr=lr)
    per_epoch = len(y) // batch
    ext = "pt" if m.__name__ == "torch" else "safetensors"
    best, step, log = float("inf"), 0, []
    for epoch in range((steps + per_epoch - 1) // per_epoch):
        model.train()
        seen = loss_sum = correct = 0.0
        for i in range(per_epoch):
            if step >= steps:
                break
            xb, yb = x[i * batch:(i + 1) * batch], y[i * batch:(i + 1) * batch]
            out = model(xb)
            loss = F.cross_entropy(out, yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            seen += len(yb)
            loss_sum += loss.item() * len(yb)
            correct += (out.argmax(1) == yb).sum().item()
        val_loss, val_acc = evaluate(m, model, xt, yt)
        log.append((epoch, loss_sum / seen, correct / seen, val_loss, val_acc))
        state = {"model": model.state_dict(), "optimizer": opt.state_dict()}
        if val_loss < best:
            best = val_loss
            m.save(state, os.path.join(out_dir, f"best.{ext}"))
        m.save(state, os.path.join(out_dir, f"last.{ext}"))
    with open(os.path.join(out_dir, "metrics.csv"), "w") as f:
        f.write("epoch,loss,accuracy,val_loss,val_accuracy\n")
        f.writelines(",".join(str(v) for v in row) + "\n" for row in log)
    test_loss, test_acc = evaluate(m, model, xt, yt)
    return {"steps": step, "epochs": len(log), "test_accuracy": test_acc, "test_loss": test_loss}


def _worker(mode: str, steps: int | None, data_path: str, lr: float, batch: int) -> dict:
    clock = bench_clock()
    t_import = clock()
    if mode == "torch-loop":
        import torch as m

        m.set_num_threads(bench_threads())
    else:
        import ember as m
    t0 = clock()
    with tempfile.TemporaryDirectory(prefix=f"ember-full-run-{mode}-") as out_dir:
        if mode == "ember-recipe":
            from ember import recipes

            summary = recipes.train(RECIPE, out_dir, verbose=0, steps=steps)
            result = {"steps": summary.get("steps_done"), "epochs": summary.get("epochs_trained"),
                      "test_accuracy": summary["test"]["accuracy"],
                      "test_loss": summary["test"]["loss"]}
        else:
            result = training_run(m, data_path, out_dir, steps, lr, batch)
    t1 = clock()
    return {"mode": mode, **result, "run_s": t1 - t0, "import_s": t0 - t_import}


def recipe_config(steps: int | None = None) -> dict:
    """The recipe's hyperparameters (``steps`` overrides the recipe's own)."""
    from ember import recipes

    return recipes.get_recipe(RECIPE).config(steps=steps)


def write_data(path: str) -> None:
    """Save ember's mnist1d splits (what the recipe trains on) for the hand-loop children."""
    import numpy as np

    from ember.data import load_dataset

    train, test = load_dataset("mnist1d", "train"), load_dataset("mnist1d", "test")
    (x, y), (xt, yt) = ([t.numpy() for t in ds.tensors] for ds in (train, test))
    np.savez(path, x=x, y=y, x_test=xt, y_test=yt)


def run_mode(mode: str, steps: int | None, data_path: str, lr: float, batch: int,
             python: str = sys.executable, env: dict | None = None) -> dict:
    """One mode in a fresh interpreter: the child's report plus the parent's process time."""
    args = [python, os.path.abspath(__file__), "--worker", mode, "--data", data_path,
            "--lr", str(lr), "--batch", str(batch)]
    if steps is not None:
        args += ["--steps", str(steps)]
    cpu = (os.environ if env is None else env).get("EMBER_BENCH_CLOCK") == "cpu"
    t0, r0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(args, capture_output=True, text=True, cwd=HERE, env=env, check=False)
    wall, r1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_CHILDREN)
    child_cpu = r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime
    if out.returncode != 0:
        raise RuntimeError(f"full_run {mode} failed ({out.returncode}):\n{out.stderr[-3000:]}")
    return {**json.loads(out.stdout.strip().splitlines()[-1]),
            "process_s": child_cpu if cpu else wall, "process_wall_s": wall,
            "process_cpu_s": child_cpu}


def run_all(steps: int | None = None, modes=MODES, python: str = sys.executable,
            env: dict | None = None) -> dict:
    """Every mode once, in order; ``steps`` None means the recipe's own (8,000)."""
    cfg = recipe_config(steps)
    loop_steps = int(cfg["steps"])
    results = {"config": {"steps": loop_steps, "lr": float(cfg["lr"]),
                          "batch_size": int(cfg["batch_size"])}}
    with tempfile.TemporaryDirectory(prefix="ember-full-run-data-") as tmp:
        data_path = os.path.join(tmp, "mnist1d.npz")
        write_data(data_path)
        for mode in modes:
            r = results[mode] = run_mode(mode, steps if mode == "ember-recipe" else loop_steps,
                                         data_path, float(cfg["lr"]), int(cfg["batch_size"]),
                                         python, env)
            print(f"{mode:13s} process {r['process_s']:7.2f} s   run {r['run_s']:7.2f} s   "
                  f"import {r['import_s']:.2f} s   test accuracy {r['test_accuracy']:.3f}",
                  flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=None, help="default: the recipe's")
    parser.add_argument("--only", nargs="*", choices=MODES, default=None)
    parser.add_argument("--worker", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--lr", type=float, default=1e-2, help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=100, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(_worker(args.worker, args.steps, args.data, args.lr, args.batch)))
        return
    run_all(args.steps, args.only or MODES)


if __name__ == "__main__":
    main()
