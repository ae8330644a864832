"""One output sink: human (rich) or machine (--json) for every command."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.text import Text

from edgeopt.report.table import printable, table

__all__ = ["PIPE_WIDTH", "Sink", "table"]

PIPE_WIDTH = 200  # columns when writing to a pipe or CI log (rich would assume 80 and squeeze tables)


def tolerant_streams() -> None:
    """Characters the output encoding lacks (bench's ΔRSS under PYTHONIOENCODING=latin-1, a tensor named 'Δ'
    under LANG=C) print as '?' on stdout and as a \\u escape on stderr, instead of a UnicodeEncodeError after
    the work is done."""
    for stream, errors in ((sys.stdout, "replace"), (sys.stderr, "backslashreplace")):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None and getattr(stream, "errors", "strict") in ("strict", "surrogateescape"):
            with suppress(Exception):  # a stream that cannot be reconfigured keeps its behaviour
                reconfigure(errors=errors)


_results = [0]  # JSON results written to stdout by this process (cli.errors writes no second document after one)


def results_printed() -> int:
    """How many --json results this process has written to stdout."""
    return _results[0]


def _console(stderr: bool = False) -> Console:
    """Markup and emoji codes are off: names from models, paths and profiles print as they are ('[/x]' is not
    a closing tag, '[link=...]' not a link, ':smile:' not an emoji). Styles are given as rich Text."""
    tolerant_streams()
    c = Console(stderr=stderr, highlight=False, markup=False, emoji=False)
    if not c.is_terminal and "COLUMNS" not in os.environ:
        c.width = PIPE_WIDTH
    return c


@dataclass
class Sink:
    as_json: bool = False
    console: Console = field(default_factory=_console)
    err: Console = field(default_factory=lambda: _console(stderr=True))

    def result(self, data: Any, human: Callable[[Console], None]) -> None:
        """Emit the command's result: JSON on stdout, or the human rendering."""
        if self.as_json:
            sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
            _results[0] += 1
        else:
            human(self.console)

    def info(self, text: str) -> None:
        """Progress and notes go to stderr so stdout stays parseable."""
        self.err.print(printable(text))

    def warn(self, text: str) -> None:
        self.err.print(Text.assemble(("warning:", "yellow"), " ", printable(text)))

    @contextmanager
    def steps(self) -> Iterator[Callable[[str], None]]:
        """Report the steps of a long job: a live spinner on a terminal, dim lines otherwise, nothing in --json."""
        if self.as_json:
            yield lambda _text: None
            return
        if not self.err.is_terminal:
            yield lambda text: self.err.print(Text(f"{text}...", style="dim"))
            return
        with _terminal(self.err) as con, con.status(Text("starting")) as status:
            yield lambda text: status.update(Text(f"{text}..."))

    @contextmanager
    def trials(self, total: int) -> Iterator[Callable[[int, int, int, str | None, str | None], None]]:
        """Progress of a search: a live bar (done / running / failed, best so far) on a terminal, one line per
        finished trial otherwise, nothing in --json. Yields update(done, running, failed, best, finished_line)."""
        if self.as_json:
            yield lambda *_a: None
            return
        if not self.err.is_terminal:
            def line(done: int, running: int, failed: int, best: str | None, finished: str | None) -> None:
                if finished:
                    self.err.print(printable(f"[{done}/{total}] {finished}"))
            yield line
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        with _terminal(self.err) as con, Progress(TextColumn("trials"), BarColumn(), MofNCompleteColumn(),
                                                  TextColumn("{task.description}"), TimeElapsedColumn(),
                                                  console=con, transient=False) as bar:
            task = bar.add_task("", total=total)

            def update(done: int, running: int, failed: int, best: str | None, finished: str | None) -> None:
                text = f"running {running}, failed {failed}" + (f", best {best}" if best else "")
                bar.update(task, completed=min(done, total), description=printable(text))
            yield update

    @contextmanager
    def progress(self, description: str) -> Iterator[None]:
        """A spinner on stderr for a long step (silent in --json mode or off a terminal)."""
        if self.as_json or not self.err.is_terminal:
            yield
            return
        with _terminal(self.err) as con, con.status(Text(description)):
            yield


@contextmanager
def _terminal(console: Console) -> Iterator[Console]:
    """The terminal behind `console` on a duplicate descriptor, for a spinner.

    runtime.quiet.native_quiet() points fd 2 at a file while TensorFlow loads and converts (to hide its
    native log lines); a spinner drawn on fd 2 would go there too and the terminal would show nothing.
    """
    try:
        fd = os.dup(console.file.fileno())
    except (AttributeError, OSError, ValueError):  # not a real descriptor (a test runner's buffer)
        yield console
        return
    with os.fdopen(fd, "w") as fh:
        yield Console(file=fh, highlight=False, markup=False, emoji=False, force_terminal=True, width=console.width)

