"""Accuracy of an artifact against labels and against the float model's outputs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeopt.runtime import RunnerOptions, open_runner
from edgeopt.runtime.tensors import from_model_output, to_model_input

SNR_CAP_DB = 200.0  # identical outputs report this instead of infinity
BATCH = 64


@dataclass(frozen=True)
class AccuracyResult:
    metric: str  # "top1" with labels, else "agreement"
    reference: str  # what the artifact is compared with
    value: float | None  # top-1 accuracy in percent (None without labels)
    reference_value: float | None  # the float model's top-1 in percent
    drop: float | None  # percentage points lost against the float model
    agreement: float  # percent of samples whose top-1 equals the float model's
    snr_db: float  # output signal-to-noise ratio against the float model
    samples: int


def predict(path: Path, x: np.ndarray, threads: int = 1, xnnpack: bool = True) -> np.ndarray:
    """First output of the artifact for every sample, as float32 (dequantized)."""
    runner = open_runner(Path(path), RunnerOptions(threads=threads, xnnpack=xnnpack))
    info, out_info = runner.inputs[0], runner.outputs[0]
    fixed = info.shape[0] not in (-1, 0)
    step = info.shape[0] if fixed else BATCH
    outs = []
    for i in range(0, x.shape[0], step):
        chunk = x[i : i + step]
        if fixed and chunk.shape[0] != step:
            pad = np.zeros((step - chunk.shape[0],) + chunk.shape[1:], chunk.dtype)
            y = runner.run([to_model_input(np.concatenate([chunk, pad]), info)])[0][: chunk.shape[0]]
        else:
            y = runner.run([to_model_input(chunk, info)])[0]
        outs.append(from_model_output(y, out_info))
    return np.concatenate(outs).reshape(x.shape[0], -1)


def snr_db(reference: np.ndarray, actual: np.ndarray) -> float:
    ref = reference.astype(np.float64).ravel()
    err = ref - actual.astype(np.float64).ravel()
    noise = float(np.sum(err * err))
    signal = float(np.sum(ref * ref))
    if noise == 0.0:
        return SNR_CAP_DB
    if signal == 0.0:
        return -SNR_CAP_DB
    return float(min(SNR_CAP_DB, 10.0 * np.log10(signal / noise)))


def top1(outputs: np.ndarray, labels: np.ndarray) -> float:
    if outputs.shape[1] == 1:  # binary classifier with one logit/probability
        pred = (outputs[:, 0] > (0.5 if outputs.min() >= 0 else 0.0)).astype(np.int64)
    else:
        pred = outputs.argmax(axis=1)
    return float(100.0 * np.mean(pred == labels.reshape(-1).astype(np.int64)))


def keras_top1(model: Any, x: np.ndarray, y: np.ndarray | None, batch_size: int = 256) -> float | None:
    """Top-1 accuracy in percent of a Keras classifier for integer or one-hot labels.

    None when that does not apply: no labels, non-integer 1-D labels, or outputs that are not
    (samples, classes >= 2). Used by prune, cluster and build for the Keras-side accuracy.
    """
    if y is None:
        return None
    pred = np.asarray(model.predict(x, batch_size=batch_size, verbose=0))
    y = np.asarray(y)
    if pred.ndim != 2 or pred.shape[1] < 2:
        return None
    if y.ndim == 2 and y.shape[1] == pred.shape[1] and y.shape[1] > 1:
        labels = y.argmax(axis=1)
    elif y.dtype.kind in "iu" and (y.ndim == 1 or (y.ndim == 2 and y.shape[1] == 1)):
        labels = y.reshape(-1)
    else:
        return None
    return top1(pred, labels)


def compare(outputs: np.ndarray, reference: np.ndarray, labels: np.ndarray | None, reference_name: str) -> AccuracyResult:
    """Score `outputs` against `reference` (the float model) and optional integer labels."""
    outputs = outputs.reshape(outputs.shape[0], -1)
    reference = reference.reshape(reference.shape[0], -1)
    agree = float(100.0 * np.mean(outputs.argmax(1) == reference.argmax(1))) if outputs.shape[1] > 1 else \
        float(100.0 * np.mean(np.isclose(outputs, reference, rtol=0.05, atol=0.05)))
    classification = labels is not None and labels.dtype.kind in "iu" and labels.reshape(-1).shape[0] == outputs.shape[0]
    if classification:
        assert labels is not None
        value, ref_value = top1(outputs, labels), top1(reference, labels)
        return AccuracyResult("top1", reference_name, value, ref_value, round(ref_value - value, 6), agree,
                              snr_db(reference, outputs), int(outputs.shape[0]))
    return AccuracyResult("agreement", reference_name, None, None, round(100.0 - agree, 6), agree,
                          snr_db(reference, outputs), int(outputs.shape[0]))
