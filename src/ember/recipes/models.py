"""The models behind ember's recipes, each a plain ``ember.nn.Module``.

They follow the path the fundamentals take: the perceptron, a two-layer network that solves XOR,
the MNIST-1D reference models (logistic regression, MLP with a residual hidden layer, CNN,
bidirectional GRU), small image classifiers, text classifiers (LSTM and Transformer), an
encoder-decoder Transformer for translation, and character-level language models.
"""

from __future__ import annotations

import math

import ember
from ember import nn
from ember.nn import functional as F


class Perceptron(nn.Module):
    """Rosenblatt's perceptron: ``sign(w . x + b)``, trained by its own learning rule (not
    gradient descent): on a mistake, ``w += lr * y * x`` and ``b += lr * y`` with y in {-1, 1}."""

    def __init__(self, in_features: int = 2):
        super().__init__()
        self.linear = nn.Linear(in_features, 1)
        with ember.no_grad():
            self.linear.weight.zero_()
            self.linear.bias.zero_()

    def forward(self, x):
        return self.linear(x).squeeze(-1)

    def predict(self, x):
        return (self.forward(x) > 0).long()

    def learn(self, x, y, lr: float = 1.0) -> int:
        """One pass of the perceptron rule over (x, y in {0, 1}); returns the mistakes made."""
        mistakes = 0
        with ember.no_grad():
            for i in range(x.shape[0]):
                target = 1.0 if int(y[i]) == 1 else -1.0
                if (self.linear(x[i:i + 1]).item() > 0) != (target > 0):
                    self.linear.weight.add_(x[i:i + 1] * (lr * target))
                    self.linear.bias.add_(lr * target)
                    mistakes += 1
        return mistakes


class TwoLayerNet(nn.Module):
    """A hidden layer with a smooth nonlinearity (tanh or sigmoid): enough to solve XOR."""

    def __init__(self, in_features: int = 2, hidden: int = 8, classes: int = 2,
                 activation: str = "tanh"):
        super().__init__()
        self.hidden = nn.Linear(in_features, hidden)
        self.act = nn.Tanh() if activation == "tanh" else nn.Sigmoid()
        self.out = nn.Linear(hidden, classes)

    def forward(self, x):
        return self.out(self.act(self.hidden(x)))


class LogisticRegression(nn.Module):
    """One linear layer on the flattened input; softmax is in the loss."""

    def __init__(self, in_features: int, classes: int):
        super().__init__()
        self.linear = nn.Linear(in_features, classes)

    def forward(self, x):
        return self.linear(x.flatten(1))


class ResidualMLP(nn.Module):
    """MNIST-1D's MLP: in -> 256 -> (256 + residual) -> classes, with ReLU."""

    def __init__(self, in_features: int = 40, hidden: int = 256, classes: int = 10):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.out = nn.Linear(hidden, classes)

    def forward(self, x):
        h = F.relu(self.fc1(x.flatten(1)))
        h = h + F.relu(self.fc2(h))
        return self.out(h)


class MLP(nn.Module):
    """A plain multilayer perceptron with ReLU and optional dropout."""

    def __init__(self, in_features: int, hidden: tuple = (128, 128), classes: int = 10,
                 dropout: float = 0.0):
        super().__init__()
        layers, width = [], in_features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            if dropout:
                layers.append(nn.Dropout(dropout))
            width = h
        layers.append(nn.Linear(width, classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x.flatten(1))


class CNN1d(nn.Module):
    """MNIST-1D's CNN: three Conv1d (25 channels, kernels 5/3/3, stride 2, padding 1), ReLU, and
    a linear read-out of the flattened features (125 for length-40 inputs)."""

    def __init__(self, length: int = 40, channels: int = 25, classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv1d(1, channels, 5, stride=2, padding=1)
        self.conv2 = nn.Conv1d(channels, channels, 3, stride=2, padding=1)
        self.conv3 = nn.Conv1d(channels, channels, 3, stride=2, padding=1)
        n = length
        for k in (5, 3, 3):
            n = (n + 2 - k) // 2 + 1
        self.out = nn.Linear(channels * n, classes)

    def forward(self, x):
        h = F.relu(self.conv1(x.unsqueeze(1)))
        h = F.relu(self.conv2(h))
        h = F.relu(self.conv3(h))
        return self.out(h.flatten(1))


class GRUClassifier(nn.Module):
    """MNIST-1D's GRU: a bidirectional GRU with 6 hidden units over the sequence, read out by a
    linear layer over all time steps."""

    def __init__(self, length: int = 40, hidden: int = 6, classes: int = 10):
        super().__init__()
        self.rnn = nn.GRU(1, hidden, batch_first=True, bidirectional=True)
        self.out = nn.Linear(length * 2 * hidden, classes)

    def forward(self, x):
        h, _ = self.rnn(x.unsqueeze(-1))
        return self.out(h.flatten(1))


class SmallCNN(nn.Module):
    """A small 2-D CNN for 8x8 digit images: two conv blocks with batch norm, then a classifier."""

    def __init__(self, classes: int = 10, channels: int = 32):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, channels, 3, padding=1), nn.BatchNorm2d(channels), nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1), nn.BatchNorm2d(channels), nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(channels, 2 * channels, 3, padding=1), nn.BatchNorm2d(2 * channels),
            nn.ReLU(), nn.MaxPool2d(2))
        self.classifier = nn.Sequential(nn.Flatten(), nn.Dropout(0.2),
                                        nn.Linear(2 * channels * 4, classes))

    def forward(self, x):
        if x.dim() == 3:
            x = x.unsqueeze(1)
        return self.classifier(self.features(x))


