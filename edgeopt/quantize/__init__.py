"""Quantize stage: named schemes (none, float16, dynamic, int8, int16x8) for TFLite and ONNX."""
