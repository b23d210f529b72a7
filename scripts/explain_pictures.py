"""Draw the README's explain pictures with ``ember explain``, training the runs they need.

    python scripts/explain_pictures.py                 # train (or reuse) runs, draw pictures
    python scripts/explain_pictures.py --retrain       # train the runs again

Runs (modest settings, a few minutes on two CPU cores in all) go to --runs (default
runs/explain-pictures/RECIPE) and are reused when their summary.json exists; the pictures go
to --out (default docs/images): explain-digits-gradcam.png, explain-mnist1d-ig.png,
explain-tweet-words.png and .html, explain-translation-attention.png. Every command is printed
as it would be typed. Not run by the tests.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time

import ember
from ember import cli
from ember.recipes import load_run

TRAIN = {"mnist1d-cnn": ["--steps", "1600"], "digits-cnn": ["--epochs", "5"],
         "tweets-lstm": ["--epochs", "2"], "numbers-en-fr": ["--epochs", "10"]}
TWEET = "I love how smoothly the self-driving car handled the traffic, what an amazing ride"
NUMBER = "seven hundred and eighty-five"


def ember_command(argv: list) -> None:
    """Print ``ember ARGV`` and run it (through ``ember.cli.main``; ``explain`` through
    ``ember.cli.explain`` while the main parser does not list it yet)."""
    print("$ ember " + " ".join(shlex.quote(a) for a in argv), flush=True)
    start = time.perf_counter()
    if argv[0] == "explain" and "explain" not in cli.build_parser()._subparsers._group_actions[
            0].choices:
        from ember.cli import explain as explain_cli

        parser = cli._Parser(prog="ember")
        explain_cli.add_parser(parser.add_subparsers(dest="command", parser_class=cli._Parser))
        status = explain_cli.run(parser.parse_args(argv))
    else:
        status = cli.main(argv)
    if status:
        sys.exit(f"command failed with status {status}")
    print(f"  ({time.perf_counter() - start:.1f} s)\n", flush=True)


def confident_test_index(run_dir: str, want=None, limit: int = 200) -> int:
    """The first test example the run classifies correctly with probability > 0.9 (of class
    ``want`` when given), for a picture that shows what the model relies on."""
    recipe, cfg, model, extra = load_run(run_dir)
    seen = 0
    with ember.no_grad():
        for x, y in recipe.test_loader(cfg, extra):
            probs = ember.softmax(model(x), dim=-1)
            for i in range(x.shape[0]):
                label = int(y[i])
                if (float(probs[i, label]) > 0.9 and (want is None or label == want)
                        and int(probs[i].argmax()) == label):
                    return seen + i
            seen += x.shape[0]
            if seen >= limit:
                break
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", default=os.path.join("runs", "explain-pictures"))
    p.add_argument("--out", default=os.path.join("docs", "images"))
    p.add_argument("--retrain", action="store_true", help="train the runs even if present")
    args = p.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    start = time.perf_counter()
    runs = {}
    for name, extra in TRAIN.items():
        runs[name] = os.path.join(args.runs, name)
        if args.retrain or not os.path.isfile(os.path.join(runs[name], "summary.json")):
            ember_command(["train", name, "--out", runs[name], "--quiet", *extra])
    out = {k: os.path.join(args.out, f"explain-{k}") for k in
           ("digits-gradcam", "mnist1d-ig", "tweet-words", "translation-attention")}
    digit = confident_test_index(runs["digits-cnn"])
    ember_command(["explain", runs["digits-cnn"], f"test:{digit}", "--method", "gradcam",
                   "--out", out["digits-gradcam"] + ".png"])
    signal = confident_test_index(runs["mnist1d-cnn"])
    ember_command(["explain", runs["mnist1d-cnn"], f"test:{signal}", "--method", "ig",
                   "--steps", "64", "--out", out["mnist1d-ig"] + ".png"])
    for ext in (".png", ".html"):
        ember_command(["explain", runs["tweets-lstm"], TWEET, "--method", "ig",
                       "--out", out["tweet-words"] + ext])
    ember_command(["explain", runs["numbers-en-fr"], NUMBER, "--method", "attention",
                   "--out", out["translation-attention"] + ".png"])
    print(f"done in {time.perf_counter() - start:.0f} s; pictures in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
