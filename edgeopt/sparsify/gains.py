"""What sparsity buys, measured per artifact: bytes (raw, gzip, TFLite sparse encoding), whether
LiteRT runs the artifact, its accuracy, and its latency against the dense model (interleaved).

Variants (all from the same two Keras models, dense original and sparsified):
- int8 dense / int8 sparse: full-integer conversion; the zeros are stored as ordinary int8 zeros.
- int8 sparse-encoded: the converter's EXPERIMENTAL_SPARSITY, which stores eligible weights in
  TFLite's sparse tensor format.
- float32 sparse / float32 sparse-encoded: the same weights, dense-stored and sparse-encoded. LiteRT's
  XNNPACK delegate sets XNN_FLAG_HINT_SPARSE_INFERENCE by itself when a float model carries sparse
  (DENSIFY) weights; the Python API has no switch for it, so this pair is the with/without measurement.
"""

from __future__ import annotations

import gzip
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeopt.sparsify.artifact import weight_zeros, zeros_by_layer

INT8_DENSE, INT8_SPARSE, INT8_ENCODED = "int8 dense", "int8 sparse", "int8 sparse-encoded"
F32_DENSE, F32_SPARSE, F32_ENCODED = "float32 dense", "float32 sparse", "float32 sparse-encoded"
BASELINE = {INT8_SPARSE: INT8_DENSE, INT8_ENCODED: INT8_DENSE, F32_SPARSE: F32_DENSE, F32_ENCODED: F32_SPARSE}
NO_SPEEDUP = 0.95  # ratios in [0.95, 1/0.95] are "no speed-up"; above it says slower


def gzip_size(data: bytes) -> int:
    return len(gzip.compress(data, compresslevel=9, mtime=0))


@dataclass(frozen=True)
class Artifact:
    variant: str
    file: str
    raw_bytes: int
    gzip_bytes: int
    sparse_tensors: int  # weight tensors stored in TFLite's sparse format
    weight_zeros: int  # zero weights over all kernels of the file
    weights: int
    runs: bool  # LiteRT opened and ran it
    error: str | None
    top1: float | None  # LiteRT top-1 on the eval data, percent
    latency_p50_ms: float | None = None
    latency_ratio: float | None = None  # p50 / p50 of its baseline (BASELINE), interleaved
    baseline: str | None = None
    delegate: str = "xnnpack"  # what it ran with: XNNPACK, or LiteRT's builtin kernels when XNNPACK refused it

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Gains:
    artifacts: tuple[Artifact, ...]
    int8_layer_sparsity: tuple[tuple[str, int, int], ...]  # (layer, weights, zeros) in the int8 sparse file
    latency_statement: str
    xnnpack_sparse: str
    mcu_flash: str

    @property
    def int8_sparsity(self) -> float:
        """Zeros / weights over the sparsified kernels, read back from the int8 .tflite."""
        n = sum(w for _, w, _ in self.int8_layer_sparsity)
        return sum(z for _, _, z in self.int8_layer_sparsity) / max(1, n)

    def artifact(self, variant: str) -> Artifact:
        return next(a for a in self.artifacts if a.variant == variant)

    def to_dict(self) -> dict[str, Any]:
        return {"artifacts": [a.to_dict() for a in self.artifacts],
                "int8_layer_sparsity": [{"layer": n, "weights": w, "zeros": z} for n, w, z in self.int8_layer_sparsity],
                "int8_sparsity": self.int8_sparsity, "latency_statement": self.latency_statement,
                "xnnpack_sparse": self.xnnpack_sparse, "mcu_flash": self.mcu_flash}


def _with_sparsity(setup: Any) -> Any:
    def s(conv: Any) -> None:
        import tensorflow as tf

        if setup is not None:
            setup(conv)
        conv.optimizations = [o for o in (conv.optimizations or [])] + [tf.lite.Optimize.EXPERIMENTAL_SPARSITY]

    return s


