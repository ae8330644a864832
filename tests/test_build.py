"""`edgeopt build` end to end on the shipped samples: real converters and runtimes."""

from __future__ import annotations

import json
import os
import platform
import re
from pathlib import Path

import pytest

from edgeopt.pipeline.build import BuildRequest, build
from edgeopt.report import schema as rs
from edgeopt.report.markdown import code

pytestmark = pytest.mark.tensorflow

REPORT_KEYS = {"schema_version", "tool", "target", "input", "baseline", "optimized", "budgets", "stages", "ok"}


CASES = [("digits_cnn.keras", "mobile-cpu"), ("digits_cnn.keras", "embedded-mcu"), ("digits_cnn.keras", "edge-server"),
         ("digits_dscnn.keras", "mobile-cpu"), ("digits_mlp.onnx", "edge-server")]
ONNX_REFERENCE = {".keras": "keras float (TensorFlow)", ".onnx": "onnx float (onnxruntime)"}


@pytest.fixture(scope="session")
def builds(tmp_path_factory, samples: Path):
    """`builds(model, target)`: that sample built for that profile, once per session (a failure fails each user)."""
    done: dict[tuple[str, str], object] = {}

    def get(model: str, target: str):
        key = (model, target)
        if key not in done:
            d = tmp_path_factory.mktemp(f"{Path(model).stem}-{target}")
            try:
                done[key] = build(BuildRequest(model=samples / model, target=target, out=d))
            except Exception as exc:  # noqa: BLE001 - re-raised in every test that needs this build
                done[key] = exc
        if isinstance(done[key], Exception):
            raise done[key]
        return done[key]

    return get


