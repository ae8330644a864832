"""TFLite sensitivity: error between float and int8, op by op, with the QuantizationDebugger.

`tf.lite.experimental.QuantizationDebugger` builds an int8 model with NumericVerify ops, so
each quantized op's output is compared with the float op run on the same (dequantized) inputs:
the error is local to that op. The float model, run with all tensors preserved, gives each op's
signal power for the SNR. MAC shares come from edgeopt.analysis.tflite_graph.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import math
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from edgeopt.convert.isolated import Stage, run
from edgeopt.data.tensors import Batch, batch_count
from edgeopt.errors import ConversionError, first_line
from edgeopt.quantize.sensitivity.common import LayerSensitivity, check_calibration, quiet, snr_db

NUMERIC_VERIFY = "NumericVerify"


def layer_label(tensor_name: str, layer_names: tuple[str, ...]) -> str:
    """Keras layer names appearing in a (possibly fused, ';'-joined) TFLite tensor name, in model order."""
    segments = {re.sub(r"_\d+$", "", seg) for seg in re.split(r"[;/]", tensor_name)}
    found = [n for n in layer_names if n in segments]
    return "+".join(found) if found else tensor_name


DEBUG_STAGE = Stage("int8 calibration for the quantization debugger", "debug",
                    "this model's ops (LSTM, GRU, custom or control-flow layers) may not support int8 calibration; "
                    "drop [partial] and try [quantize] scheme = \"float16\", \"dynamic\" or \"int16x8\"")


class TfliteDebugSession:
    """One calibration of a SavedModel, then any number of int8 variants with chosen ops kept float.

    Variants are cheap: the calibrated model is re-quantized with `denylisted_nodes` (op output
    tensor names, as in `LayerSensitivity.name`), no re-calibration. The debugger lives in the
    converter's child process (edgeopt.convert.isolated); this object holds its key there.
    """

    def __init__(self, saved_model: Path, calib_x: Batch, per_channel: bool = True,
                 fully_quantize: bool = False, layer_names: tuple[str, ...] = ()) -> None:
        self.calib_x = check_calibration(calib_x)
        self.layer_names = layer_names
        self._key = f"debug-{next(_KEYS)}"
        params: dict[str, Any] = {"key": self._key, "saved_model": str(saved_model), "per_channel": per_channel,
                                  "fully_quantize": fully_quantize, "layer_names": list(layer_names)}
        if isinstance(self.calib_x, np.ndarray):
            arrays = {"calib": self.calib_x}
        else:  # several inputs: by position in the job (names are not file names), names in params
            params["inputs"] = list(self.calib_x)
            arrays = {f"calib_{i}": v for i, v in enumerate(self.calib_x.values())}
        self.float_model: bytes = bytes(run(f"{__name__}:job_open", DEBUG_STAGE, params, arrays))

    def quantized(self, float_nodes: tuple[str, ...] = ()) -> bytes:
        """int8 model bytes with the ops producing `float_nodes` kept in float."""
        return bytes(run(f"{__name__}:job_quantized", DEBUG_STAGE, {"key": self._key, "float_nodes": list(float_nodes)}))

    def sensitivity(self) -> tuple[LayerSensitivity, ...]:
        """Per-op local error of the plain int8 model (nothing denylisted), in graph order."""
        rows = run(f"{__name__}:job_sensitivity", DEBUG_STAGE, {"key": self._key})
        return tuple(LayerSensitivity(**row) for row in rows)


_KEYS = itertools.count()


def _session(params: dict[str, Any], state: dict[str, Any]) -> _DebugSession:
    session = state.get(params["key"])
    if session is None:  # the worker restarted after an earlier job died
        msg = "the quantization debugger's session is gone (its child process ended); rerun the build"
        raise ConversionError(msg)
    return session  # type: ignore[no-any-return]


def job_open(params: dict[str, Any], arrays: dict[str, np.ndarray], state: dict[str, Any]) -> bytes:
    """In the child: calibrate once, keep the debugger under `key`; the float model comes back."""
    for key in [k for k in state if k.startswith("debug-")]:  # one session at a time: a build opens one
        del state[key]
    names = params.get("inputs")
    calib: Batch = arrays["calib"] if names is None else {n: arrays[f"calib_{i}"] for i, n in enumerate(names)}
    session = _DebugSession(Path(params["saved_model"]), calib, bool(params["per_channel"]),
                            bool(params["fully_quantize"]), tuple(params["layer_names"]))
    state[params["key"]] = session
    return session.float_model


def job_quantized(params: dict[str, Any], arrays: dict[str, np.ndarray], state: dict[str, Any]) -> bytes:
    return _session(params, state).quantized(tuple(params["float_nodes"]))


def job_sensitivity(params: dict[str, Any], arrays: dict[str, np.ndarray], state: dict[str, Any]) -> list[Any]:
    return [dataclasses.asdict(row) for row in _session(params, state).sensitivity()]


class _DebugSession:
    """The QuantizationDebugger itself (in the converter's child process)."""

    def __init__(self, saved_model: Path, calib_x: Batch, per_channel: bool = True,
                 fully_quantize: bool = False, layer_names: tuple[str, ...] = ()) -> None:
        import tensorflow as tf

        from edgeopt.convert.tflite import to_tflite

        self._tf = tf
        self.calib_x = check_calibration(calib_x)
        self.layer_names = layer_names
        self.float_model = to_tflite(saved_model)
        self._order = self._input_order()
        conv = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = self.calibration
        conv._experimental_disable_per_channel = not per_channel
        self._fully = fully_quantize
        try:
            with quiet():
                self._debugger = tf.lite.experimental.QuantizationDebugger(
                    converter=conv, debug_dataset=self.dataset,
                    debug_options=tf.lite.experimental.QuantizationDebugOptions(fully_quantize=fully_quantize))
        except Exception as exc:  # noqa: BLE001 - converter errors come in many types
            msg = f"int8 calibration for the quantization debugger failed: {first_line(exc)}"
            raise ConversionError(msg) from None

    def _input_order(self) -> tuple[str, ...]:
        """The calibration arrays' names in the TFLite model's input order (the debugger sets inputs by position;
        the converter orders them its own way). Single input: ()."""
        if isinstance(self.calib_x, np.ndarray):
            return ()
        from edgeopt.runtime.litert import _interpreter_module
        from edgeopt.runtime.shapes import plain_name

        mod, _, _ = _interpreter_module()
        it = mod.Interpreter(model_content=self.float_model)
        names = [plain_name(d["name"]) for d in it.get_input_details()]
        keys = list(self.calib_x)
        return tuple(n if n in keys else keys[i] for i, n in enumerate(names))

    def calibration(self) -> Iterator[Any]:
        """The converter's representative dataset: one sample at a time, a dict by signature name for several."""
        x = self.calib_x
        for i in range(batch_count(x)):  # fixed order: deterministic
            yield [x[i : i + 1]] if isinstance(x, np.ndarray) else {k: v[i : i + 1] for k, v in x.items()}

    def dataset(self) -> Iterator[list[np.ndarray]]:
        """The debugger's dataset: one sample at a time, the inputs in the TFLite model's order."""
        x = self.calib_x
        for i in range(batch_count(x)):
            yield [x[i : i + 1]] if isinstance(x, np.ndarray) else [x[k][i : i + 1] for k in self._order]

    def quantized(self, float_nodes: tuple[str, ...] = ()) -> bytes:
        """int8 model bytes with the ops producing `float_nodes` kept in float."""
        tf = self._tf
        self._set_options(tf.lite.experimental.QuantizationDebugOptions(
            denylisted_nodes=list(float_nodes) or None, fully_quantize=self._fully))
        with quiet():
            return bytes(self._debugger.get_nondebug_quantized_model())

    def _set_options(self, options: Any) -> None:
        with quiet():
            self._debugger.options = options

    def sensitivity(self) -> tuple[LayerSensitivity, ...]:
        """Per-op local error of the plain int8 model (nothing denylisted), in graph order."""
        tf = self._tf
        self._set_options(tf.lite.experimental.QuantizationDebugOptions(fully_quantize=self._fully))
        with quiet():
            self._debugger.run()
        stats = self._debugger.layer_statistics or {}
        mse: dict[str, float] = {}
        for key, metrics in stats.items():
            name = _verified_tensor(key)
            mse[name] = float(metrics["mean_squared_error"])
        power = self._signal_power(tuple(mse))
        ops = _tflite_ops(self.float_model)
        total = sum(m for _, _, m in ops.values()) or 1
        rows = []
        for name in sorted(mse, key=lambda n: ops.get(n, (1 << 30, "", 0))[0]):
            _, op_type, macs = ops.get(name, (0, "?", 0))
            rows.append(LayerSensitivity(name, layer_label(name, self.layer_names), op_type, math.sqrt(max(mse[name], 0.0)),
                                         snr_db(power.get(name, 0.0), mse[name]), macs / total))
        return tuple(rows)

    def _signal_power(self, names: tuple[str, ...]) -> dict[str, float]:
        """Mean square of each named tensor in the float model over the calibration data."""
        from edgeopt.runtime.litert import _interpreter_module

        mod, _, _ = _interpreter_module()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            it = mod.Interpreter(model_content=self.float_model, experimental_preserve_all_tensors=True)
        it.allocate_tensors()
        index = {d["name"]: d["index"] for d in it.get_tensor_details()}
        inputs = [d["index"] for d in it.get_input_details()]
        acc = {n: 0.0 for n in names if n in index}
        count = 0
        for xs in self.dataset():
            for inp, x in zip(inputs, xs, strict=True):
                it.set_tensor(inp, x.astype(np.float32) if x.dtype.kind == "f" else x)
            it.invoke()
            for n in acc:
                acc[n] += float(np.mean(np.square(it.get_tensor(index[n]).astype(np.float64))))
            count += 1
        return {n: v / max(count, 1) for n, v in acc.items()}


def _verified_tensor(key: str) -> str:
    """'NumericVerify/<tensor>N:<idx>' -> '<tensor>' (the debugger appends a digit to the name)."""
    name = key.rsplit(":", 1)[0]
    if name.startswith(NUMERIC_VERIFY + "/"):
        name = name[len(NUMERIC_VERIFY) + 1 :]
    if name and name[-1].isdigit():
        name = name[:-1]
    return name


def _tflite_ops(model: bytes) -> dict[str, tuple[int, str, int]]:
    """Output tensor name -> (op index, op type, MACs), from the float model."""
    from edgeopt.analysis.tflite_graph import read_tflite

    g = read_tflite(model)
    out: dict[str, tuple[int, str, int]] = {}
    for op in g.main.operators:
        for t in op.outputs:
            if t >= 0:
                out[g.main.tensors[t].name] = (op.index, op.op, op.macs)
    return out


def keras_layer_names(model: Any) -> tuple[str, ...]:
    names: list[str] = []

    def walk(m: Any) -> None:
        for lay in getattr(m, "layers", None) or []:
            names.append(lay.name)
            walk(lay)

    walk(model)
    return tuple(names)


def sensitivity_tflite(model: Any, calib_x: Batch, per_channel: bool = True) -> tuple[LayerSensitivity, ...]:
    """Per-op int8 sensitivity of a Keras model (or a SavedModel folder), in graph order."""
    calib = check_calibration(calib_x)
    with open_tflite_session(model, calib, per_channel) as session:
        return session.sensitivity()


@contextlib.contextmanager
def open_tflite_session(model: Any, calib_x: Batch, per_channel: bool = True,
                        fully_quantize: bool = False) -> Iterator[TfliteDebugSession]:
    """A TfliteDebugSession for a Keras model or a SavedModel folder (exported to a temp folder if needed)."""
    from edgeopt.convert.savedmodel import temporary_saved_model

    names = () if isinstance(model, str | Path) else keras_layer_names(model)
    with temporary_saved_model(model) as sm:
        yield TfliteDebugSession(sm, calib_x, per_channel, fully_quantize, names)
