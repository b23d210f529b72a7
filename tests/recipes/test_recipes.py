"""Every recipe's quick run writes its run directory, learns, and can be served."""

import json

import numpy as np
import pytest

from ember import recipes
from ember.recipes.registry import RecipeError
from ember.recipes.tasks import parse_numbers, separable_data

ALL = ["perceptron", "xor", "mnist1d-logreg", "mnist1d-mlp", "mnist1d-cnn", "mnist1d-gru",
       "digits-mlp", "digits-cnn", "tweets-lstm", "tweets-transformer", "numbers-en-fr",
       "pycode-lstm", "pycode-gpt", "vanishing-gradients"]
COMMON_FILES = ["config.json", "summary.json", "history.json", "metrics.csv",
                "learning_curves.png", "last.safetensors", "best.safetensors"]
EXTRA_FILES = {"classify": ["confusion_matrix.png"]}


def test_registry_lists_every_recipe_with_a_description():
    assert recipes.list_recipes() == ALL
    for name in ALL:
        r = recipes.get_recipe(name)
        assert r.name == name and r.description and "\n" not in r.description
        assert r.task in ("classify", "translate", "generate")
        cfg = r.config(quick=True)
        assert {"epochs", "steps", "lr", "batch_size", "seed"} <= set(cfg)


def test_unknown_recipe_lists_the_valid_names():
    with pytest.raises(ValueError, match="unknown recipe 'mnist-cnn'; valid recipes: "
                                         "perceptron, xor"):
        recipes.get_recipe("mnist-cnn")


def test_unknown_hyperparameter_is_rejected():
    with pytest.raises(ValueError, match="no hyperparameter 'momentum'"):
        recipes.get_recipe("xor").config(momentum=0.9)


def test_explicit_epochs_replace_default_steps():
    cfg = recipes.get_recipe("mnist1d-cnn").config(epochs=3)
    assert cfg["epochs"] == 3 and cfg["steps"] is None
    assert recipes.get_recipe("mnist1d-cnn").config()["steps"] == 8000


def test_mnist1d_reference_setup():
    cfg = recipes.get_recipe("mnist1d-gru").config()
    assert (cfg["lr"], cfg["batch_size"], cfg["steps"]) == (1e-2, 100, 8000)
    assert recipes.get_recipe("mnist1d-gru").shuffle is False  # consecutive batches


@pytest.mark.parametrize("name", ALL)
def test_quick_run(run, name):
    run_dir, summary = run(name)
    recipe = recipes.get_recipe(name)
    for f in COMMON_FILES + EXTRA_FILES.get(recipe.task, []):
        assert (run_dir / f).is_file(), f
    config = json.loads((run_dir / "config.json").read_text())
    assert config["recipe"] == name and config["config"]["quick"] is True
    saved = json.loads((run_dir / "summary.json").read_text())
    assert saved["test"] == json.loads(json.dumps(summary["test"]))
    assert saved["wall_time_s"] > 0 and saved["machine"]["python"] and saved["command"]
    history = json.loads((run_dir / "history.json").read_text())
    if name == "perceptron":
        mistakes = history["history"]["mistakes"]
        assert mistakes[-1] == 0 and mistakes[-1] < mistakes[0]
    elif name == "vanishing-gradients":  # the sick network is meant not to learn
        assert "vanishing_gradients" in summary["doctor"]["kinds"], summary["doctor"]
    else:
        assert summary["final_loss"] < summary["first_loss"], summary
    if name.startswith(("tweets", "numbers", "pycode")):
        assert list(run_dir.glob("tokenizer*.json"))


@pytest.mark.parametrize("name", ALL)
def test_evaluate_rebuilds_the_model(run, name):
    run_dir, summary = run(name)
    metrics = recipes.evaluate(run_dir)
    key = {"classify": "accuracy", "translate": "exact_match", "generate": "bpc"}[
        recipes.get_recipe(name).task]
    assert np.isfinite(metrics[key])
    if name not in ("tweets-lstm", "tweets-transformer"):  # tested on the best checkpoint
        assert metrics[key] == pytest.approx(summary["test"][key], rel=1e-5)


@pytest.mark.parametrize("name,values", [("perceptron", 2), ("xor", 2), ("mnist1d-mlp", 40),
                                         ("digits-cnn", 64)])
