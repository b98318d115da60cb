"""The corpus of hostile strings (fixtures/hostile-text/strings.json) for the escaping tests."""

from __future__ import annotations

import json
from pathlib import Path

_CORPUS = json.loads(
    (Path(__file__).parents[1] / "fixtures" / "hostile-text" / "strings.json").read_text(
        encoding="ascii"
    )
)

TERMINAL: list[str] = _CORPUS["terminal"]
"""Control sequences (CSI, OSC, C1), line breaks, bidi and zero-width characters, lone
surrogates: what must never reach a terminal, a log or a document raw."""

MARKDOWN: list[str] = _CORPUS["markdown"]
"""Headings, lists, links, images, HTML, autolinks, mentions, table pipes: what must never
become live in a pull-request comment."""

ALL: list[str] = TERMINAL + MARKDOWN
