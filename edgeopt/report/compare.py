"""Side-by-side view of several build reports (report.json files or their folders)."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import ValidationError

from edgeopt.errors import InputError
from edgeopt.report.render import device_estimate_method, device_estimate_ms, latency_ratio_text
from edgeopt.report.schema import SCHEMA_VERSION, Report


def load_report(path: Path) -> Report:
    path = Path(path)
    file = path / "report.json" if path.is_dir() else path
    if not file.is_file():
        msg = f"no report found at {path} (give a build's --out folder or its report.json)"
        raise InputError(msg)
    try:
        data = json.loads(file.read_bytes())
    except ValueError as exc:
        msg = f"{file} is not valid JSON: {str(exc)[:120]}"
        raise InputError(msg) from None
    version = data.get("schema_version") if isinstance(data, dict) else None
    if isinstance(version, str) and version.split(".")[0] != SCHEMA_VERSION.split(".")[0]:
        msg = (
            f"{file} has report schema {version}; this edgeopt reads {SCHEMA_VERSION}: rebuild it "
            "(edgeopt build ... --force)"
        )
        raise InputError(msg)
    try:
        return Report.model_validate(data)
    except ValidationError as exc:
        msg = (
            f"{file} is not an edgeopt report ({exc.error_count()} schema error(s); "
            f"first: {'.'.join(map(str, exc.errors()[0]['loc']))}: {exc.errors()[0]['msg']})"
        )
        raise InputError(msg) from None


COLUMNS = ["model", "target", "scheme", "float bytes", "bytes", "size x", "top-1 float", "top-1", "drop",
           "device ms (est.)", "device est. by", "measured on", "p50 float ms", "p50 ms", "latency x", "ok"]
TITLE = ("builds side by side (ratios: optimized / float; device ms: an MCU's latency, estimated from the firmware's "
         "instruction count when the firmware stage ran, else as MACs / MAC rate ('device est. by'); "
         "p50: measured where 'measured on' says)")


def _measured_on(r: Report) -> str | None:
    lat = r.optimized.latency_ms
    if lat is None:
        return None
    where = "host" if lat.where == "local" else lat.where
    emulated = lat.fingerprint is not None and lat.fingerprint.emulation is not None
    return f"{where} (emulated CPU)" if emulated else where


def records(reports: list[Report]) -> list[dict[str, object]]:
    """One value per column and report (numbers stay numbers), plus the latency verdict: for --json."""
    out: list[dict[str, object]] = []
    for r in reports:
        b, o = r.baseline, r.optimized
        values = [Path(r.input.path).name, r.target.name, o.artifact.scheme, b.artifact.bytes, o.artifact.bytes,
                  r.ratios.size, b.accuracy.value if b.accuracy else None, o.accuracy.value if o.accuracy else None,
                  o.accuracy.drop if o.accuracy else None, device_estimate_ms(r), device_estimate_method(r), _measured_on(r),
                  b.latency_ms.p50 if b.latency_ms else None, o.latency_ms.p50 if o.latency_ms else None,
                  r.ratios.latency_p50, "ok" if r.ok else "FAIL"]
        out.append(dict(zip(COLUMNS, values, strict=True)) | {"latency verdict": r.ratios.latency_verdict})
    return out


def rows(reports: list[Report]) -> list[list[object]]:
    """The human table: the latency ratio in words ("1.71x (slower)")."""
    out: list[list[object]] = []
    for r, rec in zip(reports, records(reports), strict=True):
        out.append([latency_ratio_text(r.ratios) if c == "latency x" else rec[c] for c in COLUMNS])
    return out
