"""SavedModel -> TFLite flatbuffer bytes, with an optional quantization recipe.

`to_tflite` converts in this process; `float_tflite` (and edgeopt.quantize.tflite.quantized_tflite) run it in
the converter's child process (edgeopt.convert.isolated), which is what builds use.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgeopt.convert.isolated import Stage, run
from edgeopt.errors import ConversionError, UnsupportedOpError, first_line

ConverterSetup = Callable[[Any], None]

FLOAT_STAGE = Stage("TFLite conversion", "convert",
                    "the converter cannot handle this model's graph; re-export it (or simplify the layers named "
                    "with --debug) and report the model")


def float_tflite(saved_model: Path) -> bytes:
    """The float .tflite of a SavedModel, converted in the converter's child process."""
    return bytes(run("edgeopt.convert.tflite:job_float", FLOAT_STAGE, {"saved_model": str(saved_model)}))


def job_float(params: dict[str, Any], arrays: dict[str, Any], state: dict[str, Any]) -> bytes:
    """In the child: float conversion."""
    return to_tflite(Path(params["saved_model"]))


def to_tflite(saved_model: Path, setup: ConverterSetup | None = None) -> bytes:
    """Convert; `setup(converter)` applies a quantization scheme (see edgeopt.quantize.tflite)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    conv = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if setup is not None:
        setup(conv)
    from edgeopt.runtime.quiet import native_quiet

    try:
        with native_quiet():
            return bytes(conv.convert())
    except Exception as exc:  # noqa: BLE001 - converter errors are many types
        text = str(exc)
        if "not supported" in text.lower() and "op" in text.lower():
            import re

            ops = tuple(sorted(set(re.findall(r"'(tf\.[A-Za-z0-9_]+)'", text))))
            msg = f"TFLite builtins lack op(s) {', '.join(ops) or '(see --debug)'}; replace them in the model"
            raise UnsupportedOpError(msg, ops) from None
        msg = f"TFLite conversion failed: {first_line(exc)}"
        raise ConversionError(msg) from None
