"""Partial quantization with accuracy control.

Start from full int8; while the eval accuracy drop exceeds the budget, move the most
sensitive op (lowest SNR, see quantize/sensitivity/) out of int8 -- one at a time, re-measuring
each time -- then, if allowed, try int16x8 activations for the whole model. Every attempt
is a row (size, accuracy, p50 latency, ops out of int8); the first row within budget wins.
When none is, the result says so (`met` False) and carries the best row: the caller decides.

Backends (TFLite via the QuantizationDebugger's denylisted nodes, a float .tflite via ai-edge-quantizer's ops
kept float, ONNX via `quantize_static(nodes_to_exclude=...)`) implement the small `Backend` protocol;
the loop itself does not know which one it drives.
"""

from __future__ import annotations

import contextlib
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from edgeopt.data.tensors import Batch, IOSpec, batch_count
from edgeopt.errors import DataError, InputError, ProfileError
from edgeopt.profiles.schema import CalibrationMethod, Fallback, IOType, Profile, QuantFormat, Scheme
from edgeopt.quantize.sensitivity import LayerSensitivity, rank
from edgeopt.runtime.verify_onnx import load_onnx
from edgeopt.vocabulary import DeviceClass

if TYPE_CHECKING:
    from edgeopt.validate.metrics import AccuracyTarget

ALL_LAYERS = "*"  # out_of_int8 marker for a whole-model int16x8 step


@dataclass(frozen=True)
class PartialSettings:
    max_accuracy_drop: float  # percentage points against the float model
    fallbacks: tuple[Fallback, ...] = (Fallback.FLOAT,)
    keep_float: tuple[str, ...] = ()  # regexes (op name or layer label) never quantized to int8
    max_steps: int = 8
    control: bool = True  # False ([partial] accuracy_control = false): one int8 step with keep_float ops float
    per_channel: bool = True
    int8_io: bool = False  # int8 input/output (fully quantized; TFLite only)
    calibration_method: CalibrationMethod = CalibrationMethod.MINMAX  # ONNX and float .tflite (minmax, percentile)
    quant_format: QuantFormat = QuantFormat.QDQ  # ONNX only
    unsigned_activations: bool = False  # ONNX only: U8S8 instead of S8S8
    benchmark: bool = True  # p50 latency per step
    mcu: bool = False  # float .tflite only: every variant is checked on host TFLite Micro against LiteRT
    threads: int = 1
    # the metric and budget of every output (edgeopt.validate.metrics); None: top-1 / agreement of the first output
    # against max_accuracy_drop. `outputs` names and shapes them, to match the artifact's outputs.
    target: AccuracyTarget | None = None
    outputs: tuple[IOSpec, ...] = ()

    def __post_init__(self) -> None:
        if self.max_accuracy_drop < 0:
            msg = f"max accuracy drop must be >= 0 points, got {self.max_accuracy_drop}"
            raise InputError(msg)
        if not self.fallbacks:
            msg = "partial quantization needs at least one fallback (float or int16x8)"
            raise InputError(msg)
        if self.keep_float and Fallback.FLOAT not in self.fallbacks:
            msg = "partial.keep_float needs 'float' in partial.fallbacks"
            raise ProfileError(msg)
        for p in self.keep_float:
            try:
                re.compile(p)
            except re.error as exc:
                msg = f"keep_float pattern '{p}' is not a valid regular expression ({exc})"
                raise InputError(msg) from None


def settings_from_profile(profile: Profile) -> PartialSettings:
    """PartialSettings for a profile with a [partial] section and budgets.max_accuracy_drop."""
    part = profile.partial
    if part is None or not (part.accuracy_control or part.keep_float):
        msg = f"profile '{profile.name}' has no [partial] section with accuracy_control = true or keep_float"
        raise ProfileError(msg)
    drop = profile.budgets.max_accuracy_drop
    if drop is None:  # the Profile validator requires it with accuracy_control; keep_float alone has no budget
        assert not part.accuracy_control
        drop = 100.0
    q = profile.quantize
    return PartialSettings(
        max_accuracy_drop=drop, fallbacks=part.fallbacks, keep_float=part.keep_float, max_steps=part.max_steps,
        control=part.accuracy_control,
        per_channel=q.per_channel, int8_io=q.input_type is IOType.INT8 and q.output_type is IOType.INT8,
        calibration_method=q.calibration_method, quant_format=q.onnx_format,
        threads=max(1, profile.runtime.threads), mcu=profile.device_class is DeviceClass.EMBEDDED_MCU,
    )


