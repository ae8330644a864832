"""Saved benchmark results: the JSON `edgeopt bench --json` prints, and reading it back for --compare."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeopt.benchmark.protocol import BenchResult, baseline_ratios
from edgeopt.errors import InputError

SCHEMA = "edgeopt.bench/1"


@dataclass(frozen=True)
class BenchReport:
    results: tuple[BenchResult, ...]

    @property
    def ratios(self) -> list[dict[str, float | None] | None]:
        return baseline_ratios(self.results)

    def to_dict(self, samples: bool = True) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "results": [{**r.to_dict(samples), "ratio": q} for r, q in zip(self.results, self.ratios, strict=True)],
        }

    def to_json(self, samples: bool = True) -> str:
        return json.dumps(self.to_dict(samples), indent=2) + "\n"


def parse_report(data: Any, source: str) -> BenchReport:
    """Accept what `edgeopt bench --json` prints, a list of results, or one result."""
    if isinstance(data, dict) and "results" in data:
        items = data["results"]
    elif isinstance(data, dict):
        items = [data]
    else:
        items = data
    if not isinstance(items, list) or not items:
        msg = f"{source}: no benchmark results; give a file written by `edgeopt bench --json`"
        raise InputError(msg)
    try:
        return BenchReport(tuple(BenchResult.from_dict(d) for d in items))
    except (KeyError, TypeError, ValueError) as exc:
        msg = (
            f"{source}: not an edgeopt bench result (missing or bad field {exc}); "
            "give a file written by `edgeopt bench --json`"
        )
        raise InputError(msg) from None


def load_report(path: Path) -> BenchReport:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        msg = f"result file not found: {path}"
        raise InputError(msg) from None
    except (OSError, UnicodeDecodeError) as exc:
        msg = f"cannot read {path}: {exc}"
        raise InputError(msg) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        msg = f"{path} is not JSON ({exc.msg} at line {exc.lineno}); give a file written by `edgeopt bench --json`"
        raise InputError(msg) from None
    return parse_report(data, str(path))


def report_of(results: Sequence[BenchResult]) -> BenchReport:
    return BenchReport(tuple(results))