def test_predict_numbers(run, name, values):
    run_dir, _ = run(name)
    row = ",".join(["0.5"] * values)
    out = recipes.predict(run_dir, [row, row.replace(",", " ")])
    # the same values as two rows of one batch: the same answer (BLAS may round the two
    # positions of a batch differently in the last bits)
    assert len(out) == 2 and out[0]["class"] == out[1]["class"]
    assert out[0]["probability"] == pytest.approx(out[1]["probability"], rel=1e-5)
    assert 0 <= out[0]["label"] < 10 and 0 < out[0]["probability"] <= 1
    with pytest.raises(RecipeError, match=f"expects {values} feature values per input, got 3"):
        recipes.predict(run_dir, ["1 2 3"])


def test_predict_reads_a_csv_file(run, tmp_path):
    run_dir, _ = run("mnist1d-mlp")
    path = tmp_path / "rows.csv"
    path.write_text(",".join(f"x{i}" for i in range(40)) + "\n" +
                    "\n".join(",".join(["0.1"] * 40) for _ in range(3)) + "\n")
    assert len(recipes.predict(run_dir, [str(path)])) == 3


@pytest.mark.parametrize("name", ["tweets-lstm", "tweets-transformer"])
def test_tweets_predict_and_baseline(run, name):
    run_dir, summary = run(name)
    out = recipes.predict(run_dir, ["I love my self driving car", "", "!!!"][:1] + ["!!!"])
    assert [o["class"] in ("negative", "neutral", "positive") for o in out] == [True, True]
    base = summary["baseline"]
    assert 0 <= base["accuracy"] <= 1 and 0 <= base["macro_f1"] <= 1
    assert "logistic regression" in base["model"]


def test_translate_greedy_and_beam(run):
    run_dir, summary = run("numbers-en-fr")
    assert {"exact_match", "bleu"} <= set(summary["test"])
    greedy = recipes.translate(run_dir, "four hundred and twelve")
    beam = recipes.translate(run_dir, "four hundred and twelve", beam=3)
    assert isinstance(greedy, str) and isinstance(beam, str)


@pytest.mark.parametrize("name", ["pycode-lstm", "pycode-gpt"])
def test_generate(run, name):
    run_dir, _ = run(name)
    a = recipes.generate(run_dir, "def f(", length=20, temperature=0.8, top_k=5, seed=1)
    b = recipes.generate(run_dir, "def f(", length=20, temperature=0.8, top_k=5, seed=1)
    assert a == b and a.startswith("def f(") and len(a) == len("def f(") + 20


def test_wrong_task_is_a_clear_error(run):
    run_dir, _ = run("pycode-gpt")
    with pytest.raises(RecipeError, match="'predict' needs a classify run"):
        recipes.predict(run_dir, ["x"])


def test_perceptron_reaches_100_percent_on_separable_data(run):
    _, summary = run("perceptron")
    assert summary["converged"] and summary["train_accuracy"] == 1.0
    assert summary["test"]["accuracy"] >= 0.97  # unseen points near the margin may differ
    x, y = separable_data(50, seed=3)
    assert set(np.unique(y)) == {0, 1} and x.shape == (50, 2)


def test_xor_perceptron_fails_two_layer_net_succeeds(run):
    run_dir, summary = run("xor")
    assert summary["perceptron_accuracy"] <= 0.75
    assert summary["test"]["accuracy"] == 1.0
    assert (run_dir / "decision_boundary.png").is_file()


def test_resume_continues_from_the_last_checkpoint(tmp_path):
    out = tmp_path / "xor"
    first = recipes.train("xor", out, quick=True, epochs=2)
    assert first["epochs_trained"] == 2
    again = recipes.train("xor", out, resume=True, epochs=4)
    assert again["epochs_trained"] == 4
    assert json.loads((out / "config.json").read_text())["config"]["epochs"] == 4


def test_parse_numbers():
    assert parse_numbers(["1, 2", "3 4"], 2, "r").tolist() == [[1, 2], [3, 4]]
    assert parse_numbers(["1", "2"], 2, "r").tolist() == [[1, 2]]
    with pytest.raises(RecipeError, match="not a number: 'a'"):
        parse_numbers(["1 a"], 2, "r")
