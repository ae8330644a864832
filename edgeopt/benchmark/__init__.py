"""Latency benchmark: one protocol across LiteRT and onnxruntime. No TensorFlow."""