def convert_variants(dense: Any, sparse: Any, calibration: np.ndarray) -> dict[str, bytes]:
    """The six .tflite variants as bytes."""
    from edgeopt.convert.savedmodel import export_saved_model
    from edgeopt.convert.tflite import to_tflite
    from edgeopt.profiles.schema import Scheme
    from edgeopt.quantize.tflite import TfliteRecipe, converter_setup

    int8 = converter_setup(TfliteRecipe(Scheme.INT8, calibration=calibration))
    with tempfile.TemporaryDirectory(prefix="edgeopt-sg-") as tmp:
        d = export_saved_model(dense, Path(tmp) / "dense")
        s = export_saved_model(sparse, Path(tmp) / "sparse")
        return {
            INT8_DENSE: to_tflite(d, int8), INT8_SPARSE: to_tflite(s, int8), INT8_ENCODED: to_tflite(s, _with_sparsity(int8)),
            F32_DENSE: to_tflite(d), F32_SPARSE: to_tflite(s), F32_ENCODED: to_tflite(s, _with_sparsity(None)),
        }


def _run_once(path: Path, evaluate: tuple[np.ndarray, np.ndarray | None] | None, xnnpack: bool) -> float | None:
    """Run the artifact on the eval data (or one random input); top-1 when there are integer labels."""
    from edgeopt.validate.accuracy import predict, top1

    if evaluate is None:
        from edgeopt.benchmark.inputs import make_feeds
        from edgeopt.runtime import RunnerOptions
        from edgeopt.runtime.registry import open_runner

        r = open_runner(path, RunnerOptions(xnnpack=xnnpack))
        r.run(make_feeds(r.inputs, 0))
        return None
    out = predict(path, evaluate[0], xnnpack=xnnpack)
    y = evaluate[1]
    return top1(out, y) if y is not None and y.dtype.kind in "iu" else None


