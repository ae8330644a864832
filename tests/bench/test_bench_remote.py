"""`edgeopt bench --remote` against a real sshd on 127.0.0.1 (the "device" is this machine).

sshd runs from a temp folder: its own host key, authorized_keys and config. The
client uses `-F` with a temp ssh config whose known_hosts holds that host key,
so nothing in ~/.ssh is read or written. Needs openssh-server (skipped only if
sshd is not installed: `apt-get install -y openssh-server openssh-client`).
"""

from __future__ import annotations

import getpass
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from edgeopt.benchmark.protocol import BenchSettings
from edgeopt.benchmark.remote import RemoteSpec, run_remote
from edgeopt.errors import InputError, RemoteError

ROOT = Path(__file__).resolve().parents[2]
SSHD = shutil.which("sshd") or next((p for p in ("/usr/sbin/sshd", "/usr/local/sbin/sshd") if Path(p).exists()), None)
pytestmark = pytest.mark.skipif(SSHD is None or shutil.which("ssh") is None or shutil.which("ssh-keygen") is None,
                                reason="openssh-server/client not installed (apt-get install -y openssh-server openssh-client)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "edgeopt-test", "-f", str(path)], check=True)


@pytest.fixture(scope="module")
def device(tmp_path_factory):
    d = tmp_path_factory.mktemp("sshd")
    d.chmod(0o700)
    for name in ("host_key", "user_key", "stranger_key"):
        _keygen(d / name)
    shutil.copy(d / "user_key.pub", d / "authorized_keys")
    user, port, closed = getpass.getuser(), _free_port(), _free_port()
    (d / "sshd_config").write_text(f"""Port {port}
ListenAddress 127.0.0.1
HostKey {d}/host_key
PidFile {d}/sshd.pid
AuthorizedKeysFile {d}/authorized_keys
StrictModes no
UsePAM no
PermitRootLogin yes
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
AllowUsers {user}
LogLevel ERROR
""")
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, parents=True, exist_ok=True)  # sshd's privilege separation folder
    with (d / "sshd.log").open("wb") as log:  # the child keeps its own copy of the fd
        proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(d / "sshd_config")], stdout=subprocess.DEVNULL,
                                stderr=log)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"sshd did not start: {(d / 'sshd.log').read_text()[-500:]}")
            time.sleep(0.05)
    host_pub = (d / "host_key.pub").read_text().split()
    (d / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_pub[0]} {host_pub[1]}\n")
    common = f"  HostName 127.0.0.1\n  User {user}\n  IdentitiesOnly yes\n  UserKnownHostsFile {d}/known_hosts\n"
    (d / "ssh_config").write_text(
        f"Host device\n  Port {port}\n  IdentityFile {d}/user_key\n{common}"
        f"Host stranger\n  Port {port}\n  IdentityFile {d}/stranger_key\n{common}"
        f"Host closed\n  Port {closed}\n  IdentityFile {d}/user_key\n{common}"
        f"Host unknown-key\n  Port {port}\n  IdentityFile {d}/user_key\n  HostName 127.0.0.1\n  User {user}\n"
        f"  UserKnownHostsFile {d}/empty_known_hosts\n")
    (d / "empty_known_hosts").write_text("")
    # The device's Python: this interpreter running this checkout (edgeopt is not installed in it).
    py = d / "device-python"
    py.write_text(f'#!/bin/sh\nPYTHONPATH={ROOT} exec {sys.executable} "$@"\n')
    py.chmod(0o755)
    yield SimpleNamespace(dir=d, config=d / "ssh_config", python=str(py), port=port)
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()


def spec(device, host: str = "device", python: str | None = None) -> RemoteSpec:
    return RemoteSpec(host=host, python=python or device.python, ssh_config=device.config, connect_timeout=5, timeout=120)


SETTINGS = BenchSettings(runs=5, min_seconds=0.05, warmup_seconds=0.01)


def test_remote_benchmark_api(device, models) -> None:
    r = run_remote([models.tflite_int8], SETTINGS, spec(device))[0]
    assert r.device == "device" and r.model == str(models.tflite_int8)
    assert r.latency.runs >= 5 and r.latency.p50 > 0
    assert r.fingerprint is not None and r.fingerprint.runtime == "litert" and r.fingerprint.cores >= 1
    # the device measured CPU time and its load; the answer carries them through the validated protocol
    assert r.cpu_ms is not None and r.cpu_ms > 0 and r.cores is not None and r.cores >= 1
    assert r.load_1m is not None and r.load_1m >= 0 and r.input_dims == (("input", (1, 64)),)


