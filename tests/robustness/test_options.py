"""Item 6 of issue 12: options and names within reason are checked, with one line and exit 2."""

from __future__ import annotations

import pytest

from tests.robustness.conftest import ROOT, edgeopt, error_line

ONNX = ROOT / "sample_models" / "digits_mlp.onnx"


def _one_line(r) -> str:
    return error_line(r)


@pytest.mark.parametrize("seed", ["-1", str(2**32)])
def test_seed_out_of_range(seed):
    assert "--seed" in _one_line(edgeopt("bench", ONNX, "--seed", seed, "--runs", "1"))


@pytest.mark.parametrize("name", ["a" * 300, "a" * 300 + ".toml", "bad\x01name", "spaced name"])
def test_unusable_target_names(name):
    line = _one_line(edgeopt("targets", "show", name))
    assert "is not a profile name" in line or "File name too long" in line, line
    assert len(line) < 400


def test_unusable_extends_value(tmp_path):
    prof = tmp_path / "p.toml"
    prof.write_text(f'extends = "{"c" * 300}"\n')
    line = _one_line(edgeopt("targets", "show", prof))
    assert "extends = 'ccc" in line and "is not a profile name" in line and len(line) < 400, line


def test_one_broken_profile_in_edgeopt_targets_is_skipped_with_a_warning(tmp_path):
    (tmp_path / "broken.toml").write_text("x = = 1\n")
    (tmp_path / "fine.toml").write_text('extends = "mobile-cpu"\n')
    r = edgeopt("targets", "list", "--json", env_extra={"EDGEOPT_TARGETS": str(tmp_path)})
    assert r.returncode == 0, r.stderr
    import json

    names = [row["name"] for row in json.loads(r.stdout)]
    assert "fine" in names and "mobile-cpu" in names and "broken" not in names
    assert "warning: skipped broken:" in r.stderr and "not valid TOML" in r.stderr


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "0", "abc"])
def test_probe_timeout_must_be_a_time(value):
    line = _one_line(edgeopt("bench", ONNX, "--runs", "1", env_extra={"EDGEOPT_PROBE_TIMEOUT": value}))
    assert f"EDGEOPT_PROBE_TIMEOUT='{value}' is not a time in seconds" in line, line


def test_threads_bounded_on_the_cli():
    assert "threads must be from 0 (all cores) to 256, got 100000" in _one_line(
        edgeopt("bench", ONNX, "--threads", "100000", "--runs", "1"))
