"""``ember explain``: attributions for one input of a trained run, drawn to a file.

The run directory gives the model and how its inputs are read (what ``ember predict`` or
``ember translate`` take, or ``test:N`` for the N-th example of the run's test split); the
methods are :mod:`ember.explain`'s:

============  ===============================================================================
method        what is computed (numbers: MNIST-1D, digits, XOR ... / text: tweets)
============  ===============================================================================
ig            integrated gradients from a baseline (numbers: ``--baseline``, default 0; text:
              to the word embeddings, from the padding embedding), ``--steps`` points
saliency      the absolute gradient (text: its norm over each word's embedding)
smoothgrad    saliency averaged over ``--samples`` noisy copies (numbers only)
gradcam       Grad-CAM on a convolution layer (``--layer``, default the last one), upsampled
gradcam++     Grad-CAM++ likewise
occlusion     score drop when a window (``--window``) is set to the baseline (text: each
              word replaced by the unknown-word token)
attention     the attention weights of a MultiheadAttention layer (translation: the last
              decoder layer's cross-attention, target words x source words; tweets
              Transformer: the last encoder layer, or ``--rollout`` through all of them)
============  ===============================================================================

Numbers are drawn as an image heatmap (8x8 digits) or a shaded signal (MNIST-1D), text as
highlighted words (PNG, or an HTML page when ``--out`` ends in .html), attention as a matrix.
"""

from __future__ import annotations

import os

import ember
from ember import explain as X
from ember.explain import plots
from ember.nn import functional as F

from .registry import RecipeError, open_run
from .tasks import _forward_plain, parse_numbers

__all__ = ["explain", "METHODS", "default_conv_layer", "default_output"]

METHODS = ("ig", "saliency", "smoothgrad", "gradcam", "gradcam++", "occlusion", "attention")
_NUMBER_METHODS = ("ig", "saliency", "smoothgrad", "occlusion")
_TEXT_METHODS = ("ig", "saliency", "occlusion")


def explain(run_dir, inputs, method: str = "ig", target=None, out=None, layer=None,
            steps: int = 50, samples: int = 25, noise: float = 0.15, baseline: float = 0.0,
            window=None, stride=None, head=None, rollout: bool = False, seed: int = 0,
            which: str = "auto") -> dict:
    """Explain one input of the run in ``run_dir`` with ``method`` and draw it to ``out``
    (default ``RUN_DIR/explain-METHOD.png``; for text, an ``.html`` name writes a web page).

    Args:
        run_dir: a classification or translation run directory.
        inputs: a string or list of strings, as ``ember predict`` / ``ember translate`` take
            them, or ``"test:N"`` for the N-th example of the run's test split.
        method: one of :data:`METHODS`.
        target: the class to explain, an index or a class name (default: the predicted one).
        out: the file to write.
        layer: gradcam: a conv layer's path (default the last conv layer); attention: a
            MultiheadAttention's path (default the last cross-attention, else the last one).
        steps, samples, noise, baseline, window, stride, head, rollout, seed: the options of
            ``ember explain`` (see its ``--help``).
        which: the checkpoint, ``auto``, ``best`` or ``last``.

    Returns:
        A summary dict: ``recipe``, ``method``, ``out`` and, for classifiers, ``predicted``,
        ``probability``, ``target``, ``true`` (for test:N) and ``top`` (the five largest
        attributions as (feature, value)); for attention, ``layer`` (and ``translation``).

    User errors (input, option, method that does not fit the run) raise :class:`RecipeError`
    with a one-line message.
    """
    if method not in METHODS:
        raise RecipeError(f"unknown method {method!r}; valid: {', '.join(METHODS)}")
    items = [inputs] if isinstance(inputs, str) else list(inputs)
    if layer is not None and method not in ("gradcam", "gradcam++", "attention"):
        raise RecipeError(f"--layer applies to gradcam, gradcam++ and attention, not {method}")
    if not items:
        raise RecipeError("explain: give the input to explain (as for 'ember predict'), or "
                          "test:N")
    recipe, cfg = open_run(run_dir)
    opts = dict(method=method, target=target, layer=layer, steps=steps, samples=samples,
                noise=noise, baseline=baseline, window=window, stride=stride, head=head,
                rollout=rollout, seed=seed)
    run_dir = os.fspath(run_dir)
    if recipe.task not in ("classify", "translate"):
        raise RecipeError(f"explain works on classification and translation runs; "
                          f"{recipe.name!r} is a {recipe.task} recipe")
    path = os.fspath(out or default_output(run_dir, method, items))
    _check_out_dir(path)
    model, extra = recipe.load_model(run_dir, cfg, which)
    if recipe.task == "translate":
        _require(recipe, method, ("attention",), "a translation run is explained by its "
                 "attention")
        summary = _explain_translation(recipe, cfg, model, extra, items, opts)
    elif getattr(recipe, "input_kind", "numbers") == "text":
        summary = _explain_text(recipe, cfg, model, extra, items, opts)
    else:
        summary = _explain_numbers(recipe, cfg, model, extra, items, opts)
    summary.update(recipe=recipe.name, method=method, out=path)
    summary.pop("draw")(path)
    return summary


