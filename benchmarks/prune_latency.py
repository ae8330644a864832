"""Latency of structurally pruned vs dense vs magnitude-masked models on LiteRT (float and int8).

Each model is measured dense, structurally pruned at 30/50/70% MAC reduction (edgeopt.prune) and
magnitude-masked at 50% unstructured sparsity (smallest half of each kernel zeroed, the TFMOT
equivalent). Variants of one model run interleaved in rounds (A B C ... A B C ...); medians are reported.
Writes the section between <!-- prune:begin --> and <!-- prune:end --> of benchmarks/RESULTS.md.

    python benchmarks/prune_latency.py [--threads 2] [--rounds 60] [--no-samples]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from results_md import replace_section  # noqa: E402 - benchmarks/ is on sys.path when run as a script

BEGIN, END = "<!-- prune:begin -->", "<!-- prune:end -->"
TARGETS = (0.3, 0.5, 0.7)


@dataclass(frozen=True)
class Variant:
    name: str
    macs: int
    params: int
    tflite: dict[str, bytes]  # "float" / "int8" -> flatbuffer


def resnet_style(keras):
    """A ResNet-18-like model (basic blocks, projection shortcuts) at 128x128."""
    L = keras.layers
    i = keras.Input((128, 128, 3))
    x = L.Conv2D(32, 3, strides=2, padding="same", use_bias=False, name="stem")(i)
    x = L.ReLU()(L.BatchNormalization(name="stem_bn")(x))
    for s, filters in enumerate([32, 64, 128, 256]):
        for b in range(2):
            stride = 2 if (b == 0 and s > 0) else 1
            p = f"s{s}b{b}"
            y = L.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False, name=p + "_c1")(x)
            y = L.ReLU()(L.BatchNormalization(name=p + "_bn1")(y))
            y = L.Conv2D(filters, 3, padding="same", use_bias=False, name=p + "_c2")(y)
            y = L.BatchNormalization(name=p + "_bn2")(y)
            if stride != 1 or x.shape[-1] != filters:
                x = L.BatchNormalization(name=p + "_sbn")(L.Conv2D(filters, 1, strides=stride, use_bias=False,
                                                                    name=p + "_sc")(x))
            x = L.ReLU()(L.Add()([x, y]))
    x = L.GlobalAveragePooling2D()(x)
    return keras.Model(i, L.Dense(10, activation="softmax", name="out")(x), name="resnet18_style")


def masked(keras, model):
    """A copy with the smallest half (by |w|) of every conv/dense kernel set to zero."""
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    for layer in clone.layers:
        for v in layer.weights:
            if "kernel" in v.name:
                w = np.asarray(v)
                w[np.abs(w) <= np.median(np.abs(w))] = 0
                v.assign(w)
    return clone


def to_tflite(model, workdir: Path, calib: np.ndarray) -> dict[str, bytes]:
    import tensorflow as tf

    saved = Path(tempfile.mkdtemp(dir=workdir))
    model.export(str(saved), format="tf_saved_model", verbose=False)
    out = {"float": tf.lite.TFLiteConverter.from_saved_model(str(saved)).convert()}
    conv = tf.lite.TFLiteConverter.from_saved_model(str(saved))
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([calib[i:i + 1]] for i in range(len(calib)))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    out["int8"] = conv.convert()
    return out


def variants(keras, model, workdir: Path) -> list[Variant]:
    from edgeopt.analysis.keras_stats import keras_model_stats
    from edgeopt.prune import PruneSpec, prune_model

    shape = tuple(model.inputs[0].shape[1:])
    calib = np.random.default_rng(0).random((8, *shape), dtype=np.float32)
    stats = keras_model_stats(model)
    out = [Variant("dense", stats.macs, stats.params, to_tflite(model, workdir, calib))]
    for t in TARGETS:
        r = prune_model(model, PruneSpec(macs_reduction=t, round_to=8))
        out.append(Variant(f"pruned {int(t * 100)}%", r.macs_after, r.params_after, to_tflite(r.model, workdir, calib)))
    out.append(Variant("masked 50%", stats.macs, stats.params, to_tflite(masked(keras, model), workdir, calib)))
    return out


def measure(flatbuffers: list[bytes], threads: int, rounds: int, warmup: int) -> list[float]:
    """Median latency (ms) per flatbuffer, invoked interleaved round by round.

    Each sample times `inner` back-to-back invokes (the same count for every variant), chosen so a
    dense-model sample lasts >= 2 ms; sub-millisecond models are otherwise timer- and noise-bound.
    """
    from ai_edge_litert.interpreter import Interpreter

    its = []
    for fb in flatbuffers:
        it = Interpreter(model_content=fb, num_threads=threads)
        it.allocate_tensors()
        d = it.get_input_details()[0]
        x = np.random.default_rng(1).random(d["shape"], dtype=np.float32).astype(d["dtype"])
        it.set_tensor(d["index"], x)
        its.append(it)
    for _ in range(warmup):
        for it in its:
            it.invoke()
    t0 = time.perf_counter()
    its[0].invoke()
    inner = max(1, min(200, int(2e-3 / max(time.perf_counter() - t0, 1e-6))))
    times: list[list[float]] = [[] for _ in its]
    for _ in range(rounds):
        for i, it in enumerate(its):
            t0 = time.perf_counter()
            for _ in range(inner):
                it.invoke()
            times[i].append((time.perf_counter() - t0) * 1e3 / inner)
    return [statistics.median(t) for t in times]


def load_models(keras, samples: bool):
    yield keras.applications.MobileNetV2(input_shape=(224, 224, 3), alpha=1.0, weights=None)
    yield resnet_style(keras)
    if samples:
        for path in sorted((ROOT / "sample_models").glob("*.keras")):
            try:
                yield keras.saving.load_model(path, safe_mode=True, compile=False)
            except Exception as exc:  # noqa: BLE001 - a broken sample must not stop the benchmark
                print(f"skip {path.name}: {exc}", file=sys.stderr)



def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--no-samples", action="store_true", help="skip sample_models/*.keras")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "RESULTS.md")
    args = ap.parse_args()

    import keras

    keras.utils.set_random_seed(0)
    started = time.time()
    lines = ["## Structured pruning vs dense vs magnitude masking (LiteRT)", "",
             f"`benchmarks/prune_latency.py`: {platform.machine()}, {os.cpu_count()} CPUs, "
             f"num_threads={args.threads}, {args.rounds} interleaved rounds, p50 latency. "
             "Pruned = edgeopt.prune, global L1, round_to=8, MAC-reduction target (tiny models overshoot it: "
             "one round_to step is a large share of their channels); "
             "masked = smallest half of each kernel zeroed (unstructured).", "",
             "| model | variant | MACs (M) | MAC ratio | params (k) | float p50 ms | float ratio "
             "| int8 p50 ms | int8 ratio | int8 KB |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    with tempfile.TemporaryDirectory() as tmp:
        for model in load_models(keras, not args.no_samples):
            vs = variants(keras, model, Path(tmp))
            lat = {kind: measure([v.tflite[kind] for v in vs], args.threads, args.rounds, args.warmup)
                   for kind in ("float", "int8")}
            for i, v in enumerate(vs):
                row = (f"| {model.name} | {v.name} | {v.macs / 1e6:.1f} | {v.macs / vs[0].macs:.2f} | "
                       f"{v.params / 1e3:.0f} | {lat['float'][i]:.2f} | {lat['float'][i] / lat['float'][0]:.2f} | "
                       f"{lat['int8'][i]:.2f} | {lat['int8'][i] / lat['int8'][0]:.2f} | {len(v.tflite['int8']) / 1024:.0f} |")
                lines.append(row)
                print(row, flush=True)
    lines += ["", f"Total benchmark time {time.time() - started:.0f} s."]
    text = "\n".join(lines)
    replace_section(args.out, BEGIN, END, text)
    print(text)


if __name__ == "__main__":
    main()
