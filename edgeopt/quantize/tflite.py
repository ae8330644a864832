"""TFLite quantization schemes as converter set-ups (one function per scheme)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

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
