"""Item 7 of issue 12: names from models, paths and profiles cannot restyle, hide or crash the output,
and human output works when stdout is not UTF-8."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.robustness.conftest import ROOT, edgeopt, error_line

SAMPLES = ROOT / "sample_models"
HOSTILE = ("[/x]", "[link=http://evil.example]click[/link]", "[conceal]hidden[/conceal]", ":smile:", "\x1b[2J",
           "line\nwrote fake")


def _hostile_onnx(tmp_path):
    """digits_mlp.onnx with its input and output tensors renamed to markup, an emoji code and an ANSI escape."""
    import onnx

    m = onnx.load(str(SAMPLES / "digits_mlp.onnx"))
    old_in, old_out = m.graph.input[0].name, m.graph.output[0].name
    new_in, new_out = "".join(HOSTILE[:3]), "".join(HOSTILE[3:])
    for node in m.graph.node:
        node.input[:] = [new_in if n == old_in else n for n in node.input]
        node.output[:] = [new_out if n == old_out else n for n in node.output]
    m.graph.input[0].name, m.graph.output[0].name = new_in, new_out
    folder = tmp_path / "p[bold" / "q["  # the model's path holds "[bold/q[/x]m.onnx": markup across folders
    folder.mkdir(parents=True)
    path = folder / "x]m.onnx"
    onnx.save(m, str(path))
    shutil.copy(SAMPLES / "digits_mlp.calib.npz", folder / "x]m.calib.npz")
    return path


def test_inspect_prints_hostile_names_as_text(tmp_path):
    model = _hostile_onnx(tmp_path)
    r = edgeopt("inspect", model)
    assert r.returncode == 0, r.stderr
    flat = r.stdout.replace("\n", "")
    assert "[/x][link=http://evil.example]click[/link][conceal]hidden[/conceal]" in flat
    assert ":smile:" in flat and "\x1b" not in r.stdout and "\\x1b[2J" in flat
    assert "wrote fake" not in r.stdout.splitlines()  # the newline did not make a line of its own
    assert "q[/x]m.onnx" in flat


def test_build_and_rebuild_with_markup_in_every_path(tmp_path):
    """The second build is up to date and says so naming OUT: '[/x]' in that path was a MarkupError (exit 1)."""
    model = _hostile_onnx(tmp_path)
    out = tmp_path / "o[" / "x][red]out"  # ".../o[/x][red]out"
    for _ in range(2):
        r = edgeopt("build", model, "--target", "edge-server", "--out", out, "--no-bench")
        assert r.returncode == 0, r.stderr
        assert str(out.resolve()) in (r.stdout + r.stderr).replace("\n", "")
    assert "up to date" in r.stderr
    assert json.loads((out / "report.json").read_text())["input"]["path"].endswith("q[/x]m.onnx")


def test_warnings_print_markup_as_text(tmp_path):
    (tmp_path / "b[red]x[blink].toml").write_text("x = = 1\n")
    r = edgeopt("targets", "list", env_extra={"EDGEOPT_TARGETS": str(tmp_path)})
    assert r.returncode == 0, r.stderr
    assert "warning: skipped b[red]x[blink]:" in r.stderr


@pytest.mark.parametrize("env", [{"PYTHONIOENCODING": "latin-1"},
                                 {"LANG": "C", "LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0"}])
def test_human_output_without_utf8(tmp_path, env):
    r = edgeopt("bench", SAMPLES / "digits_mlp.onnx", "--runs", "2", "--min-seconds", "0", "--warmup-seconds", "0",
                env_extra=env, text=False)
    assert r.returncode == 0, r.stderr
    assert b"RSS" in r.stdout and b"digits_mlp.onnx" in r.stdout
    missing = tmp_path / "mod\u00e8le-\u0394.onnx"
    r = edgeopt("inspect", missing, env_extra=env, text=False)
    assert r.returncode == 2, r.stderr
    line = r.stderr.decode("latin-1").strip()
    assert line.startswith("error: model not found:") and len(line.splitlines()) == 1, line
    assert "mod" in line and "le-" in line and line.endswith(".onnx (check the path)"), line


def test_error_line_helper_sees_progress_lines():
    r = edgeopt("inspect", "no-such-model.onnx")
    assert "model not found" in error_line(r)


def test_report_md_shows_names_as_code(tmp_path):
    """Issue 21 item 6: model, data and profile names with HTML, a javascript: link and backticks are code spans
    in report.md (a longer backtick fence than any run inside), never HTML or a link in a Markdown viewer."""
    from markdown_it import MarkdownIt

    folder = tmp_path / "<b>bold"
    folder.mkdir()
    model = folder / "<img src=x onerror=alert(1)>``m`.onnx"
    shutil.copy(SAMPLES / "digits_mlp.onnx", model)
    calib = folder / "[c](javascript:alert(1)).npz"
    shutil.copy(SAMPLES / "digits_mlp.calib.npz", calib)
    profile = tmp_path / "p.toml"
    profile.write_text('extends = "edge-server"\nname = "<script>alert(1)</script>|`x"\n')
    r = edgeopt("build", model, "--target", profile, "--calib", calib, "--out", tmp_path / "out", "--no-bench")
    assert r.returncode == 0, r.stderr
    md = (tmp_path / "out" / "report.md").read_text()
    assert md.startswith(f"# edgeopt report: ```{model}``` -> ``<script>alert(1)</script>|`x``\n"), md[:300]
    html = MarkdownIt("commonmark").enable("table").render(md)
    for raw in ("<img", "<b>", "<script", 'href="javascript', "<a "):
        assert raw not in html, (raw, html[:2000])
    assert "<code>&lt;script&gt;alert(1)&lt;/script&gt;|`x</code>" in html
    assert f"<code>{calib}</code>".replace("<b>", "&lt;b&gt;") in html
    assert "&lt;img src=x onerror=alert(1)&gt;``m`.onnx</code>" in html
