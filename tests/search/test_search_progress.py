"""Search progress through the one sink: a live bar on a terminal, one line per trial in a pipe, nothing in --json."""

from __future__ import annotations

import io

from rich.console import Console

from edgeopt.cli.output import Sink


def _sink(terminal: bool, as_json: bool = False) -> tuple[Sink, io.StringIO]:
    buf = io.StringIO()
    err = Console(file=buf, force_terminal=terminal, width=120, color_system=None, markup=False, highlight=False)
    return Sink(as_json=as_json, console=Console(file=io.StringIO()), err=err), buf


def test_terminal_bar_shows_counts_and_best():
    sink, buf = _sink(terminal=True)
    with sink.trials(4) as update:
        update(1, 2, 0, None, "trial 0000 done: scheme=int8")
        update(3, 1, 1, "#2 accuracy_drop=0.25", "trial 0002 done: scheme=float16")
    text = buf.getvalue()
    assert "3/4" in text and "running 1, failed 1, best #2 accuracy_drop=0.25" in text


def test_pipe_prints_one_line_per_finished_trial_and_json_nothing():
    sink, buf = _sink(terminal=False)
    with sink.trials(2) as update:
        update(0, 1, 0, None, None)  # a poll with nothing finished prints nothing
        update(1, 1, 0, None, "trial 0000 done: scheme=int8 -> bytes=1000")
        update(1, 0, 1, None, "trial 0001 fail: scheme=float16: boom")
    assert buf.getvalue().splitlines() == ["[1/2] trial 0000 done: scheme=int8 -> bytes=1000",
                                           "[1/2] trial 0001 fail: scheme=float16: boom"]
    sink, buf = _sink(terminal=False, as_json=True)
    with sink.trials(2) as update:
        update(1, 0, 0, None, "trial 0000 done")
    assert buf.getvalue() == ""
