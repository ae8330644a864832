"""The conversion and quantization registries: one entry per output format, duplicates refused."""

from __future__ import annotations

import pytest

from edgeopt.convert.registry import CONVERTERS, converter_for
from edgeopt.errors import EdgeoptError, ProfileError
from edgeopt.profiles.schema import OutputFormat
from edgeopt.quantize.registry import QUANTIZERS, quantizer_for
from edgeopt.registry import Registry


def test_every_output_format_has_a_converter_and_a_quantizer() -> None:
    assert set(CONVERTERS.keys()) == set(OutputFormat) == set(QUANTIZERS.keys())
    assert converter_for(OutputFormat.TFLITE).suffix == ".tflite" and not converter_for(OutputFormat.TFLITE).from_onnx
    assert converter_for(OutputFormat.ONNX).suffix == ".onnx" and converter_for(OutputFormat.ONNX).from_onnx
    assert quantizer_for(OutputFormat.ONNX) is not quantizer_for(OutputFormat.TFLITE)


def test_a_second_entry_for_a_key_is_refused() -> None:
    with pytest.raises(EdgeoptError, match="converter for 'onnx' is already registered"):
        CONVERTERS.register(OutputFormat.ONNX, converter_for(OutputFormat.ONNX))
    assert converter_for(OutputFormat.ONNX).label == "ONNX"  # the first entry stays


def test_an_unknown_key_raises_the_registrys_error() -> None:
    reg: Registry[OutputFormat, int] = Registry("thing", lambda k, known: ProfileError(f"no {k}; one of {[str(x) for x in known]}"))
    reg.register(OutputFormat.TFLITE, 1)
    assert reg.get(OutputFormat.TFLITE) == 1 and OutputFormat.TFLITE in reg and OutputFormat.ONNX not in reg
    with pytest.raises(ProfileError, match=r"no onnx; one of \['tflite'\]"):
        reg.get(OutputFormat.ONNX)
