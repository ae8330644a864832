"""Provenance of a build: OUT/manifest.json, and the up-to-date check that makes builds cacheable.

manifest.json records what went in (sha256 of the model, the resolved profile,
calibration / eval / train data, the options that change the result, and the
versions of every tool on the path) and what came out (sha256 and size of each
artifact). It is written into the staging folder and committed last, after
report.json, so a manifest always describes files that were fully written.

`up_to_date(out, inputs)` is true when OUT/manifest.json has the same input key
and every artifact is present with its recorded hash: `edgeopt build` then
skips the work (`--force` rebuilds). `check(out)` is `edgeopt verify`.

Versions come from importlib.metadata: no TensorFlow import.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import stat
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from edgeopt.errors import InputError
from edgeopt.input_files import open_regular, read_regular

MANIFEST = "manifest.json"
MAX_MANIFEST_BYTES = 16 << 20
SCHEMA = "edgeopt.manifest/1"
# Distribution names whose version can change an artifact or a number in the report.
DISTRIBUTIONS = ("tensorflow", "keras", "tf2onnx", "onnx", "onnxruntime", "ai-edge-litert", "tflite-micro", "numpy",
                 "torch", "onnxscript",  # torch: a .pt2 is exported to ONNX by its exporter (onnxscript)
                 "ethos-u-vela")  # another Vela compiles another NPU model ([npu] profiles)


def _folder_files(folder: Path) -> list[Path]:
    """Regular files under `folder`, sorted; symlinked folders are not followed, FIFOs and devices skipped."""
    found = []
    for root, _dirs, names in os.walk(folder, followlinks=False):
        for name in names:
            p = Path(root) / name
            if stat.S_ISREG(os.lstat(p).st_mode):
                found.append(p)
    return sorted(found)


def sha256_path(path: Path) -> str:
    """sha256 of a regular file, or of a SavedModel folder (relative names and contents, in sorted order).

    Anything else (a FIFO, a device, a folder that is not a SavedModel) raises InputError instead of
    blocking or walking it: manifest paths are not trusted.
    """
    h = hashlib.sha256()
    path = Path(path)
    is_dir = path.is_dir()
    if is_dir and not (path / "saved_model.pb").is_file():
        msg = f"{path} is a folder but not a SavedModel; not hashed"
        raise InputError(msg)
    for f in _folder_files(path) if is_dir else [path]:
        if is_dir:
            h.update(f.relative_to(path).as_posix().encode() + b"\0")
        with open_regular(f, "input") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def tool_versions() -> dict[str, str | None]:
    from edgeopt import __version__

    versions: dict[str, str | None] = {"edgeopt": __version__, "python": platform.python_version()}
    for dist in DISTRIBUTIONS:
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    return versions


def _file(path: Path | None, out: Path) -> dict[str, str | None] | None:
    """Path (relative to OUT, so `verify` works from any folder) and hash of an input; a missing or unreadable
    one hashes as None (the build then says why)."""
    if path is None:
        return None
    try:
        digest: str | None = sha256_path(path) if Path(path).exists() else None
    except (OSError, InputError):
        digest = None
    return {"path": os.path.relpath(Path(path).absolute(), Path(out).absolute()), "sha256": digest}


def build_inputs(req: Any, resolved: Any) -> dict[str, Any]:
    """Everything that determines a build's artifacts (edgeopt.pipeline.build.BuildRequest + resolved profile)."""
    from edgeopt.data.datasets import sibling

    remote = getattr(req, "remote", None)
    return {
        "model": _file(req.model, req.out),
        "profile": {"name": resolved.name, "sha256": resolved.sha256, "files": [str(p) for p in resolved.chain],
                    "resolved": resolved.profile.model_dump(mode="json")},
        "calibration": _file(req.calib or sibling(req.model, "calibration"), req.out),
        "eval": _file(req.eval or sibling(req.model, "eval"), req.out),
        "train": _file(req.train or sibling(req.model, "train"), req.out),
        "options": {"random_calibration": req.random_calibration, "allow_no_finetune": req.allow_no_finetune,
                    "unsafe_load": req.unsafe_load, "threads": req.threads, "benchmark": req.benchmark,
                    "c_name": req.c_name, "remote": None if remote is None else str(getattr(remote, "host", remote)),
                    "firmware": bool(getattr(req, "firmware", False)) or resolved.profile.firmware.run,
                    "firmware_samples": getattr(req, "firmware_samples", None),
                    "metric": list(getattr(req, "metric", ())),
                    "tflm": str(getattr(req, "tflm", None) or os.environ.get("EDGEOPT_TFLM", "")),
                    **({"shapes": [[n, list(d)] for n, d in req.shapes]} if getattr(req, "shapes", ()) else {})},
        "versions": tool_versions(),
    }


def input_key(inputs: dict[str, Any]) -> str:
    """Hash of the inputs without file paths: moving or renaming an input does not invalidate a build."""
    def strip(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: strip(v) for k, v in node.items() if k not in ("path", "files")}
        return node

    return hashlib.sha256(json.dumps(strip(inputs), sort_keys=True).encode()).hexdigest()


def write(stage: Any, inputs: dict[str, Any], artifacts: list[str], violations: tuple[Any, ...],
          command_line: tuple[str, ...], tools: dict[str, str] | None = None) -> str:
    """Write manifest.json into the staging folder; returns its name (commit it last). `tools`: the separate
    programs that made the artifacts, with their versions (onnx2tf, ai-edge-quantizer), when any ran."""
    from edgeopt.atomic import write_bytes_atomic

    files = {}
    for name in artifacts:
        p = stage.path(name)
        files[name] = {"sha256": sha256_path(p), "bytes": p.stat().st_size}
    data = {
        "schema": SCHEMA,
        "input_key": input_key(inputs),
        "inputs": inputs,
        "command_line": list(command_line),
        "artifacts": files,
        **({"tools": tools} if tools else {}),
        "budget_violations": [{"name": v.name, "limit": v.limit, "actual": v.actual, "unit": v.unit} for v in violations],
    }
    write_bytes_atomic(stage.path(MANIFEST), (json.dumps(data, indent=2) + "\n").encode())
    return MANIFEST


