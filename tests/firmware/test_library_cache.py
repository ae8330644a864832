"""The TFLM library cache is verified: content hashes, private folders, a safe lock, no leftovers (real compiles).

One small library state (three TFLM sources, compiled once per module into a private XDG_CACHE_HOME) is copied
into each test's own cache folder; the full library is never compiled here.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.firmware.conftest import ROOT, SAMPLES, needs_toolchain

pytestmark = [pytest.mark.tensorflow, pytest.mark.firmware, needs_toolchain]

SOURCES = ("tensorflow/lite/micro/cortex_m_generic/debug_log.cc",
           "third_party/cmsis_nn/Source/ActivationFunctions/arm_relu6_s8.c",
           "third_party/cmsis_nn/Source/ReshapeFunctions/arm_reshape_s8.c")
DEBUG_LOG = SOURCES[0]
CORE = "cortex-m4f"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def open_cache(tflm: Path):
    """A LibraryCache for the M4F core on the shared tree, in whatever XDG_CACHE_HOME is set now."""
    from edgeopt.firmware.cores import core_spec
    from edgeopt.firmware.library import LibraryCache
    from edgeopt.firmware.toolchain import find_toolchain
    from edgeopt.firmware.tree import find_tree

    return LibraryCache(core_spec(CORE), find_toolchain(), find_tree(tflm))


def tool(name: str, *args: str | Path) -> str:
    proc = subprocess.run([f"arm-none-eabi-{name}", *map(str, args)], capture_output=True, text=True, check=True,
                          timeout=120)
    return proc.stdout


@pytest.fixture(scope="module")
def built(tmp_path_factory, tflm) -> Path:
    """A private XDG_CACHE_HOME holding a verified library of SOURCES (compiled once for the module)."""
    xdg = tmp_path_factory.mktemp("tflm_cache") / "xdg"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(xdg))
        cache = open_cache(tflm)
        assert cache.compile([cache.tree.tree / s for s in SOURCES]) == len(SOURCES)
        assert cache.notes == []
    return xdg


@pytest.fixture
def cache(built, tflm, tmp_path, monkeypatch):
    """This test's own copy of the built state, opened."""
    xdg = tmp_path / "xdg"
    shutil.copytree(built, xdg, symlinks=True)
    monkeypatch.setenv("XDG_CACHE_HOME", str(xdg))
    return open_cache(tflm)


def test_new_cache_folders_are_private_and_every_file_is_recorded(cache):
    from edgeopt.firmware.cache_index import CacheIndex

    root = cache.dir.parent.parent
    for folder in (root, root / "tflm", cache.dir, cache.obj):
        assert folder.stat().st_mode & 0o777 == 0o700, folder
    index = CacheIndex.load(cache.dir)
    assert sorted(index.objects) == sorted(s + ".o" for s in SOURCES)
    assert all(sha256(cache.obj / rel) == digest for rel, digest in index.objects.items())
    assert index.archive == sha256(cache.archive) and index.archive_objects == sorted(index.objects)
    assert sorted(tool("ar", "t", cache.archive).split()) == sorted(Path(s).name + ".o" for s in SOURCES)