@pytest.mark.parametrize(("model", "target"), CASES, ids=[f"{m}-{t}" for m, t in CASES])
def test_every_sample_builds_with_report(builds, model, target):
    res = builds(model, target)
    data = json.loads((res.out / "report.json").read_text())
    assert set(data) >= REPORT_KEYS
    assert data["target"]["name"] == target and len(data["target"]["profile_sha256"]) == 64
    assert data["tool"] == {"name": "edgeopt", "version": "0.1.0"}
    for variant in ("baseline", "optimized"):
        art = data[variant]["artifact"]
        assert (res.out / art["path"]).stat().st_size == art["bytes"] > 0
        assert set(data[variant]["latency_ms"]) >= {"p50", "p90", "p99", "mean", "std", "min", "max", "runs", "warmup", "threads", "runtime"}
        assert data[variant]["latency_ms"]["runs"] >= 50
        fp = data[variant]["latency_ms"]["fingerprint"]  # where it was measured
        assert fp["host"] == platform.node() and fp["cores"] == os.cpu_count() and fp["cpu"]
        assert fp["runtime"] == data[variant]["latency_ms"]["runtime"]
        assert fp["threads"] == data[variant]["latency_ms"]["threads"] and fp["os"] and fp["arch"] == platform.machine()
        acc = data[variant]["accuracy"]
        assert acc["metric"] == "top1" and acc["samples"] >= 300
        # CPU time beside wall time, the host's cores and load, the shape fed (item 10, item 1)
        lat = data[variant]["latency_ms"]
        assert lat["cpu_ms"] > 0 and lat["cores"] == len(os.sched_getaffinity(0)) and lat["load_1m"] >= 0
        assert lat["load_above_cores"] is (lat["load_1m"] > lat["cores"])
        assert lat["threads_above_cores"] is (lat["threads"] > lat["cores"])
        assert [dims for _, dims in lat["input_shapes"]] == [[1, 16, 16, 1]]
    assert data["schema_version"] == "2.7"
    lat = data["optimized"]["latency_ms"]
    threads_note = [n for n in data["notes"] if "runtime threads on" in n]
    assert bool(threads_note) is lat["threads_above_cores"]  # mobile-cpu's 4 threads on a 2-core host: said so
    if threads_note:
        assert threads_note[0].startswith(f"latency: {lat['threads']} runtime threads on {lat['cores']} core(s) "
                                          "(the profile's [runtime] threads)")
    assert any("1-minute load average" in n for n in data["notes"]) is \
        (lat["load_above_cores"] or data["baseline"]["latency_ms"]["load_above_cores"])
    md = (res.out / "report.md").read_text()
    assert md.startswith("# edgeopt report")
    assert f"Timing: CPU time per invoke {lat['cpu_ms']:.4g} ms optimized" in md and "inputs " in md
    fp = data["optimized"]["latency_ms"]["fingerprint"]
    assert f"measured on this host ({code(fp['host'])}): {code(fp['cpu'])}, {fp['cores']} cores" in md
    assert f"{code(fp['implementation'])} {code(fp['runtime_version'])}, {fp['threads']} thread(s)" in md
    # every budget holds except, possibly, edge-server's max_latency_ratio (int8 can be slower than float on
    # this CPU); that one must agree with the measured ratio, and `ok` with all of them
    for b in data["budgets"]:
        if b["name"] == "max_latency_ratio":
            assert b["actual"] == pytest.approx(data["ratios"]["latency_p50"], rel=1e-3)
            assert b["ok"] is (b["actual"] <= b["limit"])
        else:
            assert b["ok"] is True, (model, target, b)
    assert data["ok"] is res.ok is all(b["ok"] for b in data["budgets"])
    assert any(n.startswith("the optimized artifact is slower") for n in data["notes"]) is \
        (round(data["ratios"]["latency_p50"], 2) > 1.0)
    assert set(data["stages"]) == {"prune", "cluster", "sparsity", "partial", "qat", "onnx_activations", "conversion",
                                   "mcu", "firmware", "npu", "composition", "energy"}
    assert data["stages"]["conversion"] is None  # Keras -> TFLite and ONNX -> ONNX convert nothing through onnx2tf
    assert data["stages"]["sparsity"] is None
    assert data["stages"]["firmware"] is None  # off unless [firmware] run or --firmware
    assert (data["stages"]["onnx_activations"] is None) == (target != "edge-server")
    assert data["stages"]["prune"] is None and data["stages"]["cluster"] is None
    comp = data["stages"]["composition"]  # ratios are in every report
    assert comp["pruning_ratio"] == 1.0 and comp["params_before"] == comp["params_after"] == data["input"]["params"]
    assert comp["compression_ratio"] == pytest.approx(
        data["baseline"]["artifact"]["bytes"] / data["optimized"]["artifact"]["bytes"])
    if data["optimized"]["artifact"]["format"] == "tflite":  # zeros read back from the artifact
        assert comp["kernel_weights"] > 0 and 0 <= comp["sparsity"] < 0.05
    else:
        assert comp["sparsity"] is None
    energy = data["stages"]["energy"]  # in every report, labelled; here no counter and no [energy] section
    assert energy["method"] == "unavailable" and "[energy] active_power" in energy["note"]
    assert "## Energy per inference" in md and "sparsity" in md
    assert (data["stages"]["mcu"] is None) == (target != "embedded-mcu")
    if target != "embedded-mcu":  # [partial] is on, and plain int8 meets the budget
        assert any(n.startswith("accuracy control ([partial]) not needed") for n in data["notes"]), data["notes"]
        assert data["stages"]["partial"] is None
    assert not list(res.out.glob(".edgeopt-staging-*"))


@pytest.mark.parametrize("model", ["digits_cnn.keras", "digits_dscnn.keras"])
def test_int8_tflite_is_small_and_accurate(builds, model):
    r = builds(model, "mobile-cpu").report
    assert r.optimized.artifact.bytes <= 0.30 * r.baseline.artifact.bytes
    assert r.optimized.accuracy.value >= r.optimized.accuracy.reference_value - 1.0
    assert r.optimized.accuracy.reference_value > 95.0
    assert r.baseline.accuracy.agreement == 100.0 and r.baseline.accuracy.snr_db > 60


