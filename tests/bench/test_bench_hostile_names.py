"""Issue 21 item 6: model names that are formulas in a spreadsheet or markup in a Markdown viewer stay text in
`bench --csv` and `bench --markdown`."""

from __future__ import annotations

import csv
import io
import shutil

from edgeopt.benchmark import render

FORMULA = '=HYPERLINK("evil.example","x")+1.onnx'
HTML = "<img src=x onerror=alert(1)>[a](javascript:alert(1))`x`.onnx"


def test_csv_cells_that_start_a_formula_get_a_quote(cli, models, fast, tmp_path) -> None:
    names = [FORMULA, "@SUM(A1).onnx", "-2+3.onnx", "+1.onnx", "\tx.onnx"]
    paths = [tmp_path / n for n in names]
    for p in paths:
        shutil.copy(models.onnx, p)
    res = cli("bench", *paths, *fast, "--csv", tmp_path / "t.csv")
    assert res.exit_code == 0, res.output
    rows = list(csv.reader(io.StringIO((tmp_path / "t.csv").read_text())))
    assert rows[0] == list(render.HEADERS)
    assert [r[0] for r in rows[1:]] == ["'" + n for n in names]
    p50 = render.HEADERS.index("p50")
    assert all(float(r[p50]) > 0 for r in rows[1:])  # numbers are not quoted
    assert render.to_csv(["a", "b"], [[-1.5, "=1"], [-3, "a=1"]]) == "a,b\n-1.5,'=1\n-3,a=1\n"


def test_markdown_shows_names_as_code(cli, models, fast, tmp_path) -> None:
    from markdown_it import MarkdownIt

    model = tmp_path / HTML
    shutil.copy(models.onnx, model)
    res = cli("bench", model, *fast, "--markdown", tmp_path / "t.md", "--save", tmp_path / "r.json")
    assert res.exit_code == 0, res.output
    md = (tmp_path / "t.md").read_text()
    assert "| ``<img src=x onerror=alert(1)>[a](javascript:alert(1))`x`.onnx`` |" in md, md
    html = MarkdownIt("commonmark").enable("table").render(md)
    assert "<img" not in html and "<a " not in html and "<code>&lt;img src=x onerror" in html
    res = cli("bench", "--compare", tmp_path / "r.json", tmp_path / "r.json", "--markdown", "-")
    assert res.exit_code == 0, res.output
    html = MarkdownIt("commonmark").enable("table").render(res.stdout)
    assert "<img" not in html and "<a " not in html and html.count("<code>&lt;img src=x onerror") == 2
