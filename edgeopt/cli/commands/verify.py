"""`edgeopt verify DIR`: re-check a build's artifacts against its manifest.json.

Exit 0 when every artifact is present with its recorded sha256; 3 when one
changed or is missing (each named on stderr); 2 when DIR has no readable
manifest. Inputs (model, data) that changed since the build are reported as
notes: the artifacts are still what that build made, but a rebuild would differ.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgeopt.cli.commands.options import JsonOpt
from edgeopt.cli.errors import handled
from edgeopt.cli.output import Sink

EXIT_CHANGED = 3


def register(app: typer.Typer) -> None:
    @app.command("verify")
    def verify_cmd(
        folder: Annotated[Path, typer.Argument(metavar="DIR", help="Output folder of `edgeopt build` (holds manifest.json).")],
        json_out: JsonOpt = False,
    ) -> None:
        """Check that a build's artifacts still match its manifest.json (exit 3 if any changed)."""
        with handled(json_out):
            from edgeopt.pipeline.manifest import check

            sink = Sink(json_out)
            data, problems, notes = check(folder)
            for n in notes:
                sink.warn(n.describe())
            for p in problems:
                sink.err.print(f"{p.describe()}", markup=False, highlight=False)
            result = {"folder": str(folder), "ok": not problems, "artifacts": sorted(data["artifacts"]),
                      "problems": [{"file": p.name, "problem": p.problem, "detail": p.detail} for p in problems],
                      "notes": [{"file": n.name, "problem": n.problem, "detail": n.detail} for n in notes]}
            sink.result(result, lambda c: c.print(
                f"{folder}: {len(data['artifacts'])} artifacts match manifest.json" if not problems else
                f"{folder}: {len(problems)} of {len(data['artifacts'])} artifacts differ from manifest.json",
                markup=False))
            if problems:
                raise typer.Exit(EXIT_CHANGED)
