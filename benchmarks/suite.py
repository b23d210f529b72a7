"""The whole benchmark suite of the performance issue, in one command, checked against targets.

Run: ``python benchmarks/suite.py`` (needs torch; JAX optional). Options: ``--quick`` (a smoke
run of a minute or two: the numbers mean nothing), ``--only SECTION ...``, ``--threads N``,
``--jax-python PATH``, ``--out-dir DIR``. Sections, each measured in fresh child processes:

=========  ==========================================================================
ops        ``ops_bench.py``: single ops, forward + backward, ember vs PyTorch
train      ``train_bench.py``: the 7 workloads' training step and batch-1 inference
jax        ``jax_bench.py``: JAX with ``jit`` on workloads 1, 2 and 4 (a second reference)
import     ``import numpy`` / ``ember`` / ``torch``: time and resident memory (footprint.py)
size       installed size with required dependencies: ember + NumPy, torch + its own
peak       peak resident memory training workload 7 (transformer-lm), ember vs PyTorch
cnn-run    the MNIST-1D CNN recipe's whole training run vs a PyTorch twin (full_run.py)
=========  ==========================================================================

A full run writes ``results/suite.json`` and ``results/suite.md`` (``--only`` replaces those
sections in them and keeps the others); ``--quick`` writes to a temporary directory unless
``--out-dir`` is given. JAX runs under the first interpreter that imports it among
``--jax-python``, ``$EMBER_BENCH_JAX_PYTHON``, this one and ``/work/venvs/jax/bin/python``
(``python -m venv /work/venvs/jax && /work/venvs/jax/bin/pip install jax``); with none, the
section says "jax: not installed".

Threads and clock: every core by default, as ``train_bench.py`` sets them (torch) and NumPy's
BLAS and XLA take them, and wall time. On a loaded machine spinning BLAS/OpenMP threads swing
2-thread wall times by several times (and other processes' load inflates any wall time):
``--clock cpu`` measures CPU time (``time.process_time``; the children's ``getrusage`` for whole
processes) with one thread for torch, NumPy's BLAS and XLA, which stays close to what a quiet
machine shows on one thread. ``--threads N`` alone sets the thread count with wall time.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata as md
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import footprint  # noqa: E402
from common import cpu_model, write_json  # noqa: E402
from suite_report import SECTION_TITLES, check_targets, render_markdown  # noqa: E402

SECTIONS = tuple(SECTION_TITLES)
DEFAULT_JAX_PYTHON = "/work/venvs/jax/bin/python"
# per-section effort: (full, quick)
SETTINGS = {"ops_time": (0.4, 0.02), "train_time": (1.5, 0.05), "jax_time": (1.5, 0.05),
            "import_reps": (7, 2), "peak_steps": (20, 2), "cnn_steps": (None, 80)}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: minimal repetitions, 80-step CNN run (numbers are noise)")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, metavar="SECTION",
                        help=f"run only these sections: {', '.join(SECTIONS)}")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for torch, NumPy's BLAS and XLA (default: every core)")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                        help="wall time, or CPU time with one thread (for a loaded machine)")
    parser.add_argument("--jax-python", default=None, help="an interpreter that has jax")
    parser.add_argument("--out-dir", default=None,
                        help="where suite.json/.md go (default: results/, or a temporary "
                             "directory with --quick)")
    args = parser.parse_args(argv)
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    if args.clock == "cpu":
        if args.threads not in (None, 1):
            parser.error("--clock cpu sums the CPU time of all threads: it needs --threads 1")
        args.threads = 1
    args.sections = list(args.only or SECTIONS)
    args.settings = {k: v[1] if args.quick else v[0] for k, v in SETTINGS.items()}
    return args


def child_env(threads: int | None, clock: str = "wall") -> dict:
    """The environment of every child: thread counts pinned when ``threads`` is given, and
    the clock."""
    env = dict(os.environ)
    env.pop("EMBER_BENCH_CLOCK", None)
    if clock == "cpu":
        env["EMBER_BENCH_CLOCK"] = "cpu"
    if threads is not None:
        env.update({"EMBER_BENCH_THREADS": str(threads), "OPENBLAS_NUM_THREADS": str(threads),
                    "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)})
        if threads == 1:
            flags = env.get("XLA_FLAGS", "")
            env["XLA_FLAGS"] = (flags + " --xla_cpu_multi_thread_eigen=false").strip()
    return env


def find_jax_python(explicit: str | None = None) -> str | None:
    """The first interpreter that can ``import jax`` (see the module docstring), or None."""
    candidates = [explicit, os.environ.get("EMBER_BENCH_JAX_PYTHON")]
    if importlib.util.find_spec("jax") is not None:
        candidates.append(sys.executable)
    candidates.append(DEFAULT_JAX_PYTHON)
    for python in candidates:
        if python and os.path.exists(python) and subprocess.run(
                [python, "-c", "import jax"], capture_output=True, check=False).returncode == 0:
            return python
    return None


def _run_script(script: str, args: list, env: dict, python: str = sys.executable) -> dict:
    """Run a benchmark script (its progress lines go to our stdout) and read its --json."""
    with tempfile.TemporaryDirectory(prefix="ember-suite-") as tmp:
        path = os.path.join(tmp, "out.json")
        subprocess.run([python, os.path.join(HERE, script), *args, "--json", path], env=env,
                       cwd=HERE, check=True)
        with open(path) as f:
            return json.load(f)


# ---------------------------------------------------------------- sections
def measure_ops(args, env) -> dict:
    return _run_script("ops_bench.py", ["--time", str(args.settings["ops_time"])], env)


def measure_train(args, env) -> dict:
    return _run_script("train_bench.py", ["--time", str(args.settings["train_time"])], env)


def measure_jax(args, env) -> dict:
    python = find_jax_python(args.jax_python)
    if python is None:
        print("jax: not installed (set EMBER_BENCH_JAX_PYTHON or see suite.py's docstring)")
        return {"available": False}
    out = _run_script("jax_bench.py", ["--time", str(args.settings["jax_time"])], env, python)
    return {"available": True, **out}


def measure_import(args, env) -> dict:
    reps = args.settings["import_reps"]
    out = {}
    for module in ("numpy", "ember", "torch"):
        r = out[module] = footprint.import_cost(module, reps, env=env)
        print(f"import {module:6s} {r['seconds']:.3f} s, RSS {r['rss_mb']:.0f} MB", flush=True)
    return {"reps": reps, "modules": out}


def measure_size(args, env) -> dict:
    out = {name: footprint.installed_size(name) for name in ("ember", "torch")}
    for name, r in out.items():
        print(f"installed {name} + required dependencies: {r['mb']:.1f} MB", flush=True)
    return out


def measure_peak(args, env) -> dict:
    steps = args.settings["peak_steps"]
    out = {}
    for framework in ("ember", "torch"):
        r = out[framework] = footprint.training_peak(framework, steps, env=env)
        print(f"peak {framework}: {r['peak_mb']:.0f} MB over {steps} steps", flush=True)
    return out


def measure_cnn_run(args, env) -> dict:
    import full_run

    return full_run.run_all(args.settings["cnn_steps"], env=env)


MEASURE = {"ops": measure_ops, "train": measure_train, "jax": measure_jax,
           "import": measure_import, "size": measure_size, "peak": measure_peak,
           "cnn-run": measure_cnn_run}


# ---------------------------------------------------------------- machine and output
def _version(dist: str) -> str | None:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None


def machine_meta(args) -> dict:
    return {"cpu": cpu_model(), "cores": os.cpu_count(),
            "threads": args.threads or os.cpu_count(), "clock": args.clock,
            "python": platform.python_version(),
            "numpy": _version("numpy"), "torch": _version("torch"), "ember": _version("ember"),
            "platform": platform.platform(),
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "load_average_start": [round(v, 2) for v in os.getloadavg()],
            "command": "python benchmarks/suite.py " + " ".join(args.argv)}


def load_previous(path: str) -> dict:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def main(argv=None) -> dict:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    args.argv = argv
    out_dir = args.out_dir or (tempfile.mkdtemp(prefix="ember-suite-quick-") if args.quick
                               else os.path.join(HERE, "results"))
    os.makedirs(out_dir, exist_ok=True)
    json_path = os.path.join(out_dir, "suite.json")
    previous = load_previous(json_path) if args.only and not args.quick else {}
    meta = machine_meta(args)
    old_meta = previous.get("meta", {})
    if previous and (old_meta.get("clock"), old_meta.get("threads")) != (args.clock,
                                                                          meta["threads"]):
        print(f"{json_path} was measured with {old_meta.get('threads')} threads and the "
              f"{old_meta.get('clock')} clock: starting a new one instead of merging")
        previous = {}
    results = {"meta": meta, "quick": args.quick,
               "sections": dict(previous.get("sections", {})),
               "measured": dict(previous.get("measured", {}))}
    env = child_env(args.threads, args.clock)
    for section in args.sections:
        print(f"\n== {section}: {SECTION_TITLES[section]} ==", flush=True)
        results["sections"][section] = MEASURE[section](args, env)
        results["measured"][section] = {"date": meta["date"], "quick": args.quick,
                                        "threads": meta["threads"], "clock": args.clock}
    meta["load_average_end"] = [round(v, 2) for v in os.getloadavg()]
    jax_raw = results["sections"].get("jax", {})
    meta["jax"] = jax_raw.get("meta", {}).get("jax") if jax_raw.get("available") else None
    results["targets"] = check_targets(results["sections"])
    write_json(json_path, results)
    markdown = render_markdown(results)
    with open(os.path.join(out_dir, "suite.md"), "w") as f:
        f.write(markdown)
    print("\n== targets ==")
    for t in results["targets"]:
        print(f"[{'met' if t['met'] else 'NOT MET':7s}] {t['name']}: {t['value_text']} "
              f"(target {t['goal_text']}, margin {t['margin_text']})")
    print(f"\nwrote {json_path} and suite.md")
    return results


if __name__ == "__main__":
    main()
