"""Quantization-aware training for Keras 3 (TensorFlow backend): int8 rounding in the training loop.

wrap.py rebuilds the model with fake-quant layers (layers.py) placed where the int8 TFLite graph
has scales; train.py fine-tunes it; export.py converts it with the trained ranges (no calibration).

Per-channel Dense: the converter rejects (or crashes on) a per-channel FakeQuant on a MatMul kernel,
because it transposes the kernel for FULLY_CONNECTED. Dense layers are therefore exported with a
per-tensor FakeQuant and fc_channels.py rewrites those weights and biases per output channel in the
flatbuffer, with exactly the per-channel grid they were trained on.
"""
