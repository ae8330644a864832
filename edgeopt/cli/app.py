"""The `edgeopt` command. Commands live in edgeopt/cli/commands/, one module each.

Imports here stay light (typer, rich) so `edgeopt --help` starts fast; each
command imports its library code inside the function.
"""

from __future__ import annotations

import os
import sys

import typer

from edgeopt import __version__
from edgeopt.cli.commands import COMMANDS

app = typer.Typer(
    name="edgeopt",
    help="Convert, compress and prove trained models for edge devices (LiteRT, TFLite Micro, ONNX Runtime).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        print(f"edgeopt {__version__}")
        raise typer.Exit(0)


@app.callback()
def root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks (also EDGEOPT_DEBUG=1)."),
) -> None:
    """edgeopt: the open toolchain for putting trained models on edge devices."""
    if debug:
        os.environ["EDGEOPT_DEBUG"] = "1"


for register in COMMANDS:
    register(app)


def _terminate(signum: int, frame: object) -> None:
    from edgeopt.cli.errors import Terminated

    raise Terminated()


def main() -> None:
    # SIGTERM unwinds like Ctrl-C (staging folders removed, lock released), then exits 143.
    import signal

    signal.signal(signal.SIGTERM, _terminate)
    # `--debug` is accepted anywhere on the line, not only before the command.
    argv = sys.argv[1:]
    if "--debug" in argv[1:]:
        argv = [a for a in argv if a != "--debug"]
        os.environ["EDGEOPT_DEBUG"] = "1"
    from edgeopt.cli.errors import EXIT_TERMINATED, Terminated

    try:
        app(args=argv, prog_name="edgeopt")
    except Terminated:  # outside a command's error handler (argument parsing, output)
        sys.stderr.write("terminated\n")
        sys.exit(EXIT_TERMINATED)