def default_output(run_dir, method: str, items: list) -> str:
    """``RUN_DIR/explain-METHOD[-testN].png`` (``gradcam++`` -> ``gradcampp``)."""
    name = "explain-" + method.replace("+", "p")
    if len(items) == 1 and items[0].strip().startswith("test:"):
        name += "-test" + items[0].strip()[5:].strip()
    return os.path.join(os.fspath(run_dir), name + ".png")


def _check_out_dir(path) -> None:
    folder = os.path.dirname(os.fspath(path))
    if folder and not os.path.isdir(folder):
        raise RecipeError(f"cannot write {os.fspath(path)!r}: no directory {folder!r}")


def default_conv_layer(model) -> str:
    """The path of the model's last convolution layer (Grad-CAM's usual choice)."""
    convs = X.conv_layer_paths(model)
    if not convs:
        raise RecipeError(f"{type(model).__name__} has no convolution layer")
    return convs[-1]


# ---------------------------------------------------------------------- shared pieces


def _valid_methods(model, base) -> list:
    valid = list(base)
    if base is _NUMBER_METHODS and X.conv_layer_paths(model):
        valid += ["gradcam", "gradcam++"]
    if X.attention_layer_paths(model):
        valid.append("attention")
    return valid


def _require(recipe, method, valid, reason) -> None:
    if method not in valid:
        raise RecipeError(f"--method {method} does not apply to {recipe.name}: {reason}; valid "
                          f"methods for this run: {', '.join(valid)}")


def _reason(method: str) -> str:
    if method in ("gradcam", "gradcam++"):
        return "its model has no convolution layer (Conv1d/Conv2d/Conv3d)"
    if method == "attention":
        return "its model has no nn.MultiheadAttention layer"
    return "the method needs numeric inputs"


def _test_index(item: str) -> int | None:
    item = item.strip()
    if not item.startswith("test:"):
        return None
    try:
        index = int(item[5:])
    except ValueError:
        raise RecipeError(f"bad input {item!r}: expected test:N with N an example number "
                          f"(0, 1, ...)") from None
    if index < 0:
        raise RecipeError(f"bad input {item!r}: N must be >= 0")
    return index


def _out_of_range(index: int, size: int):
    return RecipeError(f"test:{index} is out of range: the run's test split has {size} "
                       f"examples (test:0 .. test:{size - 1})")


def _target_index(target, classes: list) -> int | None:
    """``--target``: a class index or a class name (None: the predicted class)."""
    if target is None:
        return None
    names = [str(c) for c in classes]
    text = str(target).strip()
    if text in names:
        return names.index(text)
    try:
        index = int(text)
    except ValueError:
        index = None
    if index is None or not 0 <= index < len(names):
        raise RecipeError(f"bad --target {target!r}: the model has {len(names)} classes; give "
                          f"an index 0..{len(names) - 1} or a class name "
                          f"({', '.join(names)})")
    return index


def _prediction(fn, x, args, classes) -> dict:
    with ember.no_grad():
        probs = F.softmax(fn(x, *args), dim=-1)[0]
    label = int(probs.argmax().item())
    return {"predicted": str(classes[label]), "label": label,
            "probability": float(probs[label].item())}


