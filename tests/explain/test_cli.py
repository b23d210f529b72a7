"""``ember explain`` on quick-trained runs (the session's shared quick runs): every method on
numbers, words of a tweet (PNG and HTML), translation attention, and one-line errors."""

import json

import pytest

from ember import cli
from ember.cli import explain as explain_cli
from ember.recipes import explain_run, load_run

pytest.importorskip("matplotlib")

PNG = b"\x89PNG\r\n\x1a\n"


def _main(argv) -> int:
    """``ember.cli.main`` once the subcommand is registered there; until then the same
    parser class and error handling around ``explain_cli``."""
    if "explain" in cli.build_parser()._subparsers._group_actions[0].choices:
        return cli.main(argv)
    parser = cli._Parser(prog="ember")
    explain_cli.add_parser(parser.add_subparsers(dest="command", parser_class=cli._Parser))
    try:
        return explain_cli.run(parser.parse_args(argv))
    except cli.UsageError as e:
        return cli._fail(str(e))
    except (ValueError, FileNotFoundError, OSError) as e:
        return cli._fail(str(e))


def _error(capsys) -> str:
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("ember: ") and err.count("\n") == 1, err
    return err


def _png(path) -> None:
    assert path.read_bytes()[:8] == PNG and path.stat().st_size > 5000


@pytest.mark.parametrize("method", ["ig", "saliency", "gradcam", "gradcam++", "occlusion",
                                    "smoothgrad"])
def test_digits_cnn_methods(run, tmp_path, capsys, method):
    run_dir, _ = run("digits-cnn")
    out = tmp_path / f"{method}.png"
    assert _main(["explain", str(run_dir), "test:0", "--method", method, "--out", str(out),
                  "--steps", "8", "--samples", "4"]) == 0
    text = capsys.readouterr().out
    assert "predicted:" in text and "true" in text and "pixel (" in text
    assert f"wrote {out}" in text
    _png(out)


@pytest.mark.parametrize("method", ["ig", "saliency", "gradcam", "occlusion"])
def test_mnist1d_cnn_methods_and_default_output(run, capsys, method):
    run_dir, _ = run("mnist1d-cnn")
    numbers = ",".join(f"{(i % 7) / 7:.2f}" for i in range(40))
    assert _main(["explain", str(run_dir), numbers, "--method", method, "--target", "3",
                  "--steps", "8"]) == 0
    text = capsys.readouterr().out
    assert "explaining class 3" in text and "x[" in text
    _png(run_dir / f"explain-{method}.png")


def test_explain_run_summary_and_layer_choice(run, tmp_path):
    run_dir, _ = run("mnist1d-cnn")
    s = explain_run.explain(run_dir, "test:2", method="gradcam", layer="conv1",
                            out=tmp_path / "c1.png")
    assert s["recipe"] == "mnist1d-cnn" and s["method"] == "gradcam"
    assert len(s["top"]) == 5 and s["true"] is not None and s["out"].endswith("c1.png")
    assert explain_run.default_conv_layer(load_run(run_dir)[2]) == "conv3"
    assert explain_run.default_output(run_dir, "gradcam++", ["test:4"]).endswith(
        "explain-gradcampp-test4.png")


def test_tweets_words_png_and_html(run, tmp_path, capsys):
    run_dir, _ = run("tweets-lstm")
    png, page = tmp_path / "words.png", tmp_path / "words.html"
    assert _main(["explain", str(run_dir), "what a great ride", "--out", str(png),
                  "--steps", "8"]) == 0
    text = capsys.readouterr().out
    assert "great" in text and "explaining class" in text
    _png(png)
    assert _main(["explain", str(run_dir), "what a great ride", "--method", "occlusion",
                  "--target", "positive", "--out", str(page)]) == 0
    html = page.read_text(encoding="utf-8")
    for word in ("what", "a", "great", "ride"):
        assert f">{word}</span>" in html
    assert "background-color: rgba(" in html and "explaining class positive" in \
        capsys.readouterr().out
    assert _main(["explain", str(run_dir), "test:1", "--method", "saliency", "--out",
                  str(tmp_path / "t1.png")]) == 0
    assert "true" in capsys.readouterr().out