def test_mcu_artifact_is_int8_end_to_end(builds):
    from edgeopt.runtime import open_runner

    res = builds("digits_cnn.keras", "embedded-mcu")
    mcu = rs.Report.model_validate_json((res.out / "report.json").read_text()).stages.mcu
    assert isinstance(mcu, rs.McuStage) and mcu == res.report.stages.mcu
    assert mcu.bit_exact is True and mcu.arena_bytes > 0 and mcu.model == "digits_cnn.tflite"
    assert (mcu.c_header, mcu.c_source) == ("g_model.h", "g_model.cc") and mcu.comparison_note == "bit-exact"
    assert (res.out / "g_model.h").is_file() and (res.out / "g_model.cc").is_file()
    md = (res.out / "report.md").read_text()
    assert "## Microcontroller (TFLite Micro)" in md and f"{mcu.arena_bytes:,} B" in md
    runner = open_runner(res.out / res.report.optimized.artifact.path)
    assert runner.inputs[0].dtype == "int8" and runner.outputs[0].dtype == "int8"
    assert runner.inputs[0].scale > 0
    assert res.report.optimized.latency_ms.threads == 1


@pytest.mark.parametrize("model", ["digits_cnn.keras", "digits_mlp.onnx"])
def test_onnx_paths(builds, model):
    import onnx

    res = builds(model, "edge-server")
    m = onnx.load(str(res.out / res.report.optimized.artifact.path))
    ops = {n.op_type for n in m.graph.node}
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops  # static QDQ
    acc = res.report.optimized.accuracy
    assert acc.metric == "top1" and acc.drop is not None and acc.drop <= 1.0
    assert acc.reference == ONNX_REFERENCE[Path(model).suffix]
    assert res.report.optimized.artifact.bytes < 0.6 * res.report.baseline.artifact.bytes


def test_budget_failure_exits_3_and_still_writes(cli, tmp_path: Path, samples: Path):
    prof = tmp_path / "tight.toml"
    prof.write_text('extends = "mobile-cpu"\n[budgets]\nmax_model_kb = 1\n')
    out = tmp_path / "out"
    r = cli("build", samples / "digits_dscnn.keras", "--target", prof, "--out", out, "--no-bench")
    assert r.exit_code == 3
    assert "budget exceeded: max_model_kb:" in r.stderr and "> limit 1 KiB" in r.stderr
    data = json.loads((out / "report.json").read_text())
    assert data["ok"] is False
    b = next(b for b in data["budgets"] if b["name"] == "max_model_kb")
    assert b["ok"] is False and b["actual"] > 1 and b["limit"] == 1


def test_json_output_is_clean(cli, tmp_path: Path, samples: Path):
    r = cli("build", samples / "digits_dscnn.keras", "--target", "mobile-cpu", "--out", tmp_path / "o", "--json", "--no-bench")
    assert r.exit_code == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["optimized"]["latency_ms"] is None and data["optimized"]["accuracy"]["metric"] == "top1"


def test_random_calibration_is_explicit(cli, tmp_path: Path, samples: Path):
    import shutil

    model = tmp_path / "m.keras"
    shutil.copy(samples / "digits_dscnn.keras", model)
    r = cli("build", model, "--target", "mobile-cpu", "--out", tmp_path / "o1", "--no-bench")
    assert r.exit_code == 2 and "needs calibration data" in r.stderr and "--random-calibration" in r.stderr
    assert not (tmp_path / "o1").exists()
    r = cli("build", model, "--target", "mobile-cpu", "--out", tmp_path / "o2", "--no-bench", "--random-calibration", "--json")
    assert r.exit_code == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["calibration"]["source"] == "random" and data["optimized"]["accuracy"] is None
    assert any("accuracy is unknown" in n for n in data["notes"])


def test_rebuild_keeps_other_files(tmp_path: Path, samples: Path):
    out = tmp_path / "o"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    build(BuildRequest(model=samples / "digits_dscnn.keras", target="mobile-cpu", out=out, benchmark=False))
    assert (out / "mine.txt").read_text() == "keep me"
    assert (out / "digits_dscnn.tflite").exists()


