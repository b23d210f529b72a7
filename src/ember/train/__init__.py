"""Training: the ``Trainer`` (fit / evaluate / predict, resume), callbacks, metrics, plots.

Matches: Keras' ``fit`` contract (``train_step``, callbacks, ``History``, ``verbose``) with
PyTorch Lightning-style fault-tolerant checkpoints. See :mod:`ember.train.trainer`.

    >>> from ember.train import Trainer, EarlyStopping, ModelCheckpoint   # doctest: +SKIP
    >>> trainer = Trainer(model, optimizer, metrics=["accuracy"])         # doctest: +SKIP
    >>> history = trainer.fit(train_loader, epochs=10, val_data=val_loader,
    ...                       callbacks=[EarlyStopping(patience=3)],
    ...                       checkpoint_dir="runs/1", resume=True)       # doctest: +SKIP

Plots (``plot_history``, ``plot_confusion_matrix``) live in :mod:`ember.train.plots`, which
imports matplotlib only when called.
"""

from . import metrics
from .callbacks import (
    Callback,
    CallbackList,
    CSVLogger,
    EarlyStopping,
    GradientClipping,
    JSONLogger,
    LambdaCallback,
    LearningRateScheduler,
    ModelCheckpoint,
)
from .checkpointing import load_checkpoint, save_checkpoint
from .history import History
from .metrics import (
    Accuracy,
    BitsPerCharacter,
    F1Score,
    Metric,
    Perplexity,
    Precision,
    Recall,
    TopKAccuracy,
)
from .plots import plot_confusion_matrix, plot_history
from .progress import ProgressBar
from .trainer import Trainer

__all__ = ["Trainer", "History", "Callback", "CallbackList", "EarlyStopping", "ModelCheckpoint",
           "LearningRateScheduler", "GradientClipping", "CSVLogger", "JSONLogger",
           "LambdaCallback", "ProgressBar", "Metric", "Accuracy", "TopKAccuracy", "Precision",
           "Recall", "F1Score", "Perplexity", "BitsPerCharacter", "metrics", "plot_history",
           "plot_confusion_matrix", "save_checkpoint", "load_checkpoint"]
