"""QEMU runs confined: a firmware image's semihosting calls reach the run folder and nothing else on the host.

The images are tiny C programs with raw semihosting calls (`bkpt 0xab`), linked like the harness images
(the Cortex_DFP startup, system file and GCC linker script, edgeopt's link flags), and run through
edgeopt.firmware.qemu.run_qemu, so they see the exact command line and confinement of `mcu run`.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from edgeopt import confine
from tests.firmware.conftest import needs_toolchain, tflm_dir

pytestmark = [pytest.mark.firmware, needs_toolchain, pytest.mark.skipif(confine.abi_version() < 1, reason="the kernel has no Landlock")]

PROBE_C = r"""
#include <stdint.h>
#include <string.h>
static int semi(int op, void *arg) {
  register int r0 __asm("r0") = op;
  register void *r1 __asm("r1") = arg;
  __asm volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
  return r0;
}
static void say(const char *s) { semi(0x04, (void *)s); }                        /* SYS_WRITE0 */
static int sopen(const char *p, int mode) {                                        /* SYS_OPEN */
  uint32_t a[3] = {(uint32_t)p, (uint32_t)mode, strlen(p)};
  return semi(0x01, a);
}
static int sread(int fd, char *b, int n) {                                         /* SYS_READ */
  uint32_t a[3] = {(uint32_t)fd, (uint32_t)b, (uint32_t)n};
  return n - semi(0x06, a);
}
static int swrite(int fd, const char *b, int n) {                                  /* SYS_WRITE */
  uint32_t a[3] = {(uint32_t)fd, (uint32_t)b, (uint32_t)n};
  return semi(0x05, a);
}
static void sclose(int fd) { uint32_t a[1] = {(uint32_t)fd}; semi(0x02, a); }     /* SYS_CLOSE */
static char buf[128];

static void show_read(const char *what, const char *path) {
  int fd = sopen(path, 1); /* "rb" */
  say(what);
  if (fd < 0) { say(" open failed\n"); return; }
  int n = sread(fd, buf, 100);
  buf[n > 0 ? n : 0] = 0;
  say(" read ["); say(buf); say("]\n");
  sclose(fd);
}

static void try_write(const char *what, const char *path, const char *text) {
  int fd = sopen(path, 5); /* "wb" */
  say(what);
  if (fd < 0) { say(" open failed\n"); return; }
  say(swrite(fd, text, strlen(text)) == 0 ? " written\n" : " write failed\n");
  sclose(fd);
}

