"""The ``ember`` command: argument parsing only; the work is in :mod:`ember.recipes`.

    ember recipes                              the recipes and what they do
    ember train RECIPE [--epochs N] [--steps N] [--lr X] [--batch-size B] [--seed S]
                       [--out DIR] [--resume] [--quick] [--doctor] [--set KEY=VALUE ...]
    ember doctor RUN_DIR [--no-plots]          the training doctor's report of a run
    ember evaluate RUN_DIR [--checkpoint best|last]
    ember predict RUN_DIR INPUT...             numbers (mnist1d: 40, digits: 64) or texts
    ember generate RUN_DIR --prompt TEXT [--length N] [--temperature T] [--top-k K]
    ember translate RUN_DIR TEXT [--beam K]
    ember explain RUN_DIR INPUT [--method ig|saliency|smoothgrad|gradcam|gradcam++|occlusion|
                  attention] [--target CLASS] [--out FILE]
    ember demo                                 a small network learns a spiral

A wrong recipe name, option or input prints one line on stderr and exits with status 2.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys

from . import explain as _explain
from .argtypes import int_at_least, positive_number

__all__ = ["main", "build_parser"]


class UsageError(Exception):
    """A command-line mistake: reported on one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(f"{message} (see '{self.prog} --help')")

    def exit(self, status=0, message=None):
        if status:
            raise UsageError((message or "error").strip())
        if message:
            print(message, end="", file=sys.stderr)
        raise SystemExit(0)


def _key_value(text: str) -> tuple:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        parsed = json.loads(value)
    except ValueError:
        parsed = value  # a bare word: a string
    return key.strip().replace("-", "_"), parsed


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="ember", description="ember: recipes, training runs and the demo.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.add_parser("recipes", help="list the recipes")
    t = sub.add_parser("train", help="train a recipe into a run directory")
    t.add_argument("recipe")
    t.add_argument("--epochs", type=int_at_least(1))
    t.add_argument("--steps", type=int_at_least(1), help="optimizer steps (instead of epochs)")
    t.add_argument("--lr", type=positive_number)
    t.add_argument("--batch-size", type=int_at_least(1))
    t.add_argument("--seed", type=int)
    t.add_argument("--out", help="run directory (default runs/RECIPE)")
    t.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    t.add_argument("--quick", action="store_true", help="a few steps on a tiny subset")
    t.add_argument("--quiet", action="store_true", help="no per-epoch progress")
    t.add_argument("--doctor", action="store_true",
                   help="watch the training and diagnose it (report in RUN_DIR/doctor/)")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", type=_key_value,
                   help="set a recipe hyperparameter, e.g. --set cure=true (repeatable)")
    dr = sub.add_parser("doctor", help="print the training doctor's report of a run")
    dr.add_argument("run_dir")
    dr.add_argument("--no-plots", action="store_true", help="do not redraw the PNG plots")
    e = sub.add_parser("evaluate", help="evaluate a run on the test split")
    e.add_argument("run_dir")
    e.add_argument("--checkpoint", choices=("auto", "best", "last"), default="auto")
    pr = sub.add_parser("predict", help="classify inputs with a run")
    pr.add_argument("run_dir")
    pr.add_argument("inputs", nargs="+", metavar="INPUT")
    g = sub.add_parser("generate", help="sample text from a language-model run")
    g.add_argument("run_dir")
    g.add_argument("--prompt", required=True)
    g.add_argument("--length", type=int_at_least(0), default=200)
    g.add_argument("--temperature", type=positive_number, default=1.0)
    g.add_argument("--top-k", type=int_at_least(0), default=0)
    g.add_argument("--seed", type=int)
    tr = sub.add_parser("translate", help="translate with a translation run")
    tr.add_argument("run_dir")
    tr.add_argument("text", nargs="+")
    tr.add_argument("--beam", type=int_at_least(0), default=0, help="beam width (0/1: greedy)")
    sub.add_parser("demo", help="train a small network with ember's autograd")
    _explain.add_parser(sub)
    return p


