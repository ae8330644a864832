"""Options shared by several commands, defined once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]
TargetOpt = Annotated[str, typer.Option("--target", "-t", help="Profile name (see `edgeopt targets list`) or path to a .toml file.")]
OutOpt = Annotated[Path, typer.Option("--out", "-o", help="Output folder (written atomically).")]
ThreadsOpt = Annotated[int | None, typer.Option("--threads", help="Threads (0 = all cores).")]
