"""Vela (ethos-u-vela) compiles an int8 .tflite for an Arm Ethos-U NPU: run as a separate program
(`python -m ethosu.vela`) on a private copy in a temporary folder, with a timeout.

Its output is evidence, read back and checked: the summary and per-layer CSV files it writes give memory and
cycles; the compiled .tflite itself (read with edgeopt's own flatbuffer reader) says which operators went into
`ethos-u` custom operators (NPU) and which were left for the Cortex-M.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from edgeopt.analysis.tflite_graph import read_tflite
from edgeopt.atomic import write_bytes_atomic
from edgeopt.errors import InputError, ModelFileError, OutputError, RuntimeUnavailableError
from edgeopt.npu.result import NpuLayer, NpuOperators, NpuStage
from edgeopt.profiles.schema import NpuSection, Profile
from edgeopt.runtime.verify_tflite import verify_tflite
from edgeopt.tool_process import run_logged

PIP_COMMAND = "pip install 'edgeopt[ethos-u]'"
CONFIG_FILE = "Arm/vela.ini"  # the configuration file Vela ships: System_Config and Memory_Mode sections
NPU_OP = "ethos-u"  # the custom operator Vela puts the NPU's command stream in
PRIVATE_NAME = "model.tflite"
# what Vela raises for an option or configuration it does not accept (ethosu/vela/errors.py)
_CONFIG_ERRORS = ("CliOptionError", "ConfigOptionError", "OptionError")
_ERROR_LINE = re.compile(r"(?P<kind>\w*Error): '?(?:Error: )?(?P<text>.*?)'?$")
_FALLBACK = re.compile(r"operator: (?P<op>[A-Z0-9_]+), ofm: .*\nReason: (?P<reason>.*)")


def vela_version() -> str:
    """The installed ethos-u-vela's version; RuntimeUnavailableError (exit 2) naming the pip command when it is
    missing."""
    import importlib.util
    from importlib.metadata import PackageNotFoundError, version

    try:
        found = importlib.util.find_spec("ethosu.vela") is not None
    except (ImportError, ValueError):
        found = False
    try:
        v = version("ethos-u-vela") if found else None
    except PackageNotFoundError:
        v = None
    if v is None:
        msg = f"the profile's [npu] needs Vela (ethos-u-vela), which is not installed; install it: {PIP_COMMAND}"
        raise RuntimeUnavailableError(msg)
    return v


def npu_of(profile: Profile) -> NpuSection:
    """The profile's [npu], or InputError (exit 2) naming the profiles that have one."""
    if profile.npu is None:
        msg = (f"profile {profile.name!r} has no [npu] section (no Ethos-U); use --target alif-e3 or ethos-u55, or "
               "add [npu] kind and macs to your profile")
        raise InputError(msg)
    return profile.npu


def compiled_name(artifact: str) -> str:
    """The file name of the Vela-compiled model beside `artifact` ('model.tflite' -> 'model_vela.tflite')."""
    return f"{Path(artifact).stem}_vela.tflite"


def label(version: str, npu: NpuSection) -> str:
    return f"estimate (Vela {version}, {npu.accelerator}, {npu.system_config}, {npu.memory_mode})"


def compile_for_npu(model: Path, npu: NpuSection, dest: Path, profile_name: str = "") -> NpuStage:
    """Compile `model` (an int8 .tflite) for `npu` and write the compiled model to `dest` (atomically).

    Raises RuntimeUnavailableError without Vela, InputError when Vela rejects the profile's configuration,
    ModelFileError when it cannot compile the model (all exit 2)."""
    version = vela_version()
    check_destination(dest)
    model = Path(model)
    verify_tflite(model)  # a well-formed .tflite (offsets, indices, quantization) before Vela parses it
    source = read_tflite(model)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="edgeopt-vela-") as tmp:
        work = Path(tmp)
        shutil.copyfile(model, work / PRIVATE_NAME)
        code, log = _run(work, npu)
        if code != 0:
            raise _failure(model, npu, profile_name, log)
        out = work / "out"
        compiled = out / compiled_name(PRIVATE_NAME)
        summaries = sorted(out.glob(f"{Path(PRIVATE_NAME).stem}_summary_*.csv"))
        if not compiled.is_file() or not summaries:
            last = next((ln.strip() for ln in reversed(log.splitlines()) if ln.strip()), "no output")
            msg = f"{model}: Vela exited without writing its compiled model and summary; its last line: {last}"
            raise ModelFileError(msg)
        summary = _summary(summaries[0])
        per_layer = out / f"{Path(PRIVATE_NAME).stem}_per-layer.csv"
        clock_hz = float(summary["core_clock"])
        layers = _layers(per_layer, clock_hz) if per_layer.is_file() else []
        data = compiled.read_bytes()
    seconds = time.perf_counter() - started
    result = read_tflite(data)  # the compiled model, read back: what runs where
    cpu = [op.op for op in result.main.operators if not (op.custom and op.op == NPU_OP)]
    streams = sum(1 for op in result.main.operators if op.custom and op.op == NPU_OP)
    total = len(source.main.operators)
    counts: dict[str, int] = {}
    for op in cpu:
        counts[op] = counts.get(op, 0) + 1
    reasons = {m["op"]: m["reason"].strip() for m in reversed(list(_FALLBACK.finditer(log))) if m["op"] in counts}
    _write(Path(dest), data)
    kib = 1024.0
    return NpuStage(
        compiler=f"Vela {version}", accelerator=npu.accelerator, system_config=npu.system_config,
        memory_mode=npu.memory_mode, config_source=npu.source, label=label(version, npu),
        compiled_model=Path(dest).name, compiled_bytes=len(data),
        operators=NpuOperators(total=total, npu=max(total - len(cpu), 0), cpu=len(cpu), cpu_ops=counts,
                               cpu_reasons=reasons, command_streams=streams),
        sram_bytes=round(_num(summary, "sram_memory_used") * kib),
        flash_bytes=round((_num(summary, "on_chip_flash_memory_used") + _num(summary, "off_chip_flash_memory_used")) * kib),
        dram_bytes=round(_num(summary, "dram_memory_used") * kib),
        clock_mhz=clock_hz / 1e6, cycles=int(_num(summary, "cycles_total")),
        latency_ms=_num(summary, "inference_time") * 1e3, macs=int(_num(summary, "nn_macs")),
        layers=layers, compile_seconds=round(seconds, 3))


