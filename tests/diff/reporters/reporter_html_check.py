"""A small HTML reader for the tests: nesting check, tables as text, every URL attribute."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser

VOID = {"meta", "br", "hr", "img", "input", "link", "col", "area", "base", "wbr", "source"}


@dataclass
class Cell:
    tag: str
    attrs: dict[str, str | None]
    text: str = ""


@dataclass
class Page(HTMLParser):
    """Parses a document; ``errors`` lists nesting problems (an unclosed or stray tag)."""

    tags: list[tuple[str, dict[str, str | None]]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    tables: list[list[list[Cell]]] = field(default_factory=list)
    text_outside_code: list[str] = field(default_factory=list)
    _stack: list[str] = field(default_factory=list)
    _cell: Cell | None = None

    def __post_init__(self) -> None:
        HTMLParser.__init__(self, convert_charrefs=True)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag == "table":
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self.tables[-1].append([])
        elif tag in {"td", "th"} and self.tables and self.tables[-1]:
            self._cell = Cell(tag, dict(attrs))
            self.tables[-1][-1].append(self._cell)
        if tag not in VOID:
            self._stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            return
        if not self._stack or self._stack[-1] != tag:
            self.errors.append(f"</{tag}> does not close <{self._stack[-1:]}>")
            return
        self._stack.pop()
        if tag in {"td", "th"}:
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.text += data
        if "code" not in self._stack and "style" not in self._stack:
            self.text_outside_code.append(data)

    def finish(self) -> Page:
        self.close()
        if self._stack:
            self.errors.append(f"unclosed: {self._stack}")
        return self


def parse(document: str) -> Page:
    page = Page()
    page.feed(document)
    return page.finish()