def _top(labels: list, scores: list, k: int = 5) -> list:
    order = sorted(range(len(scores)), key=lambda i: -abs(scores[i]))[:k]
    return [(labels[i], float(scores[i])) for i in order]


def _title(recipe, method, info, target_label, extra: str = "") -> str:
    return (f"{recipe.name}: {method}{extra} for class {target_label} (predicted "
            f"{info['predicted']}, p={info['probability']:.2f})")


# ---------------------------------------------------------------------- numeric inputs


def _numbers_input(recipe, cfg, extra, items) -> tuple:
    """(x (1, *input_shape), true label or None)."""
    shape = tuple(getattr(recipe, "input_shape", ()) or (recipe.n_features,))
    index = _test_index(items[0]) if len(items) == 1 else None
    if index is not None:
        seen = 0
        for xb, yb in recipe.test_loader(cfg, extra):
            if index < seen + xb.shape[0]:
                row = xb[index - seen]
                return row.reshape(1, *shape).float(), int(yb[index - seen].item())
            seen += xb.shape[0]
        raise _out_of_range(index, seen)
    rows = parse_numbers(items, recipe.n_features, recipe.name)
    if len(rows) != 1:
        raise RecipeError(f"explain takes one input, got {len(rows)} rows of numbers")
    return ember.tensor(rows).reshape(1, *shape), None


def _scores_fn(recipe, model):
    if recipe.forward_fn is _forward_plain:
        return model
    return lambda x: recipe.forward_fn(model, x)


def _explain_numbers(recipe, cfg, model, extra, items, o) -> dict:
    method = o["method"]
    _require(recipe, method, _valid_methods(model, _NUMBER_METHODS), _reason(method))
    x, true = _numbers_input(recipe, cfg, extra, items)
    fn = _scores_fn(recipe, model)
    classes = recipe.classes(cfg)
    info = _prediction(fn, x, (), classes)
    t = _target_index(o["target"], classes)
    t = info["label"] if t is None else t
    attr, note = _number_attribution(fn, model, x, t, o)
    scores = attr.reshape(-1).tolist()
    spatial = tuple(x.shape[2:]) if x.dim() == 4 else None
    labels = ([f"pixel ({i // spatial[1]}, {i % spatial[1]})" for i in range(len(scores))]
              if spatial else [f"x[{i}]" for i in range(len(scores))])
    title = _title(recipe, method, info, classes[t], note)
    if spatial:
        def draw(path):
            plots.plot_image_attribution(x[0].reshape(*spatial), attr[0].reshape(*spatial),
                                         path, title=title)
    else:
        def draw(path):
            plots.plot_signal_attribution(x.reshape(-1), attr.reshape(-1), path, title=title)
    return {**info, "target": str(classes[t]), "true": None if true is None else
            str(classes[true]), "top": _top(labels, scores), "draw": draw}


def _window(o, x) -> tuple:
    """Occlusion window and strides: the given size over every non-channel dim (default 2 for
    images, 3 for signals, 1 for a few features)."""
    feature_dims = x.shape[1:]
    images = x.dim() == 4
    spatial = feature_dims[1:] if images else feature_dims
    default = 2 if images else (3 if spatial[-1] >= 10 else 1)
    size, step = int(o["window"] or default), int(o["stride"] or 1)
    if size < 1 or step < 1 or any(size > d for d in spatial):
        raise RecipeError(f"--window must be between 1 and {min(spatial)} and --stride >= 1 for "
                          f"inputs of shape {tuple(feature_dims)}, got {size} and {step}")
    if step > size:
        raise RecipeError(f"--stride ({step}) must not exceed --window ({size})")
    lead = (1,) if images else ()
    return lead + (size,) * len(spatial), lead + (step,) * len(spatial)


