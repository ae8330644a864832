"""A dynamic-shape ONNX model benchmarked with `--input`: the shape reported, and latency vs a bare onnxruntime loop.

The model (built with onnx.helper, no TensorFlow) is a small conv net whose input is [N, 3, H, W] with all three
dimensions symbolic. `edgeopt bench model.onnx --input x.npz` (x: 1x3x224x224) runs in this process through the
real CLI, interleaved round by round with a bare `ort.InferenceSession.run` loop on the same array and the same
session options (1 intra-op thread, 1 inter-op thread, all graph optimizations). The medians of the per-round p50s
and their ratio go to the section of benchmarks/RESULTS.md between <!-- dynshape:begin --> and <!-- dynshape:end -->.

    python benchmarks/bench_dynamic_shape.py [--rounds 9] [--runs 40] [--size 224]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
from results_md import replace_section  # noqa: E402 - benchmarks/ is on sys.path when run as a script

BEGIN, END = "<!-- dynshape:begin -->", "<!-- dynshape:end -->"


def conv_net(path: Path) -> Path:
    """Conv(3->16) Relu, then Conv(->32/64/128, stride 2) Relu each, GlobalAveragePool Flatten Gemm(128->10).

    About 0.2 G MACs at 224x224, so the timed call is milliseconds, not dominated by dispatch.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    nodes, inits, prev, cin = [], [], "x", 3
    for i, cout in enumerate((16, 32, 64, 128)):
        w = numpy_helper.from_array((rng.standard_normal((cout, cin, 3, 3)) * 0.1).astype(np.float32), f"w{i}")
        b = numpy_helper.from_array(np.zeros(cout, np.float32), f"b{i}")
        inits += [w, b]
        nodes += [helper.make_node("Conv", [prev, f"w{i}", f"b{i}"], [f"c{i}"], kernel_shape=[3, 3], strides=[1, 1] if i == 0 else [2, 2],
                                   pads=[1, 1, 1, 1]),
                  helper.make_node("Relu", [f"c{i}"], [f"r{i}"])]
        prev, cin = f"r{i}", cout
    inits += [numpy_helper.from_array((rng.standard_normal((10, 128)) * 0.1).astype(np.float32), "fc"),
              numpy_helper.from_array(np.zeros(10, np.float32), "fcb")]
    nodes += [helper.make_node("GlobalAveragePool", [prev], ["gap"]), helper.make_node("Flatten", ["gap"], ["flat"]),
              helper.make_node("Gemm", ["flat", "fc", "fcb"], ["y"], transB=1)]
    g = helper.make_graph(nodes, "dynamic_convnet",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, "H", "W"])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])], inits)
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(path))
    return path


def bare_loop(model: Path, x: np.ndarray, runs: int, warmup: int = 3) -> float:
    """p50 (ms) of `runs` calls of a fresh session's run on `x`, after `warmup` calls."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = 1, 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(str(model), so, providers=["CPUExecutionProvider"])
    feeds = {"x": x}
    for _ in range(warmup):
        sess.run(None, feeds)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        sess.run(None, feeds)
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def edgeopt_bench(model: Path, npz: Path, runs: int) -> dict:
    from typer.testing import CliRunner

    from edgeopt.cli.app import app

    res = CliRunner().invoke(app, ["bench", str(model), "--input", str(npz), "--runs", str(runs), "--min-seconds", "0",
                                   "--warmup-runs", "3", "--warmup-seconds", "0", "--json"])
    if res.exit_code != 0:
        msg = f"edgeopt bench exited {res.exit_code}: {res.output}"
        raise SystemExit(msg)
    return json.loads(res.stdout)["results"][0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--size", type=int, default=224)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model = conv_net(Path(tmp) / "dynamic_convnet.onnx")
        x = np.random.default_rng(1).standard_normal((1, 3, args.size, args.size)).astype(np.float32)
        npz = Path(tmp) / "x.npz"
        np.savez(npz, x=x)
        ours, bare, shapes, load0 = [], [], set(), os.getloadavg()[0]
        for r in range(args.rounds):  # A B, B A, ... so drift hits both alike
            pair = ("edgeopt", "bare") if r % 2 == 0 else ("bare", "edgeopt")
            for who in pair:
                if who == "edgeopt":
                    row = edgeopt_bench(model, npz, args.runs)
                    ours.append(row["latency"]["p50"])
                    shapes.add(row["input_shapes"])
                else:
                    bare.append(bare_loop(model, x, args.runs))
        load1 = os.getloadavg()[0]
    o, b = statistics.median(ours), statistics.median(bare)
    import onnxruntime

    text = "\n".join([
        BEGIN, "## A dynamic-shape ONNX model benchmarked with `--input` (vs a bare onnxruntime loop)", "",
        f"`python benchmarks/bench_dynamic_shape.py --rounds {args.rounds} --runs {args.runs} --size {args.size}`: "
        "a 4-conv net (~0.2 G MACs at 224x224) built with onnx.helper, input `x` = [N, 3, H, W] (all symbolic), fed "
        f"1x3x{args.size}x{args.size} from an .npz; `edgeopt bench --input` (through the CLI, in-process) and a bare "
        "`ort.InferenceSession.run` loop with the same session options (1 thread), interleaved A B / B A for "
        f"{args.rounds} rounds of {args.runs} runs; onnxruntime {onnxruntime.__version__}; 1-minute load "
        f"{load0:.1f} before, {load1:.1f} after (a shared machine).", "",
        "| | p50 ms (median of rounds) | per-round p50s ms |", "|---|---|---|",
        f"| `edgeopt bench --input` | {o:.3f} | {', '.join(f'{v:.2f}' for v in ours)} |",
        f"| bare `InferenceSession.run` | {b:.3f} | {', '.join(f'{v:.2f}' for v in bare)} |", "",
        f"Ratio edgeopt / bare: **{o / b:.3f}** (target within 10%). Shape reported by `bench --json` "
        f"(`input_shapes`): `{', '.join(sorted(shapes))}`.", END, ""])
    replace_section(RESULTS, BEGIN, END, text)
    print(text)


if __name__ == "__main__":
    main()
