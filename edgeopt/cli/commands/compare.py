"""`edgeopt compare OUT...`: several builds side by side."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgeopt.cli.commands.options import JsonOpt
from edgeopt.cli.errors import handled
from edgeopt.cli.output import Sink, table


def register(app: typer.Typer) -> None:
    @app.command("compare")
    def compare_cmd(
        reports: Annotated[list[Path], typer.Argument(metavar="REPORT", help="Build output folders or report.json files.")],
        json_out: JsonOpt = False,
    ) -> None:
        """Show several build reports side by side: bytes, accuracy, latency and their ratios."""
        with handled(json_out):
            from edgeopt.report.compare import COLUMNS, TITLE, load_report, records, rows

            loaded = [load_report(p) for p in reports]
            Sink(json_out).result(records(loaded), lambda c: c.print(table(TITLE, COLUMNS, rows(loaded))))
