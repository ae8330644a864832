"""EDGEOPT_DEBUG, EDGEOPT_ISOLATE and EDGEOPT_PROBE are read by one parser (edgeopt.switches): `EDGEOPT_DEBUG=no`
once turned debug on, because each reader had its own list of off words."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeopt import switches
from edgeopt.convert import isolated
from edgeopt.runtime import probe


@pytest.mark.parametrize("value", ["no", "0", "false", "", "OFF", " No "])
def test_debug_off_words_show_no_traceback(cli, tmp_path: Path, monkeypatch, value: str) -> None:
    monkeypatch.setenv("EDGEOPT_DEBUG", value)
    r = cli("inspect", tmp_path / "nope.onnx")
    assert r.exit_code == 2
    assert r.stderr.strip().splitlines() == [f"error: model not found: {tmp_path / 'nope.onnx'} (check the path)"]


@pytest.mark.parametrize("value", ["1", "yes", "true", "on"])
def test_debug_on_words_show_the_traceback(cli, tmp_path: Path, monkeypatch, value: str) -> None:
    monkeypatch.setenv("EDGEOPT_DEBUG", value)
    r = cli("inspect", tmp_path / "nope.onnx")
    assert r.exit_code == 2 and "Traceback" in r.stderr and "error: model not found" in r.stderr


def test_every_switch_reads_the_same_words(monkeypatch) -> None:
    readers = {"EDGEOPT_DEBUG": switches.debug, "EDGEOPT_ISOLATE": isolated.enabled, "EDGEOPT_PROBE": probe.enabled}
    defaults = {"EDGEOPT_DEBUG": False, "EDGEOPT_ISOLATE": True, "EDGEOPT_PROBE": True}
    for name, read in readers.items():
        monkeypatch.delenv(name, raising=False)
        assert read() is defaults[name], name
        monkeypatch.setenv(name, "")
        assert read() is defaults[name], name
        for off in ("0", "false", "No", " off "):
            monkeypatch.setenv(name, off)
            assert read() is False, (name, off)
        for on in ("1", "TRUE", "yes", "on"):
            monkeypatch.setenv(name, on)
            assert read() is True, (name, on)