def _why(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text.split("LiteRT cannot load the model: ")[-1][:200]  # drop the (temporary) path


def _try_run(path: Path, evaluate: tuple[np.ndarray, np.ndarray | None] | None) -> tuple[bool, str, str | None, float | None]:
    """(runs, delegate, error, top-1): with XNNPACK, else with LiteRT's builtin kernels."""
    try:
        return True, "xnnpack", None, _run_once(path, evaluate, True)
    except Exception as exc:  # noqa: BLE001 - whatever the runtime says is the finding
        refused = _why(exc)
    try:
        return True, f"none (XNNPACK refused: {refused})", None, _run_once(path, evaluate, False)
    except Exception as exc:  # noqa: BLE001
        return False, "", f"XNNPACK: {refused}; builtin kernels: {_why(exc)}", None


def _statement(arts: dict[str, Artifact]) -> str:
    parts = []
    for v in (INT8_SPARSE, INT8_ENCODED, F32_ENCODED):
        a = arts.get(v)
        if a is None or a.latency_ratio is None:
            continue
        r = a.latency_ratio
        verdict = (f"{1 / r:.2f}x faster" if r < NO_SPEEDUP else "no speed-up" if r <= 1 / NO_SPEEDUP
                   else f"no speed-up: {r:.2f}x slower")
        parts.append(f"{v}: {a.latency_ratio:.2f}x the p50 of {a.baseline} ({verdict})")
    if not parts:
        return "latency not measured"
    return "; ".join(parts)


def measure_gains(dense: Any, sparse: Any, layers: Sequence[str], calibration: np.ndarray,
                  evaluate: tuple[np.ndarray, np.ndarray | None] | None = None, out_dir: Path | None = None,
                  bench: Any | None = None) -> Gains:
    """Convert, read back, run and (with `bench`, BenchSettings) time the variants interleaved.

    Files go to `out_dir` when given (named after the variant), else to a temporary folder.
    """
    from edgeopt.benchmark.protocol import run_interleaved

    blobs = convert_variants(dense, sparse, calibration)
    with tempfile.TemporaryDirectory(prefix="edgeopt-sg-") as tmp:
        where = Path(out_dir) if out_dir is not None else Path(tmp)
        arts: dict[str, Artifact] = {}
        for variant, data in blobs.items():
            path = where / (variant.replace(" ", "_") + ".tflite")
            path.write_bytes(data)
            wz = weight_zeros(data)
            runs, delegate, err, acc = _try_run(path, evaluate)
            arts[variant] = Artifact(variant, str(path) if out_dir is not None else path.name, len(data), gzip_size(data),
                                     sum(w.sparse_encoded for w in wz), sum(w.zeros for w in wz),
                                     sum(w.elements for w in wz), runs, err, acc, delegate=delegate)
        if bench is not None:
            def file(v: str) -> Path:
                return where / (v.replace(" ", "_") + ".tflite")

            timed = [v for v, a in arts.items() if a.runs and a.delegate == "xnnpack"]
            results = run_interleaved([file(v) for v in timed], bench)
            p50 = {v: r.latency.p50 for v, r in zip(timed, results, strict=True)}
            for v in timed:
                base = BASELINE.get(v)
                ratio = p50[v] / p50[base] if base in p50 and p50[base] > 0 else None
                arts[v] = _replace(arts[v], latency_p50_ms=p50[v], latency_ratio=ratio, baseline=base if ratio else None)
            for v, a in list(arts.items()):  # XNNPACK refused it: time it and its baseline on the builtin kernels
                base = BASELINE.get(v)
                if not a.runs or a.delegate == "xnnpack" or base is None or not arts[base].runs:
                    continue
                from dataclasses import replace as dc_replace

                b, c = run_interleaved([file(base), file(v)], dc_replace(bench, xnnpack=False))
                arts[v] = _replace(a, latency_p50_ms=c.latency.p50, latency_ratio=c.latency.p50 / b.latency.p50,
                                   baseline=f"{base} (both without XNNPACK)")
    per_layer = zeros_by_layer(blobs[INT8_SPARSE], layers)
    layer_rows = tuple((n, w.elements, w.zeros) for n, w in per_layer.items())
    return Gains(tuple(arts.values()), layer_rows, _statement(arts), XNNPACK_NOTE,
                 tflm_flash(blobs[INT8_SPARSE], [w.index for w in per_layer.values()]))


def tflm_flash(data: bytes, tensors: Sequence[int]) -> str:
    """Try TFLM's own compression of the sparsified tensors (its pruning method); say what flash that gives."""
    try:
        from tflite_micro.tensorflow.lite.micro.compression import compress, spec
    except ImportError:
        return "flash unchanged: tflite-micro is not installed here, so TFLM's compression could not be tried"
    if not tensors:
        return "flash unchanged: no sparsified weight tensor in the artifact"
    try:
        out = compress(data, [spec.Tensor(subgraph=0, tensor=i, compression=[spec.PruningCompression()]) for i in tensors])
    except Exception as exc:  # noqa: BLE001 - the compressor's refusal is the finding
        why = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        return (f"flash unchanged: the installed tflite-micro compression refuses pruning (sparsity) compression "
                f"of the {len(tensors)} sparsified tensors ('{why}'); its LUT method needs at most 2**bitwidth distinct "
                "values per tensor or channel, which zeros alone do not give (cluster for that), and TFLM has no "
                "kernel for TFLite's sparse tensor format")
    return f"TFLM pruning compression: {len(data):,} -> {len(out):,} bytes of flash for the model"


def _replace(a: Artifact, **kw: Any) -> Artifact:
    from dataclasses import replace

    return replace(a, **kw)


XNNPACK_NOTE = ("XNNPACK sparse inference has no switch in the ai-edge-litert Python API; the delegate hints it itself "
                "for float models whose weights are sparse-encoded (DENSIFY), on 1x1 convolutions in NCHW-compatible "
                "subgraphs, so 'float32 sparse-encoded' vs 'float32 sparse' (same weights) is the with/without measurement")


def measure_files(model_path: Path, result: Any, calib: Path, eval_data: Path | None, out_dir: Path | None = None,
                  unsafe_load: bool = False, bench: Any | None = "default") -> Gains:
    """measure_gains for a sparsify run: the dense model reloaded from `model_path`, the sparse one from `result`."""
    from edgeopt.benchmark.protocol import BenchSettings
    from edgeopt.convert.savedmodel import input_shape
    from edgeopt.data.datasets import check_against_input, load_dataset
    from edgeopt.load.keras_model import load_keras

    dense = load_keras(Path(model_path), unsafe=unsafe_load)
    shape = input_shape(dense)
    cal = check_against_input(load_dataset(calib, "calibration"), shape, "calibration").x
    ev = None
    if eval_data is not None:
        ds = check_against_input(load_dataset(eval_data, "eval"), shape, "eval")
        ev = (ds.x, ds.y)
    settings = BenchSettings(threads=1, runs=50, min_seconds=1.0) if bench == "default" else bench
    return measure_gains(dense, result.model, [x.layer for x in result.layers], cal, ev, out_dir, settings)
