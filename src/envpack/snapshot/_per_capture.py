"""State several probes of one capture share (hash cache, loader, owner index).

``CaptureContext`` is the natural home for it, but it is a plain dataclass other modules
own; a side table keyed by the context's identity keeps this state out of it, and a
``weakref.finalize`` drops (and closes) it when the capture's context goes away.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any, TypeVar, cast

from envpack.snapshot.context import CaptureContext

__all__ = ["per_capture"]

T = TypeVar("T")

_store: dict[int, dict[str, Any]] = {}


def per_capture(ctx: CaptureContext, name: str, factory: Callable[[], T]) -> T:
    """The ``name`` object of this capture, made by ``factory`` on first use."""
    slot = _store.get(id(ctx))
    if slot is None:
        slot = _store[id(ctx)] = {}
        weakref.finalize(ctx, _drop, id(ctx))
    if name not in slot:
        slot[name] = factory()
    return cast("T", slot[name])


def _drop(key: int) -> None:
    for value in (_store.pop(key, None) or {}).values():
        close = getattr(value, "close", None)
        if callable(close):
            close()
