"""The ``ember`` command: ember.cli.main([...]) with capsys; every error is one line, exit 2."""

import subprocess
import sys

import pytest

from ember.cli import main


def _error_line(capsys):
    out, err = capsys.readouterr()
    assert out == ""
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert err.startswith("ember: ") and "Traceback" not in err
    return err


def test_recipes_table(capsys):
    assert main(["recipes"]) == 0
    out = capsys.readouterr().out
    for name in ("perceptron", "xor", "mnist1d-gru", "digits-cnn", "tweets-transformer",
                 "numbers-en-fr", "pycode-gpt"):
        assert f"\n{name} " in out


def test_help_and_no_command(capsys):
    assert main([]) == 0
    assert main(["--help"]) == 0
    assert "train" in capsys.readouterr().out


def test_train_quick_prints_progress_and_test_metrics(tmp_path, capsys):
    out_dir = tmp_path / "xor"
    assert main(["train", "xor", "--quick", "--epochs", "3", "--lr", "0.05", "--seed", "1",
                 "--out", str(out_dir)]) == 0
    out = capsys.readouterr().out
    assert "Epoch 3/3" in out and "test metrics" in out and "accuracy: 1.0000" in out
    assert (out_dir / "summary.json").is_file()
    assert main(["train", "xor", "--out", str(out_dir), "--resume", "--epochs", "4"]) == 0
    assert "Epoch 4/4" in capsys.readouterr().out


def test_evaluate(run, capsys):
    run_dir, _ = run("mnist1d-logreg")
    assert main(["evaluate", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "accuracy:" in out and "macro_f1:" in out
    assert main(["evaluate", str(run_dir), "--checkpoint", "best"]) == 0


def test_predict_numbers_and_text(run, capsys):
    run_dir, _ = run("mnist1d-logreg")
    assert main(["predict", str(run_dir), ",".join(["0.3"] * 40)]) == 0
    label, prob = capsys.readouterr().out.split()
    assert label in [str(i) for i in range(10)] and 0 < float(prob) <= 1
    run_dir, _ = run("tweets-lstm")
    assert main(["predict", str(run_dir), "what a great ride", "the car crashed"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and all(ln.split()[0] in ("negative", "neutral", "positive")
                                   for ln in lines)


def test_generate(run, capsys):
    run_dir, _ = run("pycode-lstm")
    assert main(["generate", str(run_dir), "--prompt", "import ", "--length", "15",
                 "--temperature", "0.7", "--top-k", "5"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("import ")


def test_translate(run, capsys):
    run_dir, _ = run("numbers-en-fr")
    assert main(["translate", str(run_dir), "four hundred and twelve"]) == 0
    assert main(["translate", str(run_dir), "four", "hundred", "--beam", "2"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2


@pytest.mark.parametrize("argv,expected", [
    (["train", "mnist-cnn"], "unknown recipe 'mnist-cnn'; valid recipes: perceptron, xor,"),
    (["train", "xor", "--bogus"], "unrecognized arguments: --bogus"),
    (["train", "xor", "--epochs", "zero"], "argument --epochs: expected a positive integer"),
    (["train", "xor", "--lr", "-1"], "argument --lr: expected a positive number"),
    (["train"], "the following arguments are required: recipe"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    (["evaluate", "/no/such/run"], "no run directory '/no/such/run'"),
    (["generate", "/no/such/run", "--prompt", "x"], "no run directory"),
    (["translate", "/no/such/run", "one"], "no run directory"),
    (["evaluate", "."], "is not a run directory (no config.json)"),
])
def test_errors_are_one_line_with_status_2(argv, expected, capsys):
    assert main(argv) == 2
    assert expected in _error_line(capsys)


def test_bad_inputs_are_one_line_with_status_2(run, capsys):
    run_dir, _ = run("mnist1d-logreg")
    assert main(["predict", str(run_dir), "1", "2", "3"]) == 2
    assert "expects 40 feature values per input, got 3" in _error_line(capsys)
    assert main(["predict", str(run_dir), "1,x"]) == 2
    assert "not a number: 'x'" in _error_line(capsys)
    assert main(["translate", str(run_dir), "one"]) == 2
    assert "'translate' needs a translate run" in _error_line(capsys)
    assert main(["evaluate", str(run_dir), "--checkpoint", "worst"]) == 2
    assert "invalid choice: 'worst'" in _error_line(capsys)
    lm_dir, _ = run("pycode-gpt")
    assert main(["generate", str(lm_dir)]) == 2
    assert "required: --prompt" in _error_line(capsys)
    assert main(["generate", str(lm_dir), "--prompt", "x", "--top-k", "-2"]) == 2
    assert "--top-k" in _error_line(capsys)


def test_python_dash_m_ember():
    r = subprocess.run([sys.executable, "-m", "ember", "train", "nope"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and "unknown recipe 'nope'" in r.stderr
