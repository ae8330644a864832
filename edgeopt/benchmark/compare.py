"""Compare two saved results (old vs new): ratios new/old of the latency statistics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edgeopt.benchmark.protocol import BenchResult
from edgeopt.benchmark.results import BenchReport
from edgeopt.benchmark.stats import ratios
from edgeopt.errors import InputError


@dataclass(frozen=True)
class Comparison:
    old: BenchResult
    new: BenchResult
    ratios: dict[str, float | None]  # new / old
    notes: tuple[str, ...]  # why the two may not be comparable

    def to_dict(self) -> dict[str, Any]:
        return {"old": self.old.label(), "new": self.new.label(), "ratio": self.ratios, "notes": list(self.notes),
                "old_p50_ms": self.old.latency.p50, "new_p50_ms": self.new.latency.p50}


def _notes(old: BenchResult, new: BenchResult) -> tuple[str, ...]:
    notes = []
    fo, fn = old.fingerprint, new.fingerprint
    if fo and fn:
        if fo.machine() != fn.machine():
            notes.append(f"different machines ({fo.host}: {fo.cpu} vs {fn.host}: {fn.cpu})")
        if fo.graph_optimization != fn.graph_optimization:
            notes.append(f"graph optimization {fo.graph_optimization} vs {fn.graph_optimization}")
        if (fo.implementation, fo.runtime_version) != (fn.implementation, fn.runtime_version):
            notes.append(f"runtime {fo.implementation} {fo.runtime_version} vs {fn.implementation} {fn.runtime_version}")
    for side, r in (("old", old), ("new", new)):
        if r.fingerprint is not None and r.fingerprint.emulation is not None:
            notes.append(f"{side} measured on an emulated CPU ({r.fingerprint.emulation}): not a real device's speed")
    if old.threads != new.threads:
        notes.append(f"threads {old.threads} vs {new.threads}")
    if old.delegate != new.delegate:
        notes.append(f"delegate {old.delegate} vs {new.delegate}")
    return tuple(notes)


def _key(r: BenchResult) -> tuple[str, str, int]:
    return (r.name, r.runtime, r.threads)


def compare_reports(old: BenchReport, new: BenchReport) -> list[Comparison]:
    """Pair results by (model file name, runtime, threads); two single results pair whatever their names."""
    if len(old.results) == 1 and len(new.results) == 1:
        pairs = [(old.results[0], new.results[0])]
    else:
        by_key = {_key(r): r for r in old.results}
        pairs = [(by_key[_key(n)], n) for n in new.results if _key(n) in by_key]
        if not pairs:
            msg = "no result in the new file matches one in the old file by model name, runtime and threads"
            raise InputError(msg)
    return [Comparison(o, n, ratios(n.latency, o.latency), _notes(o, n)) for o, n in pairs]
