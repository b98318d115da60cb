"""Each medium's escaping, checked against the real reader of that medium.

Markdown goes through markdown-it (CommonMark, with HTML enabled) and GitHub's own
cmark-gfm (tables, autolinks); XML through ElementTree; HTML through html.parser. The
property tests feed arbitrary strings and require that the reader shows back exactly the
escaped text: nothing of the input is ever taken as syntax.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from typing import Any

import cmarkgfm
import pytest
from cmarkgfm.cmark import Options
from hypothesis import example, given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt
from markdown_it.token import Token

import hostile_text
from envpack._escape import (
    for_html,
    for_markdown,
    for_sarif_text,
    for_terminal,
    for_xml,
    markdown_code,
)

JOINER = "\u2060"
HOSTILE = hostile_text.TERMINAL
MARKDOWN_HOSTILE = hostile_text.MARKDOWN

_MD = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])
_GFM_EXTENSIONS = ["table", "autolink", "strikethrough", "tagfilter"]


def _gfm(markdown: str) -> str:
    html: str = cmarkgfm.markdown_to_html_with_extensions(
        markdown, options=Options.CMARK_OPT_UNSAFE, extensions=_GFM_EXTENSIONS
    )
    return html


def _as_shown(text: str) -> str:
    """What a Markdown reader shows of ``for_markdown(text)``: the text one line, its
    leading blanks kept (written as references), its trailing ones dropped by the cell."""
    line = for_terminal(text)
    body = line.lstrip(" ")
    return line[: len(line) - len(body)] + body.rstrip(" ")


def _inline_children(tokens: list[Token]) -> list[Token]:
    return [child for t in tokens if t.type == "inline" for child in t.children or []]


def _shown_text(tokens: list[Token]) -> str:
    """The text a reader sees in the inline tokens (markdown-it's text and code nodes)."""
    return "".join(t.content for t in _inline_children(tokens) if t.type in {"text", "code_inline"})


class _TextOf(HTMLParser):
    """The tags and the text of an HTML fragment."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.text = ""
        self.attrs: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs += attrs

    def handle_data(self, data: str) -> None:
        self.text += data


def _html_of(fragment: str) -> _TextOf:
    parser = _TextOf()
    parser.feed(fragment)
    parser.close()
    return parser


# --- terminal ---------------------------------------------------------------------------


@pytest.mark.parametrize("text", HOSTILE)
def test_terminal_shows_every_control_as_a_visible_escape(text: str) -> None:
    shown = for_terminal(text)
    assert shown.isprintable()
    assert "\x1b" not in shown and "\n" not in shown


def test_terminal_escapes_are_readable() -> None:
    assert for_terminal("a\nb\tc\rd") == "a\\nb\\tc\\rd"
    assert for_terminal("\x1b[31m") == "\\x1b[31m"
    assert for_terminal("\x9b\x7f\x00") == "\\x9b\\x7f\\x00"
    assert for_terminal("\u202e\u2066\u200b\ufeff\u2028") == "\\u202e\\u2066\\u200b\\ufeff\\u2028"
    assert for_terminal("\udcff") == "\\udcff"
    assert for_terminal("\U000e0041") == "\\U000e0041"
    assert for_terminal("\u00a0") == "\\xa0"


def test_printable_text_is_untouched() -> None:
    for text in ("requests==2.31.0", "héllo wörld ✓ 日本", "[bold red]x[/]", "a b", ""):
        assert for_terminal(text) is text


@given(st.text())
@example("\x1b[2J\x1b]0;x\x07\u202e\n")
def test_terminal_output_is_one_printable_line_and_idempotent(text: str) -> None:
    shown = for_terminal(text)
    assert shown.isprintable()
    assert for_terminal(shown) == shown
    shown.encode("utf-8")  # no lone surrogate left


# --- markdown -------------------------------------------------------------------------------


def _cell_tokens(markdown_cell: str) -> list[Token]:
    tokens = _MD.parse(f"| h | x |\n|---|---|\n| {markdown_cell} | end |\n")
    rows = [t for t in tokens if t.type == "tr_open"]
    assert len(rows) == 2, markdown_cell  # header and one body row: the cell ended nothing
    cells = [i for i, t in enumerate(tokens) if t.type == "td_open"]
    assert len(cells) == 2, markdown_cell
    start = cells[0]
    end = next(i for i in range(start, len(tokens)) if tokens[i].type == "td_close")
    return tokens[start:end]


def _assert_inert(tokens: list[Token]) -> None:
    kinds = {t.type for t in _inline_children(tokens)} | {t.type for t in tokens}
    assert not kinds & {
        "link_open",
        "image",
        "html_inline",
        "html_block",
        "heading_open",
        "em_open",
        "strong_open",
        "s_open",
        "bullet_list_open",
        "ordered_list_open",
        "blockquote_open",
        "code_block",
        "fence",
        "hr",
    }, kinds


@pytest.mark.parametrize("text", MARKDOWN_HOSTILE + HOSTILE)
def test_markdown_text_renders_as_itself_in_a_cell_and_a_list_item(text: str) -> None:
    escaped = for_markdown(text)
    cell = _cell_tokens(escaped)
    _assert_inert(cell)
    assert _shown_text(cell).replace(JOINER, "") == _as_shown(text)
    item = _MD.parse(f"- {escaped}\n")
    _assert_inert(item[2:-2])  # inside the one list item
    assert [t.type for t in item].count("list_item_open") == 1
    assert _shown_text(item).replace(JOINER, "") == _as_shown(text)


@pytest.mark.parametrize("text", MARKDOWN_HOSTILE)
def test_github_markdown_makes_no_link_ping_or_tag(text: str) -> None:
    """GitHub's own renderer, with autolinks and raw HTML on: nothing but our table."""
    html = _gfm(f"| h |\n|---|\n| {for_markdown(text)} |\n\n- {for_markdown(text)}\n")
    page = _html_of(html)
    assert set(page.tags) <= {"table", "thead", "tbody", "tr", "th", "td", "ul", "li"}
    shown = page.text.replace(JOINER, "")
    assert for_terminal(text).strip(" ") in shown
    # GitHub pings a mention and links a reference at "@name"/"#1" in text: always broken.
    assert "@o" not in page.text and "#1" not in page.text and "#2" not in page.text


@given(st.text())
@settings(max_examples=300, deadline=None)
@example("[x](y) @a #1 <b> ![i](j) \\| `c` www.x.io https://x.io\n# h")
def test_markdown_text_property(text: str) -> None:
    escaped = for_markdown(text)
    assert "\n" not in escaped and "\r" not in escaped
    cell = _cell_tokens(escaped)
    _assert_inert(cell)
    assert _shown_text(cell).replace(JOINER, "") == _as_shown(text)
    page = _html_of(_gfm(f"| h |\n|---|\n| {escaped} |\n"))
    assert set(page.tags) <= {"table", "thead", "tbody", "tr", "th", "td"}
    assert page.tags.count("tr") == 2 and page.tags.count("td") == 1


@pytest.mark.parametrize("text", [*MARKDOWN_HOSTILE, *HOSTILE, "a`b", "``", "`x`", " x ", "a|b|c"])
def test_markdown_code_span_holds_the_value_verbatim(text: str) -> None:
    cell = _cell_tokens(markdown_code(text))
    codes = [t for t in _inline_children(cell) if t.type == "code_inline"]
    assert len(codes) == 1 and codes[0].content == for_terminal(text)
    page = _html_of(_gfm(f"| h |\n|---|\n| {markdown_code(text)} |\n"))
    assert page.tags.count("code") == 1 and "a" not in page.tags
    assert page.text.strip("\n").endswith(for_terminal(text))


@given(st.text(min_size=1))
@settings(max_examples=300, deadline=None)
def test_markdown_code_property(text: str) -> None:
    cell = _cell_tokens(markdown_code(text))
    codes = [t for t in _inline_children(cell) if t.type == "code_inline"]
    assert len(codes) == 1
    assert codes[0].content == for_terminal(text)


# --- XML, HTML, SARIF ------------------------------------------------------------------------


@given(st.text())
@example("\x00\x1b\ufffe\uffff\udc80 & <x> \"'")
def test_xml_text_and_attributes_parse_back(text: str) -> None:
    element = ET.Element("t", attr=for_xml(text))
    element.text = for_xml(text)
    parsed = ET.fromstring(ET.tostring(element, encoding="unicode"))  # noqa: S314 (our own output)
    assert (parsed.text or "") == for_terminal(text)
    assert parsed.get("attr") == for_terminal(text)


@given(st.text())
@example('<script>alert(1)</script>" onmouseover="x\u202e')
def test_html_text_and_attributes_hold_no_tag(text: str) -> None:
    page = _html_of(f'<p title="{for_html(text)}">{for_html(text)}</p>')
    assert page.tags == ["p"]
    assert page.attrs == [("title", for_terminal(text))]
    assert page.text == for_terminal(text)


def test_sarif_message_has_no_embedded_link() -> None:
    assert for_sarif_text("see [here](https://evil.example)\n") == (
        "see \\[here\\](https://evil.example)\\n"
    )


def test_json_reports_never_write_nan_or_infinity() -> None:
    from envpack._jsontext import indented_json

    def refuse(name: str) -> Any:
        raise ValueError(name)

    fast = indented_json({"a": [float("nan"), float("inf"), -float("inf"), 1.5]})
    assert json.loads(fast, parse_constant=refuse) == {"a": [None, None, None, 1.5]}
    # A lone surrogate and a 80-bit integer take the standard library's path.
    slow = indented_json({"a": [float("nan"), "\udc80", 2**80, {"b": (float("inf"),)}]})
    assert json.loads(slow, parse_constant=refuse) == {"a": [None, "\udc80", 2**80, {"b": [None]}]}
    # strict (SARIF): a lone surrogate, in a value or a key, becomes visible text.
    strict = indented_json({"k\udc80": ["\udc80", float("nan")]}, strict=True)
    assert json.loads(strict, parse_constant=refuse) == {"k\\udc80": ["\\udc80", None]}