@dataclass(frozen=True)
class PartialStep:
    step: int
    scheme: str  # "int8", "int8+float" or "int16x8"
    out_of_int8: tuple[str, ...]  # op names kept out of int8 ("*" = every op, for int16x8)
    layers: tuple[str, ...]  # the same, as readable layer labels
    size_bytes: int
    accuracy: float | None  # top-1 percent (None without integer labels)
    accuracy_drop: float  # points vs the float model (100 - agreement without labels)
    latency_p50_ms: float | None
    within_budget: bool
    metric: str = ""  # the primary output's metric, when a target chose it (top1, agreement, snr, ...)
    figure: float | None = None  # its budget figure: points lost (top1/agreement), dB (snr), cosine, max abs error


@dataclass(frozen=True)
class PartialResult:
    backend: str  # "tflite" or "onnx"
    max_accuracy_drop: float
    float_accuracy: float | None
    sensitivity: tuple[LayerSensitivity, ...]  # graph order
    steps: tuple[PartialStep, ...]
    chosen: int  # index into steps: the first within budget, else the best
    met: bool
    model: bytes = field(default=b"", repr=False, compare=False)  # the chosen artifact
    controlled: bool = True  # False: keep_float alone (no loop, no budget sought)

    @property
    def chosen_step(self) -> PartialStep:
        return self.steps[self.chosen]

    def shortfall(self) -> str | None:
        """None when the budget is met, else one sentence on what was tried and what was kept."""
        if self.met or not self.controlled:
            return None
        best = self.chosen_step
        if best.metric and best.metric not in ("top1", "agreement") and best.figure is not None:
            return (f"accuracy control ([partial]) did not meet the {best.metric} budget: {len(self.steps)} variant(s) "
                    f"tried; kept the best (step {best.step}, {best.scheme}, {len(best.layers)} op(s) out of int8), "
                    f"{best.metric} {best.figure:.4g}")
        return (f"accuracy control ([partial]) did not meet max_accuracy_drop {self.max_accuracy_drop:g} points: "
                f"{len(self.steps)} variant(s) tried; kept the best (step {best.step}, {best.scheme}, "
                f"{len(best.layers)} op(s) out of int8), which drops {best.accuracy_drop:.2f} points")


class Backend(Protocol):
    suffix: str
    float_model: bytes

    def sensitivity(self) -> tuple[LayerSensitivity, ...]: ...

    def int8(self, float_nodes: tuple[str, ...]) -> bytes: ...

    def int16x8(self) -> bytes | None: ...


# ------------------------------------------------------------------------------------------ the loop


def _matches(row: LayerSensitivity, patterns: tuple[str, ...]) -> bool:
    return any(re.search(p, row.name) or re.search(p, row.layer) for p in patterns)


@dataclass
class _Evaluator:
    backend: Backend
    x: Batch
    y: np.ndarray | None
    settings: PartialSettings
    tmp: Path
    reference: list[np.ndarray] = field(init=False)
    float_accuracy: float | None = field(init=False)

    def __post_init__(self) -> None:
        from edgeopt.validate.accuracy import top1

        ref_path = self._write(self.backend.float_model, "float")
        self.reference = self._predict(ref_path)
        self.reference[0] = self.reference[0].reshape(self.reference[0].shape[0], -1)
        labels = self.y is not None and self.y.dtype.kind in "iu"
        self.float_accuracy = top1(self.reference[0], self.y) if labels and self.y is not None else None

    def _predict(self, path: Path) -> list[np.ndarray]:
        from edgeopt.validate.accuracy import predict, predict_outputs

        if self.settings.target is None:
            return [predict(path, self.x, self.settings.threads)]
        return predict_outputs(path, self.x, self.settings.outputs or None, self.settings.threads)

    def _write(self, data: bytes, name: str) -> Path:
        p = self.tmp / f"{name}{self.backend.suffix}"
        p.write_bytes(data)
        return p

    def measure(self, step: int, scheme: str, data: bytes, out: tuple[str, ...], labels: tuple[str, ...]) -> PartialStep:
        from edgeopt.validate.accuracy import compare

        path = self._write(data, f"step{step}")
        outs = self._predict(path)
        outs[0] = outs[0].reshape(outs[0].shape[0], -1)
        res = compare(outs, self.reference, self.y, "float", target=self.settings.target)
        drop = float(res.drop if res.drop is not None else 100.0 - (res.agreement or 0.0))
        within = drop <= self.settings.max_accuracy_drop + 1e-9 if res.met is None else res.met
        p = res.primary if self.settings.target is not None else None
        p50 = None
        if self.settings.benchmark:
            from edgeopt.benchmark.protocol import BenchSettings, run_benchmark

            bench = run_benchmark(path, BenchSettings(threads=self.settings.threads, warmup_runs=2, warmup_seconds=0.0,
                                                      runs=20, min_seconds=0.05, max_seconds=5.0))
            p50 = float(bench.latency.p50)
        return PartialStep(step, scheme, out, labels, len(data), res.value, round(drop, 6), p50, within,
                           "" if p is None else str(p.metric), None if p is None else round(p.figure, 6))


