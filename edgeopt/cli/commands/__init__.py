"""Command registry: each module exposes `register(app)`. Order is the help order."""

from __future__ import annotations

from collections.abc import Callable

import typer

from edgeopt.cli.commands import (
    bench,
    build,
    cluster,
    compare,
    export_c,
    inspect,
    mcu,
    npu,
    prune,
    qat,
    search,
    sparsify,
    targets,
    tools,
    verify,
)

COMMANDS: tuple[Callable[[typer.Typer], None], ...] = (
    build.register,
    search.register,
    verify.register,
    compare.register,
    bench.register,
    inspect.register,
    targets.register,
    prune.register,
    cluster.register,
    qat.register,
    sparsify.register,
    mcu.register,
    npu.register,
    export_c.register,
    tools.register,
)