def _number_attribution(fn, model, x, t, o) -> tuple:
    """(attributions shaped like x, a note for the title)."""
    method = o["method"]
    if method == "ig":
        return X.integrated_gradients(fn, x, t, baselines=float(o["baseline"]),
                                      n_steps=_positive(o["steps"], "--steps")), ""
    if method == "saliency":
        return X.saliency(fn, x, t), ""
    if method == "smoothgrad":
        gen = ember.Generator().manual_seed(int(o["seed"]))
        return X.smoothgrad(fn, x, t, nt_samples=_positive(o["samples"], "--samples"),
                            noise_level=float(o["noise"]), generator=gen), ""
    if method == "occlusion":
        shape, strides = _window(o, x)
        return X.occlusion(fn, x, shape, strides, baselines=float(o["baseline"]), target=t), ""
    layer = o["layer"] or default_conv_layer(model)
    cam = X.grad_cam if method == "gradcam" else X.grad_cam_plus_plus
    try:
        m = cam(model, x, layer, t)
    except ValueError as e:
        raise RecipeError(str(e)) from None
    if m.dim() < 3:
        raise RecipeError(f"--layer {layer}: its output has no spatial dims (shape "
                          f"{tuple(m.shape)}); choose a convolution layer")
    spatial = tuple(x.shape[-(m.dim() - 2):])
    mode = {1: "linear", 2: "bilinear", 3: "trilinear"}[m.dim() - 2]
    up = X.interpolate(m, spatial, mode)
    return up.reshape(*x.shape), f" (layer {layer})"


def _positive(value, name: str) -> int:
    if int(value) < 1:
        raise RecipeError(f"{name} must be >= 1, got {value}")
    return int(value)


# ---------------------------------------------------------------------- text


def _text_input(recipe, cfg, items) -> tuple:
    index = _test_index(items[0]) if len(items) == 1 else None
    if index is None:
        text = " ".join(t for t in items if t.strip())
        if not text.strip():
            raise RecipeError(f"{recipe.name}: give the text to explain")
        return text, None
    texts, labels = recipe.split("test", cfg)
    if index >= len(texts):
        raise _out_of_range(index, len(texts))
    return texts[index], int(labels[index])


def _embedding_path(model) -> str:
    paths = [p for p, m in model.named_modules() if isinstance(m, ember.nn.Embedding)]
    if not paths:
        raise RecipeError(f"{type(model).__name__} has no nn.Embedding layer to attribute to")
    return paths[0]


def _explain_text(recipe, cfg, model, extra, items, o) -> dict:
    method = o["method"]
    _require(recipe, method, _valid_methods(model, _TEXT_METHODS), _reason(method))
    text, true = _text_input(recipe, cfg, items)
    tok = extra["tok"]
    (ids, lengths), _ = recipe.collate(tok, cfg)([(text, 0)])
    words = tok.tokenize(text)[:ids.shape[1]] or ["<unk>"]
    classes = recipe.classes(cfg)
    info = _prediction(model, ids, (lengths,), classes)
    t = _target_index(o["target"], classes)
    t = info["label"] if t is None else t
    if method == "attention":
        return {**info, "target": str(classes[t]), **_text_attention(model, ids, lengths,
                                                                      words, o, recipe)}
    scores = _word_scores(model, ids, lengths, t, tok, o)
    title = _title(recipe, method, info, classes[t])

    def draw(path):
        if path.endswith(".html"):
            plots.save_text_attribution_html(words, scores, path, title=title)
        else:
            plots.plot_text_attribution(words, scores, path, title=title)

    return {**info, "target": str(classes[t]), "true": None if true is None else
            str(classes[true]), "top": _top(words, scores), "words": list(zip(words, scores)),
            "draw": draw}


def _word_scores(model, ids, lengths, t, tok, o) -> list:
    layer = _embedding_path(model)
    method = o["method"]
    if method == "ig":
        attr = X.layer_integrated_gradients(
            model, ids, layer, t, baselines=tok.vocab.pad_id, additional_forward_args=lengths,
            n_steps=_positive(o["steps"], "--steps"))
        return attr.sum(-1)[0].tolist()
    if method == "saliency":
        g = X.layer_gradient_x_activation(model, ids, layer, t, additional_forward_args=lengths,
                                          multiply_by_inputs=False)
        return (g * g).sum(-1).sqrt()[0].tolist()
    unk = tok.vocab.unk_id if tok.vocab.unk_id is not None else tok.vocab.pad_id
    return X.occlusion(model, ids, (1,), 1, baselines=unk, target=t,
                       additional_forward_args=lengths)[0].tolist()


