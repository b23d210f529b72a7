"""Shared benchmark helpers: timing with warm-up and medians, machine description, tables."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time


def bench_clock():
    """The clock of the measurements: wall time (``time.perf_counter``), or, when
    ``EMBER_BENCH_CLOCK=cpu`` (``suite.py --clock cpu``), the CPU time of the whole process
    (``time.process_time``, all its threads), which with one thread stands in for the wall
    time of a quiet machine when the machine is loaded."""
    return time.process_time if os.environ.get("EMBER_BENCH_CLOCK") == "cpu" else time.perf_counter


def time_call(fn, *, warmup: int = 20, min_reps: int = 30, min_time: float = 0.4) -> float:
    """Median seconds per call of ``fn`` over enough repetitions to fill ``min_time``."""
    clock = bench_clock()
    for _ in range(warmup):
        fn()
    samples = []
    start = clock()
    while len(samples) < min_reps or clock() - start < min_time:
        t0 = clock()
        fn()
        samples.append(clock() - t0)
        if len(samples) > 20000:
            break
    return statistics.median(samples)


def bench_threads() -> int:
    """Threads for torch (and, through the environment, NumPy's BLAS): ``EMBER_BENCH_THREADS``
    (``suite.py --threads`` sets it with ``OPENBLAS_NUM_THREADS``/``OMP_NUM_THREADS``), by
    default every core."""
    return int(os.environ.get("EMBER_BENCH_THREADS") or os.cpu_count() or 1)


def cpu_model() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return cpu


def machine() -> str:
    return f"{cpu_model()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def proc_status_kb(field: str) -> int:
    """A ``kB`` field of ``/proc/self/status`` (``VmRSS``, ``VmHWM``); -1 where there is none."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return -1


def markdown_table(header: list, rows: list) -> str:
    lines = ["| " + " | ".join(str(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def write_json(path: str, obj) -> None:
    """Write ``obj`` as JSON atomically (a half-written results file is never left behind)."""
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1)
        f.write("\n")
    os.replace(tmp, path)


def write_results(name: str, rows: list, header: list, meta: dict) -> str:
    """Write ``results/<name>.json`` and ``results/<name>.md``; return the Markdown table."""
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
    os.makedirs(here, exist_ok=True)
    write_json(os.path.join(here, f"{name}.json"), {"meta": meta, "header": header, "rows": rows})
    table = markdown_table(header, rows)
    with open(os.path.join(here, f"{name}.md"), "w") as f:
        f.write(f"Machine: {meta['machine']}; {meta.get('versions', '')}\n\n{table}\n")
    return table
