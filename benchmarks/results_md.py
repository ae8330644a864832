"""The one writer of benchmarks/RESULTS.md sections: each script owns the text between its two markers."""

from __future__ import annotations

from pathlib import Path


def replace_section(path: Path, begin: str, end: str, text: str) -> None:
    """Put `text` between the `begin`/`end` markers (appended when absent), atomically; other sections stay.

    `text` may carry the markers itself or not.
    """
    from edgeopt.atomic import write_text_atomic

    section = text.strip("\n")
    if not section.startswith(begin):
        section = f"{begin}\n{section}\n{end}"
    old = path.read_text(encoding="utf-8") if path.exists() else "# Benchmark results\n"
    if begin in old and end in old:
        head, rest = old.split(begin, 1)
        tail = rest.split(end, 1)[1].lstrip("\n")
        new = head + section + "\n" + ("\n" + tail if tail else "")
    else:
        new = old.rstrip("\n") + "\n\n" + section + "\n"
    write_text_atomic(path, new)
