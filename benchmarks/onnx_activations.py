"""S8S8 vs U8S8: how fast are int8 ONNX artifacts of the sample models against float, on this CPU?

For each model in sample_models/ (Keras ones exported with edgeopt's tf2onnx path), the float ONNX model is
quantized static QDQ per-channel with int8 activations (S8S8) and with uint8 activations (U8S8) on its
calibration data, and the three are timed interleaved with edgeopt's protocol (onnxruntime, graph optimization
all) at each thread count. This is what `quantize.onnx_activations = "auto"` decides between in a build.
Writes the section between <!-- onnx-activations:begin --> and <!-- onnx-activations:end --> of
benchmarks/RESULTS.md.

    python benchmarks/onnx_activations.py [--threads 1,2] [--runs 300] [--min-seconds 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "sample_models"
from results_md import replace_section  # noqa: E402 - benchmarks/ is on sys.path when run as a script

BEGIN, END = "<!-- onnx-activations:begin -->", "<!-- onnx-activations:end -->"


def float_onnx(model: Path, out: Path) -> Path:
    if model.suffix == ".onnx":
        return model
    from edgeopt.convert.onnx import keras_to_onnx
    from edgeopt.load.keras_model import load_keras

    out.write_bytes(keras_to_onnx(load_keras(model), 17))
    return out



def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--runs", type=int, default=300)
    ap.add_argument("--min-seconds", type=float, default=3.0)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "RESULTS.md")
    args = ap.parse_args()

    from edgeopt.benchmark.protocol import BenchSettings, run_interleaved
    from edgeopt.profiles.schema import Scheme
    from edgeopt.quantize.onnx import OnnxRecipe, quantize_onnx
    from edgeopt.quantize.onnx_prepare import prepare_onnx

    threads = [int(t) for t in args.threads.split(",")]
    started = time.time()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines = ["## int8 ONNX activations: S8S8 vs U8S8 against float (onnxruntime)", "",
             f"`benchmarks/onnx_activations.py`: {platform.machine()}, {os.cpu_count()} CPUs, load average "
             f"{load:.1f} at the start, onnxruntime graph optimization all, static QDQ per-channel int8 weights, "
             f"{args.runs}+ runs / {args.min_seconds:g}+ s per model, interleaved. Ratio = p50 / float p50 "
             "(< 1 is faster).", "",
             "| model | threads | float p50 ms | S8S8 p50 ms | S8S8 ratio | U8S8 p50 ms | U8S8 ratio |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    with tempfile.TemporaryDirectory() as tmp:
        for model in sorted(p for p in SAMPLES.iterdir() if p.suffix in (".keras", ".onnx")):
            work = Path(tmp) / model.stem
            work.mkdir()
            src = prepare_onnx(float_onnx(model, work / "float.onnx"), work / "prepared.onnx").path
            calib = np.load(SAMPLES / f"{model.stem}.calib.npz")["x"][:200].astype(np.float32)
            paths = [src]
            for unsigned in (False, True):
                recipe = OnnxRecipe(Scheme.INT8, calibration=calib, unsigned_activations=unsigned)
                paths.append(quantize_onnx(src, work / f"{'u8' if unsigned else 's8'}.onnx", recipe))
            settings = BenchSettings(runs=args.runs, min_seconds=args.min_seconds, warmup_seconds=0.5)
            results = run_interleaved(paths, settings, threads=threads)
            for i, t in enumerate(threads):
                f, s8, u8 = (results[k * len(threads) + i].latency.p50 for k in range(3))
                row = f"| {model.name} | {t} | {f:.4f} | {s8:.4f} | {s8 / f:.2f} | {u8:.4f} | {u8 / f:.2f} |"
                lines.append(row)
                print(row, flush=True)
    lines += ["", f"Total benchmark time {time.time() - started:.0f} s."]
    text = "\n".join(lines)
    replace_section(args.out, BEGIN, END, text)
    print(text)


if __name__ == "__main__":
    main()
