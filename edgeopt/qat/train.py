"""Fine-tune the fake-quantized twin of a Keras model (quantization-aware training).

Ranges start from a pass over the training data, then follow moving averages while training.
BatchNormalization statistics folded into Conv/Dense follow the batch statistics for the first
`freeze_bn_after` epochs and are frozen after (0 = frozen from the start, the usual choice when
fine-tuning a trained model). Layers not matching `layers` (a regex) keep their weights.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgeopt.errors import DataError, InputError


@dataclass(frozen=True)
class QatSpec:
    epochs: int = 3
    learning_rate: float = 1e-4
    batch_size: int = 32
    layers: str | None = None  # regex of layer names whose weights train; None = all
    freeze_bn_after: int = 0
    per_channel: bool = True  # Conv/Depthwise weights per output channel (Dense is per tensor, see __init__)
    range_decay: float = 0.999
    frozen: tuple[str, ...] = ()  # layer names whose weights stay (e.g. clustered kernels keep their shared values)
    masks: tuple[tuple[str, str, Any], ...] = ()  # (layer, weight, 0/1 mask): sparsified zeros stay zero in training
    seed: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 1:
            msg = f"QAT needs at least 1 epoch (got {self.epochs}); pass --epochs N with N >= 1"
            raise InputError(msg)
        if not 0 < self.learning_rate <= 1:
            msg = f"QAT learning rate must be in (0, 1], got {self.learning_rate}"
            raise InputError(msg)
        if self.batch_size < 1:
            msg = f"QAT batch size must be >= 1, got {self.batch_size}"
            raise InputError(msg)
        if self.freeze_bn_after < 0:
            msg = f"freeze_bn_after must be >= 0 epochs, got {self.freeze_bn_after}"
            raise InputError(msg)
        if self.layers:
            try:
                re.compile(self.layers)
            except re.error as exc:
                msg = f"QAT layers pattern '{self.layers}' is not a valid regular expression ({exc})"
                raise InputError(msg) from None


@dataclass(frozen=True)
class QatResult:
    model: Any = field(repr=False)  # the trained fake-quantized keras.Model
    epochs: int
    losses: tuple[float, ...]  # mean training loss per epoch
    train_seconds: float
    trained_layers: tuple[str, ...]
    folded_bn: tuple[str, ...]
    quantizers: int
    float_accuracy: float | None  # Keras float model, eval data
    qat_accuracy: float | None  # Keras fake-quant model after training, eval data (the artifact: measure it)

    def to_dict(self) -> dict[str, Any]:
        return {"epochs": self.epochs, "losses": [round(v, 6) for v in self.losses],
                "train_seconds": round(self.train_seconds, 3), "trained_layers": list(self.trained_layers),
                "folded_bn": list(self.folded_bn), "activation_quantizers": self.quantizers,
                "float_keras_accuracy": self.float_accuracy, "qat_keras_accuracy": self.qat_accuracy}


def check_training_data(x: np.ndarray | None, y: np.ndarray | None) -> None:
    if x is None or np.asarray(x).shape[0] == 0:
        msg = "QAT needs training data; give --train train.npz (arrays x and y)"
        raise DataError(msg)
    if y is None:
        msg = "QAT training data has no labels; save it with np.savez(path, x=..., y=...)"
        raise DataError(msg)
    if np.asarray(y).shape[0] != np.asarray(x).shape[0]:
        msg = (
            f"QAT training data: {np.asarray(y).shape[0]} labels for {np.asarray(x).shape[0]} samples; "
                        "counts must match"
        )
        raise DataError(msg)


def _top1(model: Any, x: np.ndarray, y: np.ndarray | None) -> float | None:
    if y is None or y.dtype.kind not in "iu":
        return None
    p = np.asarray(model.predict(x, batch_size=256, verbose=0)).reshape(x.shape[0], -1)
    return float(100.0 * np.mean(p.argmax(axis=1) == y.reshape(-1)))


def _init_ranges(qmodel: Any, x: np.ndarray, batch: int) -> None:
    """Activation ranges from up to 16 batches of training data, before any weight moves."""
    for i in range(0, min(x.shape[0], 16 * batch), batch):
        qmodel(x[i : i + batch], training=True)


def _set_bn_frozen(qmodel: Any, frozen: bool) -> None:
    for layer in qmodel.layers:
        if getattr(layer, "bn", False):
            layer.bn_frozen.assign(1.0 if frozen else 0.0)


def _masked_kernels(qmodel: Any, masks: tuple[tuple[str, str, Any], ...]) -> list[tuple[Any, Any]]:
    """(kernel variable in the fake-quant model, 0/1 mask) for each (layer, weight, mask) of the float model.

    A wrapped layer (QuantConv, `source` = the float layer's name) holds any kernel as `kernel`; a layer QAT
    copies keeps its own weight names. A mask that matches nothing is refused: its zeros would not survive.
    """
    import keras

    wrapped = {getattr(lay, "source", None): lay for lay in qmodel.layers if hasattr(lay, "source")}
    plain = {lay.name: lay for lay in qmodel.layers if not hasattr(lay, "source")}
    found, missing = [], []
    for name, weight, mask in masks:
        var = getattr(wrapped[name], "kernel", None) if name in wrapped else getattr(plain.get(name), weight, None)
        if var is None or tuple(var.shape) != tuple(mask.shape):
            missing.append(name)
            continue
        found.append((var, keras.ops.convert_to_tensor(mask, dtype=var.dtype)))
    if missing:
        msg = (f"QAT cannot keep the sparsity of layer(s) {', '.join(sorted(set(missing)))}: their kernels do not map "
               "onto the fake-quantized model; narrow [sparsity] layers to Conv/Dense layers")
        raise InputError(msg)
    return found


def train_qat(model: Any, spec: QatSpec, x: np.ndarray, y: np.ndarray, eval_x: np.ndarray | None = None,
              eval_y: np.ndarray | None = None) -> QatResult:
    """Quantization-aware fine-tuning of `model` (untouched); returns the trained fake-quantized model."""
    import keras

    from edgeopt.cluster.finetune import pick_loss
    from edgeopt.qat.wrap import quantize_model

    check_training_data(x, y)
    x = np.asarray(x, np.float32)
    keras.utils.set_random_seed(spec.seed)
    q = quantize_model(model, per_channel=spec.per_channel, decay=spec.range_decay)
    qmodel = q.model
    trained = []
    for layer in qmodel.layers:
        source = getattr(layer, "source", layer.name)
        if layer.weights and type(layer).__name__ != "ActQuant":
            if source in spec.frozen or (spec.layers and not re.search(spec.layers, source)):
                layer.trainable = False
            else:
                trained.append(source)
    if spec.layers and not trained:
        msg = f"QAT layers pattern '{spec.layers}' matches no layer with weights"
        raise InputError(msg)
    masked = _masked_kernels(qmodel, spec.masks)
    loss = pick_loss(model, x, y)
    yy = y.astype(np.int32) if y.dtype.kind in "iu" else y.astype(np.float32)
    _set_bn_frozen(qmodel, spec.freeze_bn_after == 0)
    _init_ranges(qmodel, x, spec.batch_size)
    qmodel.compile(optimizer=keras.optimizers.Adam(spec.learning_rate), loss=loss)

    class _FreezeBn(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            _set_bn_frozen(qmodel, epoch >= spec.freeze_bn_after)

    class _KeepZeros(keras.callbacks.Callback):
        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            for var, mask in masked:
                var.assign(var * mask)

    started = time.perf_counter()
    hist = qmodel.fit(x, yy, batch_size=spec.batch_size, epochs=spec.epochs, shuffle=True, verbose=0,
                      callbacks=[_FreezeBn(), _KeepZeros()] if masked else [_FreezeBn()])
    seconds = time.perf_counter() - started
    _set_bn_frozen(qmodel, True)
    qmodel.compile(loss=loss)  # keeps the loss, drops optimizer state from the saved file
    float_acc = qat_acc = None
    if eval_x is not None:
        ex = np.asarray(eval_x, np.float32)
        float_acc, qat_acc = _top1(model, ex, eval_y), _top1(qmodel, ex, eval_y)
    return QatResult(qmodel, spec.epochs, tuple(float(v) for v in hist.history.get("loss", ())), seconds,
                     tuple(trained), q.folded_bn, q.quantizers, float_acc, qat_acc)
