"""QAT peer comparison: TF-MOT `quantize_model` on tf_keras vs edgeopt QAT on Keras 3.

Same constructed models (tests/qat/cases.py, where int8 PTQ breaks), same float weights, same
training data, epochs, batch size and learning rate; int8 .tflite accuracy in LiteRT on the same
eval samples, artifact bytes and training time. TF-MOT needs tf_keras, which edgeopt never imports:
the peer runs in a child process with TF_USE_LEGACY_KERAS=1 and `--peer-path` (a folder holding
tf_keras, tensorflow_model_optimization and dm-tree, e.g. `pip install --target DIR --no-deps ...`).

Writes the section between <!-- qat-peer:begin --> and <!-- qat-peer:end --> of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from results_md import replace_section  # noqa: E402 - benchmarks/ is on sys.path when run as a script

BEGIN, END = "<!-- qat-peer:begin -->", "<!-- qat-peer:end -->"
EPOCHS, BATCH, LR = 3, 32, 1e-4


def arch(k: Any, case: str) -> Any:
    """The case architectures, for Keras 3 or tf_keras (same layer names, so weights copy by name)."""
    L = k.layers
    if case == "heavy_tail_mlp":
        inp = k.Input((64,), name="pixels")
        h = L.Dense(48, activation="relu", name="hidden")(inp)
        h = L.Dense(32, activation="relu", name="mixer")(h)
        return k.Model(inp, L.Dense(10, name="logits")(h))
    inp = k.Input((8, 8, 1), name="image")
    h = L.Conv2D(16, 3, padding="same", use_bias=False, name="stem")(inp)
    h = L.BatchNormalization(name="stem_bn")(h)
    h = L.ReLU(6.0, name="stem_relu")(h)
    h = L.DepthwiseConv2D(3, padding="same", name="dw")(h)
    h = L.ReLU(name="dw_relu")(h)
    h = L.Conv2D(16, 1, name="pw")(h)
    h = L.BatchNormalization(name="pw_bn")(h)
    h = L.ReLU(6.0, name="pw_relu")(h)
    h = L.MaxPooling2D(2, name="pool")(h)
    h = L.Flatten(name="flat")(h)
    return k.Model(inp, L.Dense(10, name="logits")(h))


def litert_top1(data: bytes, x: np.ndarray, y: np.ndarray) -> float:
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=data)
    it.allocate_tensors()
    i, o = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]
    pred = []
    for s in x:
        it.set_tensor(i, s[None].astype(np.float32))
        it.invoke()
        pred.append(int(it.get_tensor(o).reshape(-1).argmax()))
    return float(100.0 * np.mean(np.array(pred) == y))


def peer(case: str, weights: Path, data: Path, out: Path) -> None:
    """Child process: TF-MOT default 8-bit QAT on tf_keras."""
    import tensorflow as tf
    import tensorflow_model_optimization as tfmot
    import tf_keras

    tf_keras.utils.set_random_seed(0)
    model = arch(tf_keras, case)
    with np.load(weights) as w:
        for layer in model.layers:
            n = sum(1 for key in w.files if key.startswith(layer.name + "/"))
            if n:
                layer.set_weights([w[f"{layer.name}/{i}"] for i in range(n)])
    d = np.load(data)
    q = tfmot.quantization.keras.quantize_model(model)
    q.compile(optimizer=tf_keras.optimizers.Adam(LR),
              loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    started = time.perf_counter()
    q.fit(d["xtr"], d["ytr"], epochs=EPOCHS, batch_size=BATCH, shuffle=True, verbose=0)
    seconds = time.perf_counter() - started
    conv = tf.lite.TFLiteConverter.from_keras_model(q)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    tfl = conv.convert()
    out.write_text(json.dumps({"top1": litert_top1(tfl, d["xev"], d["yev"]), "bytes": len(tfl),
                               "train_seconds": seconds}))


def run_case(case: str, peer_path: str | None, tmp: Path) -> dict[str, Any]:
    from edgeopt.convert.savedmodel import export_saved_model
    from edgeopt.convert.tflite import to_tflite
    from edgeopt.profiles.schema import Scheme
    from edgeopt.qat.export import qat_tflite
    from edgeopt.qat.train import QatSpec, train_qat
    from edgeopt.quantize.tflite import TfliteRecipe, converter_setup
    from tests.qat import cases

    xtr, ytr, xev, yev = cases.digits(case != "heavy_tail_mlp")
    xtr, ytr = cases.rare_first(xtr, ytr)
    model = getattr(cases, case)()
    sm = export_saved_model(model, tmp / f"{case}_sm")
    row: dict[str, Any] = {"case": case,
                           "float": litert_top1(to_tflite(sm), xev, yev),
                           "ptq": litert_top1(to_tflite(sm, converter_setup(TfliteRecipe(Scheme.INT8, calibration=xtr[:200]))), xev, yev)}
    r = train_qat(model, QatSpec(epochs=EPOCHS, learning_rate=LR, batch_size=BATCH), xtr, ytr)
    data = qat_tflite(r.model)
    row["edgeopt"] = {"top1": litert_top1(data, xev, yev), "bytes": len(data), "train_seconds": r.train_seconds}
    if peer_path:
        weights, dataset, res = tmp / f"{case}_w.npz", tmp / f"{case}_d.npz", tmp / f"{case}_peer.json"
        np.savez(weights, **{f"{layer.name}/{i}": w for layer in model.layers for i, w in enumerate(layer.get_weights())})
        np.savez(dataset, xtr=xtr, ytr=ytr, xev=xev, yev=yev)
        env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "PYTHONPATH": os.pathsep.join([peer_path, str(ROOT)])}
        proc = subprocess.run([sys.executable, __file__, "--peer", case, str(weights), str(dataset), str(res)],
                              env=env, capture_output=True, text=True)
        row["tfmot"] = json.loads(res.read_text()) if proc.returncode == 0 else {"error": proc.stderr.strip().splitlines()[-1:]}
    return row



def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--peer-path", default=os.environ.get("EDGEOPT_PEER_PATH"),
                    help="folder with tf_keras + tensorflow_model_optimization (+ dm-tree); omit to skip the peer")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "RESULTS.md")
    ap.add_argument("--peer", nargs=4, metavar=("CASE", "WEIGHTS", "DATA", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if args.peer:
        peer(args.peer[0], Path(args.peer[1]), Path(args.peer[2]), Path(args.peer[3]))
        return
    import platform

    lines = ["## Quantization-aware training: edgeopt (Keras 3) vs TF-MOT (tf_keras)", "",
             f"`benchmarks/qat_peer.py` on {platform.machine()}, {os.cpu_count()} CPUs (shared with other work: "
             f"training times are indicative). Models from tests/qat/cases.py (a heavy-tailed activation breaks "
             f"min/max PTQ); both QAT runs start from the same float weights: {EPOCHS} epochs, batch {BATCH}, Adam "
             f"{LR:g}, same 1400 training / 397 eval digits. Top-1 % in LiteRT, int8 with float I/O; PTQ calibrated "
             "on 200 training samples (min/max).", "",
             "| model | float | PTQ int8 | edgeopt QAT int8 | TF-MOT QAT int8 | edgeopt bytes | TF-MOT bytes "
             "| edgeopt train s | TF-MOT train s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    with tempfile.TemporaryDirectory() as tmp:
        for case in ("heavy_tail_mlp", "dscnn_tail"):
            r = run_case(case, args.peer_path, Path(tmp))
            e, t = r["edgeopt"], r.get("tfmot", {})
            peer_cells = (f"{t['top1']:.2f}", str(t["bytes"]), f"{t['train_seconds']:.1f}") if "top1" in t else \
                (("error: " + " ".join(t.get("error", ["not run"])))[:80], "-", "-")
            lines.append(f"| {case} | {r['float']:.2f} | {r['ptq']:.2f} | {e['top1']:.2f} | {peer_cells[0]} | "
                         f"{e['bytes']} | {peer_cells[1]} | {e['train_seconds']:.1f} | {peer_cells[2]} |")
            print(lines[-1], flush=True)
    lines += ["", "TF-MOT quantizes Dense weights per tensor and Conv/Depthwise per channel; edgeopt uses per channel "
              "for all three (Dense patched into the flatbuffer, see edgeopt/qat/fc_channels.py)."]
    replace_section(args.out, BEGIN, END, "\n".join(lines))


if __name__ == "__main__":
    main()
