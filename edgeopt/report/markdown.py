"""Names from models, paths and profiles in the Markdown edgeopt writes (report.md, `bench --markdown`).

A name is put in a CommonMark code span: nothing in it is then emphasis, a link, an image or raw HTML, whatever
the viewer allows. The fence is one backtick longer than the longest run of backticks in the name (CommonMark
6.1), control characters are escaped (a newline would end a table row or a paragraph), and in a table cell a
`|` is escaped (GFM splits cells at it even inside a code span). Free text around names is edgeopt's own.
"""

from __future__ import annotations

import re

from edgeopt.report.table import printable

_BACKTICKS = re.compile(r"`+")


def code(name: object, table_cell: bool = False) -> str:
    """`name` as one inline code span."""
    text = printable(str(name))
    if table_cell:
        text = text.replace("|", "\\|")
    if not text.strip(" "):
        return "` `" if not text else f"`{text}`"  # only spaces: kept as they are (CommonMark strips nothing)
    fence = "`" * (max((len(m) for m in _BACKTICKS.findall(text)), default=0) + 1)
    # one space each side when the name starts or ends with a backtick (it would join the fence), or starts and
    # ends with a space (CommonMark removes one from each side)
    pad = " " if text[0] == "`" or text[-1] == "`" or (text[0] == " " and text[-1] == " ") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def cell(name: object) -> str:
    """`name` as a code span in a GFM table cell."""
    return code(name, table_cell=True)


_MARKUP = re.compile(r"([\\`*_\[\]<>&!|~#])")


def text(words: object) -> str:
    """Free text that may hold names (a note, a reason): every character that could start Markdown or HTML is
    backslash-escaped, so it renders as the words it is."""
    return _MARKUP.sub(r"\\\1", printable(str(words)))
