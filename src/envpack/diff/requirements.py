"""``--requirements FILE``: the application's declared needs, checked in each environment.

The file is a ``requirements.txt`` (comments, ``\\`` continuations, ``-r``/``--requirement``
includes relative to the including file, per-line ``--hash`` options, environment markers)
or a ``pyproject.toml`` (``[project] dependencies`` and ``requires-python``). Editable
(``-e``) and bare URL lines say nothing about a version and are skipped with a note;
``-c`` constraint files and installer options (``-i``, ``--find-links`` …) are ignored.

Each requirement is evaluated with the environment's *primary interpreter*: its recorded
PEP 508 marker environment (component field ``markers``) decides whether the requirement
applies, and the installed version (``python_packages``) must satisfy the specifier,
pre-releases allowed. Every miss is a critical change in section ``requirements``: its key
is the requirement without markers (``requests>=2.31``, ``python>=3.9`` for
requires-python), its field the name of the environment that misses it, ``after`` that
environment's version (``None``: not installed) and the reason reads
``prod: requests 2.27.1 does not satisfy requests>=2.31``. (The engine sets ``before`` to
the baseline's version, so a report's columns show what each side has.)
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.markers import InvalidMarker, UndefinedComparison, UndefinedEnvironmentName
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from envpack._inputfile import TEXT_LIMIT, read_bounded
from envpack.diff.compare import PRIMARY, primary_key
from envpack.diff.model import Change, ChangeKind, Severity
from envpack.errors import DiffError
from envpack.manifest import CAPTURED, Manifest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.9/3.10 only
    import tomli as tomllib

__all__ = ["SECTION", "Declared", "check", "load_requirements"]

SECTION = "requirements"
_REQUIRES_PYTHON = "requires-python"
"""Prefix of the ``requires-python`` check's key (``requires-python>=3.9``): unlike
``python``, it cannot be the name of a package someone requires."""

_MAX_INCLUDE_DEPTH = 20
_IGNORED_OPTIONS = (
    "-i",
    "--index-url",
    "--extra-index-url",
    "--no-index",
    "-f",
    "--find-links",
    "--pre",
    "--trusted-host",
    "--prefer-binary",
    "--only-binary",
    "--no-binary",
    "--require-hashes",
    "--use-feature",
    "-Z",
    "--always-unzip",
)


@dataclass
class Declared:
    """What a requirements file declares."""

    source: str
    requirements: list[Requirement] = field(default_factory=list)
    requires_python: SpecifierSet | None = None
    notes: list[str] = field(default_factory=list)
    """Lines skipped on purpose (editables, URLs), to tell the user."""

    @property
    def targets(self) -> dict[str, tuple[str, str]]:
        """Each check's key → the ``(section, key)`` whose ``version`` it looks at, so
        a report can show what every environment has for it."""
        out: dict[str, tuple[str, str]] = {
            _shown(r): ("python_packages", str(canonicalize_name(r.name)))
            for r in self.requirements
        }
        if self.requires_python is not None:
            out[f"{_REQUIRES_PYTHON}{self.requires_python}"] = ("interpreters", PRIMARY)
        return out


def _shown(requirement: Requirement) -> str:
    """A requirement as reports show it: without its marker."""
    return str(requirement).split(";", 1)[0].strip()


def load_requirements(path: Path) -> Declared:
    """Parse a requirements.txt or pyproject.toml; a :class:`DiffError` names file and line."""
    if path.name == "pyproject.toml" or path.suffix == ".toml":
        return _load_pyproject(path)
    declared = Declared(source=str(path))
    _load_txt(path, declared, depth=0, seen=set())
    return declared


def _read(path: Path) -> str:
    data = read_bounded(path, limit=TEXT_LIMIT, what="requirements file", error=DiffError)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise DiffError(f"{path}: not a text file (not UTF-8)") from err


def _load_pyproject(path: Path) -> Declared:
    try:
        data = tomllib.loads(_read(path))
    except tomllib.TOMLDecodeError as err:
        raise DiffError(f"{path}: invalid TOML: {err}") from err
    except (RecursionError, ValueError) as err:  # nested too deeply; an integer too long
        raise DiffError(f"{path}: invalid TOML ({str(err).splitlines()[0]})") from err
    project = data.get("project")
    if not isinstance(project, dict):
        raise DiffError(f"{path}: no [project] table to read dependencies from")
    declared = Declared(source=str(path))
    dependencies = project.get("dependencies", [])
    if not isinstance(dependencies, list) or not all(isinstance(d, str) for d in dependencies):
        raise DiffError(f"{path}: [project] dependencies must be a list of strings")
    declared.requirements.extend(
        _requirement(text, f"{path}: dependency {index}")
        for index, text in enumerate(dependencies, 1)
    )
    requires_python = project.get("requires-python")
    if requires_python is not None:
        try:
            declared.requires_python = SpecifierSet(str(requires_python))
        except InvalidSpecifier as err:
            raise DiffError(f"{path}: requires-python {requires_python!r}: {err}") from err
    return declared


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """Lines joined at trailing backslashes, comments removed, with their first line number."""
    out: list[tuple[int, str]] = []
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw
        if line.lstrip().startswith("#"):
            line = ""
        elif " #" in line or "\t#" in line:
            line = line[: min(i for i in (line.find(" #"), line.find("\t#")) if i >= 0)]
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        joined = (pending + line).strip()
        pending = ""
        if joined:
            out.append((start, joined))
    if pending.strip():
        out.append((start, pending.strip()))
    return out


def _load_txt(path: Path, declared: Declared, *, depth: int, seen: set[Path]) -> None:
    resolved = path.resolve()
    if resolved in seen or depth > _MAX_INCLUDE_DEPTH:
        raise DiffError(f"{path}: requirements files include each other in a loop")
    seen = seen | {resolved}
    for number, line in _logical_lines(_read(path)):
        where = f"{path}:{number}"
        option, _, rest = line.partition(" ")
        if "=" in option and option.startswith("--"):
            option, _, rest = line.partition("=")
        rest = rest.strip()
        if option in ("-r", "--requirement"):
            if not rest:
                raise DiffError(f"{where}: {option} needs a file name")
            _load_txt(path.parent / rest, declared, depth=depth + 1, seen=seen)
            continue
        if option in ("-c", "--constraint") or option in _IGNORED_OPTIONS:
            continue  # constraints and installer options say nothing the app requires
        if option in ("-e", "--editable"):
            declared.notes.append(f"{where}: editable requirement {rest!r} not checked")
            continue
        if line.startswith("-"):
            raise DiffError(f"{where}: unknown option {option!r} in a requirements file")
        if "://" in line.split(" @ ", 1)[0] or line.startswith(("./", "../", "/")):
            declared.notes.append(f"{where}: URL or path requirement {line!r} not checked")
            continue
        declared.requirements.append(_requirement(line.split(" --hash", 1)[0].strip(), where))


def _requirement(text: str, where: str) -> Requirement:
    try:
        return Requirement(text)
    except InvalidRequirement as err:
        # packaging's message may add a line with a caret under the error: keep line one.
        message = str(err).splitlines()[0] if str(err) else "cannot parse"
        raise DiffError(f"{where}: invalid requirement {text!r}: {message}") from err


# --- checking ----------------------------------------------------------------------------


def _primary(manifest: Manifest) -> dict[str, Any] | None:
    interpreters = manifest.section("interpreters")
    key = primary_key(interpreters)
    return None if key is None else interpreters[key]


def _installed(manifest: Manifest, name: str) -> str | None:
    component = manifest.section("python_packages").get(canonicalize_name(name))
    if component is None:
        return None
    version = component.get("version")
    return version if isinstance(version, str) else None


def _applies(requirement: Requirement, markers: dict[str, Any] | None) -> bool:
    if requirement.marker is None:
        return True
    if markers is None:
        return True  # no recorded interpreter: check it rather than silently skip it
    environment = {k: v for k, v in markers.items() if isinstance(v, str)}
    # The application is installed without extras: `extra == "x"` lines do not apply.
    environment.setdefault("extra", "")
    try:
        return requirement.marker.evaluate(environment)
    except (UndefinedComparison, UndefinedEnvironmentName, InvalidMarker, InvalidVersion):
        # A marker the recorded environment cannot answer: check rather than skip.
        return True


def _satisfies(specifier: SpecifierSet, version: str) -> bool:
    try:
        return specifier.contains(Version(version), prereleases=True)
    except InvalidVersion:
        # A legacy version can only match a specifier by exact text (=== or ==).
        return any(s.operator in ("==", "===") and s.version == version for s in specifier)


def check(declared: Declared, manifest: Manifest, name: str | None = None) -> list[Change]:
    """Every declared need that ``manifest``'s environment does not meet (critical).

    ``name``: what reasons call the environment (default: the manifest's own name).
    """
    env = name if name is not None else manifest.name
    interpreter = _primary(manifest)
    raw_markers = interpreter.get("markers") if interpreter else None
    markers = raw_markers if isinstance(raw_markers, dict) else None
    changes: list[Change] = []
    if declared.requires_python is not None and interpreter is not None:
        version = interpreter.get("version")
        wanted = f"requires-python {declared.requires_python}"
        if isinstance(version, str) and not _satisfies(declared.requires_python, version):
            changes.append(
                Change(
                    SECTION,
                    f"{_REQUIRES_PYTHON}{declared.requires_python}",
                    env,
                    None,
                    version,
                    ChangeKind.UNSATISFIED,
                    Severity.CRITICAL,
                    f"{env}: Python {version} does not satisfy {wanted}",
                )
            )
    if manifest.coverage_of("python_packages") != CAPTURED:
        return changes  # not looked at is not missing (the diff's coverage row says so)
    seen: set[tuple[str, str]] = set()
    for requirement in declared.requirements:
        if not _applies(requirement, markers):
            continue
        name = canonicalize_name(requirement.name)
        shown = _shown(requirement)
        installed = _installed(manifest, name)
        if installed is None:
            reason = f"{env}: {requirement.name} is not installed (required: {shown})"
        elif not requirement.specifier or _satisfies(requirement.specifier, installed):
            continue
        else:
            reason = f"{env}: {requirement.name} {installed} does not satisfy {shown}"
        if (name, reason) in seen:
            continue
        seen.add((name, reason))
        changes.append(
            Change(
                SECTION,
                shown,
                env,
                None,
                installed,
                ChangeKind.UNSATISFIED,
                Severity.CRITICAL,
                reason,
            )
        )
    return changes
