"""Tiny models for the benchmark and inspect tests, built once per session without TensorFlow."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from tests.bench import bench_models as bm

# Short protocol for tests: real runtimes, few runs.
FAST = ("--runs", "5", "--min-seconds", "0.05", "--warmup-seconds", "0.01")


@pytest.fixture(scope="session")
def models(tmp_path_factory) -> SimpleNamespace:
    d = tmp_path_factory.mktemp("bench_models")
    ns = SimpleNamespace(
        dir=d,
        tflite=bm.tflite_mlp(d / "mlp_float.tflite"),
        tflite_int8=bm.tflite_mlp(d / "mlp_int8.tflite", int8=True),
        tflite_cnn=bm.tflite_cnn(d / "cnn.tflite"),
        tflite_custom=bm.tflite_custom_op(d / "custom.tflite"),
        onnx=bm.onnx_mlp(d / "mlp.onnx"),
        onnx_conv=bm.onnx_conv(d / "conv.onnx"),
        onnx_custom=bm.onnx_custom_op(d / "custom.onnx"),
    )
    (d / "corrupt.tflite").write_bytes(ns.tflite_cnn.read_bytes()[:300])
    (d / "corrupt.onnx").write_bytes(b"\x08\x07garbage, not a protobuf" * 10)
    ns.tflite_corrupt, ns.onnx_corrupt = d / "corrupt.tflite", d / "corrupt.onnx"
    return ns


@pytest.fixture()
def fast() -> tuple[str, ...]:
    return FAST
