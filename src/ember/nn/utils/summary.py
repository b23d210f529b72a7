"""``summary(model)``: a per-layer table of output shapes and parameter counts (like Keras)."""

from __future__ import annotations


def summary(model, *inputs, depth: int = 3) -> str:
    """Describe ``model`` layer by layer: path, type, output shape (when example ``inputs`` are
    given, found by running them through with forward hooks) and parameter counts.

    Returns the table as a string (print it). Counts shared parameters once in the totals.
    """
    from ...autograd import no_grad

    shapes = {}
    handles = []
    if inputs:
        for name, mod in model.named_modules():
            def hook(m, args, out, name=name):
                o = out[0] if isinstance(out, tuple) else out
                shapes[name] = tuple(o.shape) if hasattr(o, "shape") else type(o).__name__
            handles.append(mod.register_forward_hook(hook))
        try:
            with no_grad():
                model(*inputs)
        finally:
            for h in handles:
                h.remove()
    rows = []
    for name, mod in model.named_modules():
        level = name.count(".") + 1 if name else 0
        if level > depth:
            continue
        own = sum(p.numel() for p in mod.parameters(recurse=False))
        total = sum(p.numel() for p in mod.parameters())
        label = ("  " * level) + (name or "(model)")
        rows.append((label, type(mod).__name__, str(shapes.get(name, "")), f"{own:,}",
                     f"{total:,}"))
    header = ("layer", "type", "output shape", "params", "params (with children)")
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(5)]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths))
    out = [line, "-" * len(line)]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    everything = sum(p.numel() for p in model.parameters())
    out += ["-" * len(line), f"total parameters: {everything:,} (trainable {trainable:,})"]
    return "\n".join(out)
