"""How much does `edgeopt bench` add to what it measures, and what do MobileNetV2 variants cost?

1. Fidelity: on one LiteRT interpreter, our protocol's timed loop and a bare
   `interpreter.invoke()` loop run interleaved in rounds; the ratio of the p50s is
   our overhead (target <= 1.03).
2. MobileNetV2 (keras.applications, weights=None, 224x224) as float, dynamic-range
   and int8 on LiteRT and onnxruntime, measured interleaved with edgeopt's protocol.
3. Cold start and peak RSS of `edgeopt bench` on a small int8 .tflite vs
   `python -c "import tensorflow"`.

Conversion (TensorFlow, tf2onnx, onnxruntime.quantization) runs in this process;
the measurements run in a fresh subprocess that never imports TensorFlow.
Writes the section between <!-- bench:begin --> and <!-- bench:end --> of
benchmarks/RESULTS.md (creating the file if missing).

    python benchmarks/bench_fidelity.py [--threads 1] [--rounds 40] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from results_md import replace_section  # noqa: E402 - benchmarks/ is on sys.path when run as a script

BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
SIZE = 224
CALIB = 16


# --------------------------------------------------------------------------- conversion (TensorFlow)


def _representative():
    rng = np.random.default_rng(0)
    for _ in range(CALIB):
        yield [rng.uniform(-1, 1, (1, SIZE, SIZE, 3)).astype(np.float32)]


def convert_all(out: Path) -> dict[str, Path]:
    import keras
    import tensorflow as tf
    import tf2onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )

    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV2(weights=None, input_shape=(SIZE, SIZE, 3))
    saved = out / "saved_model"
    model.export(str(saved), format="tf_saved_model")
    files: dict[str, Path] = {}

    def tflite(name: str, configure) -> None:
        conv = tf.lite.TFLiteConverter.from_saved_model(str(saved))
        configure(conv)
        files[name] = out / f"mobilenetv2_{name}.tflite"
        files[name].write_bytes(conv.convert())

    def dynamic(c) -> None:
        c.optimizations = [tf.lite.Optimize.DEFAULT]

    def int8(c) -> None:
        c.optimizations = [tf.lite.Optimize.DEFAULT]
        c.representative_dataset = _representative
        c.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        c.inference_input_type = tf.int8
        c.inference_output_type = tf.int8

    tflite("float", lambda c: None)
    tflite("dynamic", dynamic)
    tflite("int8", int8)

    @tf.function
    def serve(x):
        return model(x, training=False)

    spec = (tf.TensorSpec((1, SIZE, SIZE, 3), tf.float32, name="input"),)
    onnx_float = out / "mobilenetv2_float.onnx"
    tf2onnx.convert.from_function(serve, input_signature=spec, opset=17, output_path=str(onnx_float))
    files["onnx_float"] = onnx_float
    files["onnx_dynamic"] = out / "mobilenetv2_dynamic.onnx"
    quantize_dynamic(str(onnx_float), str(files["onnx_dynamic"]), weight_type=QuantType.QInt8)

    import onnx

    in_name = onnx.load(str(onnx_float)).graph.input[0].name

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = ({in_name: x[0]} for x in _representative())

        def get_next(self):
            return next(self._it, None)

    files["onnx_int8"] = out / "mobilenetv2_int8.onnx"
    quantize_static(str(onnx_float), str(files["onnx_int8"]), Reader(), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, per_channel=True)

    # A small int8 model for the cold-start measurement.
    small = keras.Sequential([keras.Input((16, 16, 1)), keras.layers.Conv2D(8, 3, activation="relu"),
                              keras.layers.Flatten(), keras.layers.Dense(10)])
    conv = tf.lite.TFLiteConverter.from_keras_model(small)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([np.random.default_rng(i).random((1, 16, 16, 1), np.float32)] for i in range(8))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = conv.inference_output_type = tf.int8
    files["small_int8"] = out / "small_int8.tflite"
    files["small_int8"].write_bytes(conv.convert())
    return files


# --------------------------------------------------------------------------- measuring (no TensorFlow)


def fidelity(path: Path, threads: int, rounds: int, block: int) -> dict[str, float]:
    """Our timed loop vs a bare invoke loop on the same interpreter, interleaved in rounds."""
    from edgeopt.benchmark.protocol import BenchSettings, _measure, _open

    settings = BenchSettings(threads=threads, runs=1, min_seconds=0.0, warmup_seconds=1.0)
    live = _open(path, settings, threads, None)
    interp = live.runner._it  # the same interpreter our loop calls
    clock = time.perf_counter
    bare: list[float] = []
    for _ in range(rounds):
        _measure(live, settings, budget=block)
        for _ in range(block):
            t = clock()
            interp.invoke()
            bare.append((clock() - t) * 1e3)
    ours = statistics.median(live.samples)
    ref = statistics.median(bare)
    return {"ours_p50": ours, "bare_p50": ref, "ratio": ours / ref, "runs": len(bare)}


def cold_start(cmd: list[str], repeats: int = 3) -> dict[str, float]:
    """Median wall time and peak RSS (MiB) of a fresh process.

    Launched through /usr/bin/time when present: a child forked from this (large) Python
    process would count our resident pages in its ru_maxrss until it execs.
    """
    import shutil

    walls, rss = [], []
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    timer = shutil.which("time") or ("/usr/bin/time" if Path("/usr/bin/time").exists() else None)
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "time.txt"
        for _ in range(repeats):
            full = [timer, "-f", "%M", "-o", str(report), *cmd] if timer else cmd
            t = time.perf_counter()
            p = subprocess.run(full, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=ROOT, check=False)
            walls.append(time.perf_counter() - t)
            if p.returncode != 0:
                msg = f"{' '.join(cmd)} failed with exit {p.returncode}"
                raise SystemExit(msg)
            if timer:
                rss.append(int(report.read_text().split()[-1]) / 1024)
            else:
                import resource

                rss.append(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)
    return {"wall_s": statistics.median(walls), "peak_rss_mb": statistics.median(rss)}


def measure(files: dict[str, Path], threads: int, rounds: int) -> dict:
    from edgeopt.benchmark.protocol import BenchSettings, run_interleaved

    assert "tensorflow" not in sys.modules
    out: dict = {"fidelity": {}, "models": [], "cold": {}}
    out["load_before"] = os.getloadavg()[0]
    bench = [sys.executable, "-m", "edgeopt", "bench", str(files["small_int8"]), "--runs", "10", "--min-seconds", "0",
             "--warmup-runs", "1", "--warmup-seconds", "0", "--json"]
    out["cold"]["edgeopt bench small_int8.tflite"] = cold_start(bench)
    out["cold"]["python -c 'import tensorflow'"] = cold_start([sys.executable, "-c", "import tensorflow"])
    # Alternate single invokes (A B A B ...) so background load hits both loops alike.
    for name in ("float", "int8"):
        out["fidelity"][name] = fidelity(files[name], threads, rounds, block=1)
    out["fidelity"]["small_int8"] = fidelity(files["small_int8"], threads, 40, block=200)
    settings = BenchSettings(threads=threads, runs=50, min_seconds=2.0, warmup_seconds=0.5)
    order = ["float", "dynamic", "int8", "onnx_float", "onnx_dynamic", "onnx_int8"]
    results = run_interleaved([files[k] for k in order], settings)
    for key, r in zip(order, results, strict=True):
        s = r.latency
        out["models"].append({"variant": key, "file": Path(r.model).name, "runtime": r.runtime, "kb": files[key].stat().st_size / 1024,
                              "p50": s.p50, "p90": s.p90, "p99": s.p99, "mean": s.mean, "iqr": s.iqr, "runs": s.runs,
                              "init_ms": r.init_ms, "first_ms": r.first_ms, "rss_delta_mb": r.rss_delta_mb})
    out["fingerprint"] = results[0].fingerprint.describe() if results[0].fingerprint else ""
    out["runtimes"] = sorted({f"{r.implementation} {r.runtime_version}" for r in results})
    out["load_after"] = os.getloadavg()[0]
    return out


# --------------------------------------------------------------------------- report


def render(m: dict, threads: int) -> str:
    lines = [BEGIN, "## `edgeopt bench`: fidelity, MobileNetV2 variants, cold start", "",
             f"Generated by `python benchmarks/bench_fidelity.py --threads {threads}` on",
             f"{m['fingerprint']}. Runtimes: {', '.join(m['runtimes'])}.",
             f"1-minute load average {m['load_before']:.1f} before and {m['load_after']:.1f} after measuring "
             "(other work was running on this machine; tails are noisy, medians and ratios are the numbers to read).", "",
             "### Overhead of the protocol vs a bare `interpreter.invoke()` loop (same interpreter, interleaved)", "",
             "| model | edgeopt p50 ms | bare p50 ms | ratio | runs each |", "|---|---|---|---|---|"]
    for name, f in m["fidelity"].items():
        lines.append(f"| {name} | {f['ours_p50']:.4f} | {f['bare_p50']:.4f} | {f['ratio']:.3f} | {f['runs']} |")
    lines += ["", "### MobileNetV2 (weights=None, 224x224x3, batch 1), measured interleaved", "",
              "| variant | runtime | size KiB | p50 ms | p90 ms | p99 ms | mean ms | IQR ms | runs | init ms | first ms | ΔRSS MiB |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in m["models"]:
        rss = "-" if r["rss_delta_mb"] is None else f"{r['rss_delta_mb']:.1f}"
        lines.append(f"| {r['variant']} | {r['runtime']} | {r['kb']:.0f} | {r['p50']:.2f} | {r['p90']:.2f} | {r['p99']:.2f} | "
                     f"{r['mean']:.2f} | {r['iqr']:.3f} | {r['runs']} | {r['init_ms']:.0f} | {r['first_ms']:.1f} | {rss} |")
    lines += ["", "float = plain TFLiteConverter; dynamic = Optimize.DEFAULT without data (int8 weights); int8 = full",
              "integer with int8 I/O (16 random calibration samples). ONNX: tf2onnx opset 17, then onnxruntime",
              "quantize_dynamic (QInt8 weights) or quantize_static (QDQ, per-channel, same calibration).",
              "Random weights and inputs: latency only, no accuracy.", "",
              "### Cold start (median of 3 fresh processes)", "", "| command | wall s | peak RSS MiB |", "|---|---|---|"]
    for name, c in m["cold"].items():
        lines.append(f"| `{name}` | {c['wall_s']:.2f} | {c['peak_rss_mb']:.0f} |")
    lines += ["", "`edgeopt bench` time includes loading LiteRT, 1 warmup + 10 measured runs and printing JSON.", END]
    return "\n".join(lines) + "\n"



def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=300, help="alternations of the fidelity check")
    ap.add_argument("--keep", type=Path, help="keep the converted models in this folder")
    ap.add_argument("--reuse", action="store_true", help="with --keep: measure the models converted there before")
    ap.add_argument("--measure", type=Path, help=argparse.SUPPRESS)  # internal: measuring subprocess
    args = ap.parse_args()
    if args.measure:
        files = {k: Path(v) for k, v in json.loads((args.measure / "files.json").read_text()).items()}
        (args.measure / "measured.json").write_text(json.dumps(measure(files, args.threads, args.rounds)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        if not (args.reuse and (work / "files.json").exists()):
            files = convert_all(work)
            print(f"converted in {time.perf_counter() - t:.0f} s", file=sys.stderr)
            (work / "files.json").write_text(json.dumps({k: str(v) for k, v in files.items()}))
        subprocess.run([sys.executable, __file__, "--measure", str(work), "--threads", str(args.threads),
                        "--rounds", str(args.rounds)], check=True)
        m = json.loads((work / "measured.json").read_text())
    text = render(m, args.threads)
    replace_section(RESULTS, BEGIN, END, text)
    print(text)
    worst = max(f["ratio"] for k, f in m["fidelity"].items() if k != "small_int8")
    print(f"protocol overhead on MobileNetV2: x{worst:.3f} ({'OK' if worst <= 1.03 else 'ABOVE 3%'})", file=sys.stderr)


if __name__ == "__main__":
    main()
