"""Footprint, ember vs PyTorch: import time, resident memory, installed size, training peak.

Run: ``python benchmarks/footprint.py [--reps N] [--steps N]`` (the suite, ``suite.py``, calls
the functions below). Every measurement of a framework runs in a fresh interpreter
(``sys.executable``) that imports that framework alone:

- import time: ``time.perf_counter()`` (``process_time`` with ``EMBER_BENCH_CLOCK=cpu``)
  around ``import NAME`` inside the child (interpreter start-up not counted), median over
  ``reps`` children after one discarded warm-up child (it fills the OS file cache and writes
  missing ``.pyc`` files, as an install would);
- resident memory after import: ``VmRSS`` of ``/proc/self/status`` in the same children
  (median), next to the bare interpreter's ``VmRSS`` read before the import;
- installed size: the files of the installed distribution and of its required dependencies
  (``Requires-Dist`` without extras, markers evaluated for this interpreter), from
  ``importlib.metadata`` (the RECORD), summing the sizes of the files that exist; an editable
  install (ember's) counts the package directory's files except ``__pycache__`` -- what a wheel
  would install, uncompressed -- plus its dist-info;
- peak memory training workload 7 (``transformer-lm`` of ``train_bench.py``): ``VmHWM`` (and
  ``ru_maxrss``) after ``steps`` training steps, with ``VmRSS`` after import and after setup.
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import importlib.util
import json
import os
import pathlib
import re
import resource
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from common import bench_clock, bench_threads, proc_status_kb  # noqa: E402

# Only builtin modules before the import: anything more (json, our common.py) would pre-load
# modules that the measured import then finds already imported.
_IMPORT_PROBE = """
import time
def rss_kb():
    with open("/proc/self/status") as f:
        return int([line for line in f if line.startswith("VmRSS:")][0].split()[1])
