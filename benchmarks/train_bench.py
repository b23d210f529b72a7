"""Training-step and inference speed, ember vs PyTorch, on identical model code.

Run: ``python benchmarks/train_bench.py [--only NAME ...]`` (needs torch). Every model below is
written once against a framework module ``m`` (``ember`` or ``torch``): the APIs are the same.
For each workload it reports the median time of a training step (forward, backward, optimizer
step) and of a batch-1 inference (eval mode, no gradient), and the speed ratio.

Importing this module imports neither framework (the memory and JAX benchmarks reuse
``WORKLOADS`` and ``setup`` in processes that must hold only one of them).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import bench_threads, machine, time_call, write_json, write_results  # noqa: E402


def mlp_residual(m):
    """MNIST-1D MLP: 40-256-256-10 with a residual hidden layer."""
    nn = m.nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(40, 256)
            self.fc2 = nn.Linear(256, 256)
            self.out = nn.Linear(256, 10)

        def forward(self, x):
            h = m.relu(self.fc1(x))
            h = h + m.relu(self.fc2(h))
            return self.out(h)

    return Net()


def cnn1d(m):
    """MNIST-1D CNN: three Conv1d (25 channels, k 5/3/3, stride 2, padding 1), Linear 125->10."""
    nn = m.nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.c1 = nn.Conv1d(1, 25, 5, stride=2, padding=1)
            self.c2 = nn.Conv1d(25, 25, 3, stride=2, padding=1)
            self.c3 = nn.Conv1d(25, 25, 3, stride=2, padding=1)
            self.out = nn.Linear(125, 10)

        def forward(self, x):
            h = m.relu(self.c1(x.unsqueeze(1)))
            h = m.relu(self.c2(h))
            h = m.relu(self.c3(h))
            return self.out(h.flatten(1))

    return Net()


def gru1d(m):
    """MNIST-1D GRU: bidirectional GRU(1->6) over 40 steps, Linear 480->10."""
    nn = m.nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.GRU(1, 6, batch_first=True, bidirectional=True)
            self.out = nn.Linear(480, 10)

        def forward(self, x):
            h, _ = self.rnn(x.unsqueeze(-1))
            return self.out(h.flatten(1))

    return Net()


def mlp784(m):
    """MLP 784-512-512-10."""
    nn = m.nn
    return nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(),
                         nn.Linear(512, 10))


def lenet5(m):
    """LeNet-5 on 1x28x28: conv5x5(pad 2) 6, maxpool, conv5x5 16, maxpool, 120-84-10."""
    nn = m.nn
    return nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
                         nn.Linear(84, 10))


def lstm_text(m):
    """Embedding(5000, 64) + LSTM(64->128) + Linear(128->3), reading the last hidden state."""
    nn = m.nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(5000, 64)
            self.rnn = nn.LSTM(64, 128, batch_first=True)
            self.out = nn.Linear(128, 3)

        def forward(self, tokens):
            _, (h, _) = self.rnn(self.emb(tokens))
            return self.out(h[-1])

    return Net()


def transformer_lm(m):
    """Token + position embeddings, 2 causal TransformerEncoderLayers (d 128, 4 heads, FF 512,
    dropout 0), Linear to a 1,000-token vocabulary."""
    nn = m.nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.tok = nn.Embedding(1000, 128)
            self.pos = nn.Embedding(64, 128)
            layer = nn.TransformerEncoderLayer(128, 4, 512, dropout=0.0, batch_first=True)
            self.encoder = nn.TransformerEncoder(layer, 2)
            self.head = nn.Linear(128, 1000)
            self.register_buffer("mask", nn.Transformer.generate_square_subsequent_mask(64))
            self.register_buffer("positions", m.arange(64))

        def forward(self, tokens):
            h = self.tok(tokens) + self.pos(self.positions)
            h = self.encoder(h, mask=self.mask, is_causal=True)
            return self.head(h)

    return Net()


WORKLOADS = {
    # name: (builder, input maker(batch, rng) -> (x, y), batch, optimizer, sequence loss?)
    "mnist1d-mlp": (mlp_residual, lambda b, r: (r.standard_normal((b, 40)), r.integers(0, 10, b)),
                    100, "adam"),
    "mnist1d-cnn": (cnn1d, lambda b, r: (r.standard_normal((b, 40)), r.integers(0, 10, b)),
                    100, "adam"),
    "mnist1d-gru": (gru1d, lambda b, r: (r.standard_normal((b, 40)), r.integers(0, 10, b)),
                    100, "adam"),
    "mlp-784": (mlp784, lambda b, r: (r.standard_normal((b, 784)), r.integers(0, 10, b)),
                128, "sgd"),
    "lenet5": (lenet5, lambda b, r: (r.standard_normal((b, 1, 28, 28)), r.integers(0, 10, b)),
               64, "sgd"),
    "lstm-text": (lstm_text, lambda b, r: (r.integers(0, 5000, (b, 50)), r.integers(0, 3, b)),
                  32, "adam"),
    "transformer-lm": (transformer_lm, lambda b, r: (r.integers(0, 1000, (b, 64)),
                                                     r.integers(0, 1000, (b, 64))), 32, "adam"),
}


def _tensor(m, a):
    a = np.asarray(a)
    return m.tensor(a.astype(np.float32) if a.dtype.kind == "f" else a.astype(np.int64))


def setup(m, name: str):
    builder, make, batch, opt_name = WORKLOADS[name]
    m.manual_seed(0)
    model = builder(m)
    rng = np.random.default_rng(0)
    x, y = make(batch, rng)
    x, y = _tensor(m, x), _tensor(m, y)
    x1 = x[:1]
    if opt_name == "adam":
        opt = m.optim.Adam(model.parameters(), lr=1e-3)
    else:
        opt = m.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    F = m.nn.functional

    def train_step():
        opt.zero_grad()
        out = model(x)
        loss = F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1))
        loss.backward()
        opt.step()

    def infer():
        with m.no_grad():
            model(x1)

    return model, train_step, infer


def measure(name: str, framework: str, reps_time: float = 1.0) -> dict:
    """Median seconds of a train step and a batch-1 inference in ``framework``."""
    import importlib

    m = importlib.import_module(framework)
    if framework == "torch":
        m.set_num_threads(bench_threads())
    model, step, infer = setup(m, name)
    model.train()
    train = time_call(step, warmup=5, min_reps=10, min_time=reps_time)
    model.eval()
    return {"train": train,
            "infer": time_call(infer, warmup=10, min_reps=30, min_time=reps_time / 2)}


def run(name: str, reps_time: float = 1.0) -> dict:
    """Median seconds of a train step and a batch-1 inference, for ember and PyTorch, each in
    a process of its own: in one process, the other framework's idle threads (PyTorch's
    OpenMP pool, OpenBLAS's workers, which spin for a while after each parallel call) take
    the cores from the one being timed (measured: the Transformer 60 ms alone, 70 ms right
    after PyTorch's LSTM in the same process)."""
    res = {}
    for label in ("ember", "torch"):
        out = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", name,
                              label, "--time", str(reps_time)],
                             check=True, capture_output=True, text=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        res[f"{label}_train"], res[f"{label}_infer"] = r["train"], r["infer"]
    return res


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", nargs="*", default=None, help="workload names")
    parser.add_argument("--time", type=float, default=1.5, help="seconds per measurement")
    parser.add_argument("--json", default=None, metavar="PATH",
                        help="write the raw seconds to PATH instead of results/train.*")
    parser.add_argument("--worker", nargs=2, metavar=("NAME", "FRAMEWORK"),
                        help=argparse.SUPPRESS)  # one measurement, printed as JSON
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(measure(*args.worker, args.time)))
        return
    import torch

    import ember

    rows, raw = [], {}
    for name in args.only or list(WORKLOADS):
        r = raw[name] = run(name, args.time)
        tr, inf = r["torch_train"] / r["ember_train"], r["torch_infer"] / r["ember_infer"]
        rows.append([name, f"{r['ember_train'] * 1e3:.2f}", f"{r['torch_train'] * 1e3:.2f}",
                     f"{tr:.2f}x", f"{r['ember_infer'] * 1e3:.3f}",
                     f"{r['torch_infer'] * 1e3:.3f}", f"{inf:.2f}x"])
        print(" | ".join(rows[-1]), flush=True)
    meta = {"machine": machine(), "threads": bench_threads(),
            "versions": f"ember {ember.__version__}, torch {torch.__version__}, "
                        f"numpy {np.__version__}"}
    if args.json:
        write_json(args.json, {"meta": meta, "seconds": raw})
        return
    table = write_results("train", rows, [
        "workload", "ember train ms", "PyTorch train ms", "train speed",
        "ember infer ms (batch 1)", "PyTorch infer ms", "infer speed"], meta)
    print("\n" + table)


if __name__ == "__main__":
    main()