class LSTMClassifier(nn.Module):
    """Embedding + bidirectional LSTM read out by max- and mean-pooling its outputs over the
    real (unpadded) time steps of both directions; pooling every step, rather than keeping only
    the final states, lets a word anywhere in the text drive the class."""

    def __init__(self, vocab: int, classes: int = 3, embed: int = 64, hidden: int = 64,
                 dropout: float = 0.3, padding_idx: int = 0, embed_dropout: float = 0.0):
        super().__init__()
        self.embedding = nn.Embedding(vocab, embed, padding_idx=padding_idx)
        self.rnn = nn.LSTM(embed, hidden, batch_first=True, bidirectional=True)
        self.embed_dropout = nn.Dropout(embed_dropout)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(4 * hidden, classes)

    def forward(self, tokens, lengths=None):
        x = self.embed_dropout(self.embedding(tokens))
        if lengths is None:
            lengths = ember.full((tokens.shape[0],), tokens.shape[1], dtype=ember.int64)
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True,
                                                   enforce_sorted=False)
        out, _ = self.rnn(packed)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True)
        steps = ember.arange(out.shape[1]).unsqueeze(0) < lengths.unsqueeze(1)
        largest = out.masked_fill(~steps.unsqueeze(-1), -1e4).amax(1)
        mean = out.sum(1) / lengths.to(out.dtype).unsqueeze(1)
        return self.out(self.dropout(ember.cat([largest, mean], dim=1)))


class TransformerClassifier(nn.Module):
    """A small Transformer encoder over token + sinusoidal position embeddings, mean-pooled over
    the non-padding tokens."""

    def __init__(self, vocab: int, classes: int = 3, d_model: int = 64, nhead: int = 4,
                 layers: int = 2, ff: int = 128, dropout: float = 0.1, max_len: int = 512,
                 padding_idx: int = 0):
        super().__init__()
        self.padding_idx = padding_idx
        self.embedding = nn.Embedding(vocab, d_model, padding_idx=padding_idx)
        self.position = nn.PositionalEncoding(d_model, max_len=max_len, dropout=dropout,
                                              batch_first=True)
        layer = nn.TransformerEncoderLayer(d_model, nhead, ff, dropout, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers)
        self.out = nn.Linear(d_model, classes)
        self.scale = math.sqrt(d_model)

    def forward(self, tokens, lengths=None):
        pad = tokens == self.padding_idx
        h = self.position(self.embedding(tokens) * self.scale)
        h = self.encoder(h, src_key_padding_mask=pad)
        keep = (~pad).float().unsqueeze(-1)
        pooled = (h * keep).sum(1) / keep.sum(1).clamp(min=1.0)
        return self.out(pooled)


