"""ONNX -> TFLite on real models: onnx2tf fidelity, int8 both ways (ai-edge-quantizer, onnxruntime), onnx2tf's own int8.

For each ONNX model (not the samples):

    float .tflite      edgeopt.convert.onnx2tf (onnx2tf in its own venv, private copy, timeout)
    fidelity           edgeopt.validate.conversion_proof: LiteRT vs onnxruntime per output, max-abs and SNR
    int8 .tflite       edgeopt.quantize.tflite_file (ai-edge-quantizer) on the float .tflite
    int8 .onnx         edgeopt.quantize.onnx_prepare + onnx.quantize_onnx (static QDQ, per-channel, S8S8): what
                       `edgeopt build --target edge-server` makes
    peer               onnx2tf's own `-oiqt` (calibrated with -cind on the same samples, float in/out), run from
                       its venv on a private copy with a timeout
    accuracy           every int8 model against the float ONNX model (onnxruntime) on held-out samples: top-1
                       agreement for classifiers, SNR (dB) otherwise
    latency            edgeopt.benchmark.protocol.run_interleaved: every variant of a model in one run, 1 thread

Then the Keras samples quantized both ways: TensorFlow's converter (the int8 artifact of
`edgeopt build --target mobile-cpu --no-bench`) vs ai-edge-quantizer on the same build's float baseline .tflite,
scored on digits_*.eval.npz and timed interleaved.

Models that need a package (rapidocr-onnxruntime, silero-vad) are read from wheels in --wheels (fetched once
beforehand with `pip download --no-deps -d DIR rapidocr-onnxruntime silero-vad`; never installed, nothing is
downloaded while this runs); a missing wheel is reported, not fetched. torch-built CNNs run only when torch imports.
Writes the section between <!-- onnx-to-tflite:begin --> and <!-- onnx-to-tflite:end --> of benchmarks/RESULTS.md.

    python benchmarks/onnx_to_tflite.py --wheels /tmp/pkgs [--only NAME,...] [--runs 40] [--min-seconds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "sample_models"
from results_md import replace_section  # noqa: E402 - benchmarks/ is on sys.path when run as a script

BEGIN, END = "<!-- onnx-to-tflite:begin -->", "<!-- onnx-to-tflite:end -->"
EVAL_N, CALIB_N = 32, 32
PEER_TIMEOUT = 600.0


# ---------------------------------------------------------------- inputs


def sample_images() -> list[np.ndarray]:
    from sklearn.datasets import load_sample_images

    return [np.asarray(im, dtype=np.float32) for im in load_sample_images().images]  # 427x640x3, 0..255


def image_crops(n: int, h: int, w: int, seed: int) -> np.ndarray:
    """n random crops (NHWC, 0..255) of scikit-learn's two sample photos, resized by nearest-neighbour."""
    rng = np.random.default_rng(seed)
    ims = sample_images()
    out = np.empty((n, h, w, 3), np.float32)
    for k in range(n):
        im = ims[k % len(ims)]
        ch = int(rng.integers(min(h, im.shape[0]) // 2, im.shape[0]))
        cw = min(im.shape[1], max(1, int(ch * w / h)))
        y, x = int(rng.integers(0, im.shape[0] - ch + 1)), int(rng.integers(0, im.shape[1] - cw + 1))
        crop = im[y:y + ch, x:x + cw]
        ys, xs = (np.arange(h) * ch // h), (np.arange(w) * cw // w)
        out[k] = crop[ys][:, xs]
    return out


WORDS = ("edge", "LiteRT", "int8", "ONNX", "Cortex-M", "latency", "2026", "quantize", "XNNPACK", "benchmark")


def text_crops(n: int, h: int, w: int, seed: int) -> np.ndarray:
    """Photo crops with a few words drawn on them by Pillow (its default font, dark or light, random sizes):
    what a text detector is for (bare photos give it an all-zero map)."""
    from PIL import Image, ImageDraw, ImageFont

    rng = np.random.default_rng(seed + 100)
    out = image_crops(n, h, w, seed)
    for k in range(n):
        im = Image.fromarray(out[k].astype(np.uint8))
        draw = ImageDraw.Draw(im)
        for _ in range(int(rng.integers(2, 5))):
            size = int(rng.integers(max(10, h // 16), max(12, h // 7)))
            font = ImageFont.load_default(size=size)
            xy = (int(rng.integers(0, w * 2 // 3)), int(rng.integers(0, h - size)))
            ink = (10, 10, 10) if rng.random() < 0.5 else (245, 245, 245)
            draw.text(xy, str(rng.choice(WORDS)), fill=ink, font=font)
        out[k] = np.asarray(im, np.float32)
    return out


def digits_nchw(n: int, offset: int) -> np.ndarray:
    from sklearn.datasets import load_digits

    x = load_digits().images.astype(np.float32) / 16.0  # 8x8, 0..1
    return x[offset:offset + n, None]


# ---------------------------------------------------------------- models


@dataclass(frozen=True)
class Case:
    name: str
    origin: str  # where the .onnx comes from
    make: Callable[[Path], Path]  # writes the float .onnx (fixed input shapes) into a folder, returns it
    samples: Callable[[int, int], dict[str, np.ndarray]]  # (n, seed) -> arrays by ONNX input name, ONNX layout
    inputs: str  # what the samples are
    classifier: bool


def _save(graph: Any, path: Path, opset: int = 13) -> Path:
    import onnx
    from onnx import helper

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def helper_cnn(folder: Path, depthwise: bool) -> Path:
    """A digits-sized CNN in onnx.helper (1x1x8x8 -> 10 classes), seeded random weights."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(1 if depthwise else 0)

    def c(name: str, shape: tuple[int, ...], s: float) -> Any:
        return numpy_helper.from_array(rng.normal(0, s, shape).astype(np.float32), name)

    if depthwise:
        inits = [c("w1", (16, 1, 3, 3), .5), c("b1", (16,), .1), c("dw", (16, 1, 3, 3), .4), c("db", (16,), .1),
                 c("pw", (32, 16, 1, 1), .3), c("pb", (32,), .1), c("fw", (32, 10), .3), c("fb", (10,), .1)]
        nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
                 helper.make_node("Relu", ["c1"], ["r1"]),
                 helper.make_node("Conv", ["r1", "dw", "db"], ["c2"], pads=[1, 1, 1, 1], group=16, strides=[2, 2]),
                 helper.make_node("Clip", ["c2", "lo", "hi"], ["r2"]),
                 helper.make_node("Conv", ["r2", "pw", "pb"], ["c3"]),
                 helper.make_node("Relu", ["c3"], ["r3"]),
                 helper.make_node("GlobalAveragePool", ["r3"], ["g"]),
                 helper.make_node("Flatten", ["g"], ["f"]),
                 helper.make_node("Gemm", ["f", "fw", "fb"], ["logits"]),
                 helper.make_node("Softmax", ["logits"], ["probs"], axis=1)]
        inits += [numpy_helper.from_array(np.float32(0), "lo"), numpy_helper.from_array(np.float32(6), "hi")]
    else:
        inits = [c("w1", (16, 1, 3, 3), .5), c("b1", (16,), .1), c("w2", (32, 16, 3, 3), .15), c("b2", (32,), .1),
                 c("fw", (32 * 4 * 4, 10), .05), c("fb", (10,), .1)]
        nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
                 helper.make_node("Relu", ["c1"], ["r1"]),
                 helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1]),
                 helper.make_node("Relu", ["c2"], ["r2"]),
                 helper.make_node("MaxPool", ["r2"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
                 helper.make_node("Flatten", ["p"], ["f"]),
                 helper.make_node("Gemm", ["f", "fw", "fb"], ["logits"]),
                 helper.make_node("Softmax", ["logits"], ["probs"], axis=1)]
    graph = helper.make_graph(nodes, "dscnn" if depthwise else "cnn",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 8, 8])],
                              [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [1, 10])], inits)
    return _save(graph, folder / ("helper_dscnn.onnx" if depthwise else "helper_cnn.onnx"))


def keras_mobilenet(folder: Path) -> Path:
    """Keras MobileNetV2 alpha 0.35, 96x96, weights=None (random: nothing downloaded), through edgeopt's tf2onnx."""
    import keras

    from edgeopt.convert.onnx import keras_to_onnx

    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV2(input_tensor=keras.Input((96, 96, 3), batch_size=1, name="image"),
                                           alpha=0.35, weights=None, classes=10,
                                           classifier_activation=None)  # logits: softmax of random weights is flat
    path = folder / "mobilenet_v2_035_96.onnx"
    path.write_bytes(keras_to_onnx(model, 17))
    return path


def torch_cnn(folder: Path, which: str) -> Path:
    """A small PyTorch CNN (seeded random weights, eval mode) exported by torch.onnx (opset 17, static shape)."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    if which == "torch_resnet_tiny":  # residual blocks with BatchNorm, 3x32x32 photo crops -> 10 classes
        class Block(nn.Module):
            def __init__(self, c: int) -> None:
                super().__init__()
                self.a = nn.Sequential(nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(),
                                       nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c))

            def forward(self, x: Any) -> Any:
                return torch.relu(x + self.a(x))

        net: nn.Module = nn.Sequential(nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.ReLU(), Block(16),
                                       nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(), Block(32),
                                       nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10), nn.Softmax(1))
        shape = (1, 3, 32, 32)
    else:  # a LeNet-like digits CNN with MaxPool and Hardswish, 1x8x8 -> 10 classes
        net = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.Hardswish(), nn.Conv2d(16, 32, 3, padding=1),
                            nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(32 * 16, 10), nn.Softmax(1))
        shape = (1, 1, 8, 8)
    for m in net.modules():  # BatchNorm statistics that are not the identity
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    net.eval()
    path = folder / f"{which}.onnx"
    torch.onnx.export(net, (torch.zeros(shape),), str(path), input_names=["x"], output_names=["probs"],
                      opset_version=17, dynamo=False)
    return path


def fixed_shape(src: Path, dst: Path, dims: dict[str, list[int]]) -> Path:
    """A copy of `src` whose inputs have the given fixed dims (onnx2tf and the quantizers need static shapes)."""
    import onnx

    model = onnx.load(str(src))
    for i in model.graph.input:
        if i.name in dims:
            for d, v in zip(i.type.tensor_type.shape.dim, dims[i.name], strict=True):
                d.Clear()
                d.dim_value = v
    for o in model.graph.output:  # re-inferred from the inputs
        for d in o.type.tensor_type.shape.dim:
            if not d.dim_value:
                d.Clear()
    del model.graph.value_info[:]
    model = onnx.shape_inference.infer_shapes(model)
    onnx.save(model, str(dst))
    return dst


def from_wheel(wheels: Path, prefix: str, member: str, dst: Path) -> Path:
    found = sorted(wheels.glob(f"{prefix}-*.whl"))
    if not found:
        msg = f"no {prefix}-*.whl in {wheels}: fetch it once with `pip download --no-deps -d {wheels} {prefix}`"
        raise FileNotFoundError(msg)
    with zipfile.ZipFile(found[-1]) as z:
        dst.write_bytes(z.read(member))
    return dst


def ocr(wheels: Path, folder: Path, which: str, hw: tuple[int, int]) -> Path:
    name = {"det": "ch_PP-OCRv4_det_infer", "rec": "ch_PP-OCRv4_rec_infer", "cls": "ch_ppocr_mobile_v2.0_cls_infer"}[which]
    raw = from_wheel(wheels, "rapidocr_onnxruntime", f"rapidocr_onnxruntime/models/{name}.onnx", folder / "raw.onnx")
    return fixed_shape(raw, folder / f"{name}_{hw[0]}x{hw[1]}.onnx", {"x": [1, 3, *hw]})


def ocr_samples(hw: tuple[int, int]) -> Callable[[int, int], dict[str, np.ndarray]]:
    def make(n: int, seed: int) -> dict[str, np.ndarray]:
        x = text_crops(n, hw[0], hw[1], seed) / 255.0
        return {"x": ((x - 0.5) / 0.5).transpose(0, 3, 1, 2).astype(np.float32)}  # PaddleOCR: (x/255 - .5)/.5
    return make


def silero(wheels: Path, folder: Path) -> Path:
    """silero-vad's op18 model with its sample rate fixed at 16 kHz: the one If (on sr == 16000, a LiteRT CUSTOM
    op after onnx2tf) replaced by its then-branch, the nodes and the `sr` input it leaves unused removed."""
    import onnx
    from onnx import helper

    raw = from_wheel(wheels, "silero_vad", "silero_vad/data/silero_vad_op18_ifless.onnx", folder / "raw.onnx")
    model = onnx.load(str(raw))
    g = model.graph
    cond = next(n for n in g.node if n.op_type == "If")
    branch = next(a.g for a in cond.attribute if a.name == "then_branch")
    nodes = [n for n in g.node if n is not cond] + list(branch.node)
    nodes += [helper.make_node("Identity", [b.name], [o]) for b, o in zip(branch.output, cond.output, strict=True)]
    g.initializer.extend(branch.initializer)
    outputs = {o.name for o in g.output}
    while True:  # dead nodes: the Equal / Gather / Reshape that fed the If
        used = {i for n in nodes for i in n.input} | outputs
        keep = [n for n in nodes if any(o in used for o in n.output)]
        if len(keep) == len(nodes):
            break
        nodes = keep
    del g.node[:]
    g.node.extend(nodes)
    used = {i for n in nodes for i in n.input}
    for i in [i for i in g.input if i.name not in used]:
        g.input.remove(i)
    onnx.checker.check_model(model)
    onnx.save(model, str(folder / "inlined.onnx"))
    return fixed_shape(folder / "inlined.onnx", folder / "silero_vad_16k.onnx", {"input": [1, 512], "state": [2, 1, 128]})


def silero_samples(n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = np.arange(512) / 16000.0
    tone = np.sin(2 * np.pi * rng.uniform(100, 400, (n, 1)) * t) * rng.uniform(0.05, 0.5, (n, 1))
    return {"input": (tone + rng.normal(0, 0.02, (n, 512))).astype(np.float32),
            "state": np.zeros((n * 2, 1, 128), np.float32)}


LIGHT = Path(__import__("onnx").__file__).parent / "backend" / "test" / "data" / "light"


def light(name: str, folder: Path) -> Path:
    """onnx's light test model, its ConstantOfShape weights folded into initializers by onnxruntime's basic
    graph optimizer (the raw file is tried first and its refusal reported separately)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    out = folder / f"{name}_folded.onnx"
    so.optimized_model_filepath = str(out)
    ort.InferenceSession(str(LIGHT / f"{name}.onnx"), so, providers=["CPUExecutionProvider"])
    import onnx

    model = onnx.load(str(out))
    model.ir_version = max(model.ir_version, 4)  # IR 3 wants every initializer listed as an input: the fold's are not
    g = model.graph
    used, inits = {i for n in g.node for i in n.input}, {t.name for t in g.initializer}
    for i in [i for i in g.input if i.name not in used or i.name in inits]:  # the shapes ConstantOfShape read
        g.input.remove(i)
    onnx.save(model, str(out))
    return out


def imagenet_nchw(hw: int) -> Callable[[int, int], dict[str, np.ndarray]]:
    def make(n: int, seed: int) -> dict[str, np.ndarray]:
        x = image_crops(n, hw, hw, seed) / 255.0
        x = (x - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
        return {"data_0": x.transpose(0, 3, 1, 2).astype(np.float32)}
    return make


def torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def torch_version() -> str:
    import torch

    return str(torch.__version__)


def cases(wheels: Path) -> list[Case]:
    photos = "crops of scikit-learn's sample photos (china.jpg, flower.jpg)"
    texts = photos + " with words drawn by Pillow, PaddleOCR-normalised"
    out = [
        Case("helper_cnn", "onnx.helper (seeded random weights)", lambda f: helper_cnn(f, False),
             lambda n, s: {"x": digits_nchw(n, 1000 + s)}, "scikit-learn digits / 16", True),
        Case("helper_dscnn", "onnx.helper (seeded random weights)", lambda f: helper_cnn(f, True),
             lambda n, s: {"x": digits_nchw(n, 1000 + s)}, "scikit-learn digits / 16", True),
        Case("mobilenet_v2_035_96", "Keras MobileNetV2 alpha 0.35, weights=None (random), logits, tf2onnx", keras_mobilenet,
             lambda n, s: {"image": image_crops(n, 96, 96, s) / 127.5 - 1.0}, photos + ", scaled to [-1, 1], NHWC",
             True),
        Case("ppocr_v2_cls", "rapidocr-onnxruntime 1.4.4 wheel (PP-OCR mobile v2.0 cls)",
             lambda f: ocr(wheels, f, "cls", (48, 192)), ocr_samples((48, 192)), texts,
             True),
        Case("ppocr_v4_rec", "rapidocr-onnxruntime 1.4.4 wheel (PP-OCRv4 rec)",
             lambda f: ocr(wheels, f, "rec", (48, 320)), ocr_samples((48, 320)), texts,
             False),
        Case("ppocr_v4_det", "rapidocr-onnxruntime 1.4.4 wheel (PP-OCRv4 det)",
             lambda f: ocr(wheels, f, "det", (320, 320)), ocr_samples((320, 320)), texts,
             False),
        Case("silero_vad", "silero-vad 6.2.3 wheel (op18 ifless; its If on sr == 16000 replaced by the 16 kHz branch)",
             lambda f: silero(wheels, f), silero_samples, "seeded random tones + noise in [-1, 1], zero state", False),
    ]
    if torch_available():
        out.insert(0, Case("torch_digits_cnn", f"PyTorch {torch_version()} (seeded random weights), torch.onnx",
                           lambda f: torch_cnn(f, "torch_digits_cnn"), lambda n, s: {"x": digits_nchw(n, 1000 + s)},
                           "scikit-learn digits / 16", True))
        out.insert(1, Case("torch_resnet_tiny", f"PyTorch {torch_version()} (seeded random weights), torch.onnx",
                           lambda f: torch_cnn(f, "torch_resnet_tiny"),
                           lambda n, s: {"x": (image_crops(n, 32, 32, s) / 255.0).transpose(0, 3, 1, 2)},
                           photos + ", 0..1", True))
    for name in ("light_squeezenet", "light_shufflenet"):
        out.append(Case(name, f"onnx {__import__('onnx').__version__} backend test data (light/), folded",
                        lambda f, n=name: light(n, f), imagenet_nchw(224), photos + ", ImageNet-normalised", True))
    return out


# ---------------------------------------------------------------- running


def _unit(shape: Any) -> int:
    from edgeopt.data.tensors import feed_unit

    return feed_unit(tuple(d if isinstance(d, int) and d > 0 else None for d in shape))


def _take(a: np.ndarray, unit: int, k: int) -> np.ndarray:
    return a if unit == 0 else a[k * unit:(k + 1) * unit]


def run_onnx(path: Path, samples: dict[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
    """onnxruntime on `n` samples (arrays by input name, batch first as prove_conversion takes them)."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    units = {i.name: _unit(i.shape) for i in sess.get_inputs()}
    outs: dict[str, list[np.ndarray]] = {o.name: [] for o in sess.get_outputs()}
    for k in range(n):
        feed = {name: _take(samples[name], u, k) for name, u in units.items()}
        for o, y in zip(sess.get_outputs(), sess.run(None, feed), strict=True):
            outs[o.name].append(np.asarray(y, np.float32))
    return {k: np.concatenate(v) for k, v in outs.items()}


def run_tflite(path: Path, conv: Any, samples: dict[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
    """The .tflite at `path` (the float one or a quantized one of it: same tensor names) on ONNX-layout samples,
    outputs by ONNX name in the ONNX layout; unmatched names fall back to position (onnx2tf's int8 renames)."""
    from edgeopt.runtime import RunnerOptions, open_runner
    from edgeopt.runtime.tensors import from_model_output, to_model_input

    lite = open_runner(path, RunnerOptions())
    ins = {m.tflite_name: m for m in conv.inputs}
    outs = {m.tflite_name: m for m in conv.outputs}
    by_pos_in = list(conv.inputs)
    got: dict[str, list[np.ndarray]] = {m.onnx_name: [] for m in conv.outputs}
    for k in range(n):
        feeds = []
        for j, info in enumerate(lite.inputs):
            m = ins.get(info.name) or by_pos_in[j]
            a = _take(samples[m.onnx_name], _unit(m.onnx_shape), k)
            if m.perm and len(m.perm) == a.ndim:
                a = a.transpose(m.perm)
            feeds.append(to_model_input(np.ascontiguousarray(a.reshape(info.shape)), info))
        for j, (info, y) in enumerate(zip(lite.outputs, lite.run(feeds), strict=True)):
            m = outs.get(info.name) or list(conv.outputs)[j]
            y = from_model_output(np.asarray(y), info)
            if m.perm and len(m.perm) == y.ndim:
                y = y.transpose(tuple(int(i) for i in np.argsort(m.perm)))
            got[m.onnx_name].append(y.astype(np.float32))
    return {k: np.concatenate(v) for k, v in got.items()}


def accuracy(ref: dict[str, np.ndarray], got: dict[str, np.ndarray], classifier: bool) -> str:
    from edgeopt.validate.metrics import snr_db

    parts = []
    for name, r in ref.items():
        if name not in got:
            continue
        a = got[name].reshape(r.shape)
        rows, cols = r.reshape(r.shape[0], -1), a.reshape(r.shape[0], -1)
        if classifier and rows.shape[1] > 1:
            parts.append(f"top-1 {np.mean(rows.argmax(1) == cols.argmax(1)) * 100:.0f}%")
        else:
            parts.append(f"SNR {snr_db(r, a):.1f} dB")
    return ", ".join(parts)


def peer_int8(model: Path, conv: Any, calib: dict[str, np.ndarray], work: Path) -> Path:
    """onnx2tf -oiqt on a private copy, calibrated with -cind (mean 0, std 1: the data are already model inputs),
    float32 in and out; the full-integer .tflite it writes, or RuntimeError with the tail of its log."""
    from edgeopt.convert.onnx2tf_tool import find_onnx2tf

    tool = find_onnx2tf()
    work.mkdir()
    private = work / "model.onnx"
    shutil.copyfile(model, private)
    args = [*tool.command, "-i", str(private), "-o", str(work / "out"), "-tb", "flatbuffer_direct", "-n", "-oiqt"]
    for m in conv.inputs:
        a = calib[m.onnx_name]
        if m.perm and len(m.perm) == a.ndim:
            a = a.transpose(m.perm)
        np.save(work / f"cind_{len(args)}.npy", a.astype(np.float32))
        shape = [1] * (a.ndim - 1) + [a.shape[-1]]
        args += ["-cind", m.onnx_name, str(work / f"cind_{len(args)}.npy"),
                 json.dumps(np.zeros(shape).tolist()), json.dumps(np.ones(shape).tolist())]
    proc = subprocess.run(args, cwd=work, capture_output=True, text=True, timeout=PEER_TIMEOUT, check=False)
    found = sorted((work / "out").glob("*_integer_quant.tflite"))  # int8 inside, float32 in/out
    if proc.returncode != 0 or not found:
        msg = f"exit {proc.returncode}: {_cause(proc.stdout + proc.stderr)}"
        raise RuntimeError(msg)
    return found[0]


def _cause(log: str) -> str:
    """The last `SomeError: message` line of a traceback that is not onnx2tf's generic wrapper."""
    causes = [ln.strip() for ln in log.splitlines() if re.match(r"^\s*[\w.]+(Error|Exception): ", ln)
              and "fast path failed" not in ln]
    return causes[-1][:300] if causes else " ".join(log.split())[-300:] or "no int8 .tflite written"


def one_line(exc: BaseException) -> str:
    from edgeopt.errors import first_line

    text = re.sub(r"/\S*/", "", str(first_line(exc)))  # folders say nothing: the model is named in the row
    return " ".join(text.split()).replace("|", "/")[:300]


@dataclass
class Row:
    case: Case
    convert: str = ""
    fidelity: str = ""
    int8: dict[str, str] = field(default_factory=dict)  # variant -> accuracy or failure
    size: dict[str, int] = field(default_factory=dict)  # variant -> bytes
    p50: dict[str, float] = field(default_factory=dict)  # variant -> ms
    notes: list[str] = field(default_factory=list)


def _named(model: Path, samples: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """One array for a single-input model takes the model's input name (exporters name it their way)."""
    import onnx

    names = [i.name for i in onnx.load(str(model), load_external_data=False).graph.input]
    inits = {t.name for t in onnx.load(str(model), load_external_data=False).graph.initializer}
    names = [n for n in names if n not in inits]
    if len(names) == 1 and len(samples) == 1 and names[0] not in samples:
        return {names[0]: next(iter(samples.values()))}
    return samples


def measure(case: Case, work: Path, runs: int, min_seconds: float) -> Row:
    from edgeopt.benchmark.protocol import BenchSettings, run_interleaved
    from edgeopt.convert.onnx2tf import convert_with_onnx2tf
    from edgeopt.profiles.schema import Scheme
    from edgeopt.quantize.onnx import OnnxRecipe, quantize_onnx
    from edgeopt.quantize.onnx_prepare import prepare_onnx
    from edgeopt.quantize.tflite_file import quantize_tflite_file
    from edgeopt.validate.conversion_proof import prove_conversion

    row = Row(case)
    work.mkdir()
    try:
        model = case.make(work)
    except Exception as exc:  # a missing wheel or a failed export: the model is reported, not measured
        row.convert = f"not built: {one_line(exc)}"
        return row
    row.size["onnx float"] = model.stat().st_size
    calib, evals = _named(model, case.samples(CALIB_N, 0)), _named(model, case.samples(EVAL_N, 1))
    t0 = time.perf_counter()
    try:
        conv = convert_with_onnx2tf(model, work / "float.tflite")
    except Exception as exc:
        row.convert = f"fails ({time.perf_counter() - t0:.0f} s): {one_line(exc)}"
        return row
    row.convert = f"ok ({conv.seconds:.0f} s)"
    row.size["tflite float"] = conv.tflite.stat().st_size
    try:
        proof = prove_conversion(model, conv, evals)
        row.fidelity = "; ".join(f"`{o.name[:24]}` {o.max_abs:.2g} / {o.snr_db:.0f} dB" for o in proof.outputs)
    except Exception as exc:
        row.fidelity = f"prove_conversion refuses: {one_line(exc)}"
    ref = run_onnx(model, evals, EVAL_N)
    flat = [k for k, r in ref.items() if float(np.std(r)) < 1e-6]
    if flat:
        row.notes.append(f"the float model's output {', '.join(f'`{k}`' for k in flat)} has std < 1e-6 over the "
                         "samples (random or constant weights): int8 agreement on it means nothing")
    if row.fidelity.startswith("prove_conversion refuses"):  # the same two figures, computed here
        from edgeopt.validate.metrics import max_abs, snr_db

        got = run_tflite(conv.tflite, conv, evals, EVAL_N)
        row.fidelity += " - by this script: " + "; ".join(
            f"`{k[:24]}` {max_abs(r, got[k].reshape(r.shape)):.2g} / {snr_db(r, got[k].reshape(r.shape)):.0f} dB"
            for k, r in ref.items() if k in got)
    timed: list[tuple[str, Path]] = [("LiteRT float", conv.tflite)]
    # ai-edge-quantizer on the float .tflite, calibration in the .tflite's layout, by signature key
    cal_lite: dict[str, np.ndarray] = {}  # one row per sample, each in the .tflite's layout
    for m in conv.inputs:
        rows = [_take(calib[m.onnx_name], _unit(m.onnx_shape), k) for k in range(CALIB_N)]
        cal_lite[m.signature_key] = np.stack([a.transpose(m.perm) if m.perm and len(m.perm) == a.ndim else a
                                              for a in rows])
    try:
        q = quantize_tflite_file(conv.tflite, work / "aeq_int8.tflite", Scheme.INT8,
                                 next(iter(cal_lite.values())) if len(cal_lite) == 1 else cal_lite)
        row.size["tflite int8"] = q.bytes_out
        row.int8["LiteRT int8 (AEQ)"] = accuracy(ref, run_tflite(q.path, conv, evals, EVAL_N), case.classifier)
        timed.append(("LiteRT int8 (AEQ)", q.path))
    except Exception as exc:
        row.int8["LiteRT int8 (AEQ)"] = f"fails: {one_line(exc)}"
    try:
        prepared = prepare_onnx(model, work / "prepared.onnx").path
        recipe = OnnxRecipe(Scheme.INT8, calibration={k: v for k, v in calib.items()})
        qo = quantize_onnx(prepared, work / "int8.onnx", recipe)
        row.size["onnx int8"] = qo.stat().st_size
        row.int8["ORT int8"] = accuracy(ref, run_onnx(qo, evals, EVAL_N), case.classifier)
        timed.append(("ORT int8", qo))
    except Exception as exc:
        row.int8["ORT int8"] = f"fails: {one_line(exc)}"
    try:
        peer = peer_int8(model, conv, calib, work / "peer")
        row.size["onnx2tf int8"] = peer.stat().st_size
        row.int8["onnx2tf -oiqt"] = accuracy(ref, run_tflite(peer, conv, evals, EVAL_N), case.classifier)
        timed.append(("onnx2tf -oiqt", peer))
    except Exception as exc:
        row.int8["onnx2tf -oiqt"] = f"fails: {one_line(exc)}"
    settings = BenchSettings(runs=runs, min_seconds=min_seconds, max_seconds=20.0, warmup_seconds=0.3)
    try:
        results = run_interleaved([p for _, p in timed], settings, threads=[1])
        row.p50 = {label: r.latency.p50 for (label, _), r in zip(timed, results, strict=True)}
    except Exception as exc:
        row.notes.append(f"latency fails: {one_line(exc)}")
    return row


def light_raw(names: list[str], work: Path) -> list[str]:
    """onnx2tf on the light models as shipped (ConstantOfShape weights): one line each."""
    from edgeopt.convert.onnx2tf import convert_with_onnx2tf

    lines = []
    for name in names:
        t0 = time.perf_counter()
        try:
            convert_with_onnx2tf(LIGHT / f"{name}.onnx", work / f"{name}.tflite")
            lines.append(f"| `{name}` | converts ({time.perf_counter() - t0:.0f} s) |")
        except Exception as exc:
            lines.append(f"| `{name}` | {one_line(exc)} ({time.perf_counter() - t0:.0f} s) |")
        print(lines[-1], flush=True)
    return lines


# ---------------------------------------------------------------- the Keras samples: TF converter vs AEQ


def keras_table(work: Path, runs: int, min_seconds: float) -> list[str]:
    import sys

    from edgeopt.benchmark.protocol import BenchSettings, run_interleaved
    from edgeopt.profiles.schema import Scheme
    from edgeopt.quantize.tflite_file import quantize_tflite_file
    from edgeopt.runtime import RunnerOptions, open_runner
    from edgeopt.runtime.tensors import from_model_output, to_model_input

    def top1(path: Path, x: np.ndarray, y: np.ndarray) -> float:
        lite = open_runner(path, RunnerOptions())
        info, out = lite.inputs[0], lite.outputs[0]
        hits = 0
        for k in range(len(x)):
            p = from_model_output(np.asarray(lite.run([to_model_input(x[k:k + 1], info)])[0]), out)
            hits += int(p.argmax() == y[k])
        return 100.0 * hits / len(x)

    lines = ["| model | TF converter int8 top-1 % | AEQ int8 top-1 % | float top-1 % | bytes TF / AEQ | "
             "TF int8 p50 ms | AEQ int8 p50 ms | AEQ / TF | float p50 ms |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for stem in ("digits_cnn", "digits_dscnn"):
        out = work / f"build_{stem}"
        cmd = [sys.executable, "-m", "edgeopt", "build", str(SAMPLES / f"{stem}.keras"), "--target", "mobile-cpu",
               "--no-bench", "--out", str(out)]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
        if proc.returncode != 0:
            lines.append(f"| `{stem}` | build fails (exit {proc.returncode}): {' '.join(proc.stderr.split())[-200:]} |")
            continue
        build_s = time.perf_counter() - t0
        tf_int8, base = out / f"{stem}.tflite", out / f"{stem}.float.tflite"
        calib = np.load(SAMPLES / f"{stem}.calib.npz")["x"].astype(np.float32)
        ev = np.load(SAMPLES / f"{stem}.eval.npz")
        x, y = ev["x"].astype(np.float32), ev["y"]
        aeq = quantize_tflite_file(base, work / f"{stem}_aeq.tflite", Scheme.INT8, calib[:200]).path
        accs = [top1(p, x, y) for p in (tf_int8, aeq, base)]
        settings = BenchSettings(runs=runs, min_seconds=min_seconds, max_seconds=20.0, warmup_seconds=0.3)
        r = run_interleaved([tf_int8, aeq, base], settings, threads=[1])
        tf_ms, aeq_ms, f_ms = (v.latency.p50 for v in r)
        lines.append(f"| `{stem}` | {accs[0]:.2f} | {accs[1]:.2f} | {accs[2]:.2f} | {tf_int8.stat().st_size:,} / "
                     f"{aeq.stat().st_size:,} | {tf_ms:.4f} | {aeq_ms:.4f} | {aeq_ms / tf_ms:.2f} | {f_ms:.4f} |")
        print(lines[-1], f"(build {build_s:.0f} s, eval {len(x)} samples)", flush=True)
    return lines


# ---------------------------------------------------------------- rendering


VARIANTS = ("LiteRT int8 (AEQ)", "ORT int8", "onnx2tf -oiqt")


def render(rows: list[Row]) -> list[str]:
    out = ["| model | source | inputs | onnx2tf float | fidelity (output: max-abs / SNR) | "
           "AEQ int8 vs float ONNX | ORT int8 vs float ONNX | onnx2tf `-oiqt` int8 |",
           "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        c = r.case
        out.append(f"| `{c.name}` | {c.origin} | {c.inputs} | {r.convert} | {r.fidelity or '-'} | "
                   + " | ".join(r.int8.get(v, "-") for v in VARIANTS) + " |")
    out += ["", "Bytes and LiteRT / onnxruntime p50 (1 thread, interleaved per model):", "",
            "| model | ONNX float | ONNX int8 | .tflite float | .tflite int8 (AEQ) | onnx2tf int8 | "
            "LiteRT float ms | LiteRT int8 ms | ORT int8 ms | onnx2tf int8 ms | int8 / float (LiteRT) | "
            "LiteRT int8 / ORT int8 |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        if "tflite float" not in r.size:
            continue
        s, p = r.size, r.p50

        def b(k: str, s: dict[str, int] = s) -> str:
            return f"{s[k]:,}" if k in s else "-"

        def ms(k: str, p: dict[str, float] = p) -> str:
            return f"{p[k]:.3f}" if k in p else "-"

        def ratio(a: str, c: str, p: dict[str, float] = p) -> str:
            return f"{p[a] / p[c]:.2f}" if a in p and c in p else "-"

        out.append(f"| `{r.case.name}` | {b('onnx float')} | {b('onnx int8')} | {b('tflite float')} | "
                   f"{b('tflite int8')} | {b('onnx2tf int8')} | {ms('LiteRT float')} | {ms('LiteRT int8 (AEQ)')} | "
                   f"{ms('ORT int8')} | {ms('onnx2tf -oiqt')} | {ratio('LiteRT int8 (AEQ)', 'LiteRT float')} | "
                   f"{ratio('LiteRT int8 (AEQ)', 'ORT int8')} |")
    notes = [f"- `{r.case.name}`: {n}" for r in rows for n in r.notes]
    return out + ([""] + notes if notes else [])


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--wheels", type=Path, default=Path("/tmp/pkgs"))
    ap.add_argument("--only", default="", help="comma-separated model names (default: all)")
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--min-seconds", type=float, default=2.0)
    ap.add_argument("--no-keras", action="store_true", help="skip the Keras samples table")
    ap.add_argument("--no-light-raw", action="store_true", help="skip onnx2tf on the raw light models")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "RESULTS.md")
    args = ap.parse_args()

    from edgeopt.convert.onnx2tf_tool import find_onnx2tf

    started = time.time()
    load0 = os.getloadavg()
    tool = find_onnx2tf()
    only = {n for n in args.only.split(",") if n}
    torch_note = ("the PyTorch CNNs are exported by torch.onnx (TorchScript exporter, opset 17)" if torch_available()
                  else "`import torch` fails in the shared venv: the PyTorch-built CNNs are skipped")
    rows: list[Row] = []
    raw: list[str] = []
    keras_lines: list[str] = []
    with tempfile.TemporaryDirectory(prefix="onnx2tflite-") as tmp:
        work = Path(tmp)
        if not args.no_light_raw:
            (work / "light_raw").mkdir()
            names = sorted(p.stem for p in LIGHT.glob("*.onnx"))
            raw = light_raw(names, work / "light_raw")
        for case in cases(args.wheels):
            if only and case.name not in only:
                continue
            t0 = time.perf_counter()
            try:
                rows.append(measure(case, work / case.name, args.runs, args.min_seconds))
            except Exception as exc:  # a model that breaks the script is reported with what broke
                rows.append(Row(case, convert=f"script error: {type(exc).__name__}: {one_line(exc)}"))
            r = rows[-1]
            print(case.name, f"{time.perf_counter() - t0:.0f} s", r.convert, r.fidelity, r.int8, r.size, r.p50,
                  flush=True)
        if not args.no_keras:
            keras_lines = keras_table(work, args.runs, args.min_seconds)
    load1 = os.getloadavg()
    lines = ["## ONNX -> TFLite on real models: onnx2tf fidelity, int8 by ai-edge-quantizer vs onnxruntime vs "
             "onnx2tf `-oiqt`", "",
             f"`benchmarks/onnx_to_tflite.py`, measured on this host: {platform.machine()}, {os.cpu_count()} cores "
             f"shared with other jobs (load average {load0[0]:.1f} / {load0[1]:.1f} / {load0[2]:.1f} at the start, "
             f"{load1[0]:.1f} / {load1[1]:.1f} / {load1[2]:.1f} at the end: figures are noisy), onnx2tf "
             f"{tool.version} (`-tb flatbuffer_direct`), 1 thread, XNNPACK on, onnxruntime graph optimization all, "
             f"{args.runs}+ runs / {args.min_seconds:g}+ s per variant, the variants of a model interleaved in one "
             f"run; medians (p50). Accuracy: {EVAL_N} held-out samples (seed 1), calibration {CALIB_N} samples "
             "(seed 0), every int8 model against the float ONNX model in onnxruntime: top-1 agreement for "
             "classifiers (random-weight classifiers included: agreement, not accuracy), SNR otherwise. Fixed "
             "input shapes were written into private copies of the dynamic OCR / VAD models (onnx2tf and "
             "the quantizers need them). AEQ = ai-edge-quantizer through `edgeopt.quantize.tflite_file` (int8, "
             "per-channel, min/max, float I/O); ORT int8 = `prepare_onnx` + `quantize_onnx` (static QDQ S8S8 "
             "per-channel, what `edgeopt build --target edge-server` makes); onnx2tf `-oiqt` with `-cind` on "
             "the same calibration samples (mean 0, std 1), its `*_integer_quant.tflite` (int8 inside, float32 I/O). " + torch_note + ".", "",
             *render(rows)]
    if raw:
        lines += ["", "onnx's light backend-test models as shipped (Conv weights made by ConstantOfShape nodes):", "",
                  "| model | onnx2tf |", "|---|---|", *raw, "",
                  "Folded first with onnxruntime's basic graph optimizer (`ORT_ENABLE_BASIC`, "
                  "`optimized_model_filepath`: ConstantOfShape -> initializers), the small ones are measured in the "
                  "tables above as `light_*` (their weights are constants: agreement on them says little)."]
    if keras_lines:
        lines += ["", "The Keras samples quantized both ways: TensorFlow's converter (the int8 artifact of "
                  "`edgeopt build --target mobile-cpu --no-bench`) vs ai-edge-quantizer on that build's float "
                  "baseline .tflite (calibration: the first 200 of digits_*.calib.npz); top-1 on digits_*.eval.npz; "
                  "LiteRT 1 thread, the three interleaved in one run; AEQ / TF = p50 ratio (< 1: AEQ faster).", "",
                  *keras_lines]
    lines += ["", f"Total benchmark time {time.time() - started:.0f} s."]
    text = "\n".join(lines)
    replace_section(args.out, BEGIN, END, text)
    print(text)


if __name__ == "__main__":
    main()
