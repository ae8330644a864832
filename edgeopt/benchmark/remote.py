"""Run `edgeopt bench` on a device over SSH and bring the results back.

The system OpenSSH client does the work, so ~/.ssh/config, agents and jump hosts
apply. Nothing passes through a local shell: every command is an argument list.
The one string the remote shell sees is built with shlex.quote. Password prompts
are off (BatchMode) and host keys are always checked (StrictHostKeyChecking=yes,
which comes first on the command line and so wins over any config file).
"""

from __future__ import annotations

import contextlib
import json
import re
import shlex
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from edgeopt.benchmark.protocol import BenchResult, BenchSettings
from edgeopt.benchmark.results import parse_report
from edgeopt.errors import InputError, RemoteError

# [user@]host, where host is a name, an IPv4 address or a bracketed IPv6 address. No shell metacharacters.
_HOST = re.compile(r"(?:[A-Za-z0-9._+-]+@)?(?:[A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\])")
_OPTION = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:=| )[^\n\r\x00]*")
_PROBE = "import sys, tempfile, edgeopt; print(edgeopt.__version__); print(tempfile.mkdtemp(prefix='edgeopt-bench-'))"
# edgeopt is not on PyPI: the device installs the wheel `make wheel` builds in a clone (README: Raspberry Pi).
INSTALL_HINT = "pip install edgeopt-*.whl (copy the wheel `make wheel` builds in a clone)"


def check_host(host: str) -> str:
    if not host or host.startswith("-") or not _HOST.fullmatch(host):
        msg = (
            f"--remote {host!r} is not a valid [user@]host; use letters, digits, '.', '-', '_' only "
            "(no spaces or shell characters), or a Host alias from ~/.ssh/config"
        )
        raise InputError(msg)
    return host


@dataclass(frozen=True)
class RemoteSpec:
    host: str  # [user@]host or an alias from ~/.ssh/config
    python: str = "python3"  # Python on the device that has edgeopt installed
    ssh_options: tuple[str, ...] = ()  # extra `-o KEY=VALUE` for ssh
    ssh_config: Path | None = None  # `-F FILE` instead of ~/.ssh/config
    known_hosts: Path | None = None  # UserKnownHostsFile
    identity: Path | None = None  # `-i FILE`
    port: int | None = None
    connect_timeout: int = 10  # seconds for the TCP + SSH handshake
    timeout: float = 900.0  # seconds for any one ssh call (the benchmark itself included)
    ssh: str = "ssh"  # the OpenSSH client

    def __post_init__(self) -> None:
        check_host(self.host)
        if not self.python or any(c in self.python for c in "\n\r\x00"):
            msg = "--remote-python must be a path or command name on the device"
            raise InputError(msg)
        for opt in self.ssh_options:
            if not _OPTION.fullmatch(opt):
                msg = f"--ssh-option {opt!r}: give KEY=VALUE as in ssh_config, e.g. IdentityFile=~/.ssh/pi"
                raise InputError(msg)
            if opt.split("=", 1)[0].split(" ", 1)[0].lower() == "stricthostkeychecking":
                msg = (
                    "--ssh-option StrictHostKeyChecking is not allowed: host keys are always checked; "
                    "add the device's key to known_hosts (or pass --known-hosts FILE)"
                )
                raise InputError(msg)
        if self.port is not None and not 0 < self.port < 65536:
            msg = f"--ssh-port {self.port} is not a TCP port"
            raise InputError(msg)
        if self.connect_timeout < 1 or self.timeout <= 0:
            msg = "ssh timeouts must be positive"
            raise InputError(msg)

    def argv(self, command: str) -> list[str]:
        """ssh argument list running `command` (one already-quoted string) on the device."""
        args = [self.ssh, "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
                "-o", f"ConnectTimeout={self.connect_timeout}", "-o", "LogLevel=ERROR"]
        if self.ssh_config is not None:
            args += ["-F", str(self.ssh_config)]
        if self.known_hosts is not None:
            args += ["-o", f"UserKnownHostsFile={self.known_hosts}"]
        if self.identity is not None:
            args += ["-i", str(self.identity)]
        if self.port is not None:
            args += ["-p", str(self.port)]
        for opt in self.ssh_options:
            args += ["-o", opt]
        return [*args, "--", self.host, command]


