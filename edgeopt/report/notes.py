"""Notes on the console are summaries: one line per kind of note, with a count; the full list stays in
report.json (or `--json`). A kind is a note's text with its names ('...'), numbers and parenthesised details
left out, so "output 'a' is scored by snr ..." and "output 'b' is scored by snr ..." are one kind."""

from __future__ import annotations

import re
from collections.abc import Sequence

QUOTED = re.compile(r"'[^']*'|`[^`]*`")
PARENS = re.compile(r"\([^()]*\)")
NUMBER = re.compile(r"[-+]?\d[\d,]*(?:\.\d+)?(?:e[-+]?\d+)?")
WARNINGS = ("is far below the float model",)  # a note of these kinds is shown as a warning


def kind(note: str) -> str:
    """The note with names, parenthesised details and numbers replaced: notes of one kind share it."""
    return NUMBER.sub("#", PARENS.sub("(...)", QUOTED.sub("'...'", note)))


def summarize(notes: Sequence[str], where: str) -> list[str]:
    """One line per kind, in the order each kind first appears: the note itself when it is the only one of its
    kind, else the first with the count of the others; `where` says where every note is listed."""
    groups: dict[str, list[str]] = {}
    for n in notes:
        groups.setdefault(kind(n), []).append(n)
    lines = []
    for alike in groups.values():
        label = "warning" if any(w in alike[0] for w in WARNINGS) else "note"
        unique = list(dict.fromkeys(alike))
        more = "" if len(alike) == 1 else f" [{len(alike)} notes of this kind" + \
            (", all the same" if len(unique) == 1 else f"; the other {len(alike) - 1} in {where}") + "]"
        lines.append(f"{label}: {alike[0]}{more}")
    return lines
