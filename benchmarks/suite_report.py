"""Tables and target checks of ``suite.py``: pure functions of the raw results (no timing).

Every ``render_*`` takes the ``sections`` dict of ``suite.json`` (section name -> raw
measurements) and returns ``(header, rows, note)``; ``check_targets`` compares the same
numbers with the issue's targets. Tests feed them made-up numbers.
"""

from __future__ import annotations

from common import markdown_table

SECTION_TITLES = {
    "ops": "single ops, forward + backward (ops_bench.py)",
    "train": "training step and batch-1 inference (train_bench.py)",
    "jax": "JAX with jit on workloads 1, 2, 4 (jax_bench.py)",
    "import": "import time and resident memory after import",
    "size": "installed size with required dependencies",
    "peak": "peak resident memory training workload 7 (transformer-lm)",
    "cnn-run": "MNIST-1D CNN recipe, whole training run (full_run.py)",
}
WORKLOAD_NUMBERS = {"mnist1d-mlp": 1, "mnist1d-cnn": 2, "mnist1d-gru": 3, "mlp-784": 4,
                    "lenet5": 5, "lstm-text": 6, "transformer-lm": 7}
FAST_WORKLOADS = ("mnist1d-mlp", "mnist1d-cnn", "mlp-784", "lenet5")  # 1, 2, 4, 5
TRAIN_GOAL, TRAIN_GOAL_FAST, INFER_GOAL = 1.0, 1.5, 2.0
IMPORT_LIMIT_S, SIZE_LIMIT_MB, CNN_RUN_GOAL = 0.3, 120.0, 1.5


def _ms(seconds, digits: int = 2) -> str:
    return "-" if seconds is None else f"{seconds * 1e3:.{digits}f}"


def _x(ratio) -> str:
    return "-" if ratio is None else f"{ratio:.2f}x"


def render_ops(sections):
    raw = sections["ops"]["seconds"]
    rows = [[name, r["shapes"], f"{r['ember'] * 1e6:.1f}", f"{r['torch'] * 1e6:.1f}",
             _x(r["torch"] / r["ember"])] for name, r in raw.items()]
    return (["op (forward+backward)", "shapes", "ember us", "PyTorch us",
             "speed (PyTorch time / ember time)"], rows, "")


def render_train(sections):
    raw = sections["train"]["seconds"]
    rows = [[f"{WORKLOAD_NUMBERS.get(name, '?')}. {name}", _ms(r["ember_train"]),
             _ms(r["torch_train"]), _x(r["torch_train"] / r["ember_train"]),
             _ms(r["ember_infer"], 3), _ms(r["torch_infer"], 3),
             _x(r["torch_infer"] / r["ember_infer"])] for name, r in raw.items()]
    return (["workload", "ember train ms", "PyTorch train ms", "train speed",
             "ember infer ms (batch 1)", "PyTorch infer ms", "infer speed"], rows,
            "Speed = PyTorch time / ember time (above 1: ember is faster). Medians.")


def render_jax(sections):
    raw = sections["jax"]
    if not raw.get("available"):
        return [], [], "jax: not installed (this section was skipped)."
    train = sections.get("train", {}).get("seconds", {})
    rows = []
    for name, r in raw["seconds"].items():
        t = train.get(name, {})
        rows.append([f"{WORKLOAD_NUMBERS.get(name, '?')}. {name}", _ms(r["jax_train"]),
                     _ms(t.get("ember_train")), _ms(t.get("torch_train")),
                     _x(r["jax_train"] / t["ember_train"]) if t else "-",
                     _ms(r["jax_infer"], 3), _ms(t.get("ember_infer"), 3),
                     _ms(t.get("torch_infer"), 3),
                     _x(r["jax_infer"] / t["ember_infer"]) if t else "-",
                     f"{r['first_train_call']:.2f}"])
    meta = raw.get("meta", {})
    threading = ("XLA on one thread (--xla_cpu_multi_thread_eigen=false)"
                 if "xla_cpu_multi_thread_eigen=false" in meta.get("xla_flags", "")
                 else "XLA's default threading (every core)")
    note = (f"JAX {meta.get('jax')} ({meta.get('executable')}), float32, the same shapes, "
            f"inputs and optimizers as train_bench.py; {threading}. ember and "
            f"PyTorch columns come from the train section (another process, another minute). "
            f"'vs JAX' = JAX time / ember time.")
    return (["workload", "JAX train ms", "ember train ms", "PyTorch train ms",
             "ember vs JAX (train)", "JAX infer ms (batch 1)", "ember infer ms",
             "PyTorch infer ms", "ember vs JAX (infer)", "JAX first call s (compile)"],
            rows, note)


