"""Accuracy of an artifact against labels and against the float model's outputs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgeopt.data.tensors import Batch, IOSpec, batch_count, take_feed, units_of
from edgeopt.errors import DataError
from edgeopt.runtime import RunnerOptions, open_runner
from edgeopt.runtime.base import TensorInfo
from edgeopt.runtime.shapes import plain_name
from edgeopt.runtime.tensors import from_model_output, to_model_input
from edgeopt.validate.metrics import (
    SNR_CAP_DB,
    AccuracyTarget,
    OutputScore,
    met,
    resolve_metrics,
    score,
    snr_db,
    top1,
)
from edgeopt.vocabulary import AccuracyMetric

if TYPE_CHECKING:
    from edgeopt.convert.onnx2tf_layout import TfliteLayout

__all__ = ["SNR_CAP_DB", "AccuracyResult", "compare", "keras_top1", "predict", "predict_outputs", "snr_db", "top1"]

BATCH = 64


@dataclass(frozen=True)
class AccuracyResult:
    """Every output scored (`outputs`); the top-level fields are the first (primary) output's, as before."""

    metric: str  # the primary output's metric: "top1" (labels), "agreement", "snr", "cosine", "max-abs"
    reference: str  # what the artifact is compared with
    value: float | None  # top-1 accuracy in percent (None unless the metric is top1)
    reference_value: float | None  # the float model's top-1 in percent
    drop: float | None  # percentage points lost against the float model (top1 / agreement)
    agreement: float | None  # percent of samples whose top-1 equals the float model's; None: not class scores
    snr_db: float  # output signal-to-noise ratio against the float model
    samples: int
    outputs: tuple[OutputScore, ...] = ()
    met: bool | None = None  # every output within its budget (AccuracyTarget); None when none was checked

    @property
    def primary(self) -> OutputScore | None:
        return self.outputs[0] if self.outputs else None