class Seq2SeqTransformer(nn.Module):
    """An encoder-decoder Transformer for translation, with greedy and beam-search decoding."""

    def __init__(self, src_vocab: int, tgt_vocab: int, d_model: int = 128, nhead: int = 4,
                 layers: int = 2, ff: int = 256, dropout: float = 0.1, max_len: int = 64,
                 padding_idx: int = 0):
        super().__init__()
        self.padding_idx = padding_idx
        self.src_embedding = nn.Embedding(src_vocab, d_model, padding_idx=padding_idx)
        self.tgt_embedding = nn.Embedding(tgt_vocab, d_model, padding_idx=padding_idx)
        self.position = nn.PositionalEncoding(d_model, max_len=max_len, dropout=dropout,
                                              batch_first=True)
        self.transformer = nn.Transformer(d_model, nhead, layers, layers, ff, dropout,
                                          batch_first=True)
        self.out = nn.Linear(d_model, tgt_vocab)
        self.scale = math.sqrt(d_model)

    def encode(self, src):
        pad = src == self.padding_idx
        h = self.position(self.src_embedding(src) * self.scale)
        return self.transformer.encoder(h, src_key_padding_mask=pad), pad

    def decode(self, tgt, memory, memory_pad):
        n = tgt.shape[1]
        mask = nn.Transformer.generate_square_subsequent_mask(n)
        h = self.position(self.tgt_embedding(tgt) * self.scale)
        h = self.transformer.decoder(h, memory, tgt_mask=mask, tgt_is_causal=True,
                                     tgt_key_padding_mask=tgt == self.padding_idx,
                                     memory_key_padding_mask=memory_pad)
        return self.out(h)

    def forward(self, src, tgt_in):
        memory, pad = self.encode(src)
        return self.decode(tgt_in, memory, pad)

    @ember.no_grad()
    def greedy(self, src, bos: int, eos: int, max_len: int = 40):
        """Decode each source sentence by taking the most likely next token each step."""
        memory, pad = self.encode(src)
        out = ember.full((src.shape[0], 1), bos, dtype=ember.int64)
        done = ember.zeros(src.shape[0], dtype=ember.bool)
        for _ in range(max_len):
            nxt = self.decode(out, memory, pad)[:, -1].argmax(-1)
            nxt = ember.where(done, ember.full_like(nxt, self.padding_idx), nxt)
            out = ember.cat([out, nxt.unsqueeze(1)], dim=1)
            done = done | (nxt == eos)
            if bool(done.all()):
                break
        return out[:, 1:]

    @ember.no_grad()
    def beam_search(self, src, bos: int, eos: int, beam: int = 4, max_len: int = 40,
                    length_penalty: float = 0.6):
        """Beam search for one source sentence (shape (1, S)); returns the best token list."""
        memory, pad = self.encode(src)
        beams = [([bos], 0.0, False)]
        for _ in range(max_len):
            candidates = []
            alive = [b for b in beams if not b[2]]
            if not alive:
                break
            tokens = ember.tensor([b[0] for b in alive])
            mem = memory.expand(len(alive), *memory.shape[1:])
            mpad = pad.expand(len(alive), pad.shape[1])
            logp = F.log_softmax(self.decode(tokens, mem, mpad)[:, -1], dim=-1)
            top = logp.topk(beam, dim=-1) if hasattr(logp, "topk") else None
            lp = logp.numpy()
            for i, (seq, score, _) in enumerate(alive):
                best = lp[i].argsort()[::-1][:beam] if top is None else top.indices[i].tolist()
                for t in best:
                    t = int(t)
                    candidates.append((seq + [t], score + float(lp[i, t]), t == eos))
            candidates += [b for b in beams if b[2]]

            def rank(b):
                return b[1] / (len(b[0]) ** length_penalty)

            beams = sorted(candidates, key=rank, reverse=True)[:beam]
            if all(b[2] for b in beams):
                break
        best = max(beams, key=lambda b: b[1] / (len(b[0]) ** length_penalty))
        seq = best[0][1:]
        return seq[:-1] if seq and seq[-1] == eos else seq


class CharLSTM(nn.Module):
    """A character-level LSTM language model."""

    def __init__(self, vocab: int, embed: int = 64, hidden: int = 256, layers: int = 2,
                 dropout: float = 0.2):
        super().__init__()
        self.embedding = nn.Embedding(vocab, embed)
        self.rnn = nn.LSTM(embed, hidden, layers, batch_first=True, dropout=dropout)
        self.out = nn.Linear(hidden, vocab)

    def forward(self, tokens, state=None):
        h, state = self.rnn(self.embedding(tokens), state)
        return self.out(h), state


class CharGPT(nn.Module):
    """A small decoder-only Transformer (GPT-style) over characters, with a causal mask."""

    def __init__(self, vocab: int, block: int = 128, d_model: int = 128, nhead: int = 4,
                 layers: int = 3, ff: int = 512, dropout: float = 0.1):
        super().__init__()
        self.block = block
        self.token = nn.Embedding(vocab, d_model)
        self.position = nn.Embedding(block, d_model)
        layer = nn.TransformerEncoderLayer(d_model, nhead, ff, dropout, batch_first=True,
                                           norm_first=True, activation="gelu")
        self.blocks = nn.TransformerEncoder(layer, layers)
        self.norm = nn.LayerNorm(d_model)
        self.out = nn.Linear(d_model, vocab)

    def forward(self, tokens, state=None):
        n = tokens.shape[1]
        if n > self.block:
            raise ValueError(f"CharGPT: sequence of {n} tokens exceeds the block size "
                             f"{self.block}")
        h = self.token(tokens) + self.position(ember.arange(n))
        mask = nn.Transformer.generate_square_subsequent_mask(n)
        h = self.blocks(h, mask=mask, is_causal=True)
        return self.out(self.norm(h)), None


@ember.no_grad()
def sample(model, prompt_ids: list, steps: int, temperature: float = 1.0, top_k: int = 0,
           generator=None) -> list:
    """Extend ``prompt_ids`` by ``steps`` tokens sampled from a language model (CharLSTM or
    CharGPT): softmax of logits / temperature, optionally restricted to the top-k tokens."""
    model.eval()
    ids = list(prompt_ids)
    state = None
    block = getattr(model, "block", None)
    feed = ids
    for _ in range(steps):
        window = feed[-block:] if block else feed
        logits, new_state = model(ember.tensor([window]), state)
        if block is None:
            state = new_state
        logits = logits[0, -1] / max(temperature, 1e-6)
        if top_k:
            kth = ember.tensor(sorted(logits.tolist(), reverse=True)[min(top_k, len(logits)) - 1])
            logits = ember.where(logits < kth, ember.full_like(logits, float("-inf")), logits)
        probs = F.softmax(logits, dim=-1)
        nxt = int(ember.multinomial(probs, 1, generator=generator).item())
        ids.append(nxt)
        feed = ids if block else [nxt]
    return ids
