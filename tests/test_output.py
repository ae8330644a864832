"""Human output in a pipe or CI log keeps whole columns (rich alone would assume 80 and cut headers)."""

from __future__ import annotations

import io

from edgeopt.cli.output import PIPE_WIDTH, Sink, table


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