def predict_outputs(path: Path, x: Batch, outputs: Sequence[IOSpec] | None = None, threads: int = 1,
                    xnnpack: bool = True, layout: TfliteLayout | None = None) -> list[np.ndarray]:
    """Every output of the artifact for every sample, float32 (dequantized), batch first, in the order of
    `outputs` (the source model's: matched by name, signature key, then shape; the runtime's order otherwise).
    `layout`: the artifact is an onnx2tf .tflite of the ONNX source; `x` and the outputs stay in the ONNX layout."""
    if layout is not None and outputs is not None:
        in_artifact = predict_outputs(path, layout.feed(x), layout.output_specs(outputs), threads, xnnpack)
        return layout.back(outputs, in_artifact)
    # ONNX: the crash probe runs this data, not random inputs (a Resize's scales, a OneHot's depth are inputs)
    probe_data = (([x] if isinstance(x, np.ndarray) else x) if Path(path).suffix.lower() == ".onnx" else None)
    runner = open_runner(Path(path), RunnerOptions(threads=threads, xnnpack=xnnpack), data=probe_data)
    infos = list(runner.inputs)
    arrays = _feed_order(runner.input_keys, infos, x)
    units = units_of([i.shape for i in infos])
    dynamic = all(i.shape and i.shape[0] in (-1, 0) for i in infos)  # every input batches: BATCH rows per run
    rows = batch_count(x)
    n = rows if dynamic or units[0] <= 1 else -(-rows // units[0])  # a short last sample is padded below
    step = BATCH if dynamic else 1
    outs: list[list[np.ndarray]] = [[] for _ in runner.outputs]
    for i in range(0, n, step):
        chunks = [take_feed(a, u, i, min(step, n - i)) for a, u in zip(arrays, units, strict=True)]
        got = [c.shape[0] if c.ndim else 1 for c in chunks]
        pad = [max(u - g, 0) if u > 0 else 0 for u, g in zip(units, got, strict=True)]
        if not dynamic and any(pad):  # a short last sample of a fixed-size input: zeros, trimmed from the outputs
            chunks = [np.concatenate([c, np.zeros((p, *c.shape[1:]), c.dtype)]) if p else c
                      for c, p in zip(chunks, pad, strict=True)]
        ys = runner.run([to_model_input(c, info) for c, info in zip(chunks, infos, strict=True)])
        for k, (y, info) in enumerate(zip(ys, runner.outputs, strict=True)):
            y = from_model_output(y, info)
            y = y.reshape(1) if y.ndim == 0 else y  # a 0-d output is one row per sample
            outs[k].append(y[: y.shape[0] - pad[0]] if pad[0] and y.shape[0] == units[0] else y)
    results = [np.concatenate(o) for o in outs]
    if outputs is None:
        return results
    order = output_order(runner.output_keys, [r.shape for r in results], outputs)
    return [results[j] for j in order]


def predict(path: Path, x: Batch, threads: int = 1, xnnpack: bool = True) -> np.ndarray:
    """First output of the artifact for every sample, as float32 (dequantized), flattened per sample."""
    first = predict_outputs(path, x, None, threads, xnnpack)[0]
    return first.reshape(first.shape[0], -1)


def _feed_order(keys: Sequence[str], infos: Sequence[TensorInfo], x: Batch) -> list[np.ndarray]:
    """The arrays of `x` in the runner's input order: by name (signature key or tensor name), else in order."""
    if isinstance(x, np.ndarray):
        if len(infos) != 1:
            msg = f"the model has {len(infos)} inputs ({', '.join(keys)}); give one array per input name"
            raise DataError(msg)
        return [x]
    by_name = dict(x)
    out = []
    for key, info in zip(keys, infos, strict=True):
        hit = next((by_name[c] for c in (key, info.name, plain_name(info.name)) if c in by_name), None)
        if hit is None:
            break
        out.append(hit)
    else:
        return out
    if len(by_name) == len(infos):
        return list(by_name.values())
    msg = f"the artifact's inputs ({', '.join(keys)}) do not match the data's arrays ({', '.join(by_name)})"
    raise DataError(msg)


def output_order(keys: Sequence[str], shapes: Sequence[tuple[int, ...]], want: Sequence[IOSpec]) -> list[int]:
    """For each wanted output, the index of the artifact output that is it: by name, by the SavedModel signature
    key `output_<i>`, by a per-sample shape no other output has, then in order."""
    taken: set[int] = set()
    chosen: list[int | None] = [None] * len(want)
    for i, spec in enumerate(want):
        for j, key in enumerate(keys):
            if j not in taken and key in (spec.name, f"output_{i}"):
                chosen[i] = j
                taken.add(j)
                break
    for i, spec in enumerate(want):
        if chosen[i] is not None:
            continue
        fits = [j for j in range(len(keys)) if j not in taken and _same_shape(shapes[j], spec.shape)]
        if len(fits) == 1:
            chosen[i] = fits[0]
            taken.add(fits[0])
    rest = iter(j for j in range(len(keys)) if j not in taken)
    return [c if c is not None else next(rest) for c in chosen]


def _same_shape(got: tuple[int, ...], want: tuple[int | None, ...]) -> bool:
    return len(got) == len(want) and all(w is None or w == g for g, w in zip(got[1:], want[1:], strict=True))


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


def compare(outputs: np.ndarray | Sequence[np.ndarray], reference: np.ndarray | Sequence[np.ndarray],
            labels: np.ndarray | None, reference_name: str, metrics: Sequence[AccuracyMetric] | None = None,
            names: Sequence[str] = (), target: AccuracyTarget | None = None) -> AccuracyResult:
    """Score every output against the float model's (`reference`, same order) with `metrics` (one per output;
    None: `auto` on the arrays' shapes) and optional integer labels (for the top1 output); `target` (its metrics
    win over `metrics`) also says whether every output is within its budget."""
    if target is not None:
        metrics, names = target.metrics, target.names
    outs = [outputs] if isinstance(outputs, np.ndarray) else list(outputs)
    refs = [reference] if isinstance(reference, np.ndarray) else list(reference)
    labelled = labels is not None and labels.dtype.kind in "iu" and labels.reshape(-1).shape[0] == outs[0].shape[0]
    specs = [IOSpec(names[k] if k < len(names) else f"output_{k}", (None, *r.shape[1:])) for k, r in enumerate(refs)]
    if metrics is None:
        metrics = resolve_metrics(AccuracyMetric.AUTO, specs, labelled, refs)
    scores = tuple(score(s.name, m, o, r, labels if m is AccuracyMetric.TOP1 else None)
                   for s, m, o, r in zip(specs, metrics, outs, refs, strict=True))
    p = scores[0]
    agree = p.agreement if p.agreement is not None else (p.value if p.metric is AccuracyMetric.AGREEMENT else None)
    return AccuracyResult(str(p.metric), reference_name, p.value if p.metric is AccuracyMetric.TOP1 else None,
                          p.reference_value, p.drop, agree, p.snr_db, int(outs[0].shape[0]), scores,
                          None if target is None else met(scores, target))