def _badness(step: PartialStep) -> float:
    """Larger is worse: points lost, or (a metric that must stay high, snr / cosine) its negative."""
    if step.figure is None or step.metric in ("", "top1", "agreement", "max-abs"):
        return step.accuracy_drop if step.figure is None else step.figure
    return -step.figure


def _best(steps: list[PartialStep], samples: int) -> int:
    """No step met the budget: the most accurate, and of the steps tied with it within one eval sample the fastest
    (when timed), then the earliest (the most int8)."""
    from edgeopt.validate.metrics import CLASS_METRICS, tie_margin
    from edgeopt.vocabulary import AccuracyMetric

    top = min(range(len(steps)), key=lambda i: (_badness(steps[i]), i))
    metric = AccuracyMetric(steps[top].metric) if steps[top].metric else CLASS_METRICS[0]
    margin = tie_margin(metric, samples)
    level = [i for i, s in enumerate(steps) if s.metric == steps[top].metric
             and abs(_badness(s) - _badness(steps[top])) <= margin]
    return min(level, key=lambda i: (float("inf") if steps[i].latency_p50_ms is None else steps[i].latency_p50_ms, i))


def _check_eval(eval_x: Batch | None) -> None:
    if eval_x is None or batch_count(eval_x) == 0:
        msg = "accuracy control needs eval data; give --eval data.npz (x, y)"
        raise DataError(msg)


def _floats(x: Batch) -> Batch:
    """Float inputs as float32; integer inputs (ids, sizes beside a float input) keep their dtype."""
    if isinstance(x, np.ndarray):
        return np.asarray(x, np.float32)
    return {k: v.astype(np.float32) if v.dtype.kind == "f" else v for k, v in x.items()}


def control_accuracy(backend: Backend, eval_x: Batch, eval_y: np.ndarray | None, settings: PartialSettings,
                     backend_name: str) -> PartialResult:
    """Run the accuracy-control loop on `backend`. When no variant meets the budget, `met` is False and the
    best variant is chosen; deciding what that means (the build's max_accuracy_drop budget) is the caller's."""
    _check_eval(eval_x)
    sens = backend.sensitivity()
    label = {r.name: r.layer for r in sens}
    forced = tuple(r.name for r in sens if settings.keep_float and _matches(r, settings.keep_float))
    queue = [r.name for r in rank(sens) if r.name not in forced]
    steps: list[PartialStep] = []
    models: list[bytes] = []
    with tempfile.TemporaryDirectory(prefix="edgeopt-partial-") as tmp:
        ev = _Evaluator(backend, _floats(eval_x), eval_y, settings, Path(tmp))

        def attempt(scheme: str, data: bytes, out: tuple[str, ...]) -> bool:
            labels = ("all",) if out == (ALL_LAYERS,) else tuple(label.get(n, n) for n in out)
            steps.append(ev.measure(len(steps), scheme, data, out, labels))
            models.append(data)
            return steps[-1].within_budget

        out = forced
        done = attempt("int8+float" if out else "int8", backend.int8(out), out)
        if not settings.control:  # keep_float only: that one variant, whatever it scores
            return PartialResult(backend_name, settings.max_accuracy_drop, ev.float_accuracy, sens, tuple(steps),
                                 0, done, models[0], controlled=False)
        if not done and Fallback.FLOAT in settings.fallbacks:
            for name in queue[: settings.max_steps]:
                out = out + (name,)
                if attempt("int8+float", backend.int8(out), out):
                    done = True
                    break
        if not done and Fallback.INT16X8 in settings.fallbacks:
            data16 = backend.int16x8()
            if data16 is not None:
                done = attempt("int16x8", data16, (ALL_LAYERS,))
    chosen = len(steps) - 1 if done else _best(steps, batch_count(eval_x))
    return PartialResult(backend_name, settings.max_accuracy_drop, ev.float_accuracy, sens, tuple(steps),
                         chosen, done, models[chosen])