void _start(void) {
  say("PROBE bytes \xff\xfe\n");  /* not UTF-8: printed as replacement characters, not a decode error */
  show_read("PROBE inside", "inside.txt");
  try_write("PROBE out.bin", "out.bin", "written-inside");
  show_read("PROBE secret", SECRET);
  try_write("PROBE outside", OUTSIDE, "written-outside");
  uint32_t rm[2] = {(uint32_t)VICTIM, strlen(VICTIM)};
  say(semi(0x0E, rm) == 0 ? "PROBE remove done\n" : "PROBE remove failed\n");  /* SYS_REMOVE */
#ifdef COMMAND
  uint32_t cmd[2] = {(uint32_t)COMMAND, strlen(COMMAND)};
  say(semi(0x12, cmd) == 0 ? "PROBE system ran\n" : "PROBE system failed\n");  /* SYS_SYSTEM */
#endif
  uint32_t ex[2] = {0x20026, 0};  /* ADP_Stopped_ApplicationExit, status 0 */
  semi(0x20, ex);                  /* SYS_EXIT_EXTENDED */
  for (;;) {}
}
"""
SECRET = b"s3cret-host-bytes"


def _build(tmp: Path, name: str, defines: dict[str, str]) -> Path:
    from edgeopt.firmware.cores import core_spec
    from edgeopt.firmware.harness import linker_script
    from edgeopt.firmware.image import LINK
    from edgeopt.firmware.toolchain import find_toolchain
    from edgeopt.firmware.tree import find_tree

    spec, tc, tree = core_spec("cortex-m4f"), find_toolchain(), find_tree(tflm_dir())
    dev = tree.device_dir(spec.device)
    src, script, elf = tmp / f"{name}.c", tmp / f"{name}.ld", tmp / f"{name}.elf"
    src.write_text(PROBE_C)
    script.write_text(linker_script(dev, spec.device, 1 << 20, 256 << 10))
    cmd = [str(tc.gcc), *spec.cflags, "-mthumb", "-O1", f"-D{spec.device}", *tree.includes(), f"-I{dev / 'Include'}",
           *(f'-D{k}="{v}"' for k, v in defines.items()), str(src), str(dev / "Source" / f"startup_{spec.device}.c"),
           str(dev / "Source" / f"system_{spec.device}.c"), *LINK, f"-T{script}", "-o", str(elf)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    return elf


@pytest.fixture()
def host(tmp_path: Path) -> dict[str, Path]:
    """A run folder and, next to it, host files the firmware must not reach."""
    paths = {"run": tmp_path / "run", "host": tmp_path / "host", "build": tmp_path / "build"}
    for p in paths.values():
        p.mkdir()
    paths["secret"] = paths["host"] / "secret.txt"
    paths["secret"].write_bytes(SECRET)
    paths["victim"] = paths["host"] / "victim.txt"
    paths["victim"].write_text("keep me")
    paths["outside"] = paths["host"] / "outside.bin"
    paths["marker"] = paths["host"] / "MARKER"
    (paths["run"] / "inside.txt").write_text("run-folder-input")
    return paths


def _defines(host: dict[str, Path]) -> dict[str, str]:
    return {"SECRET": str(host["secret"]), "OUTSIDE": str(host["outside"]), "VICTIM": str(host["victim"])}


def _run(elf: Path, run_dir: Path):
    from edgeopt.firmware.cores import core_spec
    from edgeopt.firmware.qemu import run_qemu
    from edgeopt.firmware.toolchain import find_qemu

    machine = core_spec("cortex-m4f").qemu
    assert machine is not None
    return machine, run_qemu(find_qemu(), machine, elf, run_dir, 60)


def test_semihosting_reaches_the_run_folder_only(host, monkeypatch):
    from edgeopt.errors import ModelFileError
    from edgeopt.firmware.results import parse_report

    elf = _build(host["build"], "files", _defines(host))
    monkeypatch.delenv(confine.SANDBOX_ENV, raising=False)
    machine, run = _run(elf, host["run"])
    assert run.confined and "-sandbox" in run.command and "-net" in run.command
    # What the harness needs still works: console output, reading and writing in the run folder, exit.
    assert "PROBE inside read [run-folder-input]" in run.stdout and "PROBE out.bin written" in run.stdout
    assert (host["run"] / "out.bin").read_bytes() == b"written-inside"
    assert run.returncode == 0 and run.stdout.startswith("PROBE bytes \ufffd\ufffd\n")  # the firmware's alone, no warning
    # Nothing outside: the secret is not read, nothing is written or removed.
    assert "PROBE secret open failed" in run.stdout and SECRET.decode() not in run.stdout
    assert "PROBE outside open failed" in run.stdout and not host["outside"].exists()
    assert "PROBE remove failed" in run.stdout and host["victim"].read_text() == "keep me"
    assert sorted(p.name for p in host["host"].iterdir()) == ["secret.txt", "victim.txt"]
    # Not an edgeopt report: the run is a failure (exit 2), never a result.
    with pytest.raises(ModelFileError, match=r"stopped on mps2-an386 without finishing \(QEMU exit 0\)") as exc:
        parse_report(run, machine, 1)
    assert exc.value.exit_code == 2

    # The same image unconfined reads the secret and writes outside: the confinement is what stopped it.
    host["outside"].unlink(missing_ok=True)
    monkeypatch.setenv(confine.SANDBOX_ENV, "off")
    _, bare = _run(elf, host["run"])
    assert not bare.confined and "-sandbox" not in bare.command
    assert f"PROBE secret read [{SECRET.decode()}]" in bare.stdout
    assert host["outside"].read_bytes() == b"written-outside" and not host["victim"].exists()


def test_a_host_command_never_runs_and_the_run_fails(host, monkeypatch):
    from edgeopt.errors import ModelFileError

    elf = _build(host["build"], "system", {**_defines(host), "COMMAND": f"touch {host['marker']}"})
    monkeypatch.delenv(confine.SANDBOX_ENV, raising=False)
    with pytest.raises(ModelFileError) as exc:
        _run(elf, host["run"])
    msg = str(exc.value)
    assert exc.value.exit_code == 2 and len(msg.splitlines()) == 1
    assert "forbidden operation (semihosting SYS_SYSTEM" in msg and "QEMU was stopped (SIGSYS)" in msg
    assert "do not trust this model file" in msg and "bit-exact" not in msg
    assert not host["marker"].exists()
    assert not host["outside"].exists() and host["victim"].read_text() == "keep me"


def test_qemu_may_read_its_binary_libraries_and_the_image_only(tmp_path):
    from edgeopt.firmware.qemu import confinement
    from edgeopt.firmware.toolchain import find_qemu

    qemu = find_qemu()
    c = confinement(qemu, tmp_path / "build" / "app.elf", tmp_path / "run")
    assert c.writable == (tmp_path / "run",)
    assert c.readable is not None and qemu.resolve() in c.readable and tmp_path / "build" / "app.elf" in c.readable
    assert Path("/etc/ld.so.cache") in c.readable
    libs = [p for p in c.readable if ".so" in p.name]
    assert any(p.name.startswith("libc.so") for p in libs) and any(p.name.startswith("ld-") for p in libs)
    # Files, not folders: no home, no /tmp, no /usr/share; nothing but the listed libraries of /lib.
    assert all(p.is_file() for p in c.readable if p.name != "app.elf")
    assert not any(Path.home() == p or Path("/tmp") == p for p in c.readable)


def test_a_qemu_whose_sandbox_does_not_start_is_named_with_the_way_out(host, monkeypatch):
    """QEMU refusing the -sandbox option (as one built without seccomp does) is exit 2 naming EDGEOPT_SANDBOX=off."""
    from edgeopt.errors import RuntimeUnavailableError
    from edgeopt.firmware import qemu

    elf = _build(host["build"], "files", _defines(host))
    monkeypatch.delenv(confine.SANDBOX_ENV, raising=False)
    monkeypatch.setattr(qemu, "SECCOMP", "on,no-such-option=deny")  # the real QEMU rejects it at start
    with pytest.raises(RuntimeUnavailableError) as exc:
        _run(elf, host["run"])
    msg = str(exc.value)
    assert exc.value.exit_code == 2 and len(msg.splitlines()) == 1
    assert "cannot run its seccomp sandbox" in msg and "no-such-option" in msg and "EDGEOPT_SANDBOX=off" in msg
    assert not (host["run"] / "out.bin").exists()  # the image never ran