def test_compare_shows_builds_side_by_side(cli, builds, tmp_path: Path):
    results = [builds(model, target) for model, target in CASES]
    r = cli("compare", *[res.out for res in results], "--json")
    assert r.exit_code == 0, r.stderr
    rows = json.loads(r.stdout)
    assert [row["target"] for row in rows] == [t for (_, t) in CASES]
    for row, res in zip(rows, results, strict=True):
        assert row["bytes"] == res.report.optimized.artifact.bytes and row["ok"] == ("ok" if res.ok else "FAIL")
    bad = tmp_path / "report.json"
    bad.write_text('{"schema_version": "2.0"}')
    r = cli("compare", bad)
    assert r.exit_code == 2 and "is not an edgeopt report" in r.stderr
    bad.write_text('{"schema_version": "1.0", "stages": {}}')
    r = cli("compare", bad)
    assert r.exit_code == 2 and "has report schema 1.0; this edgeopt reads 2." in r.stderr and "rebuild" in r.stderr


def test_mcu_latency_is_the_device_estimate_and_host_time_says_host(cli, builds, samples: Path, monkeypatch):
    """An MCU build's console, report.md and `compare` show the device estimate; host LiteRT times are labelled host."""
    monkeypatch.setenv("COLUMNS", "220")  # whole headers on one line; 80-column wrapping is another item
    res = builds("digits_cnn.keras", "embedded-mcu")
    mcu = res.report.stages.mcu
    assert mcu is not None and mcu.device_latency is not None
    d = mcu.device_latency
    assert d.macs == mcu.macs == res.report.input.macs and d.macs_per_second == 50e6  # embedded-mcu profile
    assert d.estimate_ms == pytest.approx(mcu.macs / 50e6 * 1000)
    assert res.report.optimized.latency_ms.where == "local"  # the host figure stays in latency_ms, honestly
    est = f"{d.estimate_ms:.4g}"
    r = cli("build", samples / "digits_cnn.keras", "--target", "embedded-mcu", "--out", res.out)  # up to date: reprints
    assert r.exit_code == 0, r.stderr
    header = next(line for line in r.stdout.splitlines() if "scheme" in line)
    assert "host p50 ms" in header and "host p90 ms" in header and "device ms (est.)" in header
    assert not re.search(r"[┃│|]\s*p50 ms", header)  # no unlabelled latency column
    optimized = next(line for line in r.stdout.splitlines() if "optimized" in line and "int8" in line)
    assert optimized.rstrip(" │").endswith(est)
    assert f"device latency: {est} ms, an estimate ({mcu.macs:,} MACs / 50,000,000 MAC/s" in r.stdout
    assert "host p50/p90 are LiteRT on the build host, not the microcontroller" in r.stdout
    assert "host latency measured on this host" in r.stdout
    md = (res.out / "report.md").read_text()
    assert "| host p50 ms | host p90 ms | device ms (est.) |" in md and f"Device latency: {est} ms, an estimate" in md
    assert f"| device latency (estimate: MACs / MAC/s) | {est} ms (" in md

    mobile = builds("digits_cnn.keras", "mobile-cpu")
    r = cli("compare", res.out, mobile.out)
    assert r.exit_code == 0, r.stderr
    header = next(line for line in r.stdout.splitlines() if "target" in line)
    assert "measured on" in header and "device ms (est.)" in header
    mcu_row = next(line for line in r.stdout.splitlines() if "embedded-mcu" in line)
    cells = [c.strip() for c in re.split(r"[│┃|]", mcu_row)]
    assert "host" in cells and est in cells
    mobile_row = next(line for line in r.stdout.splitlines() if "mobile-cpu" in line)
    assert "-" in [c.strip() for c in re.split(r"[│┃|]", mobile_row)]
    rows = json.loads(cli("compare", res.out, mobile.out, "--json").stdout)
    assert rows[0]["measured on"] == "host" and rows[0]["device ms (est.)"] == pytest.approx(d.estimate_ms)
    assert rows[0]["p50 ms"] == res.report.optimized.latency_ms.p50  # the host figure, in its labelled column
    assert rows[1]["device ms (est.)"] is None and rows[1]["measured on"] == "host"