def tools_of(report: Any) -> dict[str, str]:
    """The converter and quantizer a build report names (an ONNX or .tflite model built for a TFLite profile)."""
    tools = {}
    conversion = report.stages.conversion
    if conversion is not None:
        tools["converter"] = conversion.converter
        if conversion.quantizer:
            tools["quantizer"] = conversion.quantizer
    quantized_by = next((n.removeprefix("quantized by ") for n in report.notes if n.startswith("quantized by ")), None)
    if quantized_by and "quantizer" not in tools:
        tools["quantizer"] = quantized_by
    return tools


def load(out: Path) -> dict[str, Any]:
    path = Path(out) / MANIFEST
    if not path.is_file():
        msg = f"{path} not found; `edgeopt build ... --out {out}` writes it"
        raise InputError(msg)
    try:
        data = json.loads(read_regular(path, "manifest", limit=MAX_MANIFEST_BYTES).decode("utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        msg = f"{path} cannot be read ({str(exc)[:120]}); rebuild to rewrite it"
        raise InputError(msg) from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA or not isinstance(data.get("artifacts"), dict):
        msg = f"{path} is not an edgeopt manifest ({SCHEMA}); rebuild to rewrite it"
        raise InputError(msg)
    inputs = data.get("inputs")
    violations = data.get("budget_violations", [])
    if not (inputs is None or isinstance(inputs, dict) and all(v is None or isinstance(v, dict) for v in inputs.values())) \
            or not isinstance(violations, list) or not all(_violation(v) for v in violations):
        msg = f"{path} is a malformed edgeopt manifest (inputs or budget_violations); rebuild to rewrite it"
        raise InputError(msg)
    return data


def _violation(v: Any) -> bool:
    return isinstance(v, dict) and isinstance(v.get("name"), str) and isinstance(v.get("unit"), str) and \
        all(isinstance(v.get(k), int | float) and not isinstance(v.get(k), bool) for k in ("limit", "actual"))


@dataclass(frozen=True)
class Finding:
    name: str  # the file, relative to the output folder (or the input's path)
    problem: str  # "changed", "missing", "input changed", "input missing"
    detail: str

    def describe(self) -> str:
        from edgeopt.report.table import printable

        return printable(f"{self.problem}: {self.name}" + (f" ({self.detail})" if self.detail else ""))


def check(out: Path) -> tuple[dict[str, Any], list[Finding], list[Finding]]:
    """(manifest, artifact problems, input notes). Artifact problems make `edgeopt verify` fail."""
    data = load(out)
    return data, _artifact_problems(Path(out), data), _input_notes(data, Path(out))


def _artifact_problems(out: Path, data: dict[str, Any]) -> list[Finding]:
    problems = []
    for name, info in sorted(data["artifacts"].items()):
        if not isinstance(info, dict):
            problems.append(Finding(name, "changed", "the manifest entry is not an object"))
            continue
        try:
            p = (out / name).resolve()
        except (OSError, RuntimeError, ValueError):  # a NUL byte, a symlink loop
            p = out.resolve()
        if out.resolve() not in p.parents:
            problems.append(Finding(name, "changed", "the manifest names a file outside the folder"))
            continue
        if not p.is_file():
            problems.append(Finding(name, "missing", ""))
            continue
        try:
            got = sha256_path(p)
        except (OSError, InputError) as exc:
            problems.append(Finding(name, "changed", str(exc)[:120]))
            continue
        if got != info.get("sha256"):
            problems.append(Finding(name, "changed", f"sha256 {got[:12]}..., manifest has {str(info.get('sha256'))[:12]}..."))
    return problems


def _input_notes(data: dict[str, Any], out: Path) -> list[Finding]:
    """Inputs named by the manifest that are gone or changed. The paths come from a file in OUT, so only
    regular files and SavedModel folders are hashed (see sha256_path)."""
    notes = []
    for role in ("model", "calibration", "eval", "train"):
        entry = (data.get("inputs") or {}).get(role)
        if not isinstance(entry, dict) or "path" not in entry:
            continue
        p = Path(out) / str(entry["path"])  # relative to OUT (an absolute path stays as it is)
        try:
            exists = p.exists()
        except (OSError, ValueError):
            exists = False
        if not exists:
            notes.append(Finding(os.path.normpath(p)[:200], "input missing", role))
            continue
        try:
            digest = sha256_path(p)
        except (OSError, InputError):
            notes.append(Finding(os.path.normpath(p), "input changed", f"{role}; not a regular file or SavedModel any more"))
            continue
        if digest != entry.get("sha256"):
            notes.append(Finding(os.path.normpath(p), "input changed", f"{role}; rebuild to update the artifacts"))
    return notes


def up_to_date(out: Path, inputs: dict[str, Any]) -> tuple[dict[str, Any], list[Path]] | None:
    """The manifest and artifact paths when OUT already holds this exact build; None otherwise."""
    out = Path(out)
    if not (out / MANIFEST).is_file():
        return None
    try:
        data = load(out)
        # The inputs were hashed from the command line (input_key); the paths the manifest names are never read.
        problems = _artifact_problems(out, data)
    except InputError:
        return None
    if problems or data.get("input_key") != input_key(inputs):
        return None
    if not (out / "report.json").is_file():
        return None
    return data, [out.resolve() / name for name in data["artifacts"]]