def test_tweets_transformer_attention_and_ig(run, tmp_path, capsys):
    run_dir, _ = run("tweets-transformer")
    out = tmp_path / "att.png"
    assert _main(["explain", str(run_dir), "the car crashed", "--method", "attention",
                  "--out", str(out)]) == 0
    assert "encoder.layers.0.self_attn" in capsys.readouterr().out
    _png(out)
    assert _main(["explain", str(run_dir), "the car crashed", "--method", "attention",
                  "--rollout", "--out", str(out)]) == 0
    assert "rollout" in capsys.readouterr().out
    page = tmp_path / "words.html"
    assert _main(["explain", str(run_dir), "the car crashed", "--method", "ig", "--steps", "8",
                  "--out", str(page)]) == 0
    assert ">crashed</span>" in page.read_text(encoding="utf-8")
    capsys.readouterr()


def test_translation_attention(run, tmp_path, capsys):
    run_dir, _ = run("numbers-en-fr")
    out = tmp_path / "att.png"
    assert _main(["explain", str(run_dir), "four hundred and twelve", "--method",
                  "attention", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "translation:" in text and "decoder.layers.0.multihead_attn" in text
    _png(out)
    assert _main(["explain", str(run_dir), "test:0", "--method", "attention", "--head", "1",
                  "--layer", "transformer.encoder.layers.0.self_attn", "--out", str(out)]) == 0
    capsys.readouterr()


def test_errors_are_one_line(run, tmp_path, capsys):
    digits, _ = run("digits-cnn")
    mlp, _ = run("mnist1d-logreg")
    tweets, _ = run("tweets-lstm")
    numbers, _ = run("numbers-en-fr")
    cases = [
        (["explain", str(digits), "test:0", "--method", "lime"], "invalid choice: 'lime'"),
        (["explain", str(digits), "test:0", "--target", "12"],
         "bad --target '12': the model has 10 classes; give an index 0..9"),
        (["explain", str(tweets), "good", "--target", "happy"],
         "class name (negative, neutral, positive)"),
        (["explain", str(digits), "test:0", "--method", "gradcam", "--layer", "features.99"],
         "no layer 'features.99'; conv layers: 'features.0', 'features.3', 'features.7'"),
        (["explain", str(mlp), "test:0", "--method", "gradcam"],
         "--method gradcam does not apply to mnist1d-logreg: its model has no convolution "
         "layer (Conv1d/Conv2d/Conv3d); valid methods for this run: ig, saliency, smoothgrad, "
         "occlusion"),
        (["explain", str(tweets), "good", "--method", "attention"],
         "has no nn.MultiheadAttention layer; valid methods for this run: ig, saliency, "
         "occlusion"),
        (["explain", str(numbers), "four", "--method", "ig"],
         "valid methods for this run: attention"),
        (["explain", str(numbers), "four", "--method", "attention", "--head", "9"],
         "bad --head '9'"),
        (["explain", str(tmp_path / "nope"), "1"], "no run directory"),
        (["explain", str(digits), "test:100000"], "test:100000 is out of range"),
        (["explain", str(digits), "test:x"], "expected test:N"),
        (["explain", str(digits), "1,2,3"], "digits-cnn expects 64 feature values"),
        (["explain", str(digits), "test:0", "--method", "saliency", "--layer", "features.0"],
         "--layer applies to gradcam"),
        (["explain", str(digits), "test:0", "--method", "occlusion", "--window", "9"],
         "--window must be between 1 and 8"),
        (["explain", str(digits), "test:0", "--out", str(tmp_path / "no" / "x.png")],
         "no directory"),
        (["explain", str(digits), "test:0", "--steps", "1"], "expected an integer >= 2"),
    ]
    for argv, message in cases:
        assert _main(argv) == 2, argv
        err = _error(capsys)
        assert message in err, (argv, err)


def test_a_generate_run_is_refused(tmp_path, capsys):
    run_dir = tmp_path / "lm"
    run_dir.mkdir()
    (run_dir / "config.json").write_text(json.dumps(
        {"recipe": "pycode-gpt", "task": "generate", "config": {}}))
    assert _main(["explain", str(run_dir), "def f"]) == 2
    assert "explain works on classification and translation runs" in _error(capsys)
