"""Load Keras models (.keras, .h5, SavedModel) with safe mode on."""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path
from typing import Any

from edgeopt.errors import EdgeoptError, InputError, ModelFileError, RuntimeUnavailableError, first_line
from edgeopt.load.formats import ModelFormat, detect_format

KERAS_FORMATS = (ModelFormat.KERAS, ModelFormat.H5, ModelFormat.SAVED_MODEL)
MAX_CONFIG_BYTES = 64 << 20


def import_keras() -> Any:
    """Import Keras 3 on TensorFlow, or explain the extra to install."""
    try:
        import os

        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        from edgeopt.runtime.quiet import native_quiet

        with native_quiet():
            import keras
            import tensorflow as tf

        import logging

        tf.get_logger().setLevel(logging.ERROR)
        tf.autograph.set_verbosity(0)
    except ImportError:
        msg = "conversion needs TensorFlow; install it with: pip install 'edgeopt[convert]'"
        raise RuntimeUnavailableError(msg) from None
    return keras


def _lambda_layers(config: Any) -> list[str]:
    """Names of Lambda layers anywhere in a Keras config tree."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("class_name") == "Lambda":
                cfg = node.get("config", {})
                found.append(str(cfg.get("name", "?")) if isinstance(cfg, dict) else "?")
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(config)
    return found


def _check_lambda(path: Path, unsafe: bool) -> None:
    if unsafe:
        return
    try:
        with zipfile.ZipFile(path) as zf:
            info = zf.getinfo("config.json")
            if info.file_size > MAX_CONFIG_BYTES:
                msg = (
                    f"{path}: config.json is {info.file_size:,} bytes, over the "
                                     f"{MAX_CONFIG_BYTES >> 20} MB a Keras config can need; the file is corrupt or hostile"
                )
                raise ModelFileError(msg)
            config = json.loads(zf.read(info))
        names = _lambda_layers(config)
    except (KeyError, ValueError, zipfile.BadZipFile) as exc:
        msg = f"{path}: unreadable Keras config: {exc}"
        raise ModelFileError(msg) from None
    except RecursionError:
        msg = f"{path}: config.json is nested too deeply to be a Keras model; the file is corrupt"
        raise ModelFileError(msg) from None
    if names:
        msg = (
            f"{path}: Lambda layer(s) {', '.join(names)} run arbitrary Python code and are refused in safe mode; "
            "pass --unsafe-load only if you trust this file"
        )
        raise InputError(
            msg
        )


def load_keras(path: Path, unsafe: bool = False) -> Any:
    """Load a Keras model; returns a keras.Model. SavedModel folders load as a Keras layer wrapper."""
    path = Path(path)
    fmt = detect_format(path)
    if fmt not in KERAS_FORMATS:
        msg = f"{path}: a Keras model (.keras, .h5 or SavedModel folder) is needed here, not {fmt}"
        raise ModelFileError(msg)
    if fmt is ModelFormat.KERAS:
        _check_lambda(path, unsafe)
    keras = import_keras()
    if fmt is ModelFormat.SAVED_MODEL and not unsafe:
        from edgeopt.load.saved_model_ops import check_saved_model

        check_saved_model(path)  # before TensorFlow loads (and runs the init op of) the graph
    import edgeopt.qat.layers  # noqa: F401  - registers edgeopt's fake-quant layers (files written by `edgeopt qat`)
    from edgeopt.sandbox import channel

    with channel.phase("loading the model"):  # the model's own code runs (Lambda, custom layers, a graph)
        return _load(keras, path, fmt, unsafe)


def _load(keras: Any, path: Path, fmt: ModelFormat, unsafe: bool) -> Any:
    """Keras or TensorFlow loading, with what they raise turned into one line; anything else is the model's
    own code failing (channel.phase names it)."""
    try:
        if fmt is ModelFormat.SAVED_MODEL:
            return _load_saved_model(keras, path)
        # compile=False: edgeopt never uses the training config, and a Keras-2 optimizer config (`lr`) fails to load
        return keras.saving.load_model(path, compile=False, safe_mode=not unsafe)
    except PermissionError as exc:
        msg = (f"{path}: loading the model ran code that tried to write {exc.filename or 'a file'}, refused by the "
               "sandbox; this model file writes files when it loads: do not use it")
        raise ModelFileError(msg) from None
    except (ValueError, TypeError) as exc:
        raise load_error(path, str(exc)) from None
    except (OSError, KeyError, AttributeError, IndexError) as exc:
        msg = f"{path}: cannot load the Keras model ({type(exc).__name__}: {str(exc)[:200]}); the file may be corrupt"
        raise ModelFileError(msg) from None
    except (RecursionError, MemoryError) as exc:
        msg = (
            f"{path}: cannot load the Keras model ({type(exc).__name__}: nested too deeply or too "
                             "large); the file is corrupt or hostile"
        )
        raise ModelFileError(msg) from None


# What Keras says when safe mode refuses something (a Python lambda, a Lambda layer): it names the way out.
SAFE_MODE_REFUSAL = ("safe_mode=False", "enable_unsafe_deserialization")
_WRAPPED = re.compile(r"<class '(?:[\w.]*\.)?(\w+)'> could not be deserialized properly")
_DUMP = re.compile(r":? \{|\bFull object config:|\bconfig=")  # where Keras starts printing a config


def load_error(path: Path, text: str) -> EdgeoptError:
    """One complete line for a Keras loading failure (`text`: its message).

    Keras wraps a layer's failure once per nesting level as "<class X> could not be deserialized properly.
    Please ensure that ... config={...}. Exception encountered: CAUSE", so the head of the message says nothing
    and a cut one ends mid-sentence. A refusal of safe mode (anywhere in the chain) is named as such, with the
    way to load the file; otherwise the innermost cause, its layer classes and no config dump."""
    if any(sign in text for sign in SAFE_MODE_REFUSAL):
        what = "Python lambda code" if "lambda" in text.lower() else "Python code or objects"
        msg = (f"{path}: the file holds {what} that Keras safe mode refuses to load; --unsafe-load loads it "
               "if you trust this file")
        return InputError(msg)
    layers = _WRAPPED.findall(text)
    cause = " ".join(text.rsplit("Exception encountered:", 1)[-1].split())  # the innermost, on one line
    cause = _DUMP.split(cause, maxsplit=1)[0].rstrip(" .:") or "unknown error"
    if len(cause) > 400:  # whole sentences only
        kept = cause[:400].rsplit(". ", 1)[0]
        cause = kept if kept != cause[:400] else cause[:400].rsplit(" ", 1)[0] + " (message shortened)"
    where = f" ({' > '.join(layers)})" if layers else ""
    return ModelFileError(f"{path}: cannot load the Keras model{where}: {cause}")


def _load_saved_model(keras: Any, path: Path) -> Any:
    """Wrap a SavedModel's serving signature as a functional Keras model."""
    import tensorflow as tf

    try:
        loaded = tf.saved_model.load(str(path))
    except (PermissionError, RecursionError, MemoryError):
        raise  # the sandbox's refusal, a hostile graph: _load names them
    except Exception as exc:  # noqa: BLE001 - TensorFlow raises OpError, OSError, IndexError, ValueError...
        reason = first_line(Exception(str(exc).replace("\\n", "\n")), 300).rstrip(" .")  # its reason, not its advice
        msg = (f"{path}: TensorFlow cannot load the SavedModel ({type(exc).__name__}: {reason}); re-save it with "
               "tf.saved_model.save, or give the .keras model")
        raise ModelFileError(msg) from None
    sig = loaded.signatures.get("serving_default")
    if sig is None:
        msg = f"{path}: SavedModel has no 'serving_default' signature; export one"
        raise ModelFileError(msg)
    specs = sig.structured_input_signature[1]
    if len(specs) != 1:
        msg = f"{path}: SavedModel with {len(specs)} inputs; only single-input SavedModels are supported"
        raise InputError(msg)
    (in_name, spec), = specs.items()
    inp = keras.Input(shape=tuple(spec.shape[1:]), dtype=spec.dtype.name, name=in_name)
    out_key = next(iter(sig.structured_outputs))
    layer = keras.layers.TFSMLayer(str(path), call_endpoint="serving_default")
    out = layer(inp)
    if isinstance(out, dict):
        out = out[out_key]
    return keras.Model(inp, out, name=path.name)