def _pick_head(maps, head, layer: str):
    """(L, S) weights of one example: the mean over heads, or head ``head``."""
    if head is None or str(head) == "mean":
        return maps[0].mean(0)
    heads = maps.shape[1]
    try:
        h = int(head)
    except ValueError:
        h = -1
    if not 0 <= h < heads:
        raise RecipeError(f"bad --head {head!r}: layer {layer} has {heads} heads (0..{heads - 1}) "
                          f"or 'mean'")
    return maps[0, h]


def _attention_layer(model, layer, prefer: str) -> str:
    paths = X.attention_layer_paths(model)
    if layer is None:
        preferred = [p for p in paths if p.endswith(prefer)]
        return (preferred or paths)[-1]
    if layer not in paths:
        raise RecipeError(f"no attention layer {layer!r} in {type(model).__name__}; attention "
                          f"layers: {', '.join(paths)}")
    return layer


def _text_attention(model, ids, lengths, words, o, recipe) -> dict:
    paths = X.attention_layer_paths(model)
    layer = _attention_layer(model, o["layer"], "self_attn")
    maps = X.attention_maps(model, ids, lengths)
    if o["rollout"]:
        weights = X.attention_rollout([maps[p] for p in paths if p in maps])[0]
        note = "rollout through " + ", ".join(p for p in paths if p in maps)
    else:
        weights = _pick_head(maps[layer], o["head"], layer)
        note = layer
    title = f"{recipe.name}: attention\n{note}"

    def draw(path):
        plots.plot_attention(weights, path, words, words, title=title, xlabel="key word",
                             ylabel="query word")

    return {"layer": note, "draw": draw}


# ---------------------------------------------------------------------- translation


def _explain_translation(recipe, cfg, model, extra, items, o) -> dict:
    if o["rollout"]:
        raise RecipeError("--rollout needs a stack of self-attention layers over one sequence "
                          "(tweets-transformer); a translation run shows one layer (--layer)")
    index = _test_index(items[0]) if len(items) == 1 else None
    if index is not None:
        sources, _ = recipe.split("test", cfg)
        if index >= len(sources):
            raise _out_of_range(index, len(sources))
        text = sources[index]
    else:
        text = " ".join(items)
    src_tok, tgt_tok = extra["src"], extra["tgt"]
    src_ids = src_tok.encode(text)[:60]
    if not src_ids:
        raise RecipeError("explain: give an English number phrase, e.g. 'four hundred and "
                          "twelve'")
    v = tgt_tok.vocab
    src = ember.tensor([src_ids])
    decoded = model.greedy(src, v.bos_id, v.eos_id, int(cfg["max_decode"]))[0].tolist()
    out_ids = []
    for t in decoded:
        if t == v.eos_id:
            break
        if t != v.pad_id:
            out_ids.append(int(t))
    tgt_in = ember.tensor([[v.bos_id] + out_ids])
    layer = _attention_layer(model, o["layer"], "multihead_attn")
    with ember.no_grad():
        logits = model(src, tgt_in)
    maps = X.attention_maps(model, src, tgt_in, layers=[layer])
    weights = _pick_head(maps[layer], o["head"], layer)
    rows = v.decode(logits[0].argmax(-1).tolist())
    cols = src_tok.vocab.decode(src_ids)
    labels = _axis_labels(layer, rows, cols, ["<bos>"] + v.decode(out_ids))
    translation = " ".join(v.decode(out_ids)).replace(" - ", "-").replace(" ,", ",")
    head = "mean of heads" if o["head"] in (None, "mean") else f"head {o['head']}"
    title = f"{recipe.name}: '{text}' -> '{translation}'\n{layer} ({head})"

    def draw(path):
        plots.plot_attention(weights, path, labels[1], labels[0], title=title,
                             xlabel=labels[2], ylabel=labels[3])

    return {"translation": translation, "layer": layer, "draw": draw}


def _axis_labels(layer: str, predicted: list, source: list, target_in: list) -> tuple:
    """(row labels, column labels, x label, y label) for the attention layer's matrix."""
    if ".encoder." in f".{layer}.":
        return source, source, "source word (key)", "source word (query)"
    if layer.endswith("multihead_attn"):
        return predicted, source, "source word", "predicted word"
    return predicted, target_in, "previous target word (key)", "predicted word"
