"""The Optuna side: storage (SQLite in --out, or any SQLAlchemy URL), the study and its sampler.

Optuna is imported here only (and lazily by callers), so the base install never needs it.
"""

from __future__ import annotations

import logging
import os
import re
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeopt.errors import InputError, OutputError, RuntimeUnavailableError
from edgeopt.pipeline.search.space import Space
from edgeopt.vocabulary import SamplerName

if TYPE_CHECKING:
    import optuna

DB_NAME = "search.db"
HEARTBEAT_SECONDS = 10  # a RUNNING trial whose worker stopped beating this long x3 is failed and retried
GRACE_SECONDS = 30
ATTRS = ("model_sha256", "space_sha256", "target")  # what a study was created for; anything else is refused


def optuna_module() -> Any:
    """optuna, or exit 2 naming the extra to install."""
    try:
        import optuna
    except ImportError:
        msg = "edgeopt search needs Optuna: pip install 'edgeopt[search]'"
        raise RuntimeUnavailableError(msg) from None
    import warnings

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # Heartbeats, the retry callback and constraints_func work in Optuna 4 and 5; 5 flags them as experimental or
    # renamed. The user cannot act on that, so it is not printed.
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"optuna(\.|$)")
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", category=FutureWarning, message=r".*(RetryFailedTrialCallback|constraints_func|failed_trial_callback).*")
    optimize_log = logging.getLogger("optuna.study._optimize")
    if not any(isinstance(f, _QuietInterrupt) for f in optimize_log.filters):
        optimize_log.addFilter(_QuietInterrupt())
    return optuna


class _QuietInterrupt(logging.Filter):
    """Drops Optuna's two warnings about a trial that Ctrl-C stopped ("Trial N failed with parameters ... because of
    the following error: KeyboardInterrupt()" with its traceback, then "Trial N failed with value None."): the CLI
    prints its own one line for the interrupt. Every other record passes."""

    def __init__(self) -> None:
        super().__init__()
        self._interrupted: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        head = re.match(r"Trial \d+ failed", record.getMessage())
        if record.exc_info is not None and isinstance(record.exc_info[1], KeyboardInterrupt):
            if head:
                self._interrupted.add(head.group(0))
            return False
        if head and head.group(0) in self._interrupted:
            self._interrupted.discard(head.group(0))
            return False
        return True


def default_url(out: Path) -> str:
    return f"sqlite:///{(Path(out) / DB_NAME).resolve()}"


def local_db(out: Path, create: bool) -> bool:
    """Check OUT/search.db (and SQLite's journal files beside it) before SQLite opens it: each must be absent or a
    regular file with one link, never a symlink (even a dangling one), FIFO or hard link, so nothing is created or
    written at another path. With `create`, an absent search.db is created here (O_EXCL: a link planted meanwhile
    fails it). Returns whether OUT holds a search (a non-empty search.db). OutputError (exit 2) naming the file."""
    found = False
    for name in (DB_NAME, *(DB_NAME + suffix for suffix in ("-journal", "-wal", "-shm"))):
        path = Path(out) / name
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            continue
        if stat.S_ISLNK(st.st_mode):
            what = "a symbolic link"
        elif not stat.S_ISREG(st.st_mode):
            what = "not a regular file"
        elif st.st_nlink != 1:
            what = "a file with other hard links"
        else:
            found = found or (name == DB_NAME and st.st_size > 0)
            continue
        msg = f"{path} is {what}; refused: edgeopt search keeps its study in its own file there (remove it, or choose another --out)"
        raise OutputError(msg)
    if create and not os.path.lexists(Path(out) / DB_NAME):
        try:
            os.close(os.open(Path(out) / DB_NAME, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644))
        except OSError as exc:
            msg = f"cannot create {Path(out) / DB_NAME}: {exc.strerror or exc}; choose another --out"
            raise OutputError(msg) from None
    return found


