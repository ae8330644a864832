"""Vela's estimate for the MLPerf Tiny architectures (benchmarks/mlperf_tiny.py, int8, random weights and
calibration) and the sample digits_cnn on Ethos-U55-128 and -256: operators on the NPU, SRAM, flash, cycles and
time. Every figure is Vela's estimate (its Arm/vela.ini system Ethos_U55_High_End_Embedded, Shared_Sram), the NPU
part only.

    PYTHONPATH=. python benchmarks/vela_estimates.py [WORK_DIR]

Prints the table and writes it between <!-- vela:begin --> and <!-- vela:end --> of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main(work: Path) -> None:
    import keras
    from mlperf_tiny import BUILDERS, to_int8

    from edgeopt.npu.vela import compile_for_npu
    from edgeopt.pipeline.build import BuildRequest, build
    from edgeopt.profiles import load_profile

    keras.utils.set_random_seed(0)
    root = Path(__file__).resolve().parents[1]
    digits = build(BuildRequest(model=root / "sample_models" / "digits_cnn.keras", target="embedded-mcu",
                                out=work / "digits_cnn", benchmark=False))
    models = {"digits_cnn": digits.out / digits.report.optimized.artifact.path}
    for make in BUILDERS:
        m = make(keras)
        models[m.name] = to_int8(m, work)
    npu = load_profile("ethos-u55").profile.npu
    assert npu is not None
    lines = ["## Ethos-U55 through Vela: the NPU part of MLPerf Tiny and digits_cnn (estimates)", "",
             "| model | NPU | ops on NPU | on CPU | SRAM KiB | flash KiB | cycles | ms | MACs |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, path in models.items():
        for macs in (128, 256):
            cfg = npu.model_copy(update={"macs": macs})
            r = compile_for_npu(path, cfg, work / f"{name}_{macs}_vela.tflite")
            cpu = ", ".join(f"{k} x{v}" for k, v in sorted(r.operators.cpu_ops.items())) or "-"
            lines.append(f"| {name} | {r.accelerator} | {r.operators.npu}/{r.operators.total} | {cpu} | "
                         f"{r.sram_bytes / 1024:.2f} | {r.flash_bytes / 1024:.2f} | {r.cycles:,} | "
                         f"{r.latency_ms:.4f} | {r.macs:,} |")
    lines += ["", f"Every figure is an estimate by {r.compiler} (system {npu.system_config}, memory mode "
              f"{npu.memory_mode}, NPU clock from Vela's vela.ini), the NPU part only: nothing here ran on an NPU. "
              "MLPerf Tiny models have random weights and calibration (benchmarks/mlperf_tiny.py); digits_cnn is the "
              "sample built for embedded-mcu."]
    text = "\n".join(lines)
    print(text)
    from results_md import replace_section

    replace_section(root / "benchmarks" / "RESULTS.md", "<!-- vela:begin -->", "<!-- vela:end -->", text)


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            main(Path(tmp))
