"""The human rendering of a search: the Pareto front as a table (edgeopt.report.table) and the chosen build."""

from __future__ import annotations

from rich.console import Console

from edgeopt.pipeline.search.results import SearchResult
from edgeopt.report.table import printable, table


def front_table(result: SearchResult) -> object:
    objs = result.space.objectives
    final = result.latency.final_round is not None
    cols = ["trial", *objs, "top-1 %", "KiB", *(["p50 ms (final round)", "x baseline"] if final else []), "choices"]
    rows = []
    for p in result.front:
        chosen = result.chosen is not None and result.chosen.number == p.number
        rows.append([f"{p.number}{' *' if chosen else ''}", *(f"{p.values[o]:.4g}" for o in objs),
                     "-" if p.accuracy is None else f"{p.accuracy:.2f}", "-" if p.bytes is None else f"{p.bytes / 1024:.1f}",
                     *([("-" if p.p50_ms_final is None else f"{p.p50_ms_final:.4f}"),
                        ("-" if p.latency_ratio_final is None else f"{p.latency_ratio_final:.2f}")] if final else []),
                     " ".join(f"{k}={v}" for k, v in p.params.items())])
    title = ("Pareto front (feasible trials)" if result.ok else "Pareto front (no trial met every budget)")
    return table(title, cols, rows)


def to_console(result: SearchResult, console: Console) -> None:
    c = result.counts
    console.print(printable(f"{c.complete} trials complete, {c.failed} failed, {len(result.front)} on the front "
                            f"({result.wall_seconds:.0f} s; study '{result.study.name}' in {result.study.storage})"))
    console.print(front_table(result))
    if result.chosen is not None:
        vals = ", ".join(f"{k} {v:.4g}" for k, v in result.chosen.values.items())
        console.print(printable(f"chosen: trial {result.chosen.number} ({vals}) -> {result.chosen.folder}"))
    console.print(printable(f"latency: {result.latency.trials}"
                            + ("; front re-timed in one interleaved round with the baseline"
                               if result.latency.final_round is not None else "")))
    for n in result.notes:
        console.print(printable(f"note: {n}"))