def test_eval_without_labels_is_noted_and_steps_are_what_runs(cli, tmp_path: Path, samples: Path):
    """x-only eval data: agreement is reported and a note says top-1 is not measured; the progress lines name
    the steps that run (no compression step when the profile compresses nothing)."""
    import numpy as np

    from edgeopt.pipeline.build import NO_LABELS_NOTE

    x = np.load(samples / "digits_dscnn.eval.npz")["x"][:64]
    ev = tmp_path / "unlabelled.npz"
    np.savez(ev, x=x)
    r = cli("build", samples / "digits_dscnn.keras", "--target", "mobile-cpu", "--out", tmp_path / "o", "--no-bench",
            "--eval", ev)
    assert r.exit_code == 0, r.stderr
    assert NO_LABELS_NOTE == "eval data has no labels: top-1 not measured; agreement with the float model is reported"
    assert f"note: {NO_LABELS_NOTE}" in " ".join(r.stdout.split())  # the console wraps at 80 columns
    data = json.loads((tmp_path / "o" / "report.json").read_text())
    assert NO_LABELS_NOTE in data["notes"]
    acc = data["optimized"]["accuracy"]
    assert acc["metric"] == "agreement" and acc["value"] is None and acc["samples"] == 64 and acc["agreement"] > 90
    assert NO_LABELS_NOTE in (tmp_path / "o" / "report.md").read_text()
    steps = [line for line in r.stderr.splitlines() if line.endswith("...")]
    assert steps == ["loading the model...", "converting and quantizing...", "validating accuracy..."], r.stderr
    labelled = cli("build", samples / "digits_dscnn.keras", "--target", "mobile-cpu", "--out", tmp_path / "o2",
                   "--no-bench", "--json")
    assert labelled.exit_code == 0 and NO_LABELS_NOTE not in json.loads(labelled.stdout)["notes"]


def test_first_step_is_shown_and_the_edgeopt_process_never_imports_tensorflow(tmp_path: Path, samples: Path):
    """TensorFlow (seconds to import) loads only in the sandboxed child (edgeopt.sandbox), never in the edgeopt
    process; the first progress line comes from the child before its import.

    A meta-path hook in the edgeopt process records any import of `tensorflow` there; the build is then refused
    (eval data of the wrong shape) to keep it short."""
    import os
    import subprocess
    import sys

    import numpy as np

    bad = tmp_path / "bad_eval.npz"
    np.savez(bad, x=np.zeros((4, 3, 3, 1), np.float32), y=np.zeros(4, np.int64))
    err, imported = tmp_path / "stderr.txt", tmp_path / "tf_imported_in_parent.txt"
    code = f"""
import sys
from pathlib import Path

class TensorFlowImport:
    def find_spec(self, name, path=None, target=None):
        if name == "tensorflow":
            Path({str(imported)!r}).write_text("imported")
        return None

sys.meta_path.insert(0, TensorFlowImport())
sys.argv = ["edgeopt", "build", {str(samples / "digits_dscnn.keras")!r}, "--target", "mobile-cpu",
            "--out", {str(tmp_path / "o")!r}, "--no-bench", "--eval", {str(bad)!r}]
from edgeopt.cli.app import main
main()
"""
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=str(root), TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("EDGEOPT_DEBUG", None)
    with err.open("w") as fh:
        proc = subprocess.run([sys.executable, "-c", code], stderr=fh, stdout=subprocess.PIPE, env=env, timeout=300)
    assert proc.returncode == 2, err.read_text()
    lines = err.read_text().splitlines()
    assert lines[0] == "loading the model..." and lines[-1].startswith("error: "), lines
    assert not imported.exists()  # the child imported it; the edgeopt process did not
    assert not (tmp_path / "o").exists()
