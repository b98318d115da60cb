"""Image references (``name:tag``): validated and normalised the way Docker does it.

``app:1`` is ``docker.io/library/app:1``; a first component with a dot or a port, or
``localhost``, is a registry. Digest references are not tags and are refused here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from envpack.errors import PackError

__all__ = ["InvalidReference", "Reference"]

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_PATH = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_DOMAIN = re.compile(
    r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
    r"(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*(?::[0-9]+)?"
)
_TAG = re.compile(r"[\w][\w.-]{0,127}")
_DEFAULT_DOMAIN = "docker.io"
_MAX_NAME = 255


class InvalidReference(PackError):
    """Text that is not an image name with an optional tag."""


@dataclass(frozen=True)
class Reference:
    """A tagged image name: ``domain/path:tag``."""

    domain: str
    path: str
    tag: str

    @classmethod
    def parse(cls, text: str) -> Reference:
        """Parse ``[domain/]path[:tag]``; the tag defaults to ``latest``."""
        if "@" in text:
            raise InvalidReference(f"image name {text!r}: a digest is not a tag")
        name, tag = text, "latest"
        last = text.rsplit("/", 1)[-1]
        if ":" in last:
            name, tag = text.rsplit(":", 1)
        first, slash, rest = name.partition("/")
        if slash and ("." in first or ":" in first or first == "localhost"):
            domain, path = first, rest
            if not _DOMAIN.fullmatch(domain):
                raise InvalidReference(f"image name {text!r}: bad registry {domain!r}")
        else:
            domain, path = _DEFAULT_DOMAIN, name
            if "/" not in path:
                path = f"library/{path}"
        if not _PATH.fullmatch(path) or len(f"{domain}/{path}") > _MAX_NAME:
            raise InvalidReference(
                f"image name {text!r}: use lowercase letters, digits and . _ - / only"
            )
        if not _TAG.fullmatch(tag):
            raise InvalidReference(f"image name {text!r}: bad tag {tag!r}")
        return cls(domain, path, tag)

    @property
    def full(self) -> str:
        """``docker.io/library/app:1``: what containerd stores."""
        return f"{self.domain}/{self.path}:{self.tag}"

    @property
    def familiar(self) -> str:
        """``app:1``: what ``docker images`` shows."""
        path = self.path
        if self.domain == _DEFAULT_DOMAIN:
            path = path.removeprefix("library/") if path.count("/") == 1 else path
            return f"{path}:{self.tag}"
        return f"{self.domain}/{path}:{self.tag}"
