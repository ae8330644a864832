"""What `edgeopt bench` shows: whole cells at any width, pure machine output on stdout, init apart from the
crash probe, and a readable latency plot."""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgeopt.benchmark import render
from edgeopt.cli.app import app
from tests.bench import bench_models as bm

ROOT = Path(__file__).resolve().parents[2]
MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None


def bench(*args, columns: int | None = None):
    env = {"COLUMNS": str(columns)} if columns else None
    return CliRunner().invoke(app, ["bench", *[str(a) for a in args]], env=env, catch_exceptions=False)


def shown(v) -> str:
    """A value as the human tables print it (4 significant digits, thousands separators)."""
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e4 else f"{v:,.0f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


@pytest.mark.parametrize("columns", [80, 60])
def test_narrow_terminal_keeps_every_name_and_number(models, fast, tmp_path, columns) -> None:
    res = bench(models.tflite, models.onnx, *fast, "--save", tmp_path / "r.json", columns=columns)
    assert res.exit_code == 0, res.output
    text = res.stdout
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= columns
    saved = json.loads((tmp_path / "r.json").read_text())["results"]
    for r in saved:
        lat = r["latency"]
        values = [Path(r["model"]).name, r["runtime"], r["init_ms"], r["probe_ms"], r["first_ms"], r["peak_rss_mb"],
                  *(lat[k] for k in ("p50", "p90", "p99", "mean", "std", "iqr", "runs", "throughput"))]
        if r["ratio"]:
            values.append(r["ratio"]["p50"])
        for v in values:
            assert shown(v) in text, (shown(v), text)
    for header in ("p50 ratio (this/first)", "init ms", "probe ms", "peak RSS MB"):
        assert all(word in text for word in header.split())


def test_csv_on_stdout_is_only_csv(models, fast) -> None:
    res = bench(models.tflite, models.onnx, *fast, "--csv", "-")
    assert res.exit_code == 0, res.output
    table = list(csv.reader(io.StringIO(res.stdout)))
    assert table[0] == list(render.HEADERS) and len(table) == 3
    assert all(len(row) == len(render.HEADERS) for row in table)
    assert [row[0] for row in table[1:]] == ["mlp_float.tflite", "mlp.onnx"]
    assert float(table[1][render.HEADERS.index("p50")]) > 0
    assert "latency (ms)" in res.stderr  # the human tables moved to stderr


def test_markdown_on_stdout_is_only_markdown(models, fast) -> None:
    res = bench(models.tflite, models.onnx, *fast, "--markdown", "-")
    assert res.exit_code == 0, res.output
    table, _, notes = res.stdout.partition("\n\n")
    lines = table.splitlines()
    assert len(lines) == 4 and all(line.startswith("| ") and line.endswith(" |") for line in (lines[0], *lines[2:]))
    assert lines[1] == "|" + "|".join("---" for _ in render.HEADERS) + "|"
    assert all(line.count(" | ") == len(render.HEADERS) - 1 for line in (lines[0], *lines[2:]))
    assert notes.strip() and all(line.startswith("- ") for line in notes.strip().splitlines())  # device lines
    assert "┃" not in res.stdout and "latency (ms)" in res.stderr


def test_json_and_compare_on_stdout_are_only_json(models, fast, tmp_path) -> None:
    res = bench(models.tflite, *fast, "--json", "--save", tmp_path / "a.json")
    assert res.exit_code == 0 and json.loads(res.stdout)["schema"] == "edgeopt.bench/1.2"
    res = bench("--compare", tmp_path / "a.json", tmp_path / "a.json", "--csv", "-")
    assert res.exit_code == 0, res.output
    table = list(csv.reader(io.StringIO(res.stdout)))
    assert table[0] == list(render.COMPARE_HEADERS) and len(table) == 2 and "new / old" in res.stderr
    res = bench(models.tflite, *fast, "--json", "--csv", "-")
    assert res.exit_code == 2 and "only one of --json" in res.stderr
    assert json.loads(res.stdout) == {"error": res.stderr.strip().removeprefix("error: "), "exit": 2}  # --json failure
    res = bench(models.tflite, *fast, "--plot", "-")
    assert res.exit_code == 2 and "--plot needs a file name" in res.stderr


def test_init_is_the_runtime_and_probe_is_apart(tmp_path) -> None:
    """A fresh process (the probe runs once per file and process): the child's start-up is probe_ms, not init_ms."""
    model = bm.onnx_mlp(tmp_path / "m.onnx", n_in=16, hidden=16)
    cmd = [sys.executable, "-m", "edgeopt", "bench", str(model), "--runs", "3", "--min-seconds", "0",
           "--warmup-seconds", "0", "--json"]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    (r,) = json.loads(out.stdout)["results"]
    assert r["init_ms"] > 0 and r["probe_ms"] > 0
    assert r["init_ms"] < r["probe_ms"]  # a child Python importing the runtime costs more than opening in-process


def test_probe_ms_round_trips_and_old_files_read(models, fast) -> None:
    from edgeopt.benchmark.protocol import BenchResult, BenchSettings, run_benchmark

    s = BenchSettings(runs=3, min_seconds=0, warmup_seconds=0)
    r = run_benchmark(models.tflite, s)
    assert r.probe_ms is not None and r.probe_ms > 0
    d = r.to_dict()
    assert BenchResult.from_dict(d).probe_ms == r.probe_ms
    del d["probe_ms"]  # a result saved before probe_ms existed
    assert BenchResult.from_dict(d).probe_ms is None


@pytest.mark.skipif(not MATPLOTLIB, reason="matplotlib (edgeopt[plot]) not installed")
def test_plot_has_one_readable_panel_per_model(tmp_path) -> None:
    from edgeopt.benchmark.plot import latency_figure, plot_latency
    from edgeopt.benchmark.protocol import BenchSettings, run_interleaved
    from edgeopt.benchmark.results import report_of

    paths = [bm.onnx_mlp(tmp_path / "small.onnx", n_in=8, hidden=8), bm.tflite_cnn(tmp_path / "cnn.tflite"),
             bm.onnx_mlp(tmp_path / "big.onnx", n_in=256, hidden=1024, n_out=256)]
    report = report_of(run_interleaved(paths, BenchSettings(runs=200, min_seconds=0.2, warmup_seconds=0.01)))
    assert report.results[2].latency.p50 > 3 * report.results[0].latency.p50  # very different scales
    fig = latency_figure(report)
    assert len(fig.axes) == 3
    assert "latency distribution" in fig.texts[0].get_text()
    for ax, r in zip(fig.axes, report.results, strict=True):
        lo, hi = ax.get_ylim()
        s = r.latency
        assert s.min - 0.1 * (s.p99 - s.min) <= lo <= s.min and s.p99 <= hi <= s.p99 * 1.1, (r.name, lo, hi, s)
        assert r.name in ax.get_title() and "(ms)" in ax.get_ylabel()
        assert f"p50 {s.p50:.4g} ms" in ax.get_xlabel() and f"p99 {s.p99:.4g} ms" in ax.get_xlabel()
        assert any(list(line.get_ydata()) == [s.p50, s.p50] for line in ax.get_lines())  # the p50 mark
    import matplotlib.pyplot as plt

    plt.close(fig)
    out = plot_latency(report, tmp_path / "lat.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
