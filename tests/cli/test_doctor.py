"""``ember train --doctor``, ``ember doctor RUN_DIR`` and the vanishing-gradients recipe."""

import json

import pytest

from ember.cli import main
from ember.diagnostics.plots import PLOTS


@pytest.fixture(scope="module")
def sick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("doctor") / "vg"
    status = main(["train", "vanishing-gradients", "--quick", "--quiet", "--out", str(out)])
    return status, out


def test_train_vanishing_gradients_prints_the_diagnosis(sick_run, capsys):
    status, out = sick_run
    assert status == 0
    assert {"report.txt", "findings.json", "stats.json", *PLOTS} <= \
        {p.name for p in (out / "doctor").iterdir()}
    findings = json.loads((out / "doctor" / "findings.json").read_text())["findings"]
    first = findings[0]
    assert first["kind"] == "vanishing_gradients" and first["path"] == "layers.0"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["doctor"]["error"] >= 1 and "vanishing_gradients" in summary["doctor"]["kinds"]
    assert summary["test"]["accuracy"] < 0.25


def test_doctor_command_prints_the_report_and_redraws_the_plots(sick_run, capsys):
    _, out = sick_run
    capsys.readouterr()
    (out / "doctor" / "gradient_flow.png").unlink()
    assert main(["doctor", str(out)]) == 0
    text = capsys.readouterr().out
    assert text.startswith("ember doctor: SigmoidMLP, 40 steps")
    assert "ERROR   vanishing gradients [layers.0]" in text and "Plots in" in text
    assert (out / "doctor" / "gradient_flow.png").is_file()
    assert main(["doctor", str(out), "--no-plots"]) == 0
    assert "Plots in" not in capsys.readouterr().out


def test_doctor_on_a_run_trained_without_it(run, capsys):
    run_dir, _ = run("mnist1d-logreg")
    capsys.readouterr()
    assert main(["doctor", str(run_dir)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert "was trained without --doctor" in err
    assert f"ember train mnist1d-logreg --doctor --out {run_dir}" in err


@pytest.mark.parametrize("argv,expected", [
    (["doctor", "no/such/run"], "no run directory"),
    (["train", "perceptron", "--quick", "--doctor"], "cannot watch it"),
    (["train", "mnist1d-logreg", "--quick", "--set", "cure=true"],
     "has no hyperparameter 'cure'"),
    (["train", "xor", "--set", "oops"], "expected KEY=VALUE"),
])
def test_errors_are_one_line(tmp_path, capsys, argv, expected):
    assert main(argv + (["--out", str(tmp_path / "r")] if argv[0] == "train" else [])) == 2
    out, err = capsys.readouterr()
    assert expected in err and err.count("\n") == 1


def test_train_with_doctor_and_set(tmp_path, capsys):
    out = tmp_path / "xor"
    assert main(["train", "xor", "--quick", "--quiet", "--doctor", "--set", "hidden=6",
                 "--epochs", "2", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "ember doctor: TwoLayerNet" in text and "Doctor report:" in text
    config = json.loads((out / "config.json").read_text())["config"]
    assert config["hidden"] == 6
    assert (out / "doctor" / "stats.json").is_file()
