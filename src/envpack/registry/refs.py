"""Registry references: ``HOST/REPO:TAG`` or ``HOST/REPO@sha256:…``, and the host's URL.

Names follow Docker's rules (:class:`envpack.oci.reference.Reference`): ``app:1`` is
``docker.io/library/app:1``, whose API host is ``registry-1.docker.io``. A loopback host
(``localhost``, ``127.0.0.0/8``, ``[::1]``) is spoken to over plain HTTP, like Docker and
skopeo do for a local registry; any other host over HTTPS unless ``insecure`` is asked.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from envpack.oci.digest import Digest, InvalidDigest
from envpack.oci.reference import InvalidReference, Reference

__all__ = ["REGISTRY_PREFIX", "RegistryRef", "is_loopback", "is_registry_argument"]

REGISTRY_PREFIX = "registry:"
_DOCKER_HUB = "docker.io"
_DOCKER_HUB_API = "registry-1.docker.io"


def is_registry_argument(text: str) -> bool:
    """Whether a command-line argument names a registry artifact (``registry:…``)."""
    return text.startswith(REGISTRY_PREFIX)


def is_loopback(host: str) -> bool:
    """``localhost``, ``127.x.y.z`` or ``[::1]``, with or without a port."""
    if host.startswith("["):
        name = host[1 : host.find("]")] if "]" in host else host
    else:
        name = host.partition(":")[0]
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class RegistryRef:
    """A repository on a registry host and a tag or a digest in it."""

    host: str
    """As written (``docker.io``, ``127.0.0.1:5000``): the key of credentials."""
    repository: str
    tag: str | None = None
    digest: Digest | None = None

    @classmethod
    def parse(cls, text: str) -> RegistryRef:
        """``HOST/REPO[:TAG]`` or ``HOST/REPO@sha256:HEX``; ``registry:`` may lead."""
        body = text.removeprefix(REGISTRY_PREFIX)
        name, at, digest_text = body.partition("@")
        digest = None
        if at:
            try:
                digest = Digest.parse(digest_text)
            except InvalidDigest as err:
                raise InvalidReference(f"{text!r}: {err}") from None
        parsed = Reference.parse(name if at else body)
        if at and parsed.tag != "latest" and name.endswith(f":{parsed.tag}"):
            raise InvalidReference(f"{text!r}: give a tag or a digest, not both")
        return cls(parsed.domain, parsed.path, None if at else parsed.tag, digest)

    @property
    def api_host(self) -> str:
        return _DOCKER_HUB_API if self.host == _DOCKER_HUB else self.host

    @property
    def reference(self) -> str:
        """The manifest reference in the API path: the tag, or the digest."""
        return str(self.digest) if self.digest is not None else (self.tag or "latest")

    def base_url(self, *, insecure: bool = False) -> str:
        scheme = "http" if insecure or is_loopback(self.host) else "https"
        return f"{scheme}://{self.api_host}"

    def __str__(self) -> str:
        at = f"@{self.digest}" if self.digest is not None else f":{self.tag}"
        return f"{self.host}/{self.repository}{at}"