def render_import(sections):
    raw = sections["import"]
    rows = [[f"import {name}", f"{r['seconds']:.3f}", f"{r['rss_mb']:.0f}",
             f"{r['rss_mb'] - r['rss_before_mb']:.0f}"] for name, r in raw["modules"].items()]
    note = (f"Median of {raw['reps']} fresh interpreters (after one warm-up), time of the "
            f"import statement alone; RSS = VmRSS after it (the bare interpreter: "
            f"{next(iter(raw['modules'].values()))['rss_before_mb']:.0f} MB).")
    return ["import", "seconds", "RSS after import MB", "added by the import MB"], rows, note


def render_size(sections):
    rows = []
    for name, r in sections["size"].items():
        parts = ", ".join(f"{p['name']} {p['version']} {p['bytes'] / 1e6:.1f}"
                          for p in r["packages"])
        rows.append([name, f"{r['mb']:.1f}", parts])
    note = ("Sum of the sizes of each distribution's installed files (its RECORD) and of its "
            "required dependencies (no extras); ember is an editable install: its package "
            "files without __pycache__ plus its dist-info.")
    return ["framework", "installed MB (with required deps)", "packages (MB)"], rows, note


def render_peak(sections):
    rows = []
    for name, r in sections["peak"].items():
        rows.append([name, f"{r['peak_mb']:.0f}", f"{r['rss_import_mb']:.0f}",
                     f"{r['rss_setup_mb']:.0f}", f"{r['peak_mb'] - r['rss_import_mb']:.0f}",
                     str(r["steps"]), _ms(r["seconds_per_step"], 0)])
    note = ("Fresh process per framework (importing only that one), train_bench.py's "
            "transformer-lm setup (batch 32 x 64 tokens, Adam); peak = VmHWM after the steps. "
            "ms/step includes the first steps' warm-up.")
    return (["framework", "peak RSS MB", "RSS after import MB", "RSS after setup MB",
             "peak above import MB", "steps", "ms/step"], rows, note)


def render_cnn_run(sections):
    raw = sections["cnn-run"]
    torch_run = raw.get("torch-loop")
    rows = []
    for mode in ("ember-recipe", "ember-loop", "torch-loop"):
        r = raw.get(mode)
        if r is None:
            continue
        rows.append([mode, f"{r['process_s']:.2f}", f"{r['run_s']:.2f}", f"{r['import_s']:.2f}",
                     f"{r['test_accuracy'] * 100:.1f}%",
                     _x(torch_run["process_s"] / r["process_s"]) if torch_run else "-",
                     _x(torch_run["run_s"] / r["run_s"]) if torch_run else "-"])
    cfg = raw.get("config", {})
    note = (f"{cfg.get('steps')} steps (Adam lr {cfg.get('lr')}, batch {cfg.get('batch_size')}), "
            f"test-split evaluation and checkpoints every epoch of 40 steps. process = the "
            f"whole child process; run = after the imports. ember-recipe is `ember train "
            f"mnist1d-cnn` (incl. its plots and logs); ember-loop and torch-loop run the same "
            f"hand-written loop (full_run.py).")
    return (["run", "process s", "run s", "import s", "test accuracy",
             "speed vs PyTorch (process)", "speed vs PyTorch (run)"], rows, note)


RENDER = {"ops": render_ops, "train": render_train, "jax": render_jax, "import": render_import,
          "size": render_size, "peak": render_peak, "cnn-run": render_cnn_run}


def _target(name, value, goal, higher_is_better, fmt, unit=""):
    if higher_is_better:
        met, margin = value >= goal, value / goal - 1
        goal_text = f">= {fmt.format(goal)}{unit}"
    else:
        met, margin = value <= goal, 1 - value / goal
        goal_text = f"<= {fmt.format(goal)}{unit}"
    return {"name": name, "value": value, "goal": goal, "met": bool(met), "margin": margin,
            "value_text": fmt.format(value) + unit, "goal_text": goal_text,
            "margin_text": f"{margin:+.1%}" if abs(margin) < 0.1 else f"{margin:+.0%}"}


