"""Package namespaces that import their submodules on first use (PEP 562).

``from envpack.registry.push import push_layout`` runs ``envpack/registry/__init__.py``
first: were that file to import every submodule, the CLI's ``push`` would pay for the
artifact, referrer and builder code it never calls (and ``envpack --help`` for all of it).
A package lists what it re-exports in a table instead; a name is imported when asked for.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(namespace: dict[str, Any], table: Mapping[str, str]) -> Callable[[str], Any]:
    """The module ``__getattr__`` of the package whose ``globals()`` is ``namespace``:
    ``table`` maps an exported name to the submodule that defines it."""
    package = str(namespace["__name__"])

    def __getattr__(name: str) -> Any:  # noqa: N807 - the module hook's own name
        module = table.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        namespace[name] = value  # the next lookup finds it without this hook
        return value

    return __getattr__
