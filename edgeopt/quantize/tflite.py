"""TFLite quantization schemes as converter set-ups (one function per scheme).

`quantized_tflite` converts with a recipe in the converter's child process (edgeopt.convert.isolated): a
native crash of the calibrator is one line naming the stage, not the end of edgeopt.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeopt.convert.isolated import Stage, run
from edgeopt.convert.tflite import FLOAT_STAGE, to_tflite
from edgeopt.data.tensors import Batch, batch_count
from edgeopt.errors import InputError
from edgeopt.profiles.schema import IOType, Scheme


@dataclass(frozen=True)
class TfliteRecipe:
    scheme: Scheme
    input_type: IOType = IOType.FLOAT32
    output_type: IOType = IOType.FLOAT32
    per_channel: bool = True
    calibration: Batch | None = None  # float32 samples, batch first; several inputs: arrays by input name

    def needs_calibration(self) -> bool:
        return self.scheme in (Scheme.INT8, Scheme.INT16X8)


def _dataset(x: Batch) -> Callable[[], Iterator[list[np.ndarray] | dict[str, np.ndarray]]]:
    """One sample per step, fixed order (deterministic calibration). Several inputs are yielded as a dict by
    signature input name: the converter orders the tensors its own way (a list in Keras order fed `extra`'s data
    into `image`), the signature keys are the SavedModel's input names."""
    def gen() -> Iterator[list[np.ndarray] | dict[str, np.ndarray]]:
        for i in range(batch_count(x)):
            if isinstance(x, np.ndarray):
                yield [x[i : i + 1].astype(np.float32)]
            else:
                yield {k: v[i : i + 1].astype(np.float32) if v.dtype.kind == "f" else v[i : i + 1] for k, v in x.items()}

    return gen


def _tf_type(tf: Any, io: IOType) -> Any:
    return {IOType.FLOAT32: tf.float32, IOType.INT8: tf.int8, IOType.UINT8: tf.uint8, IOType.INT16: tf.int16}[io]


def _none(conv: Any, r: TfliteRecipe, tf: Any) -> None:
    return None


def _float16(conv: Any, r: TfliteRecipe, tf: Any) -> None:
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.target_spec.supported_types = [tf.float16]


def _dynamic(conv: Any, r: TfliteRecipe, tf: Any) -> None:
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv._experimental_disable_per_channel = not r.per_channel


def _full_integer(conv: Any, r: TfliteRecipe, tf: Any, ops: Any) -> None:
    """Calibrated full-integer conversion restricted to `ops` (int8, or int16 activations with int8 weights)."""
    assert r.calibration is not None
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = _dataset(r.calibration)
    conv.target_spec.supported_ops = [ops]
    conv.inference_input_type = _tf_type(tf, r.input_type)
    conv.inference_output_type = _tf_type(tf, r.output_type)
    conv._experimental_disable_per_channel = not r.per_channel


def _int8(conv: Any, r: TfliteRecipe, tf: Any) -> None:
    _full_integer(conv, r, tf, tf.lite.OpsSet.TFLITE_BUILTINS_INT8)


def _int16x8(conv: Any, r: TfliteRecipe, tf: Any) -> None:
    _full_integer(conv, r, tf, tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8)


SCHEMES: dict[Scheme, Callable[[Any, TfliteRecipe, Any], None]] = {
    Scheme.NONE: _none,
    Scheme.FLOAT16: _float16,
    Scheme.DYNAMIC: _dynamic,
    Scheme.INT8: _int8,
    Scheme.INT16X8: _int16x8,
}


def converter_setup(recipe: TfliteRecipe) -> Callable[[Any], None]:
    """A set-up function for edgeopt.convert.tflite.to_tflite."""
    if recipe.needs_calibration() and recipe.calibration is None:
        msg = f"scheme '{recipe.scheme}' needs calibration data; give --calib data.npz (or --random-calibration)"
        raise InputError(msg)

    def setup(conv: Any) -> None:
        import tensorflow as tf

        SCHEMES[recipe.scheme](conv, recipe, tf)

    return setup


_CALIBRATION_HINT = ("this model's ops (LSTM, GRU, custom or control-flow layers) may not support {scheme} calibration; "
                     "try [quantize] scheme = {others}")
STAGES: dict[Scheme, Stage] = {
    Scheme.NONE: FLOAT_STAGE,
    Scheme.FLOAT16: Stage("float16 conversion", "convert", "try [quantize] scheme = \"dynamic\" or \"none\""),
    Scheme.DYNAMIC: Stage("dynamic-range quantization", "convert", "try [quantize] scheme = \"float16\" or \"none\""),
    Scheme.INT8: Stage("int8 calibration", "calibrate",
                       _CALIBRATION_HINT.format(scheme="int8", others='"float16", "dynamic" or "int16x8"')),
    Scheme.INT16X8: Stage("int16x8 calibration", "calibrate",
                          _CALIBRATION_HINT.format(scheme="int16x8", others='"float16" or "dynamic"')),
}


def quantized_tflite(saved_model: Path, recipe: TfliteRecipe) -> bytes:
    """Convert `saved_model` with `recipe` in the converter's child process (calibration arrays go as .npy)."""
    converter_setup(recipe)  # refuses a calibrated scheme without data, here rather than in the child
    params = {"saved_model": str(saved_model), "scheme": str(recipe.scheme), "input_type": str(recipe.input_type),
              "output_type": str(recipe.output_type), "per_channel": recipe.per_channel}
    cal = recipe.calibration
    arrays: dict[str, np.ndarray] = {}
    if isinstance(cal, np.ndarray):
        arrays = {"calibration": np.asarray(cal, np.float32)}
    elif cal is not None:  # several inputs: by position in the job (names are not file names), names in params
        params["calibration_inputs"] = list(cal)
        arrays = {f"calibration_{i}": np.asarray(v) for i, v in enumerate(cal.values())}
    return bytes(run("edgeopt.quantize.tflite:job_quantize", STAGES[recipe.scheme], params, arrays))


def job_quantize(params: dict[str, Any], arrays: dict[str, np.ndarray], state: dict[str, Any]) -> bytes:
    """In the child: the recipe rebuilt from its parameters, then the conversion."""
    names = params.get("calibration_inputs")
    calibration: Batch | None = arrays.get("calibration") if names is None else \
        {name: arrays[f"calibration_{i}"] for i, name in enumerate(names)}
    recipe = TfliteRecipe(Scheme(params["scheme"]), IOType(params["input_type"]), IOType(params["output_type"]),
                          bool(params["per_channel"]), calibration)
    return to_tflite(Path(params["saved_model"]), converter_setup(recipe))
