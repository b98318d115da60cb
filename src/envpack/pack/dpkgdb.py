"""A package database for the image listing exactly the system packages it holds.

Scanners (syft, trivy) and ``dpkg-query --admindir`` read ``/var/lib/dpkg/status`` (apk:
``/lib/apk/db/installed``); the image's copy keeps the source's own paragraphs verbatim,
only for the packages that own a shipped file, so what they report is true of the image.
"""

from __future__ import annotations

import re
from collections.abc import Collection

from envpack.snapshot.apk_db import parse_records
from envpack.snapshot.dpkg_status import on_disk_state, parse_paragraphs

__all__ = ["APK_INSTALLED", "DPKG_STATUS", "filter_apk_installed", "filter_dpkg_status"]

DPKG_STATUS = "/var/lib/dpkg/status"
APK_INSTALLED = "/lib/apk/db/installed"
_BLANK_LINES = re.compile(r"\n[ \t]*\n")


def _chunks(text: str) -> list[str]:
    return [chunk.strip("\n") for chunk in _BLANK_LINES.split(text) if chunk.strip()]


def filter_dpkg_status(text: str, packages: Collection[str]) -> str:
    """The paragraphs of packages named in ``packages`` (``name`` or ``name:arch``) whose
    files are on disk, verbatim, in the source's order.

    On disk, as the capture counts them (:func:`on_disk_state`): a package waiting for a
    trigger or not yet configured owns files the image ships, so the image lists it too,
    in the state the source had it.
    """
    kept: list[str] = []
    for chunk in _chunks(text):
        fields = next(parse_paragraphs(chunk), {})
        name = fields.get("package", "")
        installed = on_disk_state(fields.get("status", "")) is not None
        qualified = f"{name}:{fields.get('architecture', '')}"
        if installed and (name in packages or qualified in packages):
            kept.append(chunk)
    return "".join(chunk + "\n\n" for chunk in kept)


def filter_apk_installed(text: str, packages: Collection[str]) -> str:
    """apk's records of the packages named in ``packages``, verbatim."""
    kept = []
    for chunk in _chunks(text):
        fields = next(parse_records(chunk), {})
        if fields.get("P", "") in packages:
            kept.append(chunk)
    return "".join(chunk + "\n\n" for chunk in kept)
