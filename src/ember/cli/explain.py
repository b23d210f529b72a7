"""``ember explain RUN_DIR INPUT``: attributions for one input of a trained run, drawn to a
file. Argument parsing only; the work is in :mod:`ember.recipes.explain_run`.

    ember explain runs/digits-cnn test:0 --method gradcam --out cam.png
    ember explain runs/mnist1d-cnn test:3 --method ig --steps 64
    ember explain runs/tweets-lstm "what a great ride" --method ig --out words.html
    ember explain runs/numbers-en-fr "four hundred and twelve" --method attention
"""

from __future__ import annotations

import argparse

from .argtypes import int_at_least, number_at_least

__all__ = ["add_parser", "run"]

METHODS = ("ig", "saliency", "smoothgrad", "gradcam", "gradcam++", "occlusion", "attention")


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``explain`` subcommand to ``subparsers`` (from ``add_subparsers``)."""
    p = subparsers.add_parser(
        "explain", help="explain a prediction of a run (attributions, attention) as a picture",
        description="Attributions for one input of a run: what 'ember predict' takes (numbers "
                    "or text), an English phrase for numbers-en-fr, or test:N for the N-th "
                    "test example; writes a PNG (or an HTML page for text with --out x.html).")
    p.add_argument("run_dir")
    p.add_argument("inputs", nargs="+", metavar="INPUT")
    p.add_argument("--method", choices=METHODS, default="ig",
                   help="attribution method (default ig: integrated gradients)")
    p.add_argument("--target", help="class to explain: index or name (default: the predicted "
                                    "class)")
    p.add_argument("--out", help="output file (default RUN_DIR/explain-METHOD.png; .html for "
                                 "a web page of highlighted words)")
    p.add_argument("--layer", help="gradcam: the conv layer's path (default the last conv); "
                                   "attention: the MultiheadAttention's path")
    p.add_argument("--steps", type=int_at_least(2), default=50,
                   help="ig: integration points (default 50)")
    p.add_argument("--samples", type=int_at_least(1), default=25,
                   help="smoothgrad: noisy samples (default 25)")
    p.add_argument("--noise", type=number_at_least(0), default=0.15,
                   help="smoothgrad: noise std as a fraction of the input's range (0.15)")
    p.add_argument("--baseline", type=float, default=0.0,
                   help="ig/occlusion on numbers: the reference value (default 0)")
    p.add_argument("--window", type=int_at_least(1),
                   help="occlusion: window size per dim (default 2 for images, 3 for signals)")
    p.add_argument("--stride", type=int_at_least(1), help="occlusion: stride (default 1)")
    p.add_argument("--head", help="attention: head index, or 'mean' (default)")
    p.add_argument("--rollout", action="store_true",
                   help="attention: rollout through every self-attention layer")
    p.add_argument("--seed", type=int, default=0, help="smoothgrad: noise seed")
    p.add_argument("--checkpoint", choices=("auto", "best", "last"), default="auto")
    return p


def run(args) -> int:
    """Run ``ember explain`` with parsed ``args``; prints a summary, returns 0."""
    from ember.recipes.explain_run import explain

    s = explain(args.run_dir, args.inputs, method=args.method, target=args.target,
                out=args.out, layer=args.layer, steps=args.steps, samples=args.samples,
                noise=args.noise, baseline=args.baseline, window=args.window,
                stride=args.stride, head=args.head, rollout=args.rollout, seed=args.seed,
                which=args.checkpoint)
    if "translation" in s:
        print(f"translation: {s['translation']}")
        print(f"attention: {s['layer']}")
    elif "top" not in s:
        print(f"predicted: {s['predicted']} (p={s['probability']:.3f})")
        print(f"attention: {s['layer']}")
    else:
        true = f", true {s['true']}" if s.get("true") is not None else ""
        print(f"predicted: {s['predicted']} (p={s['probability']:.3f}{true}); explaining "
              f"class {s['target']} with {s['method']}")
        print("strongest attributions: " + ", ".join(f"{name} {value:+.4g}"
                                                      for name, value in s["top"]))
    print(f"wrote {s['out']}")
    return 0
