"""Item 9 of issue 12: a hostile `bench --compare` file or `--remote` answer is one line, exit 2 (was exit 1)."""

from __future__ import annotations

import copy
import json

import pytest

from edgeopt.errors import InputError
from tests.robustness.conftest import ROOT, edgeopt, error_line

ONNX = ROOT / "sample_models" / "digits_mlp.onnx"


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    path = tmp_path_factory.mktemp("bench") / "old.json"
    r = edgeopt("bench", ONNX, "--runs", "3", "--min-seconds", "0", "--warmup-seconds", "0", "--json")
    assert r.returncode == 0, r.stderr
    path.write_text(r.stdout)
    return path


MUTATIONS = {
    "result_not_object": lambda d: d.update(results=[1, "a"]),
    "model_not_text": lambda d: d["results"][0].update(model=None),
    "huge_int": lambda d: d["results"][0].update(init_ms=10**400),
    "p50_text": lambda d: d["results"][0]["latency"].update(p50="[/x]"),
    "p50_missing": lambda d: d["results"][0]["latency"].pop("p50"),
    "threads_bool": lambda d: d["results"][0].update(threads=True),
    "negative_latency": lambda d: d["results"][0]["latency"].update(p90=-1.0),
    "fingerprint_list": lambda d: d["results"][0].update(fingerprint=[1]),
    "samples_text": lambda d: d["results"][0].update(samples_ms=["a"]),
}


@pytest.mark.parametrize("case", list(MUTATIONS))
def test_hostile_compare_file(saved, tmp_path, case):
    data = json.loads(saved.read_text())
    MUTATIONS[case](data)
    new = tmp_path / "new.json"
    new.write_text(json.dumps(data))
    for args in ((saved, new), (new, saved)):
        r = edgeopt("bench", "--compare", *args)
        assert "not an edgeopt bench result" in error_line(r)


def test_deeply_nested_compare_file(saved, tmp_path):
    new = tmp_path / "deep.json"
    new.write_text("[" * 100_000 + "]" * 100_000)
    r = edgeopt("bench", "--compare", saved, new)
    assert r.returncode == 2 and "nested too deeply" in r.stderr, r.stderr


def test_hostile_remote_answer_is_input_error(saved):
    """`--remote` parses the device's JSON with the same checks (the device is not trusted either)."""
    from edgeopt.benchmark.results import parse_report

    good = json.loads(saved.read_text())
    assert parse_report(good, "answer from dev").results[0].latency.runs == 3
    for change in MUTATIONS.values():
        bad = copy.deepcopy(good)
        change(bad)
        with pytest.raises(InputError, match="answer from dev: not an edgeopt bench result"):
            parse_report(bad, "answer from dev")
