"""The benchmark suite's plumbing: arguments, installed sizes, tables and target checks on
made-up numbers. Nothing here times anything or imports torch or jax."""

import os
import pathlib
import sys

import pytest

BENCHMARKS = pathlib.Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import footprint  # noqa: E402
import suite  # noqa: E402
import suite_report  # noqa: E402

WORKLOADS = ["mnist1d-mlp", "mnist1d-cnn", "mnist1d-gru", "mlp-784", "lenet5", "lstm-text",
             "transformer-lm"]


def fake_sections(ember_speedup: float = 2.0) -> dict:
    """Every section, with ember ``ember_speedup`` times faster than PyTorch everywhere."""
    train = {name: {"ember_train": 1e-3, "torch_train": ember_speedup * 1e-3,
                    "ember_infer": 1e-4, "torch_infer": ember_speedup * 1e-4}
             for name in WORKLOADS}
    imports = {m: {"seconds": s, "seconds_all": [s], "rss_mb": r, "rss_before_mb": 13.0}
               for m, s, r in (("numpy", 0.1, 27.0), ("ember", 0.2, 39.0), ("torch", 2.0, 220.0))}
    pkg = {"name": "numpy", "version": "2.0", "bytes": 70e6, "files": 10, "counted": "RECORD"}
    peak = {f: {"peak_mb": p, "rss_import_mb": 40.0, "rss_setup_mb": 45.0, "steps": 20,
                "seconds_per_step": 0.1, "ru_maxrss_mb": p} for f, p in (("ember", 110.0),
                                                                         ("torch", 400.0))}
    run = {m: {"process_s": s, "run_s": s - 1, "import_s": 0.3, "test_accuracy": 0.94}
           for m, s in (("ember-recipe", 10.0), ("ember-loop", 9.0), ("torch-loop", 20.0))}
    return {
        "ops": {"seconds": {"add": {"shapes": "(32, 32) x (32, 32)", "ember": 3e-5,
                                    "torch": 6e-5}}},
        "train": {"seconds": train},
        "jax": {"available": True, "meta": {"jax": "0.0", "executable": "python"},
                "seconds": {"mnist1d-mlp": {"jax_train": 8e-4, "jax_infer": 5e-5,
                                            "first_train_call": 1.0, "first_infer_call": 0.5}}},
        "import": {"reps": 7, "modules": imports},
        "size": {"ember": {"mb": 72.0, "packages": [pkg]},
                 "torch": {"mb": 865.0, "packages": [pkg]}},
        "peak": peak,
        "cnn-run": {"config": {"steps": 8000, "lr": 0.01, "batch_size": 100}, **run},
    }


def test_parse_args_quick_and_only():
    args = suite.parse_args(["--quick", "--only", "size", "import"])
    assert args.sections == ["size", "import"]
    assert args.settings["cnn_steps"] == 80 and args.settings["import_reps"] == 2
    full = suite.parse_args([])
    assert full.sections == list(suite.SECTIONS) and full.settings["cnn_steps"] is None


@pytest.mark.parametrize("argv", [["--only", "nonsense"], ["--threads", "0"], ["--only"]])
def test_parse_args_rejects(argv, capsys):
    with pytest.raises(SystemExit):
        suite.parse_args(argv)


def test_cpu_clock_means_one_thread():
    assert suite.parse_args(["--clock", "cpu"]).threads == 1
    with pytest.raises(SystemExit):
        suite.parse_args(["--clock", "cpu", "--threads", "2"])


def test_child_env_pins_threads_and_clock(monkeypatch):
    monkeypatch.delenv("EMBER_BENCH_CLOCK", raising=False)
    env = suite.child_env(1, "cpu")
    assert env["OPENBLAS_NUM_THREADS"] == env["EMBER_BENCH_THREADS"] == "1"
    assert "--xla_cpu_multi_thread_eigen=false" in env["XLA_FLAGS"]
    assert env["EMBER_BENCH_CLOCK"] == "cpu"
    assert suite.child_env(None) == dict(os.environ)


def test_ember_installed_size_counts_numpy_only():
    assert [n.lower() for n in footprint.required_dependencies("ember")] == ["ember", "numpy"]
    size = footprint.installed_size("ember")
    ember_part, numpy_part = size["packages"]
    assert ember_part["bytes"] > 100_000 and numpy_part["bytes"] > 1_000_000
    assert size["mb"] == pytest.approx((ember_part["bytes"] + numpy_part["bytes"]) / 1e6)


def test_targets_met_and_missed():
    met = suite_report.check_targets(fake_sections(2.5))
    assert len(met) == 7 + 4 + 4 and all(t["met"] for t in met)
    missed = {t["name"]: t for t in suite_report.check_targets(fake_sections(1.2))}
    fast = missed["train speed 1. mnist1d-mlp"]
    assert not fast["met"] and fast["margin"] == pytest.approx(1.2 / 1.5 - 1)
    assert missed["train speed 3. mnist1d-gru"]["met"]
    assert not missed["batch-1 inference speed 5. lenet5"]["met"]
    assert missed["import ember (s)"]["margin"] == pytest.approx(1 - 0.2 / 0.3)
    assert missed["peak memory, workload 7 (ember vs PyTorch's)"]["met"]


def test_render_markdown_has_every_section():
    sections = fake_sections()
    results = {"meta": {"cpu": "CPU", "cores": 2, "threads": 2, "date": "today",
                        "command": "python benchmarks/suite.py"}, "quick": True,
               "sections": sections}
    text = suite_report.render_markdown(results)
    assert "Quick smoke run" in text and "## Targets" in text
    for section in suite.SECTIONS:
        assert f"## {section}:" in text
    assert "| 1. mnist1d-mlp | 1.00 | 2.00 | 2.00x |" in text
    sections["jax"] = {"available": False}
    assert "jax: not installed" in suite_report.render_markdown(results)
