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
    from edgeopt.cli import errors

    errors.signal_seen = signum
    raise errors.Terminated()


def _interrupt(signum: int, frame: object) -> None:
    from edgeopt.cli import errors

    errors.signal_seen = signum
    raise KeyboardInterrupt


def main() -> None:
    # SIGTERM unwinds like Ctrl-C (staging folders removed, lock released), then exits 143.
    import signal

    signal.signal(signal.SIGTERM, _terminate)
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not when SIGINT is ignored (nohup, &)
        signal.signal(signal.SIGINT, _interrupt)
    # `--debug` is accepted anywhere on the line, not only before the command.
    argv = sys.argv[1:]
    if "--debug" in argv[1:]:
        argv = [a for a in argv if a != "--debug"]
        os.environ["EDGEOPT_DEBUG"] = "1"
    from edgeopt.cli.errors import EXIT_TERMINATED, Terminated

    try:
        code = app(args=argv, prog_name="edgeopt", standalone_mode=False)
    except Terminated:  # outside a command's error handler (argument parsing, output)
        sys.stderr.write("terminated\n")
        sys.exit(EXIT_TERMINATED)
    except typer.Abort:
        sys.stderr.write("aborted\n")
        sys.exit(1)
    except _CLICK_ERROR as exc:
        sys.exit(_command_line_error(exc))
    sys.exit(code if isinstance(code, int) else 0)  # without standalone mode, typer returns the exit code


# Typer exposes click's BadParameter; above it are click's UsageError (unknown option, missing argument,
# bad value: exit 2) and ClickException. Reached through the public name, not typer's private click copy.
_USAGE_ERROR: type[Exception] = typer.BadParameter.__mro__[1]  # type: ignore[assignment]
_CLICK_ERROR: type[Exception] = typer.BadParameter.__mro__[2]  # type: ignore[assignment]


def _command_line_error(exc: Exception) -> int:
    """A command-line mistake: one line naming it and where help is (no usage box)."""
    code = int(getattr(exc, "exit_code", 2))
    if getattr(type(exc), "show", None) is not getattr(_USAGE_ERROR, "show", None):  # e.g. `edgeopt targets` alone prints its help
        exc.show()  # type: ignore[attr-defined]
        return code
    from edgeopt.cli.errors import fail, one_line

    message = one_line(" ".join(exc.format_message().replace("Value error, ", "").split()))  # type: ignore[attr-defined]
    ctx = getattr(exc, "ctx", None)
    hint = f" (see {ctx.command_path} --help)" if isinstance(exc, _USAGE_ERROR) and ctx is not None else ""
    fail(f"error: {message}{hint}", code, as_json="--json" in sys.argv[1:])
    return code
