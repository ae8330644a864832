"""Convert a Keras model to TFLite (float / int8) and ONNX and run it in LiteRT / onnxruntime."""

from __future__ import annotations

import numpy as np


def to_tflite(model, workdir, int8: bool = False, calib: np.ndarray | None = None) -> bytes:
    import tensorflow as tf

    saved = workdir / f"saved_{model.name}_{int(int8)}"
    model.export(str(saved), format="tf_saved_model", verbose=False)
    conv = tf.lite.TFLiteConverter.from_saved_model(str(saved))
    if int8:
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = lambda: ([calib[i:i + 1]] for i in range(len(calib)))
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    return conv.convert()


def run_litert(flatbuffer: bytes, x: np.ndarray) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=flatbuffer, num_threads=1)
    inp = it.get_input_details()[0]
    it.resize_tensor_input(inp["index"], list(x.shape))
    it.allocate_tensors()
    it.set_tensor(inp["index"], x.astype(inp["dtype"]))
    it.invoke()
    return it.get_tensor(it.get_output_details()[0]["index"]).copy()


def run_onnx(model, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort
    import tensorflow as tf
    import tf2onnx

    @tf.function
    def fn(inp):
        return model(inp)

    spec = [tf.TensorSpec([None, *x.shape[1:]], tf.float32, name="input")]
    proto, _ = tf2onnx.convert.from_function(fn, input_signature=spec, opset=17)
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]
