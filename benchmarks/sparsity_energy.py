"""Sparsity at 50 / 80 / 90 % on the sample models: accuracy, bytes, latency ratios, energy.

For each sample model and target sparsity: `edgeopt.sparsify` (unstructured, per layer, pruned while
fine-tuning on digits.train.npz with the default schedule), then the six .tflite variants of
edgeopt.sparsify.gains (int8 dense / sparse / sparse-encoded, float32 dense / sparse / sparse-encoded),
read back, run on LiteRT and timed interleaved (1 thread). Energy: profile estimates (edgeopt.energy),
and the RAPL counter when this machine exposes one. Also the MLPerf Tiny KWS energy comparison.
Writes the section between <!-- sparsity:begin --> and <!-- sparsity:end --> of benchmarks/RESULTS.md.

    python benchmarks/sparsity_energy.py [--models digits_cnn,digits_dscnn] [--levels 0.5,0.8,0.9]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from results_md import replace_section  # noqa: E402 - benchmarks/ is on sys.path when run as a script

BEGIN, END = "<!-- sparsity:begin -->", "<!-- sparsity:end -->"
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
SAMPLES = ROOT / "sample_models"
# Published MLPerf Tiny energy per inference, keyword spotting (DS-CNN), mJ.
MLPERF_KWS = (("MLPerf Tiny v1.3, STMicroelectronics NUCLEO-L4R5ZI-P", 1.431),
              ("MLPerf Tiny v0.5, TFLite Micro reference submission", 7.37))


def _load(name: str) -> tuple[Any, np.ndarray, tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    from edgeopt.load.keras_model import load_keras

    model = load_keras(SAMPLES / f"{name}.keras")
    cal = np.load(SAMPLES / f"{name}.calib.npz")["x"]
    with np.load(SAMPLES / f"{name}.eval.npz") as z:
        ev = (z["x"], z["y"])
    with np.load(SAMPLES / "digits.train.npz") as z:
        tr = (z["x"], z["y"])
    return model, cal, ev, tr


def _macs(data: bytes) -> int:
    from edgeopt.analysis.tflite_graph import read_tflite

    return read_tflite(data).macs


def measure(name: str, level: float) -> dict[str, Any]:
    from edgeopt.benchmark.protocol import BenchSettings
    from edgeopt.load.keras_model import load_keras
    from edgeopt.sparsify import SparsifySpec, sparsify_model
    from edgeopt.sparsify.gains import measure_gains

    sparse, cal, ev, tr = _load(name)
    result = sparsify_model(sparse, SparsifySpec(sparsity=level), tr, ev)
    dense = load_keras(SAMPLES / f"{name}.keras")
    with tempfile.TemporaryDirectory() as tmp:
        gains = measure_gains(dense, sparse, [x.layer for x in result.layers], cal, ev, Path(tmp),
                              BenchSettings(threads=1, runs=100, min_seconds=2.0))
        int8 = (Path(tmp) / "int8_sparse.tflite").read_bytes()
        macs = _macs(int8)
    return {"model": name, "level": level, "result": result, "gains": gains, "macs": macs}


def energy_rows(rows: list[dict[str, Any]]) -> list[str]:
    from edgeopt.energy import LatencySource, estimate_energy, rapl_status
    from edgeopt.profiles import load_profile

    nrf = load_profile("nrf52840").profile
    assert nrf.energy is not None and nrf.mcu.sustained_macs_per_second
    out = ["| model | sparsity | MACs (int8 .tflite) | nRF52840 latency est. | energy est. | inferences/J | CR2032 at 1 inference/s |",
           "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        ms = r["macs"] / nrf.mcu.sustained_macs_per_second * 1000
        f = estimate_energy(nrf.energy, ms, LatencySource.MAC_RATE)
        assert f.millijoules_per_inference is not None and f.inferences_per_joule is not None and f.battery is not None
        out.append(f"| {r['model']} | {r['level']:.0%} | {r['macs'] / 1e6:.2f} M | {ms:.1f} ms | "
                   f"{f.millijoules_per_inference:.3f} mJ | {f.inferences_per_joule:,.0f} | {f.battery.days:,.0f} days |")
    st = rapl_status()
    out += ["", f"Measured energy on this host: {'RAPL readable (' + st.reason + ')' if st.readable else st.reason}."]
    return out


def mlperf_rows() -> list[str]:
    import keras

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from mlperf_tiny import dscnn_kws, to_int8

    from edgeopt.energy import LatencySource, estimate_energy
    from edgeopt.profiles import load_profile

    nrf = load_profile("nrf52840").profile
    assert nrf.energy is not None and nrf.mcu.sustained_macs_per_second
    with tempfile.TemporaryDirectory() as tmp:
        path = to_int8(dscnn_kws(keras), Path(tmp))
        macs = _macs(Path(path).read_bytes())
    ms = macs / nrf.mcu.sustained_macs_per_second * 1000
    f = estimate_energy(nrf.energy, ms, LatencySource.MAC_RATE)
    assert f.millijoules_per_inference is not None
    out = [f"KWS DS-CNN (benchmarks/mlperf_tiny.py architecture, {macs / 1e6:.2f} M MACs) on the nRF52840 profile: "
           f"{ms:.1f} ms (MAC-rate estimate) x {f.power_mw:g} mW = **{f.millijoules_per_inference:.3f} mJ** per inference "
           "(estimate).", "", "| published result | mJ/inference | our estimate / published |", "|---|---:|---:|"]
    for who, mj in MLPERF_KWS:
        out.append(f"| {who} | {mj} | {f.millijoules_per_inference / mj:.2f} |")
    out += ["", "The published figures are measured at the board's supply with EEMBC's EnergyRunner (the whole board, "
            "including regulators and the I/O of the benchmark harness) on different cores (Cortex-M4 at 120 MHz on the "
            "L4R5). Ours is the chip's datasheet CPU power times a MAC-rate latency: it leaves out everything but the "
            "core, so it is a lower bound, not a competitor."]
    return out


def render(rows: list[dict[str, Any]], mlperf: list[str]) -> str:
    import ai_edge_litert
    import tensorflow as tf

    from edgeopt import __version__

    lines = [BEGIN, "## Unstructured sparsity: what it buys (LiteRT, TFLite, TFLM) and energy", "",
             f"`python benchmarks/sparsity_energy.py` (edgeopt {__version__}, TensorFlow {tf.__version__}, "
             f"ai-edge-litert {getattr(ai_edge_litert, '__version__', '?')}, {platform.machine()}, "
             f"{platform.processor() or platform.machine()}, 1 thread). Unstructured magnitude pruning per layer, "
             "pruned while fine-tuning (12 epochs, polynomial schedule reaching the target at half of them), "
             "int8 per-channel with float I/O calibrated on NAME.calib.npz; top-1 on NAME.eval.npz (360 images).", "",
             "| model | sparsity | Keras top-1 (float -> sparse) | int8 top-1 (LiteRT) | zeros in int8 .tflite | int8 bytes dense / sparse | gzip dense / sparse | int8 sparse-encoded bytes | float32 sparse / sparse-encoded bytes | latency int8 sparse / dense | int8 sparse-encoded / dense (same kernels) | float32 sparse-encoded / sparse |",
             "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        res, g = r["result"], r["gains"]
        a = {x.variant: x for x in g.artifacts}

        def ratio(v: str, a: dict[str, Any] = a) -> str:
            x = a[v]
            return "-" if x.latency_ratio is None else f"{x.latency_ratio:.2f}"

        enc = a["int8 sparse-encoded"]
        enc_txt = f"{enc.raw_bytes:,} ({enc.sparse_tensors} sparse tensors)"
        if not enc.runs:
            enc_txt += f", LiteRT refuses it: {enc.error}"
        elif enc.delegate != "xnnpack":
            enc_txt += f", top-1 {enc.top1:.2f} % on the builtin kernels (XNNPACK refuses it)"
        fenc = a["float32 sparse-encoded"]
        lines.append(
            f"| {r['model']} | {r['level']:.0%} | {res.accuracy_before:.2f} -> {res.accuracy_after:.2f} % | "
            f"{a['int8 sparse'].top1:.2f} % | {g.int8_sparsity:.1%} | {a['int8 dense'].raw_bytes:,} / {a['int8 sparse'].raw_bytes:,} | "
            f"{a['int8 dense'].gzip_bytes:,} / {a['int8 sparse'].gzip_bytes:,} | {enc_txt} | "
            f"{a['float32 sparse'].raw_bytes:,} / {fenc.raw_bytes:,} ({fenc.sparse_tensors} sparse) | "
            f"{ratio('int8 sparse')} | {ratio('int8 sparse-encoded')} | {ratio('float32 sparse-encoded')} |")
    g0 = rows[0]["gains"]
    refused = {x.delegate for r in rows for x in r["gains"].artifacts if x.runs and x.delegate != "xnnpack"}
    lines += ["", "- Latency ratios are p50 / p50, measured interleaved (edgeopt.benchmark.protocol). " + g0.xnnpack_sparse + ".",
              "- An artifact XNNPACK refuses is timed on LiteRT's builtin kernels against the dense int8 model on the same "
              "kernels (no XNNPACK for either). Delegates seen: " + ("; ".join(sorted(refused)) or "XNNPACK for all") + ".",
              "- Per row, the plain statement: " + "; ".join(f"{r['model']} {r['level']:.0%}: {r['gains'].latency_statement}" for r in rows) + ".",
              f"- MCU: {g0.mcu_flash}.", "", "### Energy per inference (estimates from targets/*.toml [energy])", ""]
    lines += energy_rows(rows)
    lines += ["", "Sparsity does not change the MAC count TFLite Micro executes (its kernels do not skip zeros), so "
              "the MCU energy estimate is the same at every sparsity.", "", "### MLPerf Tiny energy comparison", ""]
    lines += mlperf + [END]
    return "\n".join(lines) + "\n"



def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="digits_cnn,digits_dscnn")
    ap.add_argument("--levels", default="0.5,0.8,0.9")
    args = ap.parse_args()
    rows = []
    for name in args.models.split(","):
        for level in (float(v) for v in args.levels.split(",")):
            rows.append(measure(name, level))
            print(f"{name} {level:.0%}: done", flush=True)
    replace_section(RESULTS, BEGIN, END, render(rows, mlperf_rows()))
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
