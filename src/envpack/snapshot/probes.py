"""The registry of probes, in the order they run.

Order matters: ``python_packages`` reads the site-packages folders that ``interpreters``
found; ``binaries`` and ``libraries`` name the Python distribution owning a file, and
``libraries`` resolves the ELF files that ``binaries`` and ``python_packages`` list.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from envpack.snapshot.context import CaptureContext

__all__ = ["PROBES", "PROBE_INPUTS", "ProbeFunction"]

ProbeFunction = Callable[[CaptureContext], None]


def _lazy(module: str) -> ProbeFunction:
    """The ``probe`` of ``envpack.snapshot.<module>``, imported on its first call.

    A capture with ``--only`` then imports only the probes it runs (ELF, YAML, network
    readers cost ~100 ms of start-up that a Python-only capture does not need).
    """

    def run(ctx: CaptureContext) -> None:
        importlib.import_module(f"envpack.snapshot.{module}").probe(ctx)

    run.__qualname__ = run.__name__ = f"{module}.probe"
    return run


PROBES: tuple[tuple[str, ProbeFunction], ...] = (
    ("interpreters", _lazy("interpreters")),
    ("python_packages", _lazy("python_packages")),
    # Binaries and libraries as early as they can run (their owners include the Python
    # distributions): their files hash in the background, collected by
    # CaptureContext.finish, while the lighter probes after them run.
    ("binaries", _lazy("binaries")),
    ("libraries", _lazy("libraries")),
    ("os", _lazy("os_info")),
    ("system_packages", _lazy("system_packages")),
    ("env", _lazy("env_vars")),
    ("config_files", _lazy("config_files")),
    ("network", _lazy("network")),
)

PROBE_INPUTS: dict[str, tuple[str, ...]] = {
    "python_packages": ("interpreters",),
    "libraries": ("interpreters", "python_packages", "binaries"),
}
"""The sections a probe reads; ``--only`` captures them too."""
