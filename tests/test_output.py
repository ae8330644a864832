"""Human tables keep whole cells: in a pipe or CI log (rich alone would assume 80 columns and cut headers) and in
a narrow terminal (columns stacked, never truncated)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from edgeopt.cli.output import PIPE_WIDTH, Sink, table
from edgeopt.report.table import fmt as _fmt

pytestmark = pytest.mark.tensorflow


def test_piped_tables_are_not_squeezed(monkeypatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    sink = Sink()
    assert not sink.console.is_terminal and sink.console.width == PIPE_WIDTH == sink.err.width
    headers = ["model", "target", "scheme", "float bytes", "bytes", "size x", "top-1 float", "top-1", "drop",
               "p50 float ms", "p50 ms", "latency x", "ok"]
    buf = io.StringIO()
    sink.console.file = buf
    sink.console.print(table("builds side by side", headers, [["digits_cnn.keras", "mobile-cpu", "int8", "462,060",
                                                                 "131,264", "0.2841", "99.72", "99.72", "0", "0.1808",
                                                                 "0.1733", "0.9585", "ok"]]))
    text = buf.getvalue()
    assert "…" not in text and all(h in text for h in headers) and "digits_cnn.keras" in text


def test_columns_env_still_wins(monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    assert Sink().console.width == 100


COMPARE_HEADERS = ["model", "target", "scheme", "float bytes", "bytes", "size x", "top-1 float", "top-1", "drop",
                   "p50 float ms", "p50 ms", "latency x", "ok"]
COMPARE_ROW = ["digits_cnn.keras", "mobile-cpu", "int8", 462060, 131264, 0.2841, 99.72, 99.72, 0.0, 0.1808, 0.1733,
               0.9585, "ok"]


def _render(width: int, renderable) -> str:
    console = Console(width=width, file=io.StringIO(), highlight=False)
    console.print(renderable)
    return console.file.getvalue()


@pytest.mark.parametrize("width", [200, 80, 60, 40, 24])
def test_tables_never_cut_a_cell(width: int) -> None:
    text = _render(width, table("builds side by side", COMPARE_HEADERS, [COMPARE_ROW, [*COMPARE_ROW[:-1], "FAIL"]]))
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= width
    cells = ["digits_cnn.keras", "mobile-cpu", "462,060", "131,264", "0.2841", "99.72", "0.1808", "0.9585", "FAIL"]
    assert all(c in text for c in cells), text
    assert all(word in text for h in COMPARE_HEADERS for word in h.split())


def test_narrow_tables_stack_columns_and_repeat_the_row_name() -> None:
    wide = _render(200, table("t", COMPARE_HEADERS, [COMPARE_ROW]))
    narrow = _render(80, table("t", COMPARE_HEADERS, [COMPARE_ROW]))
    assert wide.count("digits_cnn.keras") == 1 and "(continued)" not in wide
    assert narrow.count("digits_cnn.keras") >= 2 and "(continued)" in narrow  # one row name per stacked table
    tiny = _render(24, table("t", COMPARE_HEADERS, [COMPARE_ROW]))
    assert "model: digits_cnn.keras" in tiny and "  p50 float ms: 0.1808" in tiny  # one block per row


@pytest.fixture(scope="module")
def two_builds(tmp_path_factory) -> list[Path]:
    """Two real edge-server builds of the sample ONNX MLP (onnxruntime only, a few seconds each)."""
    from typer.testing import CliRunner

    from edgeopt.cli.app import app

    root = tmp_path_factory.mktemp("builds")
    model = Path(__file__).resolve().parents[1] / "sample_models" / "digits_mlp.onnx"
    for out, extra in (("a", []), ("b", ["--no-bench"])):
        r = CliRunner().invoke(app, ["build", str(model), "--target", "edge-server", "--out", str(root / out), *extra])
        # exit 3 is fine here: int8 may be slower than float for this MLP (max_latency_ratio); the build is written
        assert r.exit_code in (0, 3) and (root / out / "report.json").is_file(), r.output
    return [root / "a", root / "b"]


@pytest.mark.parametrize("columns", [80, 60])
def test_compare_at_narrow_width_shows_every_value(two_builds, columns: int) -> None:
    from typer.testing import CliRunner

    from edgeopt.cli.app import app

    runner = CliRunner()
    data = json.loads(runner.invoke(app, ["compare", *map(str, two_builds), "--json"]).stdout)
    res = runner.invoke(app, ["compare", *map(str, two_builds)], env={"COLUMNS": str(columns)})
    assert res.exit_code == 0, res.output
    text = res.stdout
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= columns
    assert len(data) == 2 and data[0]["p50 ms"] is not None and data[1]["p50 ms"] is None
    for row in data:
        for key, value in row.items():
            if value is None or key == "latency verdict":
                continue
            shown = f"{value:.2f}x ({row['latency verdict']})" if key == "latency x" else _fmt(value)
            assert shown in text, (key, shown, text)


def test_cells_and_titles_are_text_not_markup() -> None:
    text = _render(80, table("a[/b] vs [red]c", ["model", "x"], [["model[v2].onnx", 1.5], ["a[/b].tflite", 2]]))
    assert "a[/b] vs [red]c" in text and "model[v2].onnx" in text and "a[/b].tflite" in text
