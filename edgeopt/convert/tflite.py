"""SavedModel -> TFLite flatbuffer bytes, with an optional quantization recipe."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgeopt.errors import ConversionError, UnsupportedOpError, first_line

ConverterSetup = Callable[[Any], None]


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
