"""The built-in text recipes: tweets (sentiment), numbers (English to French), pycode
(character language models). The helpers they share with the array recipes are in
:mod:`ember.recipes.tasks`.

Each class below documents its setup; ``ember recipes`` lists them, ``ember train NAME``
runs one (see :mod:`ember.recipes.registry` for the run directory it writes).
"""

from __future__ import annotations

import math
import os
import warnings

import numpy as np

import ember
from ember.data import DataLoader, RandomSampler, Tokenizer, load_dataset
from ember.data.text import SequenceDataset
from ember.nn import functional as F
from ember.train import Trainer
from ember.train import metrics as M

from . import models
from .registry import (
    Recipe,
    RecipeError,
    checkpoint_path,
    load_weights,
    register,
)
from .tasks import _ClassifierMixin, _fit, _history_summary, _predictions, _subset


def _run_tokenizer(run_dir) -> Tokenizer:
    """The tokenizer a text recipe saved in its run directory."""
    path = os.path.join(run_dir, "tokenizer.json")
    if not os.path.isfile(path):
        raise RecipeError(f"run directory {run_dir!r} has no tokenizer.json")
    return Tokenizer.load(path)


# ============================================================================ text classifiers


def _tfidf_baseline(train_texts, train_y, test_texts, test_y) -> dict:
    """TF-IDF (word 1-2 grams) + logistic regression, from scikit-learn, on the same split."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        vec = TfidfVectorizer(ngram_range=(1, 2), min_df=2 if len(train_texts) > 2000 else 1,
                              sublinear_tf=True)
        xtr = vec.fit_transform(train_texts)
        clf = LogisticRegression(max_iter=1000, C=4.0)
        clf.fit(xtr, train_y)
        pred = clf.predict(vec.transform(test_texts))
    return {"model": "TF-IDF (1-2 grams) + logistic regression (scikit-learn)",
            "accuracy": float(accuracy_score(test_y, pred)),
            "macro_f1": float(f1_score(test_y, pred, average="macro"))}


class _TweetsBase(_ClassifierMixin, Recipe):
    """Sentiment of tweets about self-driving cars (3 classes), word tokenizer fitted on the
    training split (tokenizer.json); the summary compares with a TF-IDF + logistic
    regression baseline on the same split. The best validation-loss checkpoint is tested, or
    the last one after a one-cycle schedule."""

    task = "classify"
    input_kind = "text"
    common = {"epochs": 4, "lr": 2e-3, "batch_size": 64, "max_length": 48,
              "vocab_size": 20000, "min_freq": 2, "subset": None, "test_subset": None,
              "dropout": 0.3, "schedule": "constant", "label_smoothing": 0.0,
              "weight_decay": 0.0}
    quick_common = {"epochs": 2, "subset": 384, "test_subset": 128, "vocab_size": 2000,
                    "min_freq": 1, "batch_size": 64}

    def check_config(self, cfg):
        super().check_config(cfg)
        if cfg.get("schedule") not in ("constant", "onecycle"):
            raise RecipeError(f"schedule must be 'constant' or 'onecycle', got "
                              f"{cfg.get('schedule')!r}")
        if not 0.0 <= float(cfg.get("label_smoothing", 0.0)) < 1.0:
            raise RecipeError(f"label_smoothing must be in [0, 1), got "
                              f"{cfg['label_smoothing']}")

    def classes(self, cfg):
        from ember.data.datasets import TWEETS_CLASSES
        return list(TWEETS_CLASSES)

    def split(self, name, cfg):
        ds = load_dataset("tweets", name)
        idx = _subset(len(ds), cfg.get("subset") if name == "train" else cfg.get("test_subset"))
        return [ds.texts[i] for i in idx], ds.labels[idx]

    def collate(self, tok, cfg):
        unk = tok.vocab.unk_id

        def fn(items):
            texts = [t for t, _ in items]
            ids, lengths = tok.encode_batch(texts, max_length=int(cfg["max_length"]),
                                            as_tensors=False)
            if ids.shape[1] == 0:
                ids = np.zeros((len(texts), 1), np.int64)
            empty = lengths == 0
            ids[empty, 0], lengths[empty] = unk, 1
            y = ember.tensor(np.array([label for _, label in items], np.int64))
            return (ember.tensor(ids), ember.tensor(lengths)), y
        return fn

    def loader(self, texts, labels, tok, cfg, shuffle=False):
        items = list(zip(texts, (int(v) for v in labels)))
        return DataLoader(items, batch_size=int(cfg["batch_size"]), shuffle=shuffle,
                          collate_fn=self.collate(tok, cfg))

    def train_run(self, out_dir, cfg, resume, verbose):
        texts, y = self.split("train", cfg)
        vtexts, vy = self.split("validation", cfg)
        tok_path = os.path.join(out_dir, "tokenizer.json")
        if resume and os.path.isfile(tok_path):
            tok = Tokenizer.load(tok_path)
        else:
            tok = Tokenizer("word").fit(texts, min_freq=int(cfg["min_freq"]),
                                        max_size=int(cfg["vocab_size"]))
            tok.save(tok_path)
        model = self.build(cfg, len(tok.vocab))
        train_loader = self.loader(texts, y, tok, cfg, shuffle=True)
        epochs = self.epochs_for(cfg, len(train_loader))
        lr, wd = float(cfg["lr"]), float(cfg.get("weight_decay", 0.0))
        opt = (ember.optim.AdamW(model.parameters(), lr=lr, weight_decay=wd) if wd
               else ember.optim.Adam(model.parameters(), lr=lr))
        # one-cycle: a short warm-up to ``lr``, then cosine annealing over the whole run
        sched = (ember.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, pct_start=0.1,
                                                     total_steps=epochs * len(train_loader))
                 if cfg.get("schedule") == "onecycle" else None)
        loss_fn = ember.nn.CrossEntropyLoss(label_smoothing=float(cfg.get("label_smoothing", 0.0)))
        trainer = Trainer(model, opt, loss_fn=loss_fn, metrics=["accuracy"], grad_clip_norm=1.0,
                          scheduler=sched, scheduler_interval="step")
        history = _fit(trainer, train_loader, self.loader(vtexts, vy, tok, cfg), epochs,
                       out_dir, resume, verbose)
        test = self.test(out_dir, cfg, write=True)
        ttexts, ty = self.split("test", cfg)
        baseline = _tfidf_baseline(texts, y, ttexts, ty)
        return {"test": test, "baseline": baseline, "vocab_size": len(tok.vocab),
                "steps_done": trainer.global_step, **_history_summary(history)}

    def load_model(self, run_dir, cfg, which="auto"):
        tok = _run_tokenizer(run_dir)
        model = self.build(cfg, len(tok.vocab))
        # a one-cycle run ends annealed to a near-zero learning rate: its last weights are the
        # result (its label-smoothed validation loss bottoms out epochs earlier than accuracy)
        prefer = "last" if cfg.get("schedule") == "onecycle" else self.select
        return load_weights(model, checkpoint_path(run_dir, which, prefer)), {"tok": tok}

    def test_loader(self, cfg, extra):
        texts, y = self.split("test", cfg)
        return self.loader(texts, y, extra["tok"], cfg)

    def predict(self, run_dir, cfg, inputs):
        texts = [t for t in inputs if t.strip()]
        if not texts:
            raise RecipeError(f"{self.name}: give the text(s) to classify")
        model, extra = self.load_model(run_dir, cfg)
        (ids, lengths), _ = self.collate(extra["tok"], cfg)([(t, 0) for t in texts])
        with ember.no_grad():
            logits = model(ids, lengths).numpy()
        return _predictions(logits, self.classes(cfg))


class TweetsLSTM(_TweetsBase):
    name = "tweets-lstm"
    description = "Tweet sentiment (3 classes), bidirectional LSTM vs a TF-IDF baseline"
    defaults = {**_TweetsBase.common, "epochs": 6, "lr": 3e-3, "embed": 100, "hidden": 64,
                "dropout": 0.5, "embed_dropout": 0.3, "schedule": "onecycle",
                "label_smoothing": 0.1, "weight_decay": 0.01}
    quick = {**_TweetsBase.quick_common, "embed": 16, "hidden": 16, "embed_dropout": 0.0}

    def build(self, cfg, vocab):
        return models.LSTMClassifier(vocab, 3, int(cfg["embed"]), int(cfg["hidden"]),
                                     float(cfg["dropout"]),
                                     embed_dropout=float(cfg.get("embed_dropout", 0.0)))


class TweetsTransformer(_TweetsBase):
    name = "tweets-transformer"
    description = "Tweet sentiment (3 classes), Transformer encoder vs a TF-IDF baseline"
    defaults = {**_TweetsBase.common, "d_model": 64, "nhead": 4, "layers": 2, "ff": 128,
                "dropout": 0.1, "lr": 1e-3}
    quick = {**_TweetsBase.quick_common, "d_model": 16, "nhead": 2, "layers": 1, "ff": 32}

    def build(self, cfg, vocab):
        return models.TransformerClassifier(vocab, 3, int(cfg["d_model"]), int(cfg["nhead"]),
                                            int(cfg["layers"]), int(cfg["ff"]),
                                            float(cfg["dropout"]),
                                            max_len=int(cfg["max_length"]) + 1)


# ============================================================================ translation


def _detok(tokens) -> str:
    return " ".join(tokens).replace(" - ", "-").replace(" ,", ",")


def _cut_eos(ids, eos, pad):
    out = []
    for t in ids:
        if t == eos:
            break
        if t != pad:
            out.append(int(t))
    return out


class _SeqLoss:
    def __init__(self, label_smoothing: float):
        self.label_smoothing = label_smoothing

    def __call__(self, output, target):
        return F.cross_entropy(output.reshape(-1, output.shape[-1]), target.reshape(-1),
                               ignore_index=-100, label_smoothing=self.label_smoothing)


class NumbersEnFr(Recipe):
    """English number phrases -> French (num2words, 0..9,999; train/validation/test numbers
    are disjoint). An encoder-decoder Transformer with word-level source and target
    vocabularies (tokenizer_src.json, tokenizer_tgt.json), trained with teacher forcing and
    label smoothing 0.1. Evaluation: exact-match accuracy of greedy decoding on the held-out
    test numbers, and corpus BLEU-4. ``translate`` decodes greedily or with a beam."""

    name = "numbers-en-fr"
    description = "Numbers in English words -> French words, seq2seq Transformer (BLEU, exact)"
    task = "translate"
    defaults = {"epochs": 30, "lr": 5e-4, "batch_size": 64, "d_model": 128, "nhead": 4,
                "layers": 2, "ff": 256, "dropout": 0.1, "label_smoothing": 0.1,
                "subset": None, "test_subset": None, "max_decode": 40}
    quick = {"epochs": 2, "subset": 256, "test_subset": 32, "d_model": 32, "nhead": 2,
             "layers": 1, "ff": 64, "batch_size": 32, "lr": 2e-3, "max_decode": 24}

    def split(self, name, cfg):
        ds = load_dataset("numbers-en-fr", name)
        idx = _subset(len(ds), cfg.get("subset") if name == "train" else cfg.get("test_subset"))
        return [ds.sources[i] for i in idx], [ds.targets[i] for i in idx]

    def build(self, cfg, src_vocab, tgt_vocab):
        return models.Seq2SeqTransformer(src_vocab, tgt_vocab, int(cfg["d_model"]),
                                         int(cfg["nhead"]), int(cfg["layers"]), int(cfg["ff"]),
                                         float(cfg["dropout"]), max_len=64)

    def collate(self, src_tok, tgt_tok):
        def fn(items):
            src, _ = src_tok.encode_batch([s for s, _ in items], max_length=60)
            tgt, _ = tgt_tok.encode_batch([t for _, t in items], max_length=61, add_bos=True,
                                          add_eos=True, as_tensors=False)
            out = tgt[:, 1:].copy()
            out[out == tgt_tok.vocab.pad_id] = -100
            return (src, ember.tensor(tgt[:, :-1])), ember.tensor(out)
        return fn

    def train_run(self, out_dir, cfg, resume, verbose):
        src, tgt = self.split("train", cfg)
        vsrc, vtgt = self.split("validation", cfg)
        paths = [os.path.join(out_dir, f"tokenizer_{k}.json") for k in ("src", "tgt")]
        if resume and all(os.path.isfile(p) for p in paths):
            src_tok, tgt_tok = (Tokenizer.load(p) for p in paths)
        else:
            src_tok = Tokenizer("word").fit(src)
            tgt_tok = Tokenizer("word").fit(tgt)
            src_tok.save(paths[0])
            tgt_tok.save(paths[1])
        model = self.build(cfg, len(src_tok.vocab), len(tgt_tok.vocab))
        collate = self.collate(src_tok, tgt_tok)
        loader = DataLoader(list(zip(src, tgt)), batch_size=int(cfg["batch_size"]),
                            shuffle=True, collate_fn=collate)
        val = DataLoader(list(zip(vsrc, vtgt)), batch_size=256, collate_fn=collate)
        trainer = Trainer(model, ember.optim.Adam(model.parameters(), lr=float(cfg["lr"]),
                                                  betas=(0.9, 0.98)),
                          loss_fn=_SeqLoss(float(cfg["label_smoothing"])), metrics=["accuracy"],
                          grad_clip_norm=1.0)
        history = _fit(trainer, loader, val, self.epochs_for(cfg, len(loader)), out_dir, resume,
                       verbose)
        test = self.test(out_dir, cfg)
        return {"test": test, "steps_done": trainer.global_step,
                "vocab_sizes": [len(src_tok.vocab), len(tgt_tok.vocab)],
                **_history_summary(history)}

    def load_model(self, run_dir, cfg, which="auto"):
        paths = [os.path.join(run_dir, f"tokenizer_{k}.json") for k in ("src", "tgt")]
        if not all(os.path.isfile(p) for p in paths):
            raise RecipeError(f"run directory {run_dir!r} has no tokenizer_src/tgt.json")
        src_tok, tgt_tok = (Tokenizer.load(p) for p in paths)
        model = self.build(cfg, len(src_tok.vocab), len(tgt_tok.vocab))
        model = load_weights(model, checkpoint_path(run_dir, which))
        return model, {"src": src_tok, "tgt": tgt_tok}

    def _greedy(self, model, toks, sources, cfg):
        src_tok, tgt_tok = toks["src"], toks["tgt"]
        v = tgt_tok.vocab
        hyps = []
        for i in range(0, len(sources), 200):
            ids, _ = src_tok.encode_batch(sources[i:i + 200], max_length=60)
            out = model.greedy(ids, v.bos_id, v.eos_id, int(cfg["max_decode"]))
            hyps += [_cut_eos(row, v.eos_id, v.pad_id) for row in out.tolist()]
        return hyps

    def test(self, run_dir, cfg, which="auto", write=False) -> dict:
        model, toks = self.load_model(run_dir, cfg, which)
        src, tgt = self.split("test", cfg)
        hyps = self._greedy(model, toks, src, cfg)
        tv = toks["tgt"].vocab
        refs = [tv.decode(toks["tgt"].encode(t)) for t in tgt]
        hyp_tokens = [tv.decode(h) for h in hyps]
        exact = float(np.mean([h == r for h, r in zip(hyp_tokens, refs)]))
        bleu = M.corpus_bleu([[r] for r in refs], hyp_tokens)
        examples = [{"en": s, "fr": t, "predicted": _detok(h)}
                    for s, t, h in list(zip(src, tgt, hyp_tokens))[:5]]
        return {"exact_match": exact, "bleu": float(bleu), "n": len(src), "examples": examples}

    def translate(self, run_dir, cfg, text: str, beam: int = 0) -> str:
        if not text.strip():
            raise RecipeError("translate: give an English number phrase, e.g. 'four hundred "
                              "and twelve'")
        model, toks = self.load_model(run_dir, cfg)
        tv = toks["tgt"].vocab
        if beam and beam > 1:
            ids = ember.tensor([toks["src"].encode(text)[:60]])
            out = model.beam_search(ids, tv.bos_id, tv.eos_id, beam=int(beam),
                                    max_len=int(cfg["max_decode"]))
            out = _cut_eos(out, tv.eos_id, tv.pad_id)
        else:
            out = self._greedy(model, toks, [text], cfg)[0]
        return _detok(tv.decode(out))


# ============================================================================ char LMs


class _LMTrainer(Trainer):
    def forward(self, inputs):
        return self.model(inputs)[0]


class _CharLM(Recipe):
    """A character-level language model of Python standard-library source (pycode; the
    validation split is two held-out files). Metric: bits per character on validation.
    Training draws ``steps_per_epoch`` random windows per epoch; ``generate`` samples with
    temperature and top-k."""

    task = "generate"
    common = {"epochs": None, "steps": 3000, "steps_per_epoch": 100, "lr": 2e-3,
              "batch_size": 32, "block": 128, "train_chars": None, "val_chars": 60000,
              "checkpoint_every": 100}
    quick_common = {"steps": 6, "steps_per_epoch": 3, "batch_size": 8, "block": 32,
                    "train_chars": 20000, "val_chars": 2000, "checkpoint_every": None}

    def texts(self, cfg):
        train = load_dataset("pycode", "train").text
        val = load_dataset("pycode", "validation").text
        if cfg.get("train_chars"):
            train = train[:int(cfg["train_chars"])]
        if cfg.get("val_chars"):
            val = val[:int(cfg["val_chars"])]
        return train, val

    def check_config(self, cfg):
        if cfg.get("steps") is None and cfg.get("epochs") is None:
            cfg["steps"] = 3000
        super().check_config(cfg)

    def train_run(self, out_dir, cfg, resume, verbose):
        train, val = self.texts(cfg)
        path = os.path.join(out_dir, "tokenizer.json")
        if resume and os.path.isfile(path):
            tok = Tokenizer.load(path)
        else:
            tok = Tokenizer("char", lower=False).fit([train], specials=("<unk>",))
            tok.save(path)
        block, bs = int(cfg["block"]), int(cfg["batch_size"])
        train_ds = SequenceDataset(tok.encode(train), block, stride=max(1, block // 2))
        val_ds = SequenceDataset(tok.encode(val), block)
        per_epoch = int(cfg["steps_per_epoch"])
        sampler = RandomSampler(train_ds, num_samples=per_epoch * bs)
        loader = DataLoader(train_ds, batch_size=bs, sampler=sampler, drop_last=True)
        model = self.build(cfg, len(tok.vocab))
        trainer = _LMTrainer(model, ember.optim.AdamW(model.parameters(), lr=float(cfg["lr"]),
                                                      weight_decay=0.01),
                             loss_fn=_SeqLoss(0.0), metrics=["bpc"], grad_clip_norm=1.0)
        epochs = self.epochs_for(cfg, per_epoch)
        history = _fit(trainer, loader, DataLoader(val_ds, batch_size=64), epochs, out_dir,
                       resume, verbose, checkpoint_every=cfg.get("checkpoint_every"))
        test = self.test(out_dir, cfg)
        sample_text = self.generate(out_dir, cfg, "def ", length=80, temperature=0.8, top_k=10)
        return {"test": test, "sample": sample_text, "vocab_size": len(tok.vocab),
                "steps_done": trainer.global_step, **_history_summary(history)}

    def load_model(self, run_dir, cfg, which="auto"):
        tok = _run_tokenizer(run_dir)
        model = self.build(cfg, len(tok.vocab))
        return load_weights(model, checkpoint_path(run_dir, which)), {"tok": tok}

    @ember.no_grad()
    def test(self, run_dir, cfg, which="auto", write=False) -> dict:
        model, extra = self.load_model(run_dir, cfg, which)
        _, val = self.texts(cfg)
        ds = SequenceDataset(extra["tok"].encode(val), int(cfg["block"]))
        total = count = 0.0
        for x, y in DataLoader(ds, batch_size=64):
            logits = model(x)[0]
            nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1),
                                  reduction="sum")
            total += float(nll.item())
            count += y.numel()
        bpc = total / max(count, 1) / math.log(2)
        return {"bpc": bpc, "perplexity": math.exp(total / max(count, 1)), "chars": int(count)}

    def generate(self, run_dir, cfg, prompt: str, length: int = 200, temperature: float = 1.0,
                 top_k: int = 0, seed: int | None = None) -> str:
        if length < 0:
            raise RecipeError(f"--length must be >= 0, got {length}")
        if temperature <= 0:
            raise RecipeError(f"--temperature must be > 0, got {temperature}")
        if top_k < 0:
            raise RecipeError(f"--top-k must be >= 0, got {top_k}")
        model, extra = self.load_model(run_dir, cfg)
        tok = extra["tok"]
        ids = tok.encode(prompt) or [tok.vocab.unk_id]
        gen = ember.Generator().manual_seed(int(cfg["seed"] if seed is None else seed))
        out = models.sample(model, ids, int(length), float(temperature), int(top_k),
                            generator=gen)
        return prompt + tok.decode(out[len(ids):])


class PycodeLSTM(_CharLM):
    name = "pycode-lstm"
    description = "Character-level LSTM language model of Python source (bits per character)"
    defaults = {**_CharLM.common, "embed": 64, "hidden": 256, "layers": 2, "dropout": 0.2}
    quick = {**_CharLM.quick_common, "embed": 16, "hidden": 32, "layers": 1, "dropout": 0.0,
             "lr": 1e-2}

    def build(self, cfg, vocab):
        return models.CharLSTM(vocab, int(cfg["embed"]), int(cfg["hidden"]), int(cfg["layers"]),
                               float(cfg["dropout"]))


class PycodeGPT(_CharLM):
    name = "pycode-gpt"
    description = "Character-level GPT (decoder-only Transformer) of Python source (bpc)"
    defaults = {**_CharLM.common, "d_model": 128, "nhead": 4, "layers": 3, "ff": 512,
                "dropout": 0.1, "lr": 1e-3}
    quick = {**_CharLM.quick_common, "d_model": 32, "nhead": 2, "layers": 1, "ff": 64,
             "dropout": 0.0, "lr": 1e-2}

    def build(self, cfg, vocab):
        return models.CharGPT(vocab, int(cfg["block"]), int(cfg["d_model"]), int(cfg["nhead"]),
                              int(cfg["layers"]), int(cfg["ff"]), float(cfg["dropout"]))


for _cls in (TweetsLSTM, TweetsTransformer, NumbersEnFr, PycodeLSTM, PycodeGPT):
    register(_cls())