def _quote(argv: Sequence[str]) -> str:
    return " ".join(shlex.quote(a) for a in argv)


def _ssh_failure(spec: RemoteSpec, stderr: str) -> RemoteError:
    """One line for an ssh-level failure (exit 255)."""
    h = spec.host
    text = stderr.strip()
    low = text.lower()
    if "could not resolve hostname" in low or "name or service not known" in low:
        return RemoteError(f"cannot reach {h}: host name not found; check the name or your ~/.ssh/config")
    if "connection refused" in low:
        return RemoteError(f"cannot reach {h}: connection refused; is sshd running there and is the port right?")
    if "timed out" in low:
        return RemoteError(f"cannot reach {h}: connection timed out after {spec.connect_timeout} s; check the address and network")
    if "no route to host" in low or "network is unreachable" in low:
        return RemoteError(f"cannot reach {h}: no route to host; check the address and network")
    if "host key verification failed" in low or "identification has changed" in low or "host key is known" in low:
        return RemoteError(f"host key of {h} is unknown or has changed; verify it and add it to known_hosts "
                           "(or pass --known-hosts FILE / --ssh-config FILE)")
    if "permission denied" in low or "too many authentication failures" in low or "authentication" in low:
        return RemoteError(f"authentication to {h} failed; set up key login (ssh-copy-id {h}) or pass "
                           "--ssh-option IdentityFile=KEY (password prompts are off)")
    last = text.splitlines()[-1] if text else "no message"
    return RemoteError(f"ssh to {h} failed: {last[:300]}")