def test_remote_cli_several_models(cli, device, models, fast, tmp_path) -> None:
    # A file name the remote shell would expand if it were not quoted.
    odd = tmp_path / "my model $(touch PWNED); `touch PWNED2`.tflite"
    shutil.copy(models.tflite, odd)
    res = cli("bench", odd, models.onnx, *fast, "--remote", "device", "--remote-python", device.python,
              "--ssh-config", device.config, "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)["results"]
    assert [(r["device"], Path(r["model"]).name) for r in out] == [("device", odd.name), ("device", "mlp.onnx")]
    assert out[1]["ratio"]["p50"] > 0 and out[0]["fingerprint"]["host"]
    assert not list(Path.home().glob("PWNED*")) and not list(Path("/tmp").glob("PWNED*"))


def test_ssh_options_checked(device) -> None:
    with pytest.raises(InputError, match="StrictHostKeyChecking is not allowed"):
        RemoteSpec(host="device", ssh_options=("StrictHostKeyChecking=no",))
    with pytest.raises(InputError, match="KEY=VALUE"):
        RemoteSpec(host="device", ssh_options=("-oProxyCommand=x",))
    argv = RemoteSpec(host="pi@raspberrypi.local", ssh_options=("IdentityFile=/k",)).argv("echo hi")
    assert argv[:5] == ["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes"]
    assert argv[-3:] == ["--", "pi@raspberrypi.local", "echo hi"] and "IdentityFile=/k" in argv


def _err(device, models, host: str, python: str | None = None) -> str:
    with pytest.raises(RemoteError) as e:
        run_remote([models.tflite], SETTINGS, spec(device, host, python))[0]
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_unreachable_port(device, models) -> None:
    assert "cannot reach closed: connection refused" in _err(device, models, "closed")


def test_authentication_failure(device, models) -> None:
    assert "authentication to stranger failed" in _err(device, models, "stranger")


def test_unknown_host_key_is_refused(device, models) -> None:
    assert "host key of unknown-key is unknown" in _err(device, models, "unknown-key")


def test_edgeopt_missing_on_device(device, models) -> None:
    # This interpreter without site-packages (-S) cannot import edgeopt, even where it is pip-installed.
    bare = device.dir / "bare-python"
    bare.write_text(f'#!/bin/sh\nexec {sys.executable} -S "$@"\n')
    bare.chmod(0o755)
    msg = _err(device, models, "device", python=str(bare))
    assert "edgeopt is not installed" in msg and "pip install edgeopt-*.whl" in msg and "make wheel" in msg
    assert "not found on device" in _err(device, models, "device", python="/nonexistent/python3")


def test_timeout_is_one_line(device, models) -> None:
    s = RemoteSpec(host="device", python=device.python, ssh_config=device.config, timeout=0.05)
    with pytest.raises(RemoteError, match="no answer within 0.05 s"):
        run_remote([models.tflite], SETTINGS, s)[0]


@pytest.mark.tensorflow  # builds a Keras model
def test_build_remote_times_artifacts_on_device(cli, device, tmp_path) -> None:
    """`edgeopt build --remote`: the artifacts are timed on the device and labelled with it; it takes bench's SSH
    options (the key login here comes from --ssh-option alone: host `stranger` offers a key the device refuses),
    and the raspberry-pi-4 energy estimate multiplies the Pi's power by the device's latency."""
    prof = tmp_path / "quick.toml"
    prof.write_text('extends = "raspberry-pi-4"\n[runtime]\nthreads = 1\n[budgets]\nmax_latency_ms = 10000\n'
                    '[benchmark]\nruns = 5\nmin_seconds = 0.05\nwarmup_seconds = 0.01\n')
    res = cli("build", ROOT / "sample_models" / "digits_dscnn.keras", "--target", prof, "--out", tmp_path / "out",
              "--remote", "stranger", "--ssh-option", f"IdentityFile={device.dir / 'user_key'}",
              "--remote-timeout", "300", "--remote-python", device.python, "--ssh-config", device.config, "--json")
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    for variant in ("baseline", "optimized"):
        lat = report[variant]["latency_ms"]
        assert lat["where"] == "stranger" and lat["runs"] >= 5 and lat["p50"] > 0
    energy = report["stages"]["energy"]
    p50 = report["optimized"]["latency_ms"]["p50"]
    assert energy["method"] == "estimate" and energy["latency_source"] == "measured on the device (p50)"
    assert energy["latency_ms"] == p50 and energy["power_mw"] == 3060
    assert energy["millijoules_per_inference"] == pytest.approx(3060 * p50 / 1000)


def test_build_remote_options_are_checked_before_any_work(cli, tmp_path) -> None:
    model = ROOT / "sample_models" / "digits_mlp.onnx"  # refused before loading: no converter, no TensorFlow
    for extra, words in ((("--ssh-option", "StrictHostKeyChecking=no"), "StrictHostKeyChecking is not allowed"),
                         (("--remote-timeout", "0"), "ssh timeouts must be positive")):
        res = cli("build", model, "--target", "raspberry-pi-4", "--out", tmp_path / "out", "--remote", "pi", *extra)
        assert res.exit_code == 2 and words in res.stderr, res.output
        assert not (tmp_path / "out").exists()