def check_targets(sections: dict) -> list[dict]:
    """The issue's targets that the measured sections cover, each met or not with a margin
    (positive: room to spare; negative: how far off, relative to the target)."""
    out = []
    train = sections.get("train", {}).get("seconds", {})
    for name, r in train.items():
        goal = TRAIN_GOAL_FAST if name in FAST_WORKLOADS else TRAIN_GOAL
        out.append(_target(f"train speed {WORKLOAD_NUMBERS.get(name, '?')}. {name}",
                           r["torch_train"] / r["ember_train"], goal, True, "{:.2f}", "x"))
    for name in FAST_WORKLOADS:
        if name in train:
            r = train[name]
            out.append(_target(f"batch-1 inference speed {WORKLOAD_NUMBERS[name]}. {name}",
                               r["torch_infer"] / r["ember_infer"], INFER_GOAL, True,
                               "{:.2f}", "x"))
    modules = sections.get("import", {}).get("modules", {})
    if "ember" in modules:
        out.append(_target("import ember (s)", modules["ember"]["seconds"], IMPORT_LIMIT_S,
                           False, "{:.3f}", " s"))
    if "ember" in sections.get("size", {}):
        out.append(_target("installed size, ember + NumPy", sections["size"]["ember"]["mb"],
                           SIZE_LIMIT_MB, False, "{:.1f}", " MB"))
    peak = sections.get("peak", {})
    if "ember" in peak and "torch" in peak:
        out.append(_target("peak memory, workload 7 (ember vs PyTorch's)",
                           peak["ember"]["peak_mb"], peak["torch"]["peak_mb"], False,
                           "{:.0f}", " MB"))
    run = sections.get("cnn-run", {})
    if "ember-recipe" in run and "torch-loop" in run:
        out.append(_target("MNIST-1D CNN whole run speed (recipe vs PyTorch twin)",
                           run["torch-loop"]["process_s"] / run["ember-recipe"]["process_s"],
                           CNN_RUN_GOAL, True, "{:.2f}", "x"))
    return out


def machine_line(meta: dict) -> str:
    clock = ("CPU time (process_time)" if meta.get("clock") == "cpu" else "wall time")
    return (f"{meta.get('cpu')}, {meta.get('cores')} cores, threads: {meta.get('threads')}, "
            f"{clock}; "
            f"Python {meta.get('python')}, NumPy {meta.get('numpy')}, PyTorch "
            f"{meta.get('torch')}, JAX {meta.get('jax') or 'not measured'}, ember "
            f"{meta.get('ember')}; {meta.get('date')}; load average "
            f"{meta.get('load_average_start')} at the start, {meta.get('load_average_end')} "
            f"at the end")


def render_markdown(results: dict) -> str:
    """``suite.md``: the machine, the targets, then one table per measured section."""
    meta, sections = results["meta"], results["sections"]
    parts = ["# ember benchmark suite", ""]
    if results.get("quick"):
        parts += ["**Quick smoke run: too few repetitions for the numbers to mean anything.**",
                  ""]
    parts += [f"Machine: {machine_line(meta)}.", "", f"Command: `{meta.get('command')}`", ""]
    targets = results.get("targets") or check_targets(sections)
    if targets:
        parts += ["## Targets", "", markdown_table(
            ["target", "measured", "goal", "status", "margin"],
            [[t["name"], t["value_text"], t["goal_text"], "met" if t["met"] else "NOT MET",
              t["margin_text"]] for t in targets]), ""]
    for section, title in SECTION_TITLES.items():
        if section not in sections:
            continue
        header, rows, note = RENDER[section](sections)
        measured = results.get("measured", {}).get(section, {})
        parts += [f"## {section}: {title}", ""]
        if measured.get("date") and measured.get("date") != meta.get("date"):
            parts += [f"(measured {measured['date']}, threads: {measured.get('threads')}, "
                      f"{measured.get('clock', 'wall')} clock)", ""]
        if header:
            parts += [markdown_table(header, rows), ""]
        if note:
            parts += [note, ""]
    return "\n".join(parts)
