"""Line breaking for the terminal table: at word and path boundaries, never mid-word.

rich wraps a cell at blanks only and folds anything longer mid-word
(``six.direct_url.archive_i`` / ``nfo.hash``). A component, a path or a version has no
blanks but plenty of natural break points: this breaks after ``/ . - _ = : , ;`` and
blanks. A single piece wider than its column (a hash) is cut with ``…`` rather than
continued on the next line, so no line ever holds half a word (the JSON report keeps
every value whole).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from rich.cells import cell_len
from rich.containers import Lines
from rich.measure import Measurement
from rich.text import Text

if TYPE_CHECKING:
    from rich.console import Console, ConsoleOptions, JustifyMethod, OverflowMethod

__all__ = ["MIN_PIECE", "Wrapped", "break_lines"]

_BREAK_AFTER = r"/.\-_=:,;"
_WORD = re.compile(r"\S+")
# What lies up to and including the next break characters, within a word.
_PIECE = re.compile(rf"[^{_BREAK_AFTER}]*[{_BREAK_AFTER}]+|[^{_BREAK_AFTER}]+")

MIN_PIECE = 24
"""A column never asks for more than this to hold its longest piece: a hash may be cut
(with ``…``) rather than squeeze every other column."""

ELLIPSIS = "…"


def break_lines(text: str, width: int) -> list[tuple[int, int, bool]]:
    """Where ``text`` (one line) breaks into lines of at most ``width`` cells.

    Words (between blanks) stay whole when they fit a line; a longer word (a path, a
    dotted key) breaks after one of ``/ . - _ = : , ;``; one piece still too wide (a
    hash) is cut. Each line is ``(start, end, cut)``: ``text[start:end]``, ``cut`` when
    it is one piece too wide, to be shown cut to ``width`` with ``…``. Widths are
    terminal cells (a CJK character takes two).
    """
    width = max(width, 1)
    lines: list[tuple[int, int, bool]] = []
    start = end = -1  # the open line: text[start:end]

    def close() -> None:
        nonlocal start, end
        if start >= 0:
            lines.append((start, end, False))
        start = end = -1

    def place(first: int, last: int) -> None:
        """Put text[first:last] (no blank inside) on the open line or a new one."""
        nonlocal start, end
        if start >= 0 and cell_len(text[start:last]) <= width:
            end = last
            return
        close()
        if cell_len(text[first:last]) <= width:
            start, end = first, last
        else:
            lines.append((first, last, True))

    for word in _WORD.finditer(text):
        first, last = word.span()
        fits_open = start >= 0 and cell_len(text[start:last]) <= width
        if fits_open or cell_len(word.group()) <= width:
            place(first, last)
            continue
        for piece in _PIECE.finditer(word.group()):
            place(first + piece.start(), first + piece.end())
    close()
    return lines or [(0, 0, False)]


class Wrapped(Text):
    """A rich ``Text`` that wraps at word and path boundaries (:func:`break_lines`)."""

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        lines = self.plain.split("\n")
        longest = max((cell_len(line) for line in lines), default=0)
        pieces = [
            cell_len(piece.group())
            for line in lines
            for word in _WORD.finditer(line)
            for piece in _PIECE.finditer(word.group())
        ]
        smallest = min(max(pieces, default=0), MIN_PIECE, longest)
        return Measurement(smallest, longest)

    def wrap(
        self,
        console: Console,
        width: int,
        *,
        justify: JustifyMethod | None = None,
        overflow: OverflowMethod | None = None,
        tab_size: int = 8,
        no_wrap: bool | None = None,
    ) -> Lines:
        out = Lines()
        for line in self.split(allow_blank=True):
            for start, end, cut in break_lines(line.plain, width):
                part = line[start:end]
                part.rstrip()
                if cut:
                    part.truncate(max(width - 1, 0))
                    part.append(ELLIPSIS, style=line.get_style_at_offset(console, start))
                out.append(part)
        return out
