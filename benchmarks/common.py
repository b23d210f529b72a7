"""Shared benchmark helpers: timing with warm-up and medians, machine description, tables."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time


def time_call(fn, *, warmup: int = 20, min_reps: int = 30, min_time: float = 0.4) -> float:
    """Median seconds per call of ``fn`` over enough repetitions to fill ``min_time``."""
    for _ in range(warmup):
        fn()
    samples = []
    start = time.perf_counter()
    while len(samples) < min_reps or time.perf_counter() - start < min_time:
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
        if len(samples) > 20000:
            break
    return statistics.median(samples)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def write_results(name: str, rows: list, header: list, meta: dict) -> str:
    """Write ``results/<name>.json`` and ``results/<name>.md``; return the Markdown table."""
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
    os.makedirs(here, exist_ok=True)
    with open(os.path.join(here, f"{name}.json"), "w") as f:
        json.dump({"meta": meta, "header": header, "rows": rows}, f, indent=1)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    table = "\n".join(lines)
    with open(os.path.join(here, f"{name}.md"), "w") as f:
        f.write(f"Machine: {meta['machine']}; {meta.get('versions', '')}\n\n{table}\n")
    return table
