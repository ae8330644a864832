"""Side-by-side view of several build reports (report.json files or their folders)."""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from edgeopt.errors import InputError
from edgeopt.report.schema import Report


def load_report(path: Path) -> Report:
    path = Path(path)
    file = path / "report.json" if path.is_dir() else path
    if not file.is_file():
        raise InputError(f"no report found at {path} (give a build's --out folder or its report.json)")
    try:
        return Report.model_validate_json(file.read_bytes())
    except ValidationError as exc:
        raise InputError(f"{file} is not an edgeopt report ({exc.error_count()} schema error(s); "
                         f"first: {'.'.join(map(str, exc.errors()[0]['loc']))}: {exc.errors()[0]['msg']})") from None
    except ValueError as exc:
        raise InputError(f"{file} is not valid JSON: {str(exc)[:120]}") from None


COLUMNS = ["model", "target", "scheme", "float bytes", "bytes", "size x", "top-1 float", "top-1", "drop",
           "p50 float ms", "p50 ms", "latency x", "ok"]


def rows(reports: list[Report]) -> list[list[object]]:
    out: list[list[object]] = []
    for r in reports:
        b, o = r.baseline, r.optimized
        out.append([Path(r.input.path).name, r.target.name, o.artifact.scheme, b.artifact.bytes, o.artifact.bytes,
                    r.ratios.size, b.accuracy.value if b.accuracy else None, o.accuracy.value if o.accuracy else None,
                    o.accuracy.drop if o.accuracy else None, b.latency_ms.p50 if b.latency_ms else None,
                    o.latency_ms.p50 if o.latency_ms else None, r.ratios.latency_p50, "ok" if r.ok else "FAIL"])
    return out
