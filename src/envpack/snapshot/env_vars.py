"""Probe: (being written)."""

from __future__ import annotations

from envpack.snapshot.context import CaptureContext

__all__ = ["probe"]


def probe(ctx: CaptureContext) -> None:
    """Not written yet."""
