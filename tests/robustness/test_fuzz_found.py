"""Defects the folder kinds of the fuzzer found (issue 21 item 7), one test each, on the fuzzer's own base inputs:
a real TFLM library cache of three sources and a real Optuna search.db (tests/robustness/fuzz_classes.py)."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

from tests.firmware.conftest import needs_toolchain
from tests.robustness import fuzz_classes as fc
from tests.robustness.fuzz_lib import main as lib_main

pytestmark = pytest.mark.firmware


@pytest.fixture(scope="module")
def tflm_base(tmp_path_factory) -> Path:
    return fc.base_tflm_cache(tmp_path_factory.mktemp("tflm"))


@pytest.fixture
def cache_copy(tflm_base, tmp_path) -> tuple[Path, Path, Path]:
    """(XDG copy, its library folder, a sentinel folder holding `victim`)."""
    xdg = tmp_path / "xdg"
    shutil.copytree(tflm_base, xdg, symlinks=True)
    return xdg, next((xdg / "edgeopt" / "tflm").iterdir()), fc.make_sentinel(tmp_path / "sentinel")


def _members(archive: Path) -> list[str]:
    return subprocess.run(["arm-none-eabi-ar", "t", str(archive)], capture_output=True, text=True, check=True,
                          timeout=60).stdout.split()


@needs_toolchain
def test_an_object_folder_linked_elsewhere_gets_nothing_written_through_it(cache_copy, capsys):
    """obj/third_party replaced by a link to another folder: the objects under it were compiled into that folder."""
    xdg, lib, sentinel = cache_copy
    before = fc.sentinel_state(sentinel)
    linked = lib / "obj" / "third_party"
    shutil.rmtree(linked)
    linked.symlink_to(sentinel, target_is_directory=True)
    assert lib_main(["tflm-cache", str(xdg)]) == 0
    out = capsys.readouterr().out
    assert "removed 1 symbolic link from obj/" in out and "2 objects failed their hash, rebuilt" in out
    assert fc.sentinel_state(sentinel) == before
    assert not linked.is_symlink() and len(list(linked.rglob("*.o"))) == 2
    assert sorted(_members(lib / "libtflm.a")) == ["arm_relu6_s8.c.o", "arm_reshape_s8.c.o", "debug_log.cc.o"]


@needs_toolchain
@pytest.mark.parametrize("name", ["../../../sentinel/victim", "/abs", "a\x00b.o", "x/../../index.json.o", "."])
def test_an_index_naming_a_file_outside_obj_is_not_trusted(cache_copy, capsys, name):
    """index.json recording an object outside obj/ (with a hash that fails): the check removed that file
    (`../`, an absolute path) or ended in `internal error: ValueError: embedded null byte`."""
    xdg, lib, sentinel = cache_copy
    before = fc.sentinel_state(sentinel)
    index = lib / "index.json"
    raw = json.loads(index.read_text())
    rel = str(sentinel / "victim") if name == "/abs" else name
    raw["objects"][rel] = "0" * 64
    index.write_text(json.dumps(raw))
    assert lib_main(["tflm-cache", str(xdg)]) == 0, capsys.readouterr().err
    assert fc.sentinel_state(sentinel) == before
    assert "victim" not in _members(lib / "libtflm.a")


@pytest.mark.parametrize("value", [{"m.tflite": 1}, ["m.tflite"], None, 5])
def test_a_study_artifact_attribute_that_is_not_a_name_is_refused(tmp_path, capsys, value):
    """A search.db whose trial's `artifact` is a dict was `internal error: TypeError: unhashable type: 'dict'`."""
    out = tmp_path / "out"
    shutil.copytree(fc.base_search_out(tmp_path / "base"), out, symlinks=True)
    with sqlite3.connect(out / "search.db") as con:
        con.execute("UPDATE trial_user_attributes SET value_json = ? WHERE key = 'artifact'", (json.dumps(value),))
    assert lib_main(["search-best", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: trial 0000: its artifact is not the one the study recorded; refused (search reads back "
                   "only the files its trials made: rerun the search into a new --out)"]
    assert not (out / "best").exists()


def test_the_untouched_search_out_is_copied_to_best(tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(fc.base_search_out(tmp_path / "base"), out, symlinks=True)
    assert lib_main(["search-best", str(out)]) == 0
    assert sorted(p.name for p in (out / "best").iterdir()) == ["m.float.tflite", "m.tflite", "manifest.json"]
