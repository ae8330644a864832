"""Shared fixtures (the repo's sample models, a CLI runner on the real app) and the test tiers.

Tiers: `make test-fast` (`pytest --fast`) runs every test without a HEAVY mark, for inner loops; `make test` and
CI run everything. The marks are checked, not trusted: a test without `tensorflow` that loads TensorFlow or Keras
in this process, starts the converter child or hands the CLI a Keras model fails, as does one without `torch`
that loads PyTorch; under --fast a test that spends more than FAST_CPU_SECONDS of CPU (its own and its
children's: a build's sandbox, onnx2tf, a compiler) fails too, naming the figure.
"""

from __future__ import annotations

import ast
import os
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "sample_models"

HEAVY = {  # marks that keep a test out of the fast tier, and why
    "tensorflow": "loads TensorFlow or Keras (in the test, in a build's sandbox child or in the converter child)",
    "torch": "loads PyTorch",
    "onnx2tf": "runs onnx2tf (ONNX -> float TFLite, its own Python)",
    "firmware": "compiles or runs Cortex-M firmware (arm-none-eabi, QEMU)",
    "slow": "long-running for another reason",
}
FAST_CPU_SECONDS = 20.0  # per test under --fast, setup included (a Keras build alone spends more)
KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--fast", action="store_true",
                     help=f"the fast tier: leave out tests marked {', '.join(HEAVY)} (make test-fast)")


def pytest_configure(config: pytest.Config) -> None:
    for name, why in HEAVY.items():
        config.addinivalue_line("markers", f"{name}: {why}; left out of the fast tier (make test-fast)")


def _marks(item: pytest.Item) -> set[str]:
    return {m.name for m in item.iter_markers() if m.name in HEAVY}


def _module_marks(path: Path) -> set[str]:
    """The marks a test file's module-level `pytestmark` names, read without importing it."""
    for node in ast.parse(path.read_text("utf-8")).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets):
            return {n.attr for n in ast.walk(node.value)
                    if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Attribute) and n.value.attr == "mark"}
    return set()


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """--fast: a module marked heavy as a whole is not even imported (some import Keras or torch at the top)."""
    if config.getoption("--fast") and collection_path.suffix == ".py" and collection_path.name.startswith("test_") \
            and _module_marks(collection_path) & HEAVY.keys():
        return True
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--fast"):
        heavy = [i for i in items if _marks(i)]
        config.hook.pytest_deselected(items=heavy)
        items[:] = [i for i in items if not _marks(i)]


_BEFORE = pytest.StashKey[tuple[frozenset[str], object, float]]()
_KERAS_SEEN = pytest.StashKey[bool]()


def _loaded() -> frozenset[str]:
    return frozenset(m for m in ("tensorflow", "keras", "torch") if m in sys.modules)


def _converter_child() -> object:
    isolated = sys.modules.get("edgeopt.convert.isolated")
    return None if isolated is None else getattr(isolated, "_worker", None)


def _cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    item.stash[_BEFORE] = (_loaded(), _converter_child(), _cpu_seconds())


def _unmarked_use(item: pytest.Item) -> list[str]:
    """What the test used that its marks do not declare."""
    loaded, child, _ = item.stash[_BEFORE]
    new = _loaded() - loaded
    marks = _marks(item)
    found = []
    if "tensorflow" not in marks:
        if new & {"tensorflow", "keras"}:
            found.append(f"it imported {' and '.join(sorted(new & {'tensorflow', 'keras'}))}: mark it tensorflow")
        now = _converter_child()
        if now is not None and now is not child:
            found.append("it started the TFLite converter child: mark it tensorflow")
        if item.stash.get(_KERAS_SEEN, False):
            found.append("it gave the CLI a Keras model: mark it tensorflow")
    if "torch" not in marks and "torch" in new:
        found.append("it imported torch: mark it torch")
    if not marks and item.config.getoption("--fast"):
        spent = _cpu_seconds() - item.stash[_BEFORE][2]
        if spent > FAST_CPU_SECONDS:
            found.append(f"it spent {spent:.0f} s of CPU (fast tier: at most {FAST_CPU_SECONDS:.0f} s): make it "
                         f"cheaper or mark it ({', '.join(HEAVY)})")
    return found


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    if call.when == "call" and report.passed and _BEFORE in item.stash:
        found = _unmarked_use(item)
        if found:
            report.outcome = "failed"
            report.longrepr = f"{item.nodeid}: test tier: " + "; ".join(found) + " (tests/conftest.py HEAVY)"


# Where edgeopt looks for its tools, caches and switches; libraries' own variables (TF, HDF5...) are not watched.
_WATCHED = ("XDG_CACHE_HOME", "HOME", "TMPDIR", "PATH", "PYTHONPATH", "KERAS_HOME")


def _watched(env) -> dict[str, str]:
    return {k: v for k, v in env.items() if k in _WATCHED or k.startswith("EDGEOPT_")}


@pytest.fixture(autouse=True)
def _environment_is_left_as_found():
    """A test that changes edgeopt's variables without monkeypatch fails, naming them (one once hid onnx2tf from
    every later test on its worker by leaving XDG_CACHE_HOME at its tmp folder); the old values come back.
    EDGEOPT_DEBUG, set by the CLI's own `--debug` run in-process, is restored without failing."""
    before = _watched(os.environ)
    yield
    after = _watched(os.environ)
    changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
    for key in changed:
        if key in before:
            os.environ[key] = before[key]
        else:
            del os.environ[key]
    if changed - {"EDGEOPT_DEBUG"}:
        pytest.fail(f"the test left os.environ changed: {', '.join(sorted(changed - {'EDGEOPT_DEBUG'}))}",
                    pytrace=False)


@pytest.fixture(scope="session")
def samples() -> Path:
    return SAMPLES


def _exists(path: str) -> bool:
    try:
        return Path(path).exists()
    except (OSError, ValueError):  # a name too long, a NUL byte: the hostile-input tests give both
        return False


@pytest.fixture()
def cli(request: pytest.FixtureRequest):
    """Invoke `edgeopt ...` in-process; returns the click Result."""
    from edgeopt.cli.app import app

    runner = CliRunner()

    def run(*args: str):
        if any(str(a).lower().endswith(KERAS_SUFFIXES) and _exists(str(a)) for a in args):
            request.node.stash[_KERAS_SEEN] = True
        return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)

    return run
