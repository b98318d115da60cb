"""Project settings: ``envpack.toml``, or ``[tool.envpack]`` in ``pyproject.toml``.

One file holds both the capture list (``[capture]``) and the diff policy (``[policy]``);
this module only finds and parses it, each subsystem reads its own table.

Example ``envpack.toml``::

    [capture]
    config = ["/etc/myapp/*.ini", "/srv/app/.env"]

    [policy]
    fail-on = "major"
    ignore = ["env/HOSTNAME", "network/interface:*.addresses"]
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from envpack._inputfile import TEXT_LIMIT, read_bounded
from envpack.errors import UsageError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.9/3.10 only
    import tomli as tomllib

__all__ = ["Settings", "find_settings", "load_settings"]


@dataclass(frozen=True)
class Settings:
    """The parsed settings table and where it came from (``None``: no file found)."""

    data: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    def table(self, name: str) -> dict[str, Any]:
        """A sub-table such as ``capture`` or ``policy``; empty when absent."""
        value = self.data.get(name, {})
        if not isinstance(value, dict):
            where = self.path or "settings"
            raise UsageError(f"{where}: [{name}] must be a table")
        return value


def find_settings(start: Path | None = None) -> Path | None:
    """The nearest ``envpack.toml`` or ``pyproject.toml`` with ``[tool.envpack]``.

    Looks in ``start`` (default: the current folder) and its parents, stopping at the
    first folder that holds either file.
    """
    found = _find(start)
    return None if found is None else found[0]


def _find(start: Path | None) -> tuple[Path, dict[str, Any] | None] | None:
    """:func:`find_settings`, with the pyproject.toml it had to parse (each file once)."""
    folder = (start or Path.cwd()).resolve()
    for candidate in (folder, *folder.parents):
        own = candidate / "envpack.toml"
        if own.is_file():
            return own, None
        pyproject = candidate / "pyproject.toml"
        if pyproject.is_file():
            data = _parse(pyproject)
            tool = data.get("tool")
            if isinstance(tool, dict) and "envpack" in tool:
                return pyproject, data
    return None


def load_settings(path: Path | None = None, *, search_from: Path | None = None) -> Settings:
    """Load the given settings file, or the one :func:`find_settings` finds."""
    data: dict[str, Any] | None = None
    if path is None:
        found = _find(search_from)
        if found is None:
            return Settings()
        path, data = found
    if data is None:
        data = _parse(path)
    if path.name == "pyproject.toml" or "tool" in data:
        data = data.get("tool", {}).get("envpack", {})
    if not isinstance(data, dict):
        raise UsageError(f"{path}: [tool.envpack] must be a table")
    return Settings(data=data, path=path)


def _parse(path: Path) -> dict[str, Any]:
    raw = read_bounded(path, limit=TEXT_LIMIT, what="settings file", error=UsageError)
    try:
        data: dict[str, Any] = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise UsageError(f"{path}: not a text file (not UTF-8)") from err
    except tomllib.TOMLDecodeError as err:
        raise UsageError(f"{path}: invalid TOML: {err}") from err
    except (RecursionError, ValueError) as err:  # nested too deeply; an integer too long
        raise UsageError(f"{path}: invalid TOML ({_first_line(err)})") from err
    return data


def _first_line(err: Exception) -> str:
    text = str(err).splitlines()[0] if str(err) else ""
    return text or type(err).__name__
