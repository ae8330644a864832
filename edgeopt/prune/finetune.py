"""Short fine-tuning after pruning, with early stopping on a validation split."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from edgeopt.errors import DataError, InputError
from edgeopt.validate.accuracy import keras_top1


@dataclass(frozen=True)
class FinetuneResult:
    model: Any  # the same model object, trained in place
    accuracy_before: float | None  # top-1 in percent; None when outputs/labels are not a classification
    accuracy_after: float | None
    epochs_run: int
    loss_history: tuple[float, ...]


def _default_loss(model: Any, y: np.ndarray) -> Any:
    import keras

    if not np.issubdtype(np.asarray(y).dtype, np.integer):
        msg = (
            "the model has no compiled loss and the labels are not integer classes; "
            "compile the model with a loss or give integer labels"
        )
        raise InputError(msg)
    last = model.layers[-1] if model.layers else None
    act = getattr(last, "activation", None)
    probs = getattr(act, "__name__", "") == "softmax" or isinstance(last, keras.layers.Softmax)
    return keras.losses.SparseCategoricalCrossentropy(from_logits=not probs)


def finetune(model: Any, x: np.ndarray, y: np.ndarray, *, epochs: int = 5, batch_size: int = 32,
             validation_split: float = 0.1, patience: int = 2, learning_rate: float = 1e-4,
             eval_x: np.ndarray | None = None, eval_y: np.ndarray | None = None,
             seed: int | None = None) -> FinetuneResult:
    """Train `model` in place with Adam(learning_rate) and the model's compiled loss (else sparse CE).

    Accuracy is measured before and after on (eval_x, eval_y) when given, else on (x, y).
    EarlyStopping restores the best weights by validation loss (training loss without a split).
    """
    import keras

    if len(x) != len(y):
        msg = f"fine-tuning data: {len(x)} inputs but {len(y)} labels; give one label per sample"
        raise DataError(msg)
    if epochs < 1 or batch_size < 1 or not 0.0 <= validation_split < 1.0:
        msg = "fine-tuning needs epochs >= 1, batch_size >= 1 and validation_split in [0, 1)"
        raise InputError(msg)
    if (eval_x is None) != (eval_y is None):
        msg = "give both eval_x and eval_y, or neither"
        raise InputError(msg)
    if seed is not None:
        keras.utils.set_random_seed(seed)
    loss = getattr(model, "loss", None) if getattr(model, "compiled", False) else None
    loss = loss or _default_loss(model, y)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=loss)
    ex, ey = (x, y) if eval_x is None or eval_y is None else (eval_x, eval_y)
    before = keras_top1(model, ex, ey)
    monitor = "val_loss" if validation_split > 0 else "loss"
    stop = keras.callbacks.EarlyStopping(monitor=monitor, patience=patience, restore_best_weights=True)
    hist = model.fit(x, y, epochs=epochs, batch_size=batch_size, validation_split=validation_split,
                     callbacks=[stop], verbose=0, shuffle=True)
    after = keras_top1(model, ex, ey)
    losses = tuple(float(v) for v in hist.history.get("loss", []))
    return FinetuneResult(model, before, after, len(losses), losses)
