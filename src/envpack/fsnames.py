"""File names as the manifest records them: lossless text for names that are not UTF-8.

A Linux file name is bytes. Python hands the bytes that do not decode as UTF-8 over as
lone surrogates (PEP 383, ``surrogateescape``), which JSON cannot carry. The manifest
records every name that comes from a file system (a folder listing, a symlink target, an
interpreter's ``sys.path``, a string inside an ELF file) as:

- the name itself, when it is valid UTF-8 and holds no ``%``;
- otherwise percent-encoded: each byte that is not part of valid UTF-8 as ``%XX``
  (upper-case hex), each ``%`` as ``%25``, every other character unchanged.

So a recorded name without ``%`` is exactly the name, and one with ``%`` gives back the
exact bytes with ``urllib.parse.unquote_to_bytes`` (``b"caf\\xe9"`` is ``caf%E9``,
``100%.txt`` is ``100%25.txt``). The escaped form is plain text, so every report renders
it as it is.
"""

from __future__ import annotations

import codecs
import re
from urllib.parse import unquote_to_bytes

__all__ = ["escape", "escape_bytes", "has_surrogates", "unescape"]

_HANDLER = "envpack-percent"


def _percent(err: UnicodeError) -> tuple[str, int]:
    if not isinstance(err, UnicodeDecodeError):
        raise err
    bad = err.object[err.start : err.end]
    return "".join(f"%{byte:02X}" for byte in bad), err.end


codecs.register_error(_HANDLER, _percent)

_SURROGATE = re.compile("[\ud800-\udfff]")


def has_surrogates(text: str) -> bool:
    """Whether ``text`` holds a lone surrogate (an undecodable byte, for a file name)."""
    return not text.isascii() and _SURROGATE.search(text) is not None


def escape_bytes(raw: bytes) -> str:
    """The recorded form of a name given as bytes."""
    if b"%" not in raw:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            pass
    return raw.replace(b"%", b"%25").decode("utf-8", _HANDLER)


def escape(name: str) -> str:
    """The recorded form of a name as Python's ``os`` functions give it (surrogateescape)."""
    if "%" not in name and (name.isascii() or not has_surrogates(name)):
        return name
    try:
        raw = name.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate no file system gave: keep its code point
        raw = name.encode("utf-8", "surrogatepass")
    return escape_bytes(raw)


def unescape(text: str) -> str:
    """The name (surrogateescape, ready for ``os`` calls) that ``text`` records.

    A path typed by a user is rarely in recorded form (``/etc/100%.conf``): only text that
    is exactly what :func:`escape` would write is decoded, anything else is taken as it is.
    """
    if "%" not in text:
        return text
    name = unquote_to_bytes(text).decode("utf-8", "surrogateescape")
    return name if escape(name) == text else text