def _fmt(value) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _print_metrics(metrics: dict) -> None:
    for key, value in metrics.items():
        if key in ("confusion_matrix", "examples"):
            continue
        print(f"  {key}: {_fmt(value)}")


def _cmd_recipes(args, recipes) -> int:
    names = recipes.list_recipes()
    width = max(len(n) for n in names)
    print(f"{'recipe':<{width}}  {'task':<9}  description")
    for name in names:
        r = recipes.get_recipe(name)
        print(f"{name:<{width}}  {r.task:<9}  {r.description}")
    return 0


def _cmd_train(args, recipes, argv) -> int:
    recipes.get_recipe(args.recipe)  # fail fast on a wrong name
    out = args.out or f"runs/{args.recipe}"
    overrides = {"epochs": args.epochs, "steps": args.steps, "lr": args.lr,
                 "batch_size": args.batch_size, "seed": args.seed, **dict(args.set)}
    summary = recipes.train(args.recipe, out, quick=args.quick, resume=args.resume,
                            verbose=0 if args.quiet else 2,
                            command=" ".join(["ember", *map(shlex.quote, argv)]),
                            doctor=args.doctor, **overrides)
    print(f"{args.recipe}: test metrics ({summary['wall_time_s']:.1f} s, run directory {out})")
    _print_metrics(summary["test"])
    if "baseline" in summary:
        b = summary["baseline"]
        print(f"  baseline {b['model']}: accuracy {b['accuracy']:.4f}, "
              f"macro_f1 {b['macro_f1']:.4f}")
    if "doctor" in summary:
        from ember.diagnostics import print_report
        from ember.recipes.runs import doctor_report_dir

        print()
        print_report(doctor_report_dir(out), plots=False)
        print(f"\nDoctor report: {out}/doctor/ (report.txt, findings.json, stats.json, PNGs)")
    return 0


def _cmd_doctor(args) -> int:
    from ember.diagnostics import print_report
    from ember.recipes.runs import doctor_report_dir

    print_report(doctor_report_dir(args.run_dir), plots=not args.no_plots)
    return 0


def _run(args, argv) -> int:
    if args.command == "demo":
        from ember.demo import main as demo

        demo()
        return 0
    if args.command == "explain":
        return _explain.run(args)
    from ember import recipes

    if args.command == "recipes":
        return _cmd_recipes(args, recipes)
    if args.command == "train":
        return _cmd_train(args, recipes, argv)
    if args.command == "doctor":
        return _cmd_doctor(args)
    if args.command == "evaluate":
        metrics = recipes.evaluate(args.run_dir, args.checkpoint)
        print(f"{args.run_dir}: test metrics")
        _print_metrics(metrics)
        return 0
    if args.command == "predict":
        for item in recipes.predict(args.run_dir, args.inputs):
            print(f"{item['class']}\t{item['probability']:.3f}")
        return 0
    if args.command == "generate":
        print(recipes.generate(args.run_dir, args.prompt, args.length, args.temperature,
                               args.top_k, args.seed))
        return 0
    if args.command == "translate":
        print(recipes.translate(args.run_dir, " ".join(args.text), args.beam))
        return 0
    raise UsageError(f"unknown command {args.command!r}")  # pragma: no cover


def main(argv=None) -> int:
    """Run the ``ember`` command with ``argv`` (default ``sys.argv[1:]``); returns the exit
    status (0, or 2 after a one-line error on stderr)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return 0
        return _run(args, argv)
    except SystemExit as e:  # --help
        return int(e.code or 0)
    except UsageError as e:
        return _fail(str(e))
    except (ValueError, FileNotFoundError, ModuleNotFoundError, OSError) as e:
        return _fail(str(e))


def _fail(message: str) -> int:
    line = " ".join(str(message).split())
    print(f"ember: {line}", file=sys.stderr)
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