def _ssh(spec: RemoteSpec, command: str, what: str, stdin_path: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    if shutil.which(spec.ssh) is None:
        msg = f"the OpenSSH client '{spec.ssh}' is not installed here; install openssh-client"
        raise RemoteError(msg)
    try:
        if stdin_path is not None:
            with stdin_path.open("rb") as fh:
                proc = subprocess.run(spec.argv(command), stdin=fh, capture_output=True, timeout=spec.timeout, check=False)
        else:
            proc = subprocess.run(spec.argv(command), stdin=subprocess.DEVNULL, capture_output=True,
                                  timeout=spec.timeout, check=False)
    except subprocess.TimeoutExpired:
        msg = (
            f"{spec.host}: no answer within {spec.timeout:g} s while {what}; check the device "
            "or raise --remote-timeout"
        )
        raise RemoteError(msg) from None
    if proc.returncode == 255:
        raise _ssh_failure(spec, proc.stderr.decode("utf-8", "replace"))
    return proc


def _probe(spec: RemoteSpec) -> str:
    """Check the device's Python has edgeopt; return a fresh temporary folder there."""
    proc = _ssh(spec, f"{shlex.quote(spec.python)} -c {shlex.quote(_PROBE)}", "checking edgeopt on the device")
    err = proc.stderr.decode("utf-8", "replace")
    if proc.returncode != 0:
        if "No module named" in err and "edgeopt" in err:
            msg = (
                f"edgeopt is not installed for {spec.python} on {spec.host}; install it there with: "
                f"{INSTALL_HINT} (or point --remote-python at a Python that has it)"
            )
            raise RemoteError(msg)
        if proc.returncode == 127 or "not found" in err or "No such file" in err:
            msg = (
                f"{spec.python} not found on {spec.host}; install Python 3.11+ there and "
                f"{INSTALL_HINT}, or pass --remote-python PATH"
            )
            raise RemoteError(msg)
        last = (err.strip().splitlines() or ["no message"])[-1]
        msg = f"{spec.python} on {spec.host} failed (exit {proc.returncode}): {last[:300]}"
        raise RemoteError(msg)
    lines = proc.stdout.decode("utf-8", "replace").strip().splitlines()
    folder = lines[-1].strip() if lines else ""
    if not folder.startswith("/") or "edgeopt-bench-" not in folder:
        msg = f"{spec.host}: unexpected answer from {spec.python}: {' '.join(lines)[:200]!r}"
        raise RemoteError(msg)
    return folder


def bench_args(settings: BenchSettings, threads: Sequence[int] | None = None) -> list[str]:
    """`edgeopt bench` flags reproducing `settings` on the device."""
    counts = ",".join(str(t) for t in (threads or [settings.threads]))
    return ["--json", "--threads", counts, "--runs", str(settings.runs), "--min-seconds", repr(settings.min_seconds),
            "--warmup-runs", str(settings.warmup_runs), "--warmup-seconds", repr(settings.warmup_seconds),
            "--max-seconds", repr(settings.max_seconds), "--seed", str(settings.seed),
            "--xnnpack" if settings.xnnpack else "--no-xnnpack", "--graph-opt", str(settings.graph_optimization),
            *[a for name, dims in settings.shapes for a in ("--shape", f"{name}={'x'.join(map(str, dims))}" if name
                                                            else "x".join(map(str, dims)))],
            *(["--int-range", f"{settings.int_range[0]}:{settings.int_range[1]}"] if settings.int_range else [])]


def run_remote(paths: Sequence[Path], settings: BenchSettings, remote: RemoteSpec, threads: Sequence[int] | None = None,
               input_file: Path | None = None) -> list[BenchResult]:
    """Copy `paths` (and `input_file`) to the device, run `edgeopt bench --json` there, return its results.

    Results keep the device's fingerprint, carry `device=remote.host` and the local model paths.
    """
    paths = [Path(p) for p in paths]
    for p in paths + ([Path(input_file)] if input_file else []):
        if not p.is_file():
            msg = f"file not found: {p}"
            raise InputError(msg)
    folder = _probe(remote)
    try:
        remote_paths = []
        for i, p in enumerate(paths):
            dst = f"{folder}/{i}-{p.name}"
            _copy(remote, p, dst)
            remote_paths.append(dst)
        extra: list[str] = []
        if input_file is not None:
            dst = f"{folder}/input-{Path(input_file).name}"
            _copy(remote, Path(input_file), dst)
            extra = ["--input", dst]
        argv = [remote.python, "-m", "edgeopt", "bench", *remote_paths, *bench_args(settings, threads), *extra]
        proc = _ssh(remote, _quote(argv), "benchmarking")
    finally:
        _cleanup(remote, folder)
    out = proc.stdout.decode("utf-8", "replace")
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip()
        last = (err.splitlines() or ["no message"])[-1].removeprefix("error: ")
        msg = f"edgeopt bench on {remote.host} failed (exit {proc.returncode}): {last[:300]}"
        raise RemoteError(msg)
    try:
        report = parse_report(json.loads(out), f"answer from {remote.host}")
    except (json.JSONDecodeError, RecursionError):
        msg = (
            f"{remote.host}: edgeopt bench printed no JSON; is edgeopt there recent enough? "
            f"(reinstall it: {INSTALL_HINT})"
        )
        raise RemoteError(msg) from None
    local = {rp: str(p) for rp, p in zip(remote_paths, paths, strict=True)}
    return [replace(r, model=local.get(r.model, r.model), device=remote.host,
                    inputs=str(input_file) if input_file else r.inputs) for r in report.results]


def _copy(spec: RemoteSpec, src: Path, dst: str) -> None:
    proc = _ssh(spec, f"cat > {shlex.quote(dst)}", f"copying {src.name}", stdin_path=src)
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip()
        msg = f"copying {src.name} to {spec.host} failed: {(err.splitlines() or ['no message'])[-1][:300]}"
        raise RemoteError(msg)


def _cleanup(spec: RemoteSpec, folder: str) -> None:
    with contextlib.suppress(RemoteError):  # best effort; the folder is in the device's temp dir
        _ssh(spec, f"rm -rf {shlex.quote(folder)}", "cleaning up")
