"""Target profiles: built-ins, extends, validation messages, JSON schema."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edgeopt.errors import ProfileError
from edgeopt.profiles import list_profiles, load_profile
from edgeopt.profiles.schema import OutputFormat, Scheme
from edgeopt.vocabulary import DeviceClass

ROOT = Path(__file__).resolve().parents[1]


def test_builtins_resolve():
    names = set(list_profiles())
    assert {"mobile-cpu", "embedded-mcu", "edge-server", "raspberry-pi-4"} <= names
    mcu = load_profile("embedded-mcu").profile
    assert mcu.quantize.scheme is Scheme.INT8 and str(mcu.quantize.input_type) == "int8" and mcu.runtime.threads == 1
    srv = load_profile("edge-server").profile
    assert srv.convert.format is OutputFormat.ONNX and str(srv.quantize.onnx_format) == "qdq"


def test_extends_merges_and_hashes():
    pi = load_profile("raspberry-pi-4")
    base = load_profile("mobile-cpu")
    assert pi.profile.quantize == base.profile.quantize
    assert pi.profile.budgets.max_latency_ms == 50
    assert [p.stem for p in pi.chain] == ["raspberry-pi-4", "mobile-cpu"]
    assert pi.sha256 != base.sha256 and len(pi.sha256) == 64


@pytest.mark.parametrize(
    "body, needle",
    [
        ('[quantize]\nschem = "int8"\n', "quantize.schem: unknown key (allowed: scheme"),
        ('[quantize]\nscheme = "int4"\n', "quantize.scheme: must be one of"),
        ('[quantize]\ncalibration_samples = "many"\n', "quantize.calibration_samples"),
        ('[runtime]\nthreads = -1\n', "runtime.threads: threads must be from 0 (all cores) to 256 (got -1)"),
        ('[runtime]\nthreads = 100000\n', "runtime.threads: threads must be from 0 (all cores) to 256 (got 100000)"),
        ('[convert]\nformat = "onnx"\n[runtime]\nname = "litert"\n', "cannot run convert.format = 'onnx'"),
        ('[quantize]\nscheme = "float16"\ninput_type = "int8"\n', "input_type = 'int8' needs scheme = 'int8'"),
        ('extends = "no-such-profile"\n', "extends = 'no-such-profile' is not a known profile"),
        ('extends = "../etc/passwd"\n', "must be a profile name"),
        ("this is = not toml [", "not valid TOML"),
    ],
)
def test_bad_profiles_name_file_and_key(tmp_path: Path, body: str, needle: str):
    f = tmp_path / "mine.toml"
    f.write_text(body)
    with pytest.raises(ProfileError) as exc:
        load_profile(str(f))
    assert needle in str(exc.value)
    assert str(f) in str(exc.value) or "extends" in needle


# [partial] against the budgets, the device class and the format: every rule names the key to set.
BAD_PARTIAL = [
    ('device_class = "embedded-mcu"\n[budgets]\nmax_accuracy_drop = 1\n[partial]\nfallbacks = ["float"]\n',
     "has no float fallback; set partial.fallbacks = ['int16x8'] (with mcu.allow_int16x8 = true)"),
    ('device_class = "embedded-mcu"\n[budgets]\nmax_accuracy_drop = 1\n[partial]\nfallbacks = ["int16x8"]\n',
     "mcu.allow_int16x8 is false; set mcu.allow_int16x8 = true"),
    ('[partial]\nfallbacks = ["float"]\n', "accuracy_control needs budgets.max_accuracy_drop"),
    ('[convert]\nformat = "onnx"\n[runtime]\nname = "onnxruntime"\n[budgets]\nmax_accuracy_drop = 1\n'
     '[partial]\nfallbacks = ["int16x8"]\n', "int16x8 is TFLite-only; set partial.fallbacks = ['float']"),
    ('[budgets]\nmax_accuracy_drop = 1\n[partial]\nfallbacks = ["int16x8"]\nkeep_float = ["conv"]\n',
     "partial.keep_float needs 'float' in partial.fallbacks"),
    ('[budgets]\nmax_accuracy_drop = 1\n[partial]\nkeep_float = ["("]\n', "partial.keep_float pattern '(' is not a valid"),
    ('device_class = "gpu"\n', "device_class: must be one of 'mobile-cpu', 'embedded-mcu' or 'edge-server'"),
]


@pytest.mark.parametrize("body, needle", BAD_PARTIAL)
def test_contradictory_profiles_are_refused_at_load(tmp_path: Path, body: str, needle: str):
    f = tmp_path / "mine.toml"
    f.write_text(body)
    with pytest.raises(ProfileError) as exc:
        load_profile(str(f))
    assert f"invalid profile {f}: " in str(exc.value) and needle in str(exc.value)


def test_targets_show_refuses_a_contradictory_profile(tmp_path: Path):
    """The real command line: one line naming the key, exit 2, no traceback."""
    f = tmp_path / "mcu-float.toml"
    f.write_text(BAD_PARTIAL[0][0])
    r = subprocess.run([sys.executable, "-m", "edgeopt", "targets", "show", str(f)], capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=tmp_path, timeout=120)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and "partial.fallbacks" in r.stderr and "Traceback" not in r.stderr


def test_the_python_api_refuses_the_same_profile():
    from pydantic import ValidationError

    from edgeopt.profiles.schema import Profile

    with pytest.raises(ValidationError, match="no float fallback"):
        Profile(name="m", device_class="embedded-mcu", partial={"fallbacks": ["float"]}, budgets={"max_accuracy_drop": 1})
    ok = Profile(name="m", device_class="embedded-mcu", budgets={"max_accuracy_drop": 1},
                 partial={"fallbacks": ["int16x8"]}, mcu={"allow_int16x8": True})
    assert ok.device_class is DeviceClass.EMBEDDED_MCU and ok.partial is not None


def test_extends_cycle(tmp_path: Path):
    (tmp_path / "a.toml").write_text('extends = "./b.toml"\n')
    (tmp_path / "b.toml").write_text('extends = "./a.toml"\n')
    with pytest.raises(ProfileError, match="cycle"):
        load_profile(str(tmp_path / "a.toml"))


def test_env_search_path(tmp_path: Path, monkeypatch):
    (tmp_path / "my-board.toml").write_text('extends = "mobile-cpu"\n[runtime]\nthreads = 2\n')
    monkeypatch.setenv("EDGEOPT_TARGETS", str(tmp_path))
    assert "my-board" in list_profiles()
    assert load_profile("my-board").profile.runtime.threads == 2


def test_unknown_target_lists_available(cli):
    r = cli("targets", "show", "nope")
    assert r.exit_code == 2
    assert "unknown target 'nope'; available:" in r.stderr and "mobile-cpu" in r.stderr
    assert "Traceback" not in r.output


def test_targets_cli(cli):
    r = cli("targets", "list", "--json")
    assert r.exit_code == 0
    names = {row["name"] for row in json.loads(r.stdout)}
    assert {"mobile-cpu", "edge-server"} <= names
    r = cli("targets", "show", "raspberry-pi-4")
    assert r.exit_code == 0 and "max_latency_ms = 50" in r.stdout and "[quantize]" in r.stdout
    r = cli("targets", "schema")
    schema = json.loads(r.stdout)
    assert r.exit_code == 0 and "quantize" in schema["properties"]
    assert schema["$defs"]["QuantizeSection"]["additionalProperties"] is False


def test_published_search_schema_is_current():
    from edgeopt.pipeline.search.results import SearchResult

    root = Path(__file__).resolve().parents[1]
    published = json.loads((root / "docs" / "search.schema.json").read_text())
    assert published == SearchResult.model_json_schema(), "regenerate docs/search.schema.json (see README: edgeopt search)"


def test_published_report_schema_is_current():
    from edgeopt.report.schema import Report

    root = Path(__file__).resolve().parents[1]
    published = json.loads((root / "docs" / "report.schema.json").read_text())
    assert published == Report.model_json_schema(), "regenerate docs/report.schema.json (see README: Report)"


def test_shadowing_profile_extends_the_next_of_its_name(cli, tmp_path: Path, monkeypatch):
    """Issue 21 item 6: mobile-cpu.toml in ./targets and in $EDGEOPT_TARGETS, each `extends = "mobile-cpu"`,
    resolve through each other to the built-in (was: "a cycle")."""
    env, work = tmp_path / "env", tmp_path / "work"
    (work / "targets").mkdir(parents=True)
    env.mkdir()
    (env / "mobile-cpu.toml").write_text('extends = "mobile-cpu"\n[runtime]\nthreads = 2\n')
    (work / "targets" / "mobile-cpu.toml").write_text('extends = "mobile-cpu"\n[benchmark]\nruns = 7\n')
    monkeypatch.setenv("EDGEOPT_TARGETS", str(env))
    monkeypatch.chdir(work)
    builtin = load_profile(str(ROOT / "targets" / "mobile-cpu.toml"))
    r = load_profile("mobile-cpu")
    assert r.chain == ((work / "targets" / "mobile-cpu.toml").resolve(), (env / "mobile-cpu.toml").resolve(),
                       (ROOT / "targets" / "mobile-cpu.toml").resolve())
    p = r.profile
    assert (p.runtime.threads, p.benchmark.runs, p.runtime.xnnpack) == (2, 7, builtin.profile.runtime.xnnpack)
    assert p.quantize == builtin.profile.quantize
    pi = load_profile("raspberry-pi-4")  # a built-in extending mobile-cpu gets the shadowing profile
    assert pi.chain[1:] == r.chain and pi.profile.benchmark.runs == 7
    res = cli("targets", "show", "mobile-cpu")
    assert res.exit_code == 0 and "threads = 2" in res.stdout and "runs = 7" in res.stdout
    res = cli("targets", "list", "--json")
    assert res.exit_code == 0 and not res.stderr
    rows = {row["name"]: row["path"] for row in json.loads(res.stdout)}
    assert rows["mobile-cpu"] == str((work / "targets" / "mobile-cpu.toml").resolve())


def test_extending_its_own_name_with_nothing_after_is_one_clear_error(cli, tmp_path: Path, monkeypatch):
    (tmp_path / "my-board.toml").write_text('extends = "my-board"\n')
    monkeypatch.setenv("EDGEOPT_TARGETS", str(tmp_path))
    res = cli("targets", "show", "my-board")
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert res.stderr == (f"error: {tmp_path.resolve() / 'my-board.toml'}: extends = 'my-board' names this profile "
                          "itself and no later folder in the search order (./targets, $EDGEOPT_TARGETS, built-ins) "
                          "has one of that name; extend another profile\n")


def test_a_real_cycle_names_each_file_once(cli, tmp_path: Path):
    a, b, c = (tmp_path / f"{n}.toml" for n in "abc")
    a.write_text('extends = "./b.toml"\n')
    b.write_text('extends = "./a.toml"\n')
    c.write_text('extends = "./c.toml"\n')
    res = cli("targets", "show", a)
    assert res.exit_code == 2
    assert res.stderr == (f"error: extends forms a cycle: {a.resolve()}, {b.resolve()} (each extends the next, the "
                          "last the first); remove one of these extends\n")
    res = cli("targets", "show", c)
    assert res.exit_code == 2
    assert res.stderr == f"error: {c.resolve()}: extends names the file itself; extend another profile\n"


@pytest.mark.parametrize("kind", ["device", "folder", "dangling link"])
def test_a_profile_that_is_not_a_regular_file_is_named_as_such(cli, tmp_path: Path, monkeypatch, kind):
    """Issue 21 item 6: x.toml -> /dev/null was offered by `targets list` and then reported "unknown"; loading it by
    name (as a target or from extends) now says what it is, the same words `targets list` warns with."""
    entry = tmp_path / "x.toml"
    if kind == "device":
        entry.symlink_to("/dev/null")
    elif kind == "folder":
        entry.mkdir()
    else:
        entry.symlink_to(tmp_path / "gone.toml")
    (tmp_path / "y.toml").write_text('extends = "x"\n')
    monkeypatch.setenv("EDGEOPT_TARGETS", str(tmp_path))
    where = tmp_path.resolve() / "x.toml"
    reason = {"device": f"profile {where} is a device, not a regular file; give the file itself",
              "folder": f"profile {where} is a folder, not a regular file; give the file itself",
              "dangling link": f"profile not found: {where} (check the path)"}[kind]
    assert list_profiles()["x"] == where
    res = cli("targets", "show", "x")
    assert res.exit_code == 2 and res.stderr == f"error: {reason}\n"
    res = cli("targets", "show", "y")
    assert res.exit_code == 2 and res.stderr == f"error: {reason}\n"
    res = cli("targets", "list", "--json")
    assert res.exit_code == 0 and f"warning: skipped x: {reason}" in " ".join(res.stderr.split())  # rich wraps it
    assert "x" not in {row["name"] for row in json.loads(res.stdout)}
