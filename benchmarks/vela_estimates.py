"""Vela's estimate for the MLPerf Tiny architectures (benchmarks/mlperf_tiny.py, int8, random weights and
calibration) and the sample digits_cnn on Ethos-U55-128 and -256: operators on the NPU, SRAM, flash, cycles and
time. Every figure is Vela's estimate (its Arm/vela.ini system Ethos_U55_High_End_Embedded, Shared_Sram), the NPU
part only.

    PYTHONPATH=. python benchmarks/vela_estimates.py [WORK_DIR]
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
    print("| model | NPU | ops on NPU | on CPU | SRAM KiB | flash KiB | cycles | ms | MACs |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, path in models.items():
        for macs in (128, 256):
            cfg = npu.model_copy(update={"macs": macs})
            r = compile_for_npu(path, cfg, work / f"{name}_{macs}_vela.tflite")
            cpu = ", ".join(f"{k} x{v}" for k, v in sorted(r.operators.cpu_ops.items())) or "-"
            print(f"| {name} | {r.accelerator} | {r.operators.npu}/{r.operators.total} | {cpu} | "
                  f"{r.sram_bytes / 1024:.2f} | {r.flash_bytes / 1024:.2f} | {r.cycles:,} | {r.latency_ms:.4f} | "
                  f"{r.macs:,} |")
    print(f"\nestimates: {r.compiler}, system {npu.system_config}, memory mode {npu.memory_mode}; the NPU part only")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            main(Path(tmp))
