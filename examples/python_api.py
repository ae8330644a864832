"""edgeopt from Python: build a sample model for two targets and compare the numbers.

Run from the repository root:  python examples/python_api.py
"""

from __future__ import annotations

from pathlib import Path

from edgeopt.pipeline.build import BuildRequest, build

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    model = ROOT / "sample_models" / "digits_cnn.keras"  # its .calib.npz / .eval.npz are found beside it
    for target in ("mobile-cpu", "edge-server"):
        result = build(BuildRequest(model=model, target=target, out=ROOT / "demo-out" / f"api-{target}"))
        r = result.report
        acc = r.optimized.accuracy
        lat = r.optimized.latency_ms
        print(f"{target:12s} {r.baseline.artifact.bytes:>9,} -> {r.optimized.artifact.bytes:>9,} bytes "
              f"(x{r.ratios.size:.3f}), top-1 {acc.value:.2f}% (drop {acc.drop:+.2f}), "
              f"p50 {lat.p50:.3f} ms ({r.ratios.latency_p50:.2f}x float: {r.ratios.latency_verdict}), "
              f"budgets ok: {result.ok}")


if __name__ == "__main__":
    main()
