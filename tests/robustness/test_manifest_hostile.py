"""Item 9 of issue 12 (manifest part): a malformed or hostile OUT/manifest.json is exit 2 or a rebuild, never exit 1."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.robustness.conftest import MODEL, edgeopt

pytestmark = pytest.mark.tensorflow

GOOD = {"schema": "edgeopt.manifest/1", "input_key": "k", "artifacts": {}}
CASES = {
    "inputs_list": {**GOOD, "inputs": ["model"]},
    "input_entry_string": {**GOOD, "inputs": {"model": "/dev/zero"}},
    "violation_missing_keys": {**GOOD, "budget_violations": [{"name": "x"}]},
    "violations_not_a_list": {**GOOD, "budget_violations": "none"},
    "artifact_nul_name": {**GOOD, "artifacts": {"a\u0000b": {"sha256": "0"}}},
    "artifact_not_object": {**GOOD, "artifacts": {"report.json": 5}},
    "deep": None,
}


@pytest.mark.parametrize("case", list(CASES))
def test_verify_on_a_malformed_manifest(tmp_path, case):
    out = tmp_path / "out"
    out.mkdir()
    text = "[" * 100_000 + "]" * 100_000 if CASES[case] is None else json.dumps(CASES[case])
    (out / "manifest.json").write_text(text)
    r = edgeopt("verify", out)
    assert r.returncode in (2, 3), r.stderr
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr, r.stderr
    if r.returncode == 2:
        assert len(r.stderr.strip().splitlines()) == 1 and "manifest" in r.stderr, r.stderr


def test_build_over_a_folder_whose_report_json_was_replaced_rebuilds(mobile_build, tmp_path):
    """manifest.json still matches the inputs but report.json is not a report: rebuild (exit 1 before)."""
    out = tmp_path / "out"
    shutil.copytree(mobile_build, out)
    (out / "report.json").write_text('{"not": "a report"}')
    data = json.loads((out / "manifest.json").read_text())
    data["artifacts"].pop("report.json", None)  # so the artifact check alone does not already force a rebuild
    (out / "manifest.json").write_text(json.dumps(data))
    r = edgeopt("build", MODEL, "--target", "mobile-cpu", "--out", out, "--no-bench")
    assert r.returncode == 0, r.stderr
    assert "schema_version" in json.loads((out / "report.json").read_text())


def test_verify_from_another_folder_finds_the_inputs(tmp_path):
    """Input paths are stored relative to OUT: a build run with relative paths verifies from anywhere."""
    from tests.robustness.conftest import ROOT

    work = tmp_path / "proj"
    work.mkdir()
    for name in ("digits_mlp.onnx", "digits_mlp.calib.npz", "digits_mlp.eval.npz"):
        shutil.copy(ROOT / "sample_models" / name, work / name)
    r = edgeopt("build", "digits_mlp.onnx", "--target", "edge-server", "--out", "out", "--no-bench", cwd=work)
    assert r.returncode == 0, r.stderr
    inputs = json.loads((work / "out" / "manifest.json").read_text())["inputs"]
    assert inputs["model"]["path"] == "../digits_mlp.onnx" and inputs["eval"]["path"] == "../digits_mlp.eval.npz"
    r = edgeopt("verify", work / "out")  # from the repository root, not from `work`
    assert r.returncode == 0 and "input missing" not in r.stderr, r.stderr
    (work / "digits_mlp.eval.npz").write_bytes((work / "digits_mlp.calib.npz").read_bytes())
    r = edgeopt("verify", work / "out", env_extra={"COLUMNS": "1000"})  # no wrapping inside the long path
    assert r.returncode == 0 and f"input changed: {work / 'digits_mlp.eval.npz'}" in r.stderr