before = rss_kb()
t0 = time.{clock}()
import {module}
seconds = time.{clock}() - t0
after = rss_kb()
print('{{"seconds": %r, "rss_kb": %d, "rss_before_kb": %d}}' % (seconds, after, before))
"""


def _child_json(args: list, env: dict | None = None, timeout: float = 600) -> dict:
    """Run a fresh Python child and parse the JSON object on its last line of output."""
    out = subprocess.run(args, capture_output=True, text=True, cwd=HERE, timeout=timeout,
                         env=env, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:4])}... failed ({out.returncode}):\n"
                           f"{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def import_cost(module: str, reps: int = 7, python: str = sys.executable,
                env: dict | None = None) -> dict:
    """Median import seconds and resident MB of ``import module`` over ``reps`` fresh children."""
    cpu = (os.environ if env is None else env).get("EMBER_BENCH_CLOCK") == "cpu"
    code = _IMPORT_PROBE.format(module=module, clock="process_time" if cpu else "perf_counter")
    # warm-up child: fills the OS file cache and writes missing .pyc files (as pip does at
    # install) even where PYTHONDONTWRITEBYTECODE is set, so every measured child reads them
    warm_env = dict(os.environ if env is None else env)
    warm_env.pop("PYTHONDONTWRITEBYTECODE", None)
    _child_json([python, "-c", code], warm_env)
    runs = [_child_json([python, "-c", code], env) for _ in range(max(1, reps))]
    return {"seconds": statistics.median(r["seconds"] for r in runs),
            "seconds_all": [r["seconds"] for r in runs],
            "rss_mb": statistics.median(r["rss_kb"] for r in runs) / 1024,
            "rss_before_mb": statistics.median(r["rss_before_kb"] for r in runs) / 1024}


# ---------------------------------------------------------------- installed size
def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def required_dependencies(name: str) -> list[str]:
    """``name`` and, recursively, the distributions it requires (no extras), in BFS order."""
    try:
        from packaging.requirements import Requirement
    except ImportError:  # packaging is everywhere pip is, but not a guaranteed import
        Requirement = None
    seen, order, queue = set(), [], [name]
    while queue:
        dist_name = queue.pop(0)
        key = _normalize(dist_name)
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = md.distribution(dist_name)
        except md.PackageNotFoundError:
            continue  # a marker-free requirement that is not installed: nothing to count
        order.append(dist.metadata["Name"])
        for spec in dist.requires or []:
            if Requirement is not None:
                req = Requirement(spec)
                if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                    continue
                queue.append(req.name)
            elif "extra ==" not in spec:
                queue.append(re.match(r"[A-Za-z0-9._-]+", spec).group(0))
    return order


def _is_editable(dist) -> bool:
    text = dist.read_text("direct_url.json")
    return bool(text) and bool(json.loads(text).get("dir_info", {}).get("editable"))


def _tree_bytes(root: pathlib.Path) -> tuple[int, int]:
    total = count = 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        for fn in filenames:
            total += os.path.getsize(os.path.join(dirpath, fn))
            count += 1
    return total, count


def distribution_size(name: str) -> dict:
    """Bytes and file count of one installed distribution (see the module docstring)."""
    dist = md.distribution(name)
    total = count = 0
    seen = set()
    for f in dist.files or []:
        path = pathlib.Path(dist.locate_file(f)).resolve()
        if path in seen or not path.is_file():
            continue
        seen.add(path)
        total += path.stat().st_size
        count += 1
    how = "RECORD"
    if _is_editable(dist):
        tops = (dist.read_text("top_level.txt") or _normalize(name)).split()
        for top in tops:
            spec = importlib.util.find_spec(top)
            for loc in (spec.submodule_search_locations or []) if spec else []:
                nbytes, nfiles = _tree_bytes(pathlib.Path(loc))
                total, count = total + nbytes, count + nfiles
        how = "editable: package files without __pycache__, plus dist-info"
    return {"name": dist.metadata["Name"], "version": dist.version, "bytes": total,
            "files": count, "counted": how}


def installed_size(name: str) -> dict:
    """Size of ``name`` plus its required dependencies: total MB and one entry per package."""
    parts = [distribution_size(d) for d in required_dependencies(name)]
    return {"mb": sum(p["bytes"] for p in parts) / 1e6, "packages": parts}


# ---------------------------------------------------------------- peak memory, workload 7
def _peak_worker(framework: str, steps: int, workload: str) -> dict:
    rss_start = proc_status_kb("VmRSS")
    if framework == "torch":
        import torch as m

        m.set_num_threads(bench_threads())  # the thread setting of train_bench.py
    else:
        import ember as m
    from train_bench import setup

    rss_import = proc_status_kb("VmRSS")
    model, train_step, _ = setup(m, workload)
    model.train()
    rss_setup = proc_status_kb("VmRSS")
    clock = bench_clock()
    t0 = clock()
    for _ in range(steps):
        train_step()
    seconds = clock() - t0
    return {"framework": framework, "workload": workload, "steps": steps,
            "peak_mb": proc_status_kb("VmHWM") / 1024,
            "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "rss_start_mb": rss_start / 1024, "rss_import_mb": rss_import / 1024,
            "rss_setup_mb": rss_setup / 1024, "rss_end_mb": proc_status_kb("VmRSS") / 1024,
            "seconds_per_step": seconds / max(steps, 1)}


def training_peak(framework: str, steps: int = 20, workload: str = "transformer-lm",
                  python: str = sys.executable, env: dict | None = None) -> dict:
    """Peak resident memory of a fresh process training ``workload`` for ``steps`` steps."""
    return _child_json([python, os.path.abspath(__file__), "--peak-worker", framework,
                        "--steps", str(steps), "--workload", workload], env)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=7, help="import children per module")
    parser.add_argument("--steps", type=int, default=20, help="training steps for the peak")
    parser.add_argument("--workload", default="transformer-lm", help=argparse.SUPPRESS)
    parser.add_argument("--peak-worker", choices=["ember", "torch"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peak_worker:
        print(json.dumps(_peak_worker(args.peak_worker, args.steps, args.workload)))
        return
    for module in ("numpy", "ember", "torch"):
        r = import_cost(module, args.reps)
        print(f"import {module:6s} {r['seconds']:.3f} s  RSS {r['rss_mb']:.0f} MB "
              f"(interpreter alone {r['rss_before_mb']:.0f} MB)", flush=True)
    for name in ("ember", "torch"):
        r = installed_size(name)
        parts = ", ".join(f"{p['name']} {p['bytes'] / 1e6:.1f}" for p in r["packages"])
        print(f"installed {name}: {r['mb']:.1f} MB ({parts})", flush=True)
    for framework in ("ember", "torch"):
        r = training_peak(framework, args.steps, args.workload)
        print(f"peak {framework}: {r['peak_mb']:.0f} MB (after import {r['rss_import_mb']:.0f} "
              f"MB, {r['seconds_per_step'] * 1e3:.0f} ms/step)", flush=True)


if __name__ == "__main__":
    main()
