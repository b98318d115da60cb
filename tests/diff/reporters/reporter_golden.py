"""Golden-file support for the reporter tests: the comparison and the redactor.

Golden files live in golden/; ``pytest --regen-golden`` rewrites them from the current
output (the option is declared in tests/conftest.py). Review the git diff after.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from envpack import __version__

GOLDEN_DIR = Path(__file__).parent / "golden"

# File name ending of each format's golden files.
EXTENSION = {
    "table": "txt",
    "json": "json",
    "markdown": "md",
    "junit": "xml",
    "sarif": "sarif",
    "github": "txt",
    "html": "html",
}

_FINGERPRINT = re.compile(r"hmac-sha256:[0-9a-f]{32}")
_SARIF_DRIVER_VERSION = re.compile(
    r'("name": "envpack",\s*"version": )"[^"]*"(,\s*"semanticVersion": )"[^"]*"'
)
_ENVPACK_VERSION = re.compile(r"\benvpack " + re.escape(__version__) + r"\b")


def redact(text: str, replacements: Mapping[str, str] | None = None) -> str:
    """Replace what changes between runs (envpack's version, fingerprints, given paths).

    ``replacements`` maps run-specific strings (a temporary folder, a virtualenv path) to
    stable placeholders; longer ones are replaced first so a path never loses its prefix
    to a shorter one.
    """
    for old in sorted(replacements or {}, key=len, reverse=True):
        text = text.replace(old, (replacements or {})[old])
    text = _FINGERPRINT.sub("hmac-sha256:<FINGERPRINT>", text)
    text = _SARIF_DRIVER_VERSION.sub(r'\1"<VERSION>"\2"<VERSION>"', text)
    return _ENVPACK_VERSION.sub("envpack <VERSION>", text)


@dataclass
class Golden:
    """Compares a report with ``golden/<name>``, or rewrites it under --regen-golden.

    Made from ``pytestconfig`` rather than a conftest fixture: a second conftest.py would
    clash with tests/conftest.py as module ``conftest`` for mypy (no packages in tests/).
    """

    regen: bool
    directory: Path = GOLDEN_DIR
    written: list[Path] = field(default_factory=list)

    @classmethod
    def of(cls, config: pytest.Config) -> Golden:
        return cls(regen=bool(config.getoption("--regen-golden")))

    def check(self, name: str, text: str) -> None:
        path = self.directory / name
        data = text.encode("utf-8")
        if self.regen:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            self.written.append(path)
            return
        if not path.exists():
            pytest.fail(f"golden file {path} is missing: run pytest with --regen-golden")
        expected = path.read_bytes()
        if expected != data:
            # Show text, not bytes: pytest's diff of two strings points at the first change.
            assert data.decode("utf-8") == expected.decode("utf-8"), (
                f"{name} differs from its golden file; if the change is intended, "
                "regenerate with --regen-golden and review the diff"
            )