@pytest.mark.parametrize("poison", ["planted object", "one byte flipped", "truncated"])
def test_a_poisoned_object_is_rebuilt_never_linked(cache, tmp_path, poison):
    """debug_log.cc.o changed after it was built (the review's attack: an object whose callback runs a host command)
    fails its hash before the link: it is compiled again and the archive holds the real one."""
    obj = cache.object_for(cache.tree.tree / DEBUG_LOG)
    good = sha256(obj)
    if poison == "planted object":
        planted = tmp_path / "planted.c"
        planted.write_text("int edgeopt_planted_hook(void) { return 42; }\n"
                           "void RegisterDebugLogCallback(void (*cb)(const char*)) { (void)cb; }\n")
        tool("gcc", "-mcpu=cortex-m4", "-mthumb", "-c", planted, "-o", obj)
    elif poison == "one byte flipped":
        data = bytearray(obj.read_bytes())
        data[len(data) // 2] ^= 0x01
        obj.write_bytes(bytes(data))
    else:
        os.truncate(obj, obj.stat().st_size // 2)
    assert sha256(obj) != good

    archive = cache.checked_archive()  # what image.py links
    assert cache.notes == ["TFLM cache: 1 object failed its hash, rebuilt"]
    assert cache.compiled == 1 and cache.library().cached is False
    assert cache.library().notes == ("TFLM cache: 1 object failed its hash, rebuilt",)
    assert sha256(obj) == good  # compiled again from the tree: the same bytes as first built
    symbols = tool("nm", archive)
    assert "edgeopt_planted_hook" not in symbols and " T RegisterDebugLogCallback" in symbols
    tool("ar", "x", archive, "debug_log.cc.o", "--output", tmp_path)
    assert sha256(tmp_path / "debug_log.cc.o") == good


def test_a_truncated_archive_is_rebuilt_with_a_note(cache):
    from edgeopt.firmware.cache_index import CacheIndex

    whole = sha256(cache.archive)
    os.truncate(cache.archive, cache.archive.stat().st_size // 2)
    archive = cache.checked_archive()
    assert cache.notes == ["TFLM cache: libtflm.a failed its hash, rebuilt"]
    assert cache.compiled == 0  # the objects passed their hashes: nothing compiled, only archived again
    assert sha256(archive) == CacheIndex.load(cache.dir).archive
    assert len(tool("ar", "t", archive).split()) == len(SOURCES) and sha256(archive) == whole
    assert "arm_relu6_s8" in tool("nm", archive)


def test_an_object_the_index_does_not_know_is_removed_not_linked(cache, tmp_path):
    """An object planted for a source not compiled yet (micro_log.cc) is never archived; asking for that source
    compiles it from the tree."""
    src = cache.tree.tree / "tensorflow/lite/micro/micro_log.cc"
    obj = cache.object_for(src)
    planted = tmp_path / "planted.c"
    planted.write_text("int edgeopt_planted_hook(void) { return 42; }\n")
    tool("gcc", "-mcpu=cortex-m4", "-mthumb", "-c", planted, "-o", obj)
    archive = cache.checked_archive()
    assert not obj.exists() and "edgeopt_planted_hook" not in tool("nm", archive)
    assert cache.notes == ["TFLM cache: removed 1 object with no recorded hash (not built by edgeopt here, "
                           "or by a build that was killed)"]
    assert cache.compile([src]) == 1
    assert "edgeopt_planted_hook" not in tool("nm", obj) and "edgeopt_planted_hook" not in tool("nm", cache.archive)


@pytest.mark.parametrize("level", ["edgeopt", "tflm", "key"])
def test_a_group_writable_cache_folder_is_refused_with_exit_2(cli, built, tflm, tmp_path, monkeypatch, level):
    xdg = tmp_path / "xdg"
    shutil.copytree(built, xdg, symlinks=True)
    key = next((xdg / "edgeopt" / "tflm").iterdir())
    loose = {"edgeopt": xdg / "edgeopt", "tflm": xdg / "edgeopt" / "tflm", "key": key}[level]
    loose.chmod(0o775)
    monkeypatch.setenv("XDG_CACHE_HOME", str(xdg))
    model = tmp_path / "m.tflite"
    model.write_bytes(b"the cache is refused before the model is read")
    r = cli("mcu", "run", model, "--target", "nrf52840", "--tflm", tflm)
    assert r.exit_code == 2
    assert r.stderr.strip() == (f"error: the TFLM library cache folder {loose} is writable by group or others "
                                f"(mode 0775, owner uid {os.getuid()}); refused: run `chmod go-w {loose}` or remove it")
    assert "Traceback" not in r.output
    loose.chmod(0o755)  # the fix the line names works
    assert open_cache(tflm).checked_archive().is_file()


def test_build_firmware_with_a_loose_cache_folder_exits_2_before_any_work(cli, built, tflm, tmp_path, monkeypatch):
    xdg = tmp_path / "xdg"
    shutil.copytree(built, xdg, symlinks=True)
    loose = xdg / "edgeopt" / "tflm"
    loose.chmod(0o757)
    monkeypatch.setenv("XDG_CACHE_HOME", str(xdg))
    out = tmp_path / "out"
    r = cli("build", SAMPLES / "digits_cnn.keras", "--target", "nrf52840", "--out", out, "--no-bench", "--firmware",
            "--tflm", tflm)
    assert r.exit_code == 2
    assert r.stderr.strip() == (f"error: the TFLM library cache folder {loose} is writable by group or others "
                                f"(mode 0757, owner uid {os.getuid()}); refused: run `chmod go-w {loose}` or remove it")
    assert not out.exists()  # refused before the model was even loaded


@pytest.mark.skipif(os.getuid() != 0, reason="giving a folder to another user needs root")
def test_a_cache_folder_of_another_user_is_refused(cache, tflm):
    from edgeopt.errors import InputError

    os.chown(cache.dir, 12345, -1)
    with pytest.raises(InputError) as err:
        open_cache(tflm)
    assert err.value.exit_code == 2
    assert str(err.value) == (f"the TFLM library cache folder {cache.dir} belongs to uid 12345, not you (uid 0), "
                              "mode 0700; refused: remove it or set XDG_CACHE_HOME to a folder of yours")


@pytest.mark.parametrize("plant", ["symlink", "hard link", "fifo"])
def test_a_planted_lock_is_refused_and_its_target_keeps_its_bytes(cache, tmp_path, plant):
    from edgeopt.errors import EdgeoptError

    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious bytes\n")
    lock = cache.dir / ".lock"
    lock.unlink()
    if plant == "symlink":
        lock.symlink_to(victim)
        why = "is a symbolic link"
    elif plant == "hard link":
        os.link(victim, lock)
        why = "has other hard links"
    else:
        os.mkfifo(lock)
        why = "is not a regular file"
    started = time.monotonic()
    with pytest.raises(EdgeoptError) as err:
        cache.checked_archive()
    assert time.monotonic() - started < 10  # a FIFO is never waited on
    assert err.value.exit_code == 2
    assert str(err.value) == f"the lock file {lock} {why}; refused (remove it: edgeopt creates its own)"
    assert victim.read_bytes() == b"precious bytes\n"


@pytest.mark.parametrize("folder", ["obj", "library folder"])
def test_a_cache_folder_replaced_by_a_link_is_refused_and_nothing_is_written_through_it(cache, tmp_path, folder):
    """Found by the fuzzer (issue 21 item 7): obj/ linked to a folder of the user's made the check compile objects
    into that folder (and remove the *.o files there the index does not know)."""
    from edgeopt.errors import EdgeoptError

    mine = tmp_path / "mine"
    mine.mkdir(mode=0o700)
    (mine / "keep.o").write_bytes(b"precious bytes\n")
    link = cache.obj if folder == "obj" else cache.dir
    shutil.rmtree(link)
    link.symlink_to(mine, target_is_directory=True)
    with pytest.raises(EdgeoptError) as err:
        cache.checked_archive()
    assert err.value.exit_code == 2
    assert str(err.value) == (f"the TFLM library cache folder {link} is a symbolic link; refused: remove it "
                              "(edgeopt creates its own)")
    assert sorted(p.name for p in mine.iterdir()) == ["keep.o"]
    assert (mine / "keep.o").read_bytes() == b"precious bytes\n"


def test_stale_temporary_files_are_swept_when_the_lock_is_taken(cache, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious bytes\n")
    sub = cache.obj / "third_party"
    left = [sub / ".arm_relu6_s8.c.o.k1llEd.tmp", cache.dir / ".libtflm.a.k1llEd.tmp", cache.dir / ".index.json.x.tmp"]
    for p in left:
        p.write_bytes(b"half-written")
    link = cache.dir / ".planted.tmp"
    link.symlink_to(victim)
    cache.checked_archive()
    assert not any(os.path.lexists(p) for p in [*left, link])
    assert victim.read_bytes() == b"precious bytes\n"  # a link is removed, never followed
    assert cache.notes == ["TFLM cache: removed 4 temporary files an interrupted build left"]


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


def _alive(pid: int, start: str) -> bool:
    """Running (not a zombie) and still the same process (its start time)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[0] != "Z" and fields[19] == start


def _program(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
    except OSError:
        return ""


def _start(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]


@pytest.mark.skipif(not sys.platform.startswith("linux") or shutil.which("setpriv") is None,
                    reason="PR_SET_PDEATHSIG and util-linux setpriv are Linux's")
def test_a_killed_build_leaves_no_compiler_running_and_its_tmp_is_swept(tmp_path, monkeypatch):
    """SIGKILL edgeopt while it compiles: the compiler driver and its cc1plus die with it; the next build sweeps the
    half-written object. A tree of two real sources: slow.cc keeps the compiler busy (constexpr loops)."""
    root = tmp_path / "tflm"
    tree = root / "tree"
    (tree / "tensorflow/lite/micro").mkdir(parents=True)
    (tree / "tensorflow/lite/micro/micro_interpreter.h").write_text("")
    (tree / "third_party/cmsis_nn/Include").mkdir(parents=True)
    (tree / "third_party/cmsis_nn/Include/arm_nnfunctions.h").write_text("")
    (root / "device").mkdir()
    loops = "\n".join(f"static_assert(busy<{k}>() > 0, \"\");" for k in range(40))
    (tree / "slow.cc").write_text("template <int K> constexpr long busy() { long s = K; "
                                  "for (long i = 0; i < 200000; i++) s += i % 7; return s; }\n" + loops + "\n")
    (tree / "fast.c").write_text("int fast(void) { return 1; }\n")
    xdg = tmp_path / "xdg"
    script = ("import sys\nfrom pathlib import Path\nfrom edgeopt.firmware.cores import core_spec\n"
              "from edgeopt.firmware.library import LibraryCache\nfrom edgeopt.firmware.toolchain import find_toolchain\n"
              "from edgeopt.firmware.tree import find_tree\n"
              "tree = find_tree(Path(sys.argv[1]))\n"
              "LibraryCache(core_spec('cortex-m4f'), find_toolchain(), tree).compile([tree.tree / 'slow.cc'])\n")
    env = {**os.environ, "XDG_CACHE_HOME": str(xdg), "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen([sys.executable, "-c", script, str(root)], env=env)
    started: dict[int, str] = {}
    try:
        deadline = time.monotonic() + 120
        driver = cc1 = None
        while time.monotonic() < deadline and cc1 is None:
            for d in _children(child.pid):
                for g in _children(d):
                    if _program(g).endswith("cc1plus"):  # setpriv has exec'd it
                        driver, cc1 = d, g
                        started.update({d: _start(d), g: _start(g)})
            time.sleep(0.05)
        assert driver is not None and cc1 is not None, "the compiler never started"
        child.kill()
        child.wait(timeout=30)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(_alive(p, s) for p, s in started.items()):
            time.sleep(0.05)
        assert not any(_alive(p, s) for p, s in started.items()), "a compiler outlived the killed build"
    finally:
        if child.poll() is None:
            child.kill()
        for p, s in started.items():  # the processes this test started, if the check above failed
            if _alive(p, s):
                os.kill(p, signal.SIGKILL)

    left = list((xdg / "edgeopt" / "tflm").glob("*/obj/.slow.cc.o.*.tmp"))
    assert len(left) == 1  # the killed compile's half-written object
    monkeypatch.setenv("XDG_CACHE_HOME", str(xdg))
    cache = open_cache(root)
    assert cache.compile([cache.tree.tree / "fast.c"]) == 1
    assert not left[0].exists()
    assert cache.notes == ["TFLM cache: removed 1 temporary file an interrupted build left"]
    assert tool("ar", "t", cache.archive).split() == ["fast.c.o"]