def shown_url(url: str) -> str:
    """The URL without its password (for messages and search.json)."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparsable URL is named by the caller; never echo a password
        return url.split("@")[-1] if "@" in url else url


def _host(url: str) -> str:
    try:
        from sqlalchemy.engine import make_url

        u = make_url(url)
        return f"{u.host}:{u.port}" if u.port else str(u.host or u.database)
    except Exception:  # noqa: BLE001
        return "the storage"


def open_storage(url: str) -> optuna.storages.RDBStorage:
    """An RDB storage with heartbeats (dead workers' trials failed and retried); unreachable: exit 2 naming the host."""
    optuna = optuna_module()
    from optuna.storages import RDBStorage, RetryFailedTrialCallback

    if url.split(":", 1)[0].split("+", 1)[0] not in ("sqlite", "postgresql", "mysql"):
        msg = f"--storage {shown_url(url)}: not a SQLAlchemy URL Optuna can use; give sqlite:///FILE or postgresql://USER@HOST/DB"
        raise InputError(msg)
    url = _with_driver(url)
    try:
        for attempt in range(5):
            try:
                return _rdb(RDBStorage, RetryFailedTrialCallback, url)
            except Exception as exc:
                # Two workers starting at once both create Optuna's tables; the loser sees a duplicate key, or
                # (PostgreSQL) 'relation "studies" already exists' (DuplicateTable). Retry: the tables are there then.
                text = str(exc)
                if type(exc).__name__ != "IntegrityError" and "duplicate key" not in text and "already exists" not in text:
                    raise
                time.sleep(0.5 * (attempt + 1))
        return _rdb(RDBStorage, RetryFailedTrialCallback, url)
    except ImportError as exc:
        msg = f"--storage {shown_url(url)}: the database driver is missing ({exc}); pip install 'edgeopt[search]'"
        raise RuntimeUnavailableError(msg) from None
    except Exception as exc:  # noqa: BLE001 - sqlalchemy's OperationalError and friends
        cause = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        password = _password(url)
        if password:
            cause = cause.replace(password, "***")
        del optuna
        msg = f"cannot reach the study storage at {_host(url)} ({cause[:200]}); check the host, port and credentials"
        raise InputError(msg) from None


SQLITE_LOCK_SECONDS = 300


def _rdb(storage_cls: Any, retry_cls: Any, url: str) -> Any:
    return storage_cls(url, heartbeat_interval=HEARTBEAT_SECONDS, grace_period=GRACE_SECONDS,
                       failed_trial_callback=retry_cls(max_retry=2),
                       # SQLite: wait for the file lock instead of failing after sqlite3's default 5 s, which
                       # parallel workers on a loaded host exceeded ("StorageInternalError ... during the commit")
                       engine_kwargs={"pool_pre_ping": True} if not url.startswith("sqlite") else
                       {"connect_args": {"timeout": SQLITE_LOCK_SECONDS}})


def _with_driver(url: str) -> str:
    """`postgresql://` means psycopg (3) in SQLAlchemy 2.1 and psycopg2 before; use the driver that is installed
    (the [search] extra brings psycopg2-binary)."""
    if not url.startswith("postgresql://"):
        return url
    import importlib.util

    if importlib.util.find_spec("psycopg") is None and importlib.util.find_spec("psycopg2") is not None:
        return "postgresql+psycopg2://" + url[len("postgresql://"):]
    return url


def _password(url: str) -> str | None:
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).password  # type: ignore[return-value]
    except Exception:  # noqa: BLE001
        return None


@dataclass(frozen=True)
class StudyIdentity:
    model_sha256: str
    space_sha256: str
    target: str

    def as_attrs(self) -> dict[str, str]:
        return {"model_sha256": self.model_sha256, "space_sha256": self.space_sha256, "target": self.target}


def make_sampler(name: SamplerName, space: Space, seed: int | None, trials: int) -> Any:
    """NSGA-II (generations of a few trials), multi-objective TPE, or the grid; budgets are constraints."""
    optuna = optuna_module()

    def constraints_func(trial: Any) -> list[float]:
        return list(trial.user_attrs.get("constraints", [0.0]))

    cf = constraints_func
    if name is SamplerName.NSGA2:
        return optuna.samplers.NSGAIISampler(seed=seed, constraints_func=cf,
                                             population_size=max(2, min(10, trials // 3, space.size)))
    if name is SamplerName.TPE:
        return optuna.samplers.TPESampler(seed=seed, constraints_func=cf, multivariate=True, n_startup_trials=4)
    return optuna.samplers.GridSampler(space.grid(), seed=seed)


def open_study(storage: Any, name: str, identity: StudyIdentity, n_objectives: int, sampler: Any,
               create: bool) -> optuna.Study:
    """Create the study (create=True and absent) or load it; a study made for another model, space or target is
    refused naming what differs."""
    optuna = optuna_module()
    existing = {s.study_name for s in optuna.get_all_study_summaries(storage)} if not create else set()
    if create:
        study = optuna.create_study(storage=storage, study_name=name, directions=["minimize"] * n_objectives,
                                    sampler=sampler, load_if_exists=True)
    elif name in existing:
        study = optuna.load_study(study_name=name, storage=storage, sampler=sampler)
    else:
        msg = f"no study '{name}' in the storage to resume; run without --resume to start it"
        raise InputError(msg)
    attrs = study.user_attrs
    if not attrs:
        for k, v in identity.as_attrs().items():
            study.set_user_attr(k, v)
        return study
    mine = identity.as_attrs()
    for key in ATTRS:
        if attrs.get(key) != mine[key]:
            what = {"model_sha256": "model (sha256)", "space_sha256": "search space ([search] section)",
                    "target": "target"}[key]
            msg = (f"study '{name}' was created for another {what}: {str(attrs.get(key))[:16]} there, {mine[key][:16]} here; "
                   "use a new --study or --out, or the same model and profile")
            raise InputError(msg)
    if len(study.directions) != n_objectives:
        msg = f"study '{name}' has {len(study.directions)} objectives, this search {n_objectives}; use a new --study"
        raise InputError(msg)
    return study


def fail_abandoned(study: Any, storage: Any) -> tuple[int, int]:
    """Trials left RUNNING by a process that is gone (this --out's lock is ours): FAIL them and enqueue their
    choices again (when it had drawn them), so a resumed search retries them. Returns (failed, enqueued again)."""
    optuna = optuna_module()
    from optuna.trial import TrialState

    n = again = 0
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        storage.set_trial_user_attr(t._trial_id, "error", "abandoned: its process died; retried on --resume")
        storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL)
        if t.params:
            study.enqueue_trial(t.params, user_attrs={"retry_of": t.number}, skip_if_exists=False)
            again += 1
        n += 1
    del optuna
    return n, again
