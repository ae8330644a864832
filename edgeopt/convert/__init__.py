"""Convert stage: Keras -> TFLite (via a SavedModel) and Keras -> ONNX (via tf2onnx)."""
