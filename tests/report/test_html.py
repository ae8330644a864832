"""report.html and search.html: structure, escaping of hostile strings, edge cases of the chart, the build
writing report.html, and both pages rendered in a real headless Chromium (dump-dom and a screenshot)."""

from __future__ import annotations

import math
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from edgeopt.pipeline.build import BuildRequest, build
from edgeopt.report import schema as rs
from edgeopt.report.html import ScatterPoint, build_page, search_page

HOSTILE = '<script>alert(1)</script>"><img src=x onerror=alert(2)>'
CHROMIUM = shutil.which("chromium") or next((p for p in ("/usr/bin/chromium",) if Path(p).is_file()), None)
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian chromium is not installed (apt-get install -y chromium; .ci/run installs it)")


class Dom(HTMLParser):
    """Tags with their attributes and the text, as a browser-independent view of a page."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.stack: list[str] = []
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)

    def count(self, tag: str, cls: str | None = None) -> int:
        return sum(t == tag and (cls is None or cls in (a.get("class") or "").split()) for t, a in self.tags)

    def attrs(self, tag: str, cls: str) -> list[dict[str, str | None]]:
        return [a for t, a in self.tags if t == tag and cls in (a.get("class") or "").split()]


def _front(points: list[tuple[float, float]]) -> list[bool]:
    """Non-dominated (both minimised), as the search computes it."""
    return [not any(q[0] <= p[0] and q[1] <= p[1] and q != p for q in points) for p in points]


def _search(n: int = 12, *, x_budget: float | None = 60.0, y_budget: float | None = 2.0, extra=()) -> tuple[str, list]:
    xy = [(20.0 + 7 * i, 8.0 * math.exp(-i / 3) + (i % 3) * 0.4) for i in range(n)]
    pts = [ScatterPoint(x, y, f"trial {i}", f"trials/{i}/report.html", f, x <= 60 and y <= 2)
           for i, ((x, y), f) in enumerate(zip(xy, _front(xy), strict=True))]
    pts += list(extra)
    rows = [[str(i), f"{p.x:.1f}", f"{p.y:.2f}"] for i, p in enumerate(pts)]
    page = search_page("digits_cnn -> mobile-cpu", pts, "size (KiB)", "accuracy drop (points)", x_budget, y_budget,
                       ["trial", "KiB", "drop"], rows, [p.href for p in pts])
    return page, pts


def test_search_page_chart_front_budgets_and_table():
    page, pts = _search()
    dom = Dom(page)
    assert dom.count("circle") == len(pts)
    assert dom.count("circle", "front") == sum(p.on_front for p in pts) >= 3
    assert dom.count("circle", "infeasible") == sum(not p.feasible for p in pts) > 0
    (line,) = dom.attrs("path", "front-line")
    assert line["d"].count("H") == sum(p.on_front for p in pts) - 1  # a step per front point after the first
    assert dom.count("line", "budget") == 2 and "budget 60" in page and "budget 2" in page
    assert dom.count("tr") == len(pts) + 1  # header + one per trial
    links = [a["href"] for t, a in dom.tags if t == "a"]
    assert links.count("trials/3/report.html") == 2  # the point and the table row
    assert f"{len(pts)} trials, {sum(p.on_front for p in pts)} on the Pareto front" in page
    assert dom.count("div", "legend") == 1 and "over budget" in page
    # nothing is fetched at view time: no script, no remote URL (the SVG namespace is a name, not a fetch)
    assert dom.count("script") == 0 and dom.count("link") == 0
    assert not re.findall(r'(?:src|href)="(?:https?:)?//', page)


def test_search_page_escapes_hostile_strings():
    bad = ScatterPoint(1.0, 1.0, HOSTILE, "javascript:alert(3)", True, True)
    page = search_page(HOSTILE, [bad], HOSTILE, HOSTILE, None, None, [HOSTILE], [[HOSTILE]], ["javascript:alert(4)"])
    dom = Dom(page)
    assert dom.count("script") == 0 and dom.count("img") == 0
    assert "<script>" not in page and "javascript:" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert HOSTILE in "".join(dom.text)  # shown as text
    assert dom.count("circle") == 1 and not [a for t, a in dom.tags if t == "a"]  # the unsafe links are dropped


def _inside(dom: Dom, n: int) -> None:
    """n circles, each at finite coordinates inside the plot area (viewBox 760 x 460)."""
    circles = [a for t, a in dom.tags if t == "circle"]
    assert len(circles) == n
    for c in circles:
        x, y = float(c["cx"]), float(c["cy"])
        assert 0 < x < 760 and 0 < y < 460, c


def test_search_page_one_point_equal_values_and_not_measured():
    one = search_page("t", [ScatterPoint(5.0, 5.0, "only", None, True, True)], "x", "y", None, None,
                      ["trial"], [["only"]], [None])
    _inside(Dom(one), 1)
    same = [ScatterPoint(3.0, 7.0, f"t{i}", None, i == 0, True) for i in range(5)]
    page = search_page("t", same, "x", "y", 3.0, 7.0, ["trial"], [[p.label] for p in same], [None] * 5)
    _inside(Dom(page), 5)
    assert Dom(page).count("line", "budget") == 2  # a zero range still shows the budgets through the points
    nan = [ScatterPoint(float("nan"), 1.0, "a", None, False, False), ScatterPoint(1.0, float("inf"), "b", None,
                                                                                  False, False)]
    page = search_page("t", nan, "x", "y", None, None, ["trial"], [["a"], ["b"]], [None, None])
    assert Dom(page).count("circle") == 0
    assert "2 not plotted (not measured)" in page and "no trial measured on both objectives" in page
    empty = search_page("t", [], "x", "y", 10.0, None, ["trial"], [], [])
    assert Dom(empty).count("circle") == 0 and "0 trials" in empty
    with pytest.raises(ValueError, match="2 rows but 1 row links"):
        search_page("t", [], "x", "y", None, None, ["trial"], [["a"], ["b"]], [None])


def test_search_page_many_points():
    page, pts = _search(n=400)
    dom = Dom(page)
    _inside(dom, 400)
    assert dom.count("tr") == 401 and dom.count("circle", "front") == sum(p.on_front for p in pts)


def test_search_page_far_budget_is_named_not_squashing_the_points():
    page, _ = _search(x_budget=10_000.0)
    assert "the budget on size (KiB) (10k) lies beyond the plotted range" in page
    assert Dom(page).count("line", "budget") == 1  # only the y budget is drawn


# ------------------------------------------------------------------------------------------ report.html


@pytest.fixture(scope="module")
def onnx_build(tmp_path_factory, samples: Path):
    """A real build (ONNX MLP for edge-server, benchmarked): report.json + report.html."""
    return build(BuildRequest(model=samples / "digits_mlp.onnx", target="edge-server",
                              out=tmp_path_factory.mktemp("html") / "out"))


def test_build_writes_report_html_in_the_manifest(onnx_build):
    import json

    page = (onnx_build.out / "report.html").read_text("utf-8")
    manifest = json.loads((onnx_build.out / "manifest.json").read_text())
    assert "report.html" in manifest["artifacts"] and onnx_build.out / "report.html" in onnx_build.files
    r = onnx_build.report
    lat = r.optimized.latency_ms
    assert lat is not None and r.stages.composition is not None
    dom = Dom(page)
    assert dom.count("svg", "spread") == 1 and dom.count("rect", "box") == 2  # baseline and optimized
    assert f"{lat.p99:.4g}" in page and f"{r.optimized.artifact.bytes:,}" in page
    assert "Composition (per step)" in page and all(f">{s.stage}<" in page for s in r.stages.composition.steps)
    assert [b.name for b in r.budgets] and all(f">{b.name}<" in page for b in r.budgets)
    assert all(n.replace("'", "&#x27;").replace('"', "&quot;") in page for n in r.notes)


def test_report_page_every_optional_stage_absent_and_hostile_strings(onnx_build):
    r = onnx_build.report
    bare = r.model_copy(update={
        "stages": rs.Stages(), "budgets": [], "notes": [HOSTILE], "eval_data": None,
        "input": r.input.model_copy(update={"path": HOSTILE, "params": None, "macs": None}),
        "baseline": r.baseline.model_copy(update={"latency_ms": None, "accuracy": None}),
        "optimized": r.optimized.model_copy(update={"latency_ms": None, "accuracy": None}),
        "ratios": rs.Ratios(size=r.ratios.size, latency_p50=None)})
    page = build_page(bare)
    dom = Dom(page)
    assert dom.count("script") == 0 and dom.count("img") == 0 and "<script>" not in page
    assert "Latency not measured" in page and "No budgets in the profile." in page and "Composition" not in page
    assert HOSTILE in "".join(dom.text)


def _poison(v):
    """Every plain string field of a report replaced by HOSTILE (enums kept: they are closed sets)."""
    from enum import Enum

    from pydantic import BaseModel

    if isinstance(v, BaseModel):
        return v.model_copy(update={k: _poison(getattr(v, k)) for k in type(v).model_fields})
    if isinstance(v, str) and not isinstance(v, Enum):
        return HOSTILE
    if isinstance(v, list):
        return [_poison(x) for x in v]
    if isinstance(v, dict):
        return {k: _poison(x) for k, x in v.items()}
    return v


def test_report_page_every_string_field_hostile(onnx_build):
    page = build_page(_poison(onnx_build.report))
    dom = Dom(page)
    assert dom.count("script") == 0 and dom.count("img") == 0 and "<script>" not in page
    assert "".join(dom.text).count(HOSTILE) >= 10  # shown as text where the strings go


# ------------------------------------------------------------------------------------------ Chromium


def _chromium(tmp: Path, page: Path, *args: str) -> subprocess.CompletedProcess:
    assert CHROMIUM is not None
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-dev-shm-usage", "--run-all-compositor-stages-before-draw",
           f"--user-data-dir={tmp / 'chromium-profile'}", *args, page.resolve().as_uri()]
    # One retry: a browser start that dies on a loaded CI machine says nothing about the page.
    for _ in range(2):
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=180, cwd=tmp)
        if r.returncode == 0:
            break
    assert r.returncode == 0, (r.returncode, r.stderr[-2000:])
    return r


def _check_screenshot(png: Path) -> None:
    from PIL import Image

    assert png.stat().st_size > 20_000
    with Image.open(png) as im:
        assert im.size == (1200, 900)
        rgb = im.convert("RGB")
        colours = rgb.getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 50  # not one flat colour: text, chart, table
    # the accent blue (#2563eb) of the front points / bars was painted
    assert sum(n for n, c in colours if abs(c[0] - 0x25) < 12 and abs(c[1] - 0x63) < 12 and abs(c[2] - 0xEB) < 12) > 200


@needs_chromium
def test_search_page_renders_in_chromium(tmp_path):
    page, pts = _search(extra=[ScatterPoint(40.0, 1.0, HOSTILE, None, False, True)])
    html = tmp_path / "search.html"
    html.write_text(page, "utf-8")
    dom = Dom(_chromium(tmp_path, html, "--dump-dom").stdout)
    assert dom.count("circle") == len(pts)
    assert len(dom.attrs("path", "front-line")) == 1 and dom.count("line", "budget") == 2
    assert dom.count("tr") == len(pts) + 1 and dom.count("script") == 0
    assert HOSTILE in "".join(dom.text)
    png = tmp_path / "search.png"
    _chromium(tmp_path, html, f"--screenshot={png}", "--window-size=1200,900", "--hide-scrollbars")
    _check_screenshot(png)


@needs_chromium
def test_report_page_renders_in_chromium(onnx_build, tmp_path):
    html = onnx_build.out / "report.html"
    dom = Dom(_chromium(tmp_path, html, "--dump-dom").stdout)
    assert dom.count("svg", "spread") == 1 and dom.count("svg", "bars") >= 2
    steps = onnx_build.report.stages.composition.steps
    assert dom.count("tr") >= 3 + len(steps) + len(onnx_build.report.budgets)
    png = tmp_path / "report.png"
    _chromium(tmp_path, html, f"--screenshot={png}", "--window-size=1200,900", "--hide-scrollbars")
    _check_screenshot(png)


def test_a_build_without_report_html_is_rebuilt_not_skipped(tmp_path, samples: Path):
    """An OUT written before report.html existed is not "up to date": the next build writes the page."""
    import json

    req = BuildRequest(model=samples / "digits_mlp.onnx", target="edge-server", out=tmp_path / "out", benchmark=False)
    build(req)
    assert build(req).skipped  # unchanged: skipped
    (req.out / "report.html").unlink()
    m = json.loads((req.out / "manifest.json").read_text())
    del m["artifacts"]["report.html"]
    (req.out / "manifest.json").write_text(json.dumps(m))
    again = build(req)
    assert not again.skipped and (req.out / "report.html").is_file()
    assert "report.html" in json.loads((req.out / "manifest.json").read_text())["artifacts"]


def test_figures_from_an_emulated_cpu_say_so_everywhere(onnx_build, cli, tmp_path):
    """report.json/md/html and `edgeopt compare` of a build timed on an emulated CPU (issue 26, item 2)."""
    import json

    from edgeopt.report.render import to_markdown

    r = onnx_build.report
    why = "qemu-user: aarch64 code on AMD EPYC, a CPU of the x86 family"

    def emulated(v: rs.Variant) -> rs.Variant:
        lat = v.latency_ms
        assert lat is not None and lat.fingerprint is not None and lat.fingerprint.emulation is None  # a real CPU here
        fp = lat.fingerprint.model_copy(update={"emulation": why, "arch": "aarch64"})
        return v.model_copy(update={"latency_ms": lat.model_copy(update={"fingerprint": fp})})

    em = r.model_copy(update={"baseline": emulated(r.baseline), "optimized": emulated(r.optimized)})
    assert "EMULATED CPU (`qemu-user: aarch64 code on AMD EPYC" in to_markdown(em)
    assert "EMULATED CPU" not in to_markdown(r)
    assert f"EMULATED CPU ({why}): the emulator&#x27;s speed, not a real aarch64 device&#x27;s" in build_page(em)
    out = tmp_path / "em"
    out.mkdir()
    (out / "report.json").write_text(em.model_dump_json())
    res = cli("compare", onnx_build.out, out, "--json")
    assert res.exit_code == 0, res.output
    assert [row["measured on"] for row in json.loads(res.stdout)] == ["host", "host (emulated CPU)"]
    assert json.loads((out / "report.json").read_text())["optimized"]["latency_ms"]["fingerprint"]["emulation"] == why
