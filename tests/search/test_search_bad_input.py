"""`edgeopt search` bad input: exit 2 with one line naming the problem, before any trial is built."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.tensorflow

MODEL = Path(__file__).resolve().parents[2] / "sample_models" / "digits_cnn.keras"
SPACE = 'extends = "mobile-cpu"\n[search]\nobjectives = ["accuracy_drop", "bytes"]\nschemes = ["int8", "float16"]\n'


def _one_line(r) -> str:  # noqa: ANN001
    lines = r.stderr.strip().splitlines()
    assert r.exit_code == 2, (r.exit_code, r.stderr)
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    return lines[0]


def test_trials_zero_and_no_eval(cli, tmp_path: Path, profile, tiny_data):
    _, ev, _ = tiny_data
    prof = profile("p", SPACE)
    line = _one_line(cli("search", MODEL, "-t", prof, "--trials", "0", "--eval", ev, "--out", tmp_path / "o"))
    assert "--trials must be 1 or more (got 0)" in line and not (tmp_path / "o").exists()
    no_eval = tmp_path / "copy.keras"
    no_eval.write_bytes(MODEL.read_bytes())  # no NAME.eval.npz beside it
    line = _one_line(cli("search", no_eval, "-t", prof, "--trials", "2", "--out", tmp_path / "o"))
    assert "give --eval data.npz" in line


@pytest.mark.parametrize(("body", "needle"), [
    ('extends = "nrf52840"\n[search]\nschemes = ["int8", "float16"]\n',
     "'float16' is not allowed for device class 'embedded-mcu'"),
    ('extends = "nrf52840"\n[search]\nschemes = ["dynamic", "int8"]\n', "'dynamic' is not allowed for device class"),
    ('extends = "mobile-cpu"\n[search]\nobjectives = ["arena", "bytes"]\nschemes = ["int8", "float16"]\n',
     "'arena' is measured for device class 'embedded-mcu' only"),
    ('extends = "mobile-cpu"\n[search]\nschemes = []\n', "search.schemes is an empty list"),
    ('extends = "mobile-cpu"\n[search]\nschemes = ["float16"]\nqat = [true]\n', "no scheme searched is 'int8'"),
    ('extends = "mobile-cpu"\n[search]\nschemes = ["int8"]\n', "the [search] space has 1 point(s)"),
    ('extends = "embedded-mcu"\n', "has no [search] section"),
    ('extends = "mobile-cpu"\n[search]\nschemes = ["int8", "float16"]\nspeed = 1\n', "unknown key"),
])
def test_bad_space(cli, tmp_path: Path, profile, tiny_data, body: str, needle: str):
    _, ev, _ = tiny_data
    line = _one_line(cli("search", MODEL, "-t", profile("bad", body), "--trials", "2", "--eval", ev,
                         "--out", tmp_path / "o"))
    assert needle in line, line


def test_pruning_space_needs_train(cli, tmp_path: Path, profile, tiny_data):
    _, ev, _ = tiny_data
    model = tmp_path / "m.keras"
    model.write_bytes(MODEL.read_bytes())
    prof = profile("p", 'extends = "mobile-cpu"\n[search]\nmacs_reduction = [0.0, 0.3]\n')
    line = _one_line(cli("search", model, "-t", prof, "--trials", "2", "--eval", ev, "--out", tmp_path / "o"))
    assert "give --train data.npz" in line
    prof = profile("q", SPACE)
    line = _one_line(cli("search", model, "-t", prof, "--trials", "2", "--eval", ev, "--out", tmp_path / "o"))
    assert "has integer schemes (int8, float16), which calibrate: give --calib" in line


def test_unreachable_storage_names_host_not_password(cli, tmp_path: Path, profile, tiny_data):
    _, ev, _ = tiny_data
    line = _one_line(cli("search", MODEL, "-t", profile("p", SPACE), "--trials", "2", "--eval", ev, "--out",
                         tmp_path / "o", "--storage", "postgresql://edgeopt:topsecret@127.0.0.1:1/db"))
    assert "cannot reach the study storage at 127.0.0.1:1" in line and "topsecret" not in line


def test_resume_and_existing_search(cli, tmp_path: Path, profile, tiny_data):
    _, ev, _ = tiny_data
    prof = profile("p", SPACE)
    out = tmp_path / "o"
    line = _one_line(cli("search", MODEL, "-t", prof, "--trials", "2", "--eval", ev, "--out", out, "--resume"))
    assert "holds no search (search.db missing)" in line
    import optuna

    study = optuna.create_study(storage=f"sqlite:///{out / 'search.db'}", study_name="edgeopt-search",
                                directions=["minimize", "minimize"])
    study.set_user_attr("model_sha256", "0" * 64)
    study.set_user_attr("space_sha256", "1" * 64)
    study.set_user_attr("target", "p:x")
    line = _one_line(cli("search", MODEL, "-t", prof, "--trials", "2", "--eval", ev, "--out", out))
    assert "already holds a search (search.db); --resume continues it" in line
    line = _one_line(cli("search", MODEL, "-t", prof, "--trials", "2", "--eval", ev, "--out", out, "--resume"))
    assert "was created for another model (sha256)" in line
    assert study.get_trials() == []  # nothing was added to the foreign study
