"""Confine a process: Landlock file-system and TCP rules, no new privileges, CPU and memory limits.

Used for everything that runs code a model file brings (the TensorFlow side of a build, in a child started
by `edgeopt.sandbox`) and for QEMU running a firmware image. Landlock (Linux >= 5.13) needs no root, no
setuid helper and no container runtime; it is inherited by every child and cannot be undone, which is
what we want from a process that executes someone else's graph. Any layer may use this module.

Rules are applied to the calling process (`apply`) or, for a program we start, in the forked child just
before exec (`preexec`). What is not listed as writable cannot be written, created, renamed or removed;
with `readable` given, nothing else can be read or executed either; TCP bind and connect are refused except
for the listed ports (Landlock ABI >= 4); signals to processes outside the sandbox and abstract unix
sockets are refused (ABI >= 6).
"""

from __future__ import annotations

import ctypes
import os
import resource
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edgeopt.errors import InputError

SANDBOX_ENV = "EDGEOPT_SANDBOX"  # "off": run model code unconfined (a kernel without Landlock; debugging)

# x86_64 and aarch64 share the Landlock syscall numbers (added after the syscall tables were unified).
_SYS_CREATE, _SYS_ADD_RULE, _SYS_RESTRICT = 444, 445, 446
_PR_SET_NO_NEW_PRIVS = 38
_RULE_PATH_BENEATH, _RULE_NET_PORT = 1, 2

# file-system access rights and the ABI that introduced each
FS_EXECUTE, FS_WRITE_FILE, FS_READ_FILE, FS_READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
FS_REMOVE_DIR, FS_REMOVE_FILE, FS_MAKE_CHAR, FS_MAKE_DIR = 1 << 4, 1 << 5, 1 << 6, 1 << 7
FS_MAKE_REG, FS_MAKE_SOCK, FS_MAKE_FIFO, FS_MAKE_BLOCK, FS_MAKE_SYM = 1 << 8, 1 << 9, 1 << 10, 1 << 11, 1 << 12
FS_REFER, FS_TRUNCATE, FS_IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
NET_BIND_TCP, NET_CONNECT_TCP = 1 << 0, 1 << 1
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1 << 0, 1 << 1

_READ = FS_EXECUTE | FS_READ_FILE | FS_READ_DIR
_WRITE = (FS_WRITE_FILE | FS_REMOVE_DIR | FS_REMOVE_FILE | FS_MAKE_CHAR | FS_MAKE_DIR | FS_MAKE_REG | FS_MAKE_SOCK
          | FS_MAKE_FIFO | FS_MAKE_BLOCK | FS_MAKE_SYM | FS_REFER | FS_TRUNCATE)
_FILE_ONLY = FS_EXECUTE | FS_WRITE_FILE | FS_READ_FILE | FS_TRUNCATE | FS_IOCTL_DEV  # rights a rule on a file may hold
# Character devices every program writes to (subprocess.DEVNULL, a terminal's stderr is inherited, not opened).
DEVICES_WRITABLE = (Path("/dev/null"),)


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


class _NetPortAttr(ctypes.Structure):
    _fields_ = [("allowed_access", ctypes.c_uint64), ("port", ctypes.c_uint64)]


class SandboxUnavailable(InputError):
    """The kernel cannot confine model code (no Landlock): exit 2 with the way out."""


@dataclass(frozen=True)
class Confinement:
    """What a confined process may do. Paths that do not exist are skipped (nothing to reach there)."""

    writable: tuple[Path, ...]  # folders (and files) that may be written, created in, removed from
    readable: tuple[Path, ...] | None = None  # None: the whole file system may be read and executed
    tcp_ports: tuple[int, ...] = ()  # TCP ports that may be connected to (e.g. ssh's for a --remote device)
    network: bool = False  # True: TCP is not restricted at all
    cpu_seconds: int | None = None  # RLIMIT_CPU: the kernel kills a runaway loop (SIGXCPU, then SIGKILL)
    memory_bytes: int | None = None  # RLIMIT_AS


