"""An ONNX model for a TFLite profile: onnx2tf's float .tflite, proven against the ONNX model before quantizing.

The proof runs both models (onnxruntime, LiteRT) on the user's eval data, else calibration data, else random
samples of the input's fixed shape; an output under the profile's [convert] min_snr_db stops the build (exit 2).
Symbolic dimensions after the batch take their sizes from --shape (`sizes`): fixed so in the conversion, and
the random samples' size; with neither data nor --shape such an input is bad input, found before onnx2tf runs.
Samples are counted per input as one run takes them (data.tensors: a fixed first dimension N is N rows).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeopt.convert.onnx2tf_layout import Moved, TfliteLayout
from edgeopt.convert.registry import Converter
from edgeopt.data.datasets import Dataset
from edgeopt.data.tensors import Batch, IOSpec, batch_head, feed_unit, units_of
from edgeopt.errors import InputError
from edgeopt.load.source import Source
from edgeopt.profiles.schema import Profile
from edgeopt.report import schema as rs
from edgeopt.vocabulary import DeviceClass

PROOF_SAMPLES = 32


@dataclass(frozen=True)
class Converted:
    layout: TfliteLayout
    stage: rs.ConversionStage  # its quantizer is filled in once the artifact is quantized


def convert_onnx(source: Source, conv: Converter, profile: Profile, calib: Batch | None, evalset: Dataset | None,
                 dest: Path, sizes: Mapping[str, tuple[int, ...]] | None = None) -> Converted:
    """Write the float .tflite of `source` at `dest`, prove it, and say where every tensor went. `sizes`: input
    name -> dims from --shape, already checked against the model."""
    from edgeopt.validate.conversion_proof import check_proof, prove_conversion

    assert source.onnx_path is not None and conv.onnx_to_float is not None
    sizes = sizes or {}
    samples, origin = _proof_samples(source, calib, evalset, sizes)  # bad input before onnx2tf's seconds
    static = profile.device_class is DeviceClass.EMBEDDED_MCU  # TFLite Micro has no dynamic shapes: batch 1
    conversion = conv.onnx_to_float(source.onnx_path, dest, 1 if static else None, sizes)
    proof = prove_conversion(source.onnx_path, conversion, samples)
    limit = profile.convert.min_snr_db
    try:
        check_proof(proof, limit)
    except InputError as exc:
        exc.args = (f"{exc.args[0]} on the {origin}; check the model's ops, or lower [convert] min_snr_db",)
        raise
    layout = TfliteLayout.of(conversion)
    stage = rs.ConversionStage(
        converter=f"{conversion.tool} {conversion.version}", seconds=round(conversion.seconds, 3),
        samples=proof.samples, sample_source=origin, min_snr_db=limit,
        outputs=[rs.ConvertedOutput(name=o.name, tflite_name=o.tflite_name, max_abs=o.max_abs, snr_db=o.snr_db)
                 for o in proof.outputs],
        inputs_layout=[_tensor(m) for m in layout.inputs], outputs_layout=[_tensor(m) for m in layout.outputs],
        quantizer=None)
    return Converted(layout, stage)


def _tensor(m: Moved) -> rs.TensorLayout:
    return rs.TensorLayout(name=m.onnx_name, artifact_name=m.key, source_shape=list(m.onnx_shape),
                           artifact_shape=list(m.tflite_shape), layout=m.layout)


def _proof_samples(source: Source, calib: Batch | None, evalset: Dataset | None,
                   sizes: Mapping[str, tuple[int, ...]]) -> tuple[dict[str, np.ndarray], str]:
    units = units_of([s.shape for s in source.inputs])
    if evalset is not None:
        batch, origin = batch_head(evalset.batch, PROOF_SAMPLES, units), "eval data"
    elif calib is not None:
        batch, origin = batch_head(calib, PROOF_SAMPLES, units), "calibration data"
    else:
        rng = np.random.default_rng(0)
        batch, origin = {}, "random data"
        for spec in source.inputs:
            rows = RANDOM_SAMPLES * max(feed_unit(spec.shape), 1)  # whole samples: N rows each for a fixed first N
            shape = (rows, *_sized(source, spec, sizes.get(spec.name, ())))
            if np.dtype(spec.dtype).kind in "iub":
                batch[spec.name] = rng.integers(0, 3, shape, endpoint=True).astype(spec.dtype)
            else:
                batch[spec.name] = rng.random(shape, dtype=np.float32).astype(spec.dtype)
    if isinstance(batch, np.ndarray):
        return {source.inputs[0].name: batch}, origin
    return dict(batch), origin


RANDOM_SAMPLES = 8


def _sized(source: Source, spec: IOSpec, given: tuple[int, ...]) -> tuple[int, ...]:
    """The dims after the first of `spec`, its symbolic ones from --shape; InputError naming both fixes without."""
    dims = spec.shape[1:]
    if any(d is None for d in dims) and len(given) != len(spec.shape):
        pretty = "(" + ", ".join("N" if i == 0 and d is None else "?" if d is None else str(d)
                                 for i, d in enumerate(spec.shape)) + ")"
        example = "x".join("1" if i == 0 and d is None else "?" if d is None else str(d)
                           for i, d in enumerate(spec.shape))
        msg = (f"{source.path}: input '{spec.name}' has symbolic dimensions {pretty} and no data was given to "
               f"convert and prove it for TFLite at a size; give --calib or --eval data of the size you deploy, or "
               f"the size: --shape {spec.name}={example} (each ? a number)")
        raise InputError(msg)
    return tuple(int(d) if d is not None else int(given[i + 1]) for i, d in enumerate(dims))
