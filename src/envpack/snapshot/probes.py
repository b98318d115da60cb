"""The registry of probes, in the order they run.

Order matters: ``python_packages`` reads the site-packages folders that ``interpreters``
found; ``libraries`` resolves the ELF files that ``binaries`` and ``python_packages`` list.
"""

from __future__ import annotations

from collections.abc import Callable

from envpack.snapshot.context import CaptureContext

__all__ = ["PROBES", "ProbeFunction"]

ProbeFunction = Callable[[CaptureContext], None]


def _probes() -> tuple[tuple[str, ProbeFunction], ...]:
    from envpack.snapshot import env_vars, interpreters, os_info, python_packages, system_packages

    return (
        ("interpreters", interpreters.probe),
        ("python_packages", python_packages.probe),
        ("os", os_info.probe),
        ("system_packages", system_packages.probe),
        ("env", env_vars.probe),
    )


PROBES = _probes()