# ------------------------------------------------------------------------------------------ TFLite


class TfliteBackend:
    suffix = ".tflite"

    def __init__(self, session: Any, saved_model: Path, calib_x: Batch, settings: PartialSettings) -> None:
        self._session, self._sm, self._calib, self._settings = session, saved_model, calib_x, settings
        self.float_model = session.float_model

    def sensitivity(self) -> tuple[LayerSensitivity, ...]:
        return self._session.sensitivity()

    def int8(self, float_nodes: tuple[str, ...]) -> bytes:
        return self._session.quantized(float_nodes)

    def int16x8(self) -> bytes | None:
        from edgeopt.profiles.schema import Scheme
        from edgeopt.quantize.tflite import TfliteRecipe, quantized_tflite

        io = IOType.INT16 if self._settings.int8_io else IOType.FLOAT32
        recipe = TfliteRecipe(Scheme.INT16X8, io, io, self._settings.per_channel, self._calib)
        return quantized_tflite(self._sm, recipe)


def partial_quantize_tflite(model: Any, calib_x: Batch, eval_x: Batch, eval_y: np.ndarray | None,
                            settings: PartialSettings) -> PartialResult:
    """Accuracy-controlled int8 .tflite from a Keras model or SavedModel folder; `result.model` is the artifact."""
    from edgeopt.convert.savedmodel import temporary_saved_model
    from edgeopt.quantize.sensitivity import TfliteDebugSession, keras_layer_names

    _check_eval(eval_x)
    names = () if isinstance(model, str | Path) else keras_layer_names(model)
    with temporary_saved_model(model) as sm:
        session = TfliteDebugSession(sm, calib_x, settings.per_channel, settings.int8_io, names)
        return control_accuracy(TfliteBackend(session, sm, _floats(calib_x), settings),
                                eval_x, eval_y, settings, "tflite")


# ------------------------------------------------------------------------------------------ float .tflite


class TfliteFileBackend:
    """A float .tflite (onnx2tf's, or the user's) through ai-edge-quantizer, no TensorFlow anywhere.

    sensitivity: edgeopt.quantize.sensitivity.tflite_file (each op's local error: its float output on the int8
    grid + its weights' error, from the float model run in LiteRT and the full-int8 model's scales);
    int8(ops): `quantize_tflite_file` with those ops (by output tensor name) kept float; int16x8: the same
    quantizer's 16-bit-activation recipe. Every variant runs in LiteRT before the loop sees it, and with
    `settings.mcu` on host TFLite Micro too (a disagreement is exit 3 naming the op).
    """

    suffix = ".tflite"

    def __init__(self, float_tflite: Path, calib_x: Batch, settings: PartialSettings, tmp: Path) -> None:
        from edgeopt.analysis.tflite_graph import read_tflite

        self._src, self._calib, self._settings, self._tmp = Path(float_tflite), calib_x, settings, tmp
        self.float_model = self._src.read_bytes()
        main = read_tflite(self._src).main
        self._op_of = {main.tensors[o].name: op.index for op in reversed(main.operators) for o in op.outputs if o >= 0}
        self._plain: bytes | None = None
        self._n = 0

    def _quantize(self, scheme: Scheme, keep: tuple[int, ...], io: IOType) -> bytes:
        from edgeopt.quantize.tflite_file import TfliteFileOptions, quantize_tflite_file

        self._n += 1
        s = self._settings
        options = TfliteFileOptions(per_channel=s.per_channel, statistic=s.calibration_method, input_type=io,
                                    output_type=io, keep_float=keep, mcu=s.mcu)
        dst = self._tmp / f"q{self._n}.tflite"
        quantize_tflite_file(self._src, dst, scheme, self._calib, options)
        return dst.read_bytes()

    def sensitivity(self) -> tuple[LayerSensitivity, ...]:
        from edgeopt.quantize.sensitivity.tflite_file import sensitivity_tflite_file

        plain = self.int8(())
        path = self._tmp / "int8.tflite"
        path.write_bytes(plain)
        return sensitivity_tflite_file(self._src, path, self._calib)

    def int8(self, float_nodes: tuple[str, ...]) -> bytes:
        if not float_nodes and self._plain is not None:
            return self._plain  # the full-int8 model the sensitivity was measured on
        keep = tuple(self._op_of[n] for n in float_nodes)
        data = self._quantize(Scheme.INT8, keep, IOType.INT8 if self._settings.int8_io else IOType.FLOAT32)
        if not float_nodes:
            self._plain = data
        return data

    def int16x8(self) -> bytes | None:
        return self._quantize(Scheme.INT16X8, (), IOType.INT16 if self._settings.int8_io else IOType.FLOAT32)


