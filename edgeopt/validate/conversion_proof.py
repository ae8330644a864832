"""The proof that an ONNX -> float TFLite conversion kept the function: both models run on the same samples.

The ONNX model runs in onnxruntime on the samples as given (the ONNX layout, NCHW); the .tflite runs in LiteRT
on the same samples moved by the conversion's correspondence (NCHW -> NHWC where onnx2tf moved an input), and
its outputs are moved back. Every ONNX output is matched by name to its .tflite tensor and scored: max-abs
difference and SNR in dB over all samples. `check_proof` turns a tolerance into a one-line InputError naming
the output and the numbers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeopt.convert.onnx2tf import Evidence, Onnx2tfConversion
from edgeopt.data.onnx_samples import check_onnx_samples
from edgeopt.data.tensors import IOSpec, feed_unit, sample_count, take_feed
from edgeopt.errors import InputError
from edgeopt.runtime import RunnerOptions, open_runner
from edgeopt.runtime.base import Runner
from edgeopt.runtime.tensors import from_model_output, to_model_input
from edgeopt.validate.metrics import max_abs, snr_db

DEFAULT_MIN_SNR_DB = 60.0  # a float conversion differs by rounding only: 2e-8 max-abs on a small CNN
DEFAULT_MAX_ABS: float | None = None  # absolute differences depend on the output's scale; SNR does not


@dataclass(frozen=True)
class OutputAgreement:
    name: str  # the ONNX output
    tflite_name: str
    max_abs: float
    snr_db: float


@dataclass(frozen=True)
class ConversionProof:
    onnx: Path
    tflite: Path
    samples: int
    outputs: tuple[OutputAgreement, ...]


def prove_conversion(onnx_model: Path, conversion: Onnx2tfConversion, samples: Mapping[str, np.ndarray],
                     options: RunnerOptions | None = None) -> ConversionProof:
    """Run both models on `samples` (ONNX input name -> array in the ONNX layout, batch first) and compare, one
    run per sample: N rows of an input with a fixed first dimension N, one element of a 0-d input's 1-D array
    (data.onnx_samples counts them)."""
    options = options or RunnerOptions()
    ort = open_runner(Path(onnx_model), options)
    specs = tuple(IOSpec(i.name, tuple(None if d < 0 else d for d in i.shape), i.dtype) for i in ort.inputs)
    data = check_onnx_samples(specs, samples)
    for m in (*conversion.inputs, *conversion.outputs):
        if m.evidence is Evidence.AMBIGUOUS:
            msg = (f"the layout of '{m.onnx_name}' in the .tflite is ambiguous (ONNX {m.onnx_shape}, TFLite "
                   f"{m.tflite_shape}: identity and channels-last both fit); the proof cannot move data for it")
            raise InputError(msg)
    lite = open_runner(conversion.tflite, options)
    units = {s.name: feed_unit(s.shape) for s in specs}  # checked: every input holds the same sample count
    n_steps = sample_count(data[specs[0].name], units[specs[0].name]) if specs else 1
    ref: dict[str, list[np.ndarray]] = {o.name: [] for o in ort.outputs}
    got: dict[str, list[np.ndarray]] = {m.onnx_name: [] for m in conversion.outputs}
    for i in range(n_steps):
        feed = {n: take_feed(a, units[n], i) for n, a in data.items()}
        for info, y in zip(ort.outputs, ort.run([to_model_input(feed[s.name], info) for s, info in
                                                 zip(specs, ort.inputs, strict=True)]), strict=True):
            ref[info.name].append(from_model_output(np.asarray(y), info))
        for name, y in _run_tflite(lite, conversion, feed).items():
            got[name].append(y)
    outputs = []
    for m in conversion.outputs:
        if m.onnx_name not in ref:
            msg = f"ONNX output '{m.onnx_name}' is not an output of {onnx_model}; the conversion is of another model"
            raise InputError(msg)
        r, a = np.concatenate(ref[m.onnx_name]), np.concatenate(got[m.onnx_name])
        if r.shape != a.shape:
            msg = (f"output '{m.onnx_name}': onnxruntime gives shape {r.shape}, the .tflite {a.shape} after the layout "
                   "move; the conversion changed the output")
            raise InputError(msg)
        outputs.append(OutputAgreement(m.onnx_name, m.tflite_name, max_abs(r, a), snr_db(r, a)))
    return ConversionProof(Path(onnx_model), conversion.tflite, n_steps, tuple(outputs))


def _run_tflite(lite: Runner, conversion: Onnx2tfConversion, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """One run of the .tflite on a feed in the ONNX layout; outputs by ONNX name, moved back to the ONNX layout."""
    by_tensor = {m.tflite_name: m for m in conversion.inputs}
    feeds = []
    for info in lite.inputs:
        m = by_tensor.get(info.name)
        if m is None:
            msg = f".tflite input '{info.name}' has no ONNX input in the conversion's correspondence"
            raise InputError(msg)
        feeds.append(to_model_input(np.ascontiguousarray(_move(feed[m.onnx_name], m.perm)), info))
    results = dict(zip((o.name for o in lite.outputs), lite.run(feeds), strict=True))
    out = {}
    for m in conversion.outputs:
        info = next(o for o in lite.outputs if o.name == m.tflite_name)
        y = from_model_output(np.asarray(results[m.tflite_name]), info)
        out[m.onnx_name] = _move(y, _inverse(m.perm))
    return out


def _move(a: np.ndarray, perm: tuple[int, ...] | None) -> np.ndarray:
    if perm is None or perm == tuple(range(len(perm))) or a.ndim != len(perm):
        return a
    return a.transpose(perm)


def _inverse(perm: tuple[int, ...] | None) -> tuple[int, ...] | None:
    return None if perm is None else tuple(int(i) for i in np.argsort(perm))


def check_proof(proof: ConversionProof, min_snr_db: float = DEFAULT_MIN_SNR_DB,
                max_abs_limit: float | None = DEFAULT_MAX_ABS) -> None:
    """InputError naming the first output whose SNR is under `min_snr_db` or whose max-abs is over the limit."""
    for o in proof.outputs:
        if o.snr_db < min_snr_db or (max_abs_limit is not None and o.max_abs > max_abs_limit):
            limit = f"min {min_snr_db:g} dB" + (f", max-abs {max_abs_limit:g}" if max_abs_limit is not None else "")
            msg = (f"the converted {proof.tflite.name} differs from {proof.onnx.name} on output '{o.name}': SNR "
                   f"{o.snr_db:.1f} dB, max-abs {o.max_abs:.3g} over {proof.samples} sample(s) ({limit}); "
                   "the conversion did not keep the function")
            raise InputError(msg)