def check_destination(dest: Path) -> None:
    """OutputError (exit 2) before Vela runs when `dest`'s folder is a file."""
    folder = Path(dest).parent
    if folder.exists() and not folder.is_dir():
        msg = f"--out {folder} is a file; give a folder"
        raise OutputError(msg)


def _write(dest: Path, data: bytes) -> None:
    """The compiled model into `dest`, its folder created only now (a failed compile leaves nothing behind)."""
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        msg = f"cannot create output folder {dest.parent}: {exc.strerror or exc}"
        raise OutputError(msg) from None
    write_bytes_atomic(dest, data)


def _run(work: Path, npu: NpuSection) -> tuple[int, str]:
    """Run Vela in `work` on its private copy; (exit code, its output). Killed with its process group on timeout
    or interrupt."""
    cmd = [sys.executable, "-m", "ethosu.vela", "--config", CONFIG_FILE, "--accelerator-config", npu.accelerator,
           "--system-config", npu.system_config, "--memory-mode", npu.memory_mode, "--output-dir", "out",
           "--verbose-performance", PRIVATE_NAME]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("PYTHONPATH", None)  # edgeopt's path must not leak into Vela's environment
    log_path = work / "vela.log"
    try:
        return run_logged(cmd, work, env, log_path, npu.timeout_seconds)
    except subprocess.TimeoutExpired:
        msg = (f"Vela did not finish within {npu.timeout_seconds:g} s and was stopped; raise [npu] "
                   "timeout_seconds in the profile for a large model")
        raise InputError(msg) from None



def _failure(model: Path, npu: NpuSection, profile_name: str, log: str) -> InputError:
    """Vela's last error line, as one line: a configuration it rejects names the profile's [npu] keys."""
    lines = [ln.strip() for ln in log.splitlines() if ln.strip()]
    found = next((m for ln in reversed(lines) if (m := _ERROR_LINE.search(ln))), None)
    text = found["text"] if found else (lines[-1] if lines else "no output")
    if found and found["kind"] in _CONFIG_ERRORS:
        who = f"profile {profile_name!r}" if profile_name else "the profile"
        msg = (f"Vela rejects the [npu] configuration of {who} ({npu.accelerator}, system_config "
               f"{npu.system_config!r}, memory_mode {npu.memory_mode!r}): {text}; choose sections Vela's "
               f"{CONFIG_FILE} has (vela --list-configs {CONFIG_FILE})")
        return InputError(msg)
    return ModelFileError(f"{model}: Vela could not compile it: {text}")


def _summary(path: Path) -> dict[str, str]:
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        msg = f"Vela's summary {path.name} is empty"
        raise ModelFileError(msg)
    return rows[0]


def _num(row: dict[str, str], key: str) -> float:
    try:
        value = float(row[key])
    except (KeyError, ValueError):
        msg = f"Vela's summary has no number for {key!r}; this Vela's output format is not one edgeopt reads"
        raise ModelFileError(msg) from None
    return 0.0 if value != value else value  # nan (nothing on the NPU) -> 0


def _layers(path: Path, clock_hz: float) -> list[NpuLayer]:
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    out = []
    for r in rows:
        cycles = int(float(r.get("Op Cycles") or 0))
        out.append(NpuLayer(original_operator=r.get("Original Operator", ""), operator=r.get("NNG Operator", ""),
                            target=r.get("Target", ""), name=r.get("Name", ""), cycles=cycles,
                            time_ms=cycles / clock_hz * 1e3 if clock_hz else 0.0,
                            macs=int(float(r.get("MAC Count") or 0)),
                            staging_bytes=int(float(r.get("Staging Usage") or 0))))
    return out