def partial_quantize_tflite_file(float_tflite: Path, calib_x: Batch, eval_x: Batch, eval_y: np.ndarray | None,
                                 settings: PartialSettings) -> PartialResult:
    """Accuracy-controlled int8 .tflite from a float .tflite (data in its layout); `result.model` is the artifact."""
    _check_eval(eval_x)
    with tempfile.TemporaryDirectory(prefix="edgeopt-partial-tflite-") as tmp:
        return control_accuracy(TfliteFileBackend(Path(float_tflite), _floats(calib_x), settings, Path(tmp)),
                                eval_x, eval_y, settings, "tflite-file")


# ------------------------------------------------------------------------------------------ ONNX


class OnnxBackend:
    suffix = ".onnx"

    def __init__(self, float_onnx: Path, calib_x: Batch, settings: PartialSettings, tmp: Path) -> None:
        self._src, self._calib, self._settings, self._tmp = Path(float_onnx), calib_x, settings, tmp
        self.float_model = self._src.read_bytes()
        self._n = 0
        self._followers = _activation_followers(self._src, tmp)

    def _expand(self, names: tuple[str, ...]) -> tuple[str, ...]:
        """Excluding a node must exclude the Relu/Clip after it too, or the QDQ pass drops the activation."""
        out = list(names)
        for n in names:
            out += [f for f in self._followers.get(n, ()) if f not in out]
        return tuple(out)

    def sensitivity(self) -> tuple[LayerSensitivity, ...]:
        from edgeopt.quantize.sensitivity import sensitivity_onnx

        return sensitivity_onnx(self._src, self._calib, self._settings.per_channel)

    def int8(self, float_nodes: tuple[str, ...]) -> bytes:
        from edgeopt.profiles.schema import Scheme
        from edgeopt.quantize.onnx import OnnxRecipe, quantize_onnx

        self._n += 1
        dst = self._tmp / f"q{self._n}.onnx"
        s = self._settings
        quantize_onnx(self._src, dst, OnnxRecipe(Scheme.INT8, per_channel=s.per_channel,
                                                 calibration_method=s.calibration_method, quant_format=s.quant_format,
                                                 calibration=self._calib, nodes_to_exclude=self._expand(float_nodes),
                                                 unsigned_activations=s.unsigned_activations))
        return dst.read_bytes()

    def int16x8(self) -> bytes | None:
        return None  # TFLite-only scheme


def _activation_followers(src: Path, tmp: Path) -> dict[str, tuple[str, ...]]:
    """Node -> the Relu/Clip nodes fed only by it, in the graph onnxruntime quantizes (after pre-processing)."""
    import io

    from onnxruntime.quantization.shape_inference import quant_pre_process

    pre = tmp / "pre.onnx"
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        graph = load_onnx(pre, check=False).graph
    except Exception:  # noqa: BLE001 - pre-processing is optional in edgeopt.quantize.onnx too
        graph = load_onnx(src, check=False).graph
    producer = {o: n.name for n in graph.node for o in n.output}
    follow: dict[str, list[str]] = {}
    for n in graph.node:
        if n.op_type in ("Relu", "Clip") and n.input and n.input[0] in producer:
            follow.setdefault(producer[n.input[0]], []).append(n.name)
    return {k: tuple(v) for k, v in follow.items()}


def partial_quantize_onnx(float_onnx: Path, calib_x: Batch, eval_x: Batch, eval_y: np.ndarray | None,
                          settings: PartialSettings) -> PartialResult:
    """Accuracy-controlled QDQ int8 .onnx from a float .onnx; `result.model` is the artifact."""
    _check_eval(eval_x)
    load_onnx(float_onnx)  # checked, external data confined, before onnxruntime's tools open it
    if Fallback.INT16X8 in settings.fallbacks and Fallback.FLOAT not in settings.fallbacks:
        msg = "int16x8 is TFLite-only; ONNX partial quantization needs the 'float' fallback"
        raise ProfileError(msg)
    with tempfile.TemporaryDirectory(prefix="edgeopt-partial-onnx-") as tmp:
        return control_accuracy(OnnxBackend(Path(float_onnx), _floats(calib_x), settings, Path(tmp)),
                                eval_x, eval_y, settings, "onnx")