@dataclass(frozen=True)
class Applied:
    abi: int
    network: str  # what restricts the network: "landlock tcp", "none (allowed)", or why not


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def abi_version() -> int:
    """The kernel's Landlock ABI version, 0 when there is none (not Linux, too old, or disabled at boot)."""
    if not sys.platform.startswith("linux"):
        return 0
    libc = _libc()
    libc.syscall.restype = ctypes.c_long
    version = libc.syscall(ctypes.c_long(_SYS_CREATE), None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    return max(0, int(version))


def enabled() -> bool:
    """False only when the user turned confinement off (EDGEOPT_SANDBOX=off)."""
    return os.environ.get(SANDBOX_ENV, "").strip().lower() not in ("off", "0", "no", "false")


def require() -> int:
    """The Landlock ABI, or SandboxUnavailable naming the way out."""
    abi = abi_version()
    if abi < 1:
        msg = ("this kernel cannot confine model code (no Landlock: Linux 5.13 or newer with 'landlock' in the lsm= "
               f"boot list); set {SANDBOX_ENV}=off to run it unconfined, only for model files you trust")
        raise SandboxUnavailable(msg)
    return abi


def _handled_fs(abi: int, restrict_reads: bool) -> int:
    rights = _WRITE | (_READ if restrict_reads else 0)
    if abi < 2:
        rights &= ~FS_REFER
    if abi < 3:
        rights &= ~FS_TRUNCATE
    if abi >= 5 and restrict_reads:
        rights |= FS_IOCTL_DEV
    return rights


def _add_path(libc: ctypes.CDLL, ruleset: int, path: Path, access: int) -> None:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return  # nothing there: nothing to allow
    try:
        if not Path(f"/proc/self/fd/{fd}").is_dir():
            access &= _FILE_ONLY
        attr = _PathBeneathAttr(allowed_access=access, parent_fd=fd)
        if libc.syscall(ctypes.c_long(_SYS_ADD_RULE), ctypes.c_int(ruleset), ctypes.c_int(_RULE_PATH_BENEATH),
                        ctypes.byref(attr), ctypes.c_uint32(0)) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"landlock_add_rule({path}): {os.strerror(err)}")
    finally:
        os.close(fd)


def apply(c: Confinement) -> Applied:
    """Confine this process (and every child it starts from now on). Irreversible. The process must be
    single-threaded for the CPU/memory limits to mean anything to it alone; Landlock itself applies to
    the calling thread and the threads it starts, so call this before importing native libraries."""
    abi = require()
    libc = _libc()
    libc.syscall.restype = ctypes.c_long
    restrict_reads = c.readable is not None
    handled_fs = _handled_fs(abi, restrict_reads)
    handled_net = 0 if c.network or abi < 4 else (NET_BIND_TCP | NET_CONNECT_TCP)
    scoped = (SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL) if abi >= 6 else 0
    attr = _RulesetAttr(handled_access_fs=handled_fs, handled_access_net=handled_net, scoped=scoped)
    size = ctypes.sizeof(_RulesetAttr) if abi >= 6 else 16 if abi >= 4 else 8
    ruleset = libc.syscall(ctypes.c_long(_SYS_CREATE), ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    if ruleset < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"landlock_create_ruleset: {os.strerror(err)}")
    try:
        for path in (*c.writable, *DEVICES_WRITABLE):
            _add_path(libc, ruleset, Path(path), handled_fs)
        for path in c.readable or ():
            _add_path(libc, ruleset, Path(path), handled_fs & _READ)
        if handled_net:
            for port in c.tcp_ports:
                net = _NetPortAttr(allowed_access=NET_CONNECT_TCP, port=int(port))
                if libc.syscall(ctypes.c_long(_SYS_ADD_RULE), ctypes.c_int(ruleset), ctypes.c_int(_RULE_NET_PORT),
                                ctypes.byref(net), ctypes.c_uint32(0)) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"landlock_add_rule(tcp {port}): {os.strerror(err)}")
        if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"prctl(PR_SET_NO_NEW_PRIVS): {os.strerror(err)}")
        if libc.syscall(ctypes.c_long(_SYS_RESTRICT), ctypes.c_int(ruleset), ctypes.c_uint32(0)) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"landlock_restrict_self: {os.strerror(err)}")
    finally:
        os.close(ruleset)
    if c.cpu_seconds is not None:
        resource.setrlimit(resource.RLIMIT_CPU, (c.cpu_seconds, c.cpu_seconds + 5))
    if c.memory_bytes is not None:
        resource.setrlimit(resource.RLIMIT_AS, (c.memory_bytes, c.memory_bytes))
    network = "allowed" if c.network else ("landlock tcp" if handled_net else
                                           f"not restricted (Landlock ABI {abi} < 4)")
    return Applied(abi=abi, network=network)


def preexec(c: Confinement) -> Callable[[], None]:
    """A `preexec_fn` for subprocess.Popen: the program runs confined (and dies with its parent)."""
    from edgeopt import parent_death

    die = parent_death.preexec()  # prctl resolved here, in the parent: the forked child only calls it

    def confine() -> None:
        if die is not None:
            die()
        apply(c)

    return confine
