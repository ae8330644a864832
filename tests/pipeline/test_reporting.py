"""assemble_report on one BuildOutcome: the latency ratio in words, and a note when the optimized artifact is slower.

The artifacts are real ONNX files timed by the real benchmark; only the optimized p50 is set to a chosen
multiple of the baseline's, since which of two equal files is faster is up to the machine.
"""

from __future__ import annotations

import io
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from rich.console import Console

from edgeopt.benchmark.protocol import BenchSettings, run_interleaved
from edgeopt.load.source import open_source
from edgeopt.pipeline.artifacts import Artifacts
from edgeopt.pipeline.reporting import BuildOutcome, assemble_report
from edgeopt.profiles import load_profile
from edgeopt.report.compare import COLUMNS, records, rows
from edgeopt.report.markdown import code
from edgeopt.report.render import to_console, to_markdown


@pytest.fixture(scope="module")
def outcome(tmp_path_factory: pytest.TempPathFactory, samples: Path) -> BuildOutcome:
    folder = tmp_path_factory.mktemp("reporting")
    model = samples / "digits_mlp.onnx"
    for name in ("m.float.onnx", "m.onnx"):
        shutil.copy(model, folder / name)
    base, opt = run_interleaved([folder / "m.float.onnx", folder / "m.onnx"],
                                BenchSettings(runs=5, min_seconds=0.0, warmup_runs=1, warmup_seconds=0.0))
    return BuildOutcome(model=model, resolved=load_profile("edge-server"), source=open_source(model, False),
                        calibration="none", calibration_samples=0, eval_data=None, folder=folder,
                        artifacts=Artifacts("m.float.onnx", "m.onnx", "onnx", "int8"), accuracy=None,
                        latency=(base, opt), compressed=None, mcu=None, notes=("from the build",), build_seconds=1.5)


def _with_ratio(outcome: BuildOutcome, ratio: float) -> BuildOutcome:
    assert outcome.latency is not None
    base, opt = outcome.latency
    return replace(outcome, latency=(base, replace(opt, latency=replace(opt.latency, p50=base.latency.p50 * ratio))))


def _console(report) -> str:  # type: ignore[no-untyped-def]
    buf = io.StringIO()
    to_console(report, Console(file=buf, width=200, highlight=False))
    return buf.getvalue()


def test_slower_is_said_in_console_markdown_compare_and_notes(outcome: BuildOutcome) -> None:
    slow = _with_ratio(outcome, 1.71)
    report = assemble_report(slow)
    assert report.ratios.latency_p50 == pytest.approx(1.71) and report.ratios.latency_verdict == "slower"
    assert slow.notes == ("from the build",) and report.notes[0] == "from the build"  # the input is not touched
    (note,) = [n for n in report.notes if "slower" in n]
    p50 = report.optimized.latency_ms.p50  # type: ignore[union-attr]
    assert note.startswith("the optimized artifact is slower than the float baseline on this host: p50 ")
    assert note.endswith(f"{p50:.4g} ms vs {report.baseline.latency_ms.p50:.4g} ms (1.71x)")  # type: ignore[union-attr]
    ratio_line = next(line for line in _console(report).splitlines() if "ratio (optimized / baseline)" in line)
    assert "1.71x (slower)" in ratio_line
    md = to_markdown(report)
    assert "| ratio (optimized / baseline) |  | 1x | - | - | - | 1.71x (slower) | - |" in md
    assert f"- {note}" in md
    assert rows([report])[0][COLUMNS.index("latency x")] == "1.71x (slower)"
    rec = records([report])[0]
    assert rec["latency x"] == pytest.approx(1.71) and rec["latency verdict"] == "slower"


def test_faster_and_same_say_so_without_a_note(outcome: BuildOutcome) -> None:
    fast = assemble_report(_with_ratio(outcome, 0.5))
    assert "0.50x (faster)" in _console(fast) and not any("slower" in n for n in fast.notes)
    same = assemble_report(_with_ratio(outcome, 1.004))  # shown as 1.00x: not called slower
    assert "1.00x (same)" in to_markdown(same) and not any("slower" in n for n in same.notes)
    assert records([same])[0]["latency verdict"] == "same"


def test_fingerprint_is_typed_and_rendered(outcome: BuildOutcome) -> None:
    report = assemble_report(outcome)
    assert outcome.latency is not None
    fp, measured = report.optimized.latency_ms.fingerprint, outcome.latency[1].fingerprint  # type: ignore[union-attr]
    assert fp is not None and measured is not None
    assert fp.model_dump() == measured.to_dict()  # every field of benchmark/fingerprint.py, typed
    line = f"latency measured on this host ({fp.host}): {fp.cpu}, {fp.cores} cores"
    assert line in _console(report)
    md = to_markdown(report)  # names from the machine and runtime are code spans
    assert f"Latency measured on this host ({code(fp.host)}): {code(fp.cpu)}, {fp.cores} cores" in md
    assert (f"{code(fp.implementation)} {code(fp.runtime_version)}, {fp.threads} thread(s), delegate "
            f"{code(fp.delegate)}") in md


def test_mcu_without_a_mac_rate_says_the_device_latency_is_not_estimated(outcome: BuildOutcome) -> None:
    report = assemble_report(outcome)
    mcu = report.model_copy(update={"target": report.target.model_copy(update={"device_class": "embedded-mcu"})})
    text = _console(mcu)
    assert "host p50 ms" in text and "device ms (est.)" in text
    assert ("device latency: not estimated (set [mcu] sustained_macs_per_second in the profile); host p50/p90 are "
            "LiteRT on the build host, not the microcontroller") in text
    assert "host latency measured on this host" in to_markdown(mcu).lower()
