"""Search fixtures: tiny train/eval sets from the sample digits, small profiles, a real PostgreSQL server."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

SAMPLES = Path(__file__).resolve().parents[2] / "sample_models"
FAST_BENCH = "[benchmark]\nwarmup_runs = 1\nwarmup_seconds = 0.05\nruns = 10\nmin_seconds = 0.1\n"


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(train, eval, calib): a few hundred digits, enough for every stage, small for CI time."""
    d = tmp_path_factory.mktemp("data")
    tr = np.load(SAMPLES / "digits.train.npz")
    ev = np.load(SAMPLES / "digits_cnn.eval.npz")
    ca = np.load(SAMPLES / "digits_cnn.calib.npz")
    np.savez(d / "train.npz", x=tr["x"][:256], y=tr["y"][:256])
    np.savez(d / "eval.npz", x=ev["x"][:120], y=ev["y"][:120])
    np.savez(d / "calib.npz", x=ca["x"][:64])
    return d / "train.npz", d / "eval.npz", d / "calib.npz"


@pytest.fixture()
def profile(tmp_path: Path):
    """profile(name, body) -> the path of a .toml written in tmp."""
    def write(name: str, body: str) -> Path:
        p = tmp_path / f"{name}.toml"
        p.write_text(body)
        return p

    return write


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pg_bin(name: str) -> str | None:
    for d in ("/usr/lib/postgresql/17/bin", "/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/15/bin"):
        if os.access(f"{d}/{name}", os.X_OK):
            return f"{d}/{name}"
    return shutil.which(name)


@pytest.fixture(scope="module")
def postgres() -> Iterator[str]:
    """A real PostgreSQL server on 127.0.0.1 (initdb into tmp, pg_ctl start), as the `postgres` user when run as root
    (PostgreSQL refuses root). Yields a postgresql:// URL with a password."""
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if initdb is None or pg_ctl is None:
        pytest.fail("PostgreSQL is not installed (Debian package postgresql; .ci/run installs it)")
    base = Path(tempfile.mkdtemp(prefix="edgeopt-pg-"))  # in /tmp, reachable by the postgres user
    data, sock = base / "data", base / "sock"
    sock.mkdir()
    pw = base / "pw"
    pw.write_text("s3cret-pw\n")
    as_user: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root: run it as the postgres user
        as_user = ["runuser", "-u", "postgres", "--"]
        for p in (base, sock, pw):
            shutil.chown(p, "postgres", "postgres")
    port = _free_port()
    r = subprocess.run([*as_user, initdb, "-D", str(data), "-U", "edgeopt", "--pwfile", str(pw), "-A", "scram-sha-256",
                        "--no-sync"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    log = base / "log"
    subprocess.run([*as_user, pg_ctl, "-D", str(data), "-l", str(log), "-w", "-t", "60", "-o",
                    f"-c listen_addresses=127.0.0.1 -p {port} -k {sock} -c fsync=off", "start"], check=True,
                   capture_output=True)
    url = f"postgresql://edgeopt:s3cret-pw@127.0.0.1:{port}/postgres"
    try:
        import psycopg2

        for _ in range(50):
            try:
                psycopg2.connect(url).close()
                break
            except psycopg2.OperationalError:
                time.sleep(0.2)
        yield url
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)
