"""Run ember's full reproductions and print a Markdown table of the results.

    python scripts/reproduce.py                  # everything (hours on a laptop CPU)
    python scripts/reproduce.py --quick          # each recipe's quick config: proves the path
    python scripts/reproduce.py --only mnist1d-cnn digits-cnn --seeds 0 1 2

Reproduced: the four MNIST-1D recipes x 3 seeds (the reference setup: Adam lr 1e-2, batch 100,
8,000 steps), digits-cnn, tweets-lstm and tweets-transformer with their TF-IDF + logistic
regression baseline, numbers-en-fr (exact match, BLEU), pycode-lstm and pycode-gpt (bits per
character). Every run writes its own run directory under --out (default runs/reproduce);
the table has the measured figure, the wall time and the command that reproduces the row.
Not run by the tests.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

from ember import recipes

PLAN = [("mnist1d-logreg", 3), ("mnist1d-mlp", 3), ("mnist1d-cnn", 3), ("mnist1d-gru", 3),
        ("digits-cnn", 1), ("tweets-lstm", 1), ("tweets-transformer", 1), ("numbers-en-fr", 1),
        ("pycode-lstm", 1), ("pycode-gpt", 1)]


def figure(summary: dict) -> tuple[str, float]:
    """A one-cell description of the run's result, and the headline number."""
    test = summary["test"]
    if summary["task"] == "classify":
        text = f"test accuracy {test['accuracy']:.2%}, macro-F1 {test['macro_f1']:.3f}"
        if "baseline" in summary:
            b = summary["baseline"]
            text += f" (TF-IDF+LR baseline: {b['accuracy']:.2%}, macro-F1 {b['macro_f1']:.3f})"
        return text, test["accuracy"]
    if summary["task"] == "translate":
        return (f"exact match {test['exact_match']:.2%}, BLEU {100 * test['bleu']:.1f}",
                test["exact_match"])
    return f"validation {test['bpc']:.3f} bits/char", test["bpc"]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="each recipe's quick configuration")
    p.add_argument("--out", default=os.path.join("runs", "reproduce"))
    p.add_argument("--only", nargs="+", metavar="RECIPE", help="run only these recipes")
    p.add_argument("--seeds", nargs="+", type=int, help="seeds (default 0..n-1 per recipe)")
    p.add_argument("--verbose", type=int, default=2, choices=(0, 1, 2))
    args = p.parse_args(argv)
    plan = [(n, k) for n, k in PLAN if not args.only or n in args.only]
    unknown = set(args.only or ()) - {n for n, _ in PLAN}
    if unknown:
        p.error(f"not reproduced here: {', '.join(sorted(unknown))}; choose from "
                f"{', '.join(n for n, _ in PLAN)}")
    rows, per_recipe = [], {}
    start = time.perf_counter()
    for name, n_seeds in plan:
        for seed in args.seeds if args.seeds is not None else range(n_seeds):
            out = os.path.join(args.out, f"{name}-seed{seed}")
            command = f"ember train {name} --seed {seed} --out {out}" + \
                (" --quick" if args.quick else "")
            print(f"## {command}", flush=True)
            summary = recipes.train(name, out, quick=args.quick, seed=seed,
                                    verbose=args.verbose, command=command)
            text, value = figure(summary)
            per_recipe.setdefault(name, []).append(value)
            rows.append((name, seed, text, summary["wall_time_s"], command))
    print()
    print("| recipe | seed | measured | wall time | command |")
    print("|---|---|---|---|---|")
    for name, seed, text, wall, command in rows:
        print(f"| {name} | {seed} | {text} | {wall:.1f} s | `{command}` |")
    multi = {n: v for n, v in per_recipe.items() if len(v) > 1}
    if multi:
        print()
        print("| recipe | seeds | mean | std |")
        print("|---|---|---|---|")
        for name, values in multi.items():
            print(f"| {name} | {len(values)} | {statistics.mean(values):.4f} | "
                  f"{statistics.stdev(values):.4f} |")
    print(f"\ntotal wall time {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
