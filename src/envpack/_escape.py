"""Captured text made harmless for each medium it is shown in: one function per medium.

Everything a manifest holds came from the captured machine (a file name, a config value,
an environment label) and is hostile until shown otherwise. The base is
:func:`for_terminal`: every character that is not printable — C0 and C1 controls (so
``ESC``, hence every CSI/OSC sequence), DEL, line and paragraph separators, bidi
overrides and isolates, zero-width and other format characters, lone surrogates,
noncharacters — becomes a visible escape (``\\n``, ``\\x1b``, ``\\u202e``). Its output is
one line of printable text, which every other medium then escapes for its own syntax:

- :func:`for_markdown` / :func:`markdown_code`: a pull-request comment (GFM);
- :func:`for_github_data` / :func:`for_github_property`: Actions workflow commands;
- :func:`for_sarif_text`: a SARIF message shown by code-scanning viewers;
- :func:`for_xml`: JUnit XML text and attributes (XML 1.0 characters only);
- :func:`for_html`: the HTML report's text and attribute values.

JSON needs no such escaping (the format itself quotes every string); what it needs,
no ``NaN``/``Infinity``, is :mod:`envpack._jsontext`'s job.

Clean text (printable, the common case) is returned unchanged after one ``isprintable``
scan, so escaping costs next to nothing on real reports. Backslashes are left as they
are: an escape shows *that* a character was there, it is not a lossless encoding (the
JSON report keeps values exact).
"""

from __future__ import annotations

import html
import re

__all__ = [
    "for_github_data",
    "for_github_property",
    "for_html",
    "for_markdown",
    "for_sarif_text",
    "for_terminal",
    "for_xml",
    "markdown_code",
]

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_char(char: str) -> str:
    if char == " " or char.isprintable():
        return char
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def for_terminal(text: str) -> str:
    """``text`` as one line of printable characters: the rest as visible escapes.

    ``str.isprintable`` is the rule: it rejects the Unicode categories Cc (C0, DEL, C1),
    Cf (bidi controls U+202A to U+202E and U+2066 to U+2069, zero-width U+200B to U+200F, U+FEFF,
    soft hyphen…), Zl/Zp (U+2028/U+2029), Cs (lone surrogates), Co and Cn, and every
    space but the ASCII one (a no-break space would hide a difference between two keys).
    """
    if text.isprintable():
        return text
    return "".join(map(_escape_char, text))


# --- Markdown (GitHub-flavoured, as in a pull-request comment) ---------------------------

# U+2060 WORD JOINER: invisible, and no identifier, scheme or domain may hold it, so a
# mention, an issue reference or an autolink it is put into no longer matches.
_JOINER = "\u2060"
# Characters with an inline meaning: emphasis, code, links and images, strike-through,
# table cells, headings' closing hashes. Backslash-escaped everywhere (HTML's & < > are
# written as entities first, which also keeps a leading > from opening a block quote).
_MD_INLINE = re.compile(r"([\\`*_\[\]|~#!])")
# What would start a block when the text begins a line (a list item, a heading's body):
# a list marker, an ordered-list number, a setext underline, leading blanks (indented code).
_MD_LINE_START = re.compile(r"^(?:([-+=])|(\d+)([.)])|( +))")
# GitHub turns these into pings or links even without any markup: @user and @org/team,
# #123, and bare URLs (scheme://, www.) and e-mail addresses (which hold an @).
_MD_AUTO = re.compile(r"(?i)([@#])|(:)(?=//)|\b(www)(\.)")


def _line_start(match: re.Match[str]) -> str:
    marker, digits, delimiter, blanks = match.groups()
    if marker:
        return "\\" + marker
    if digits:
        return f"{digits}\\{delimiter}"
    return "&#32;" * len(blanks)


def _joined(match: re.Match[str]) -> str:
    mark, colon, www, dot = match.groups()
    if www:
        return www + _JOINER + dot
    return (mark or colon) + _JOINER


def for_markdown(text: str) -> str:
    """Plain text for a Markdown table cell, heading or list item: it renders as itself.

    One line (:func:`for_terminal`); every character with an inline meaning
    backslash-escaped and ``& < >`` as entities (so no emphasis, code, link, image, HTML
    tag or entity, and no table cell ends early); a line-starting marker (``-``, ``+``,
    ``1.``, blanks) escaped, so text that opens a list item cannot make a nested list,
    heading or code block; and a word joiner after ``@``, ``#``, a URL's ``:`` and
    ``www``, so no one is pinged, no issue is cross-referenced and no autolink is made.
    """
    out = for_terminal(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    out = _MD_AUTO.sub(_joined, _MD_INLINE.sub(r"\\\1", out))
    return _MD_LINE_START.sub(_line_start, out, count=1)


def markdown_code(text: str) -> str:
    """A code span in a table cell that shows ``text`` verbatim (after
    :func:`for_terminal`), whatever backticks, pipes or spaces it holds.

    Nothing inside a code span is markup, mention or autolink; the fence is one backtick
    longer than the longest run inside, and a space pads a span that starts or ends with a
    backtick, or with a space at both ends, which CommonMark would otherwise strip. Inside a
    GFM table a bare ``|`` would end the cell even in a code span, so it is written ``\\|``.
    """
    value = for_terminal(text)
    longest = max((len(run) for run in re.findall(r"`+", value)), default=0)
    fence = "`" * (longest + 1)
    both_blank = value.startswith(" ") and value.endswith(" ") and value.strip(" ") != ""
    pad = " " if value.startswith("`") or value.endswith("`") or both_blank else ""
    return f"{fence}{pad}{value.replace('|', chr(92) + '|')}{pad}{fence}"


# --- GitHub Actions workflow commands -----------------------------------------------------


_GITHUB_BREAKS = {"\r": "%0D", "\n": "%0A"}


def _github_char(char: str) -> str:
    return _GITHUB_BREAKS.get(char) or _escape_char(char)


def for_github_data(text: str) -> str:
    """A workflow command's message, escaped as the Actions runner decodes it.

    ``%``, CR and LF are percent-encoded (the runner turns them back into a multi-line
    annotation, and a raw line break would end the command); every other unprintable
    character is shown as a visible escape, as in :func:`for_terminal`, since the log
    renders ANSI sequences and bidi controls.
    """
    out = text.replace("%", "%25")
    if out.isprintable():
        return out
    return "".join(map(_github_char, out))


def for_github_property(text: str) -> str:
    """A workflow command's property value (``file=``, ``title=``): as a message, plus
    ``:`` and ``,``, which would end the value or start the message."""
    return for_github_data(text).replace(":", "%3A").replace(",", "%2C")


# --- SARIF -------------------------------------------------------------------------------


def for_sarif_text(text: str) -> str:
    """A SARIF plain-text message (``message.text``): one printable line, with ``[`` and
    ``]`` backslash-escaped as SARIF asks, since ``[text](target)`` in a message is an
    embedded link that viewers render as one."""
    return for_terminal(text).replace("[", "\\[").replace("]", "\\]")


# --- XML and HTML ---------------------------------------------------------------------------


def for_xml(text: str) -> str:
    """Text or an attribute value for XML 1.0 (JUnit): :func:`for_terminal`'s output holds
    only characters XML allows (no C0 but the ones it escapes, no U+FFFE/U+FFFF, no lone
    surrogate); ElementTree then escapes ``&``, ``<``, ``>`` and quotes."""
    return for_terminal(text)


def for_html(text: str) -> str:
    """Text or a double-quoted attribute value in HTML: one printable line, bidi controls
    shown as escapes, then ``& < > " '`` as character references."""
    return html.escape(for_terminal(text), quote=True)
