"""CPU time beside wall time, the host's cores and load, and the warnings when either biases the latency."""

from __future__ import annotations

import csv
import io
import json

import pytest

from edgeopt.benchmark.host_load import HostLoad, usable_cores
from edgeopt.benchmark.protocol import BenchSettings, run_benchmark
from edgeopt.benchmark.results import parse_report, report_of
from edgeopt.errors import InputError

SETTINGS = BenchSettings(runs=20, min_seconds=0.05, warmup_seconds=0.01)


@pytest.mark.parametrize("kind", ["tflite", "onnx"])
def test_result_records_cpu_time_cores_load_and_dims(models, kind):
    r = run_benchmark(getattr(models, kind), SETTINGS)
    assert r.cpu_ms is not None and r.cpu_ms > 0
    assert r.cpu_per_wall == pytest.approx(r.cpu_ms / r.latency.mean)
    assert r.cores == usable_cores() and r.load_1m is not None and r.load_1m >= 0
    assert r.input_dims == (("input", (1, 64)),) and r.input_shapes == "input=1x64"
    back = parse_report(json.loads(report_of([r]).to_json()), "saved").results[0]  # the JSON round trip keeps them
    assert (back.cpu_ms, back.cores, back.load_1m, back.input_dims) == (r.cpu_ms, r.cores, r.load_1m, r.input_dims)


def test_host_load_warnings():
    quiet = HostLoad(cores=2, load_1m=1.5, threads=2)
    assert quiet.warnings() == ()
    busy = HostLoad(cores=2, load_1m=6.25, threads=4).warnings("the profile's [runtime] threads")
    assert len(busy) == 2
    assert busy[0].startswith("4 runtime threads on 2 core(s) (the profile's [runtime] threads)")
    assert "1-minute load average was 6.25 on 2 core(s)" in busy[1]
    assert HostLoad(cores=2, load_1m=None, threads=1).warnings() == ()  # no load average on this OS: no claim


def test_cli_threads_above_cores_warn_in_console_json_csv_markdown(cli, models, fast, tmp_path):
    n = usable_cores() + 1
    res = cli("bench", models.onnx, *fast, "--threads", str(n), "--json", "--csv", tmp_path / "t.csv",
              "--markdown", tmp_path / "t.md")
    assert res.exit_code == 0, res.output
    r = json.loads(res.stdout)["results"][0]
    want = f"{n} runtime threads on {n - 1} core(s) (--threads)"
    assert r["threads"] == n and r["cores"] == n - 1 and any(w.startswith(want) for w in r["warnings"])
    assert r["cpu_ms"] > 0 and r["cpu_per_wall"] > 0 and r["input_dims"] == [{"name": "input", "dims": [1, 64]}]
    assert f"warning: {want}" in " ".join(res.stderr.split())
    row = next(csv.DictReader(io.StringIO((tmp_path / "t.csv").read_text())))
    assert float(row["CPU ms"]) == pytest.approx(r["cpu_ms"], rel=1e-5) and int(row["cores"]) == n - 1
    assert row["input shapes"] == "input=1x64"
    md = (tmp_path / "t.md").read_text()
    assert "| CPU ms |" in md and f"- warning: {want}" in md


def test_cli_threads_within_cores_do_not_warn_about_threads(cli, models, fast):
    res = cli("bench", models.tflite, *fast, "--threads", "1", "--json")
    assert res.exit_code == 0, res.output
    r = json.loads(res.stdout)["results"][0]
    assert not any("runtime threads" in w for w in r["warnings"]) and "runtime threads" not in res.stderr


def test_untrusted_cpu_fields_and_schema_are_validated(models):
    good = json.loads(report_of([run_benchmark(models.tflite, SETTINGS)]).to_json())
    for field, value in (("cpu_ms", -1.0), ("cores", 0), ("load_1m", float("nan")), ("input_dims", [{"name": 1}])):
        bad = json.loads(json.dumps(good))
        bad["results"][0][field] = value
        with pytest.raises(InputError, match=f"answer: not an edgeopt bench result \\(results.0.{field}|answer: not an"):
            parse_report(bad, "answer")
    old = json.loads(json.dumps(good))  # an edgeopt without CPU time (schema 1): read, CPU time unknown
    old["schema"] = "edgeopt.bench/1"
    for key in ("cpu_ms", "cores", "load_1m", "input_dims", "warnings", "cpu_per_wall"):
        del old["results"][0][key]
    r = parse_report(old, "old").results[0]
    assert r.cpu_ms is None and r.cores is None and r.warnings() == () and r.cpu_per_wall is None
    future = dict(good, schema="edgeopt.bench/9")
    with pytest.raises(InputError, match="schema 'edgeopt.bench/9' is not one this edgeopt reads"):
        parse_report(future, "answer")
