"""Registry credentials and the two auth schemes of the distribution spec.

Credentials come from the Docker config file ``docker login`` writes (``DOCKER_CONFIG``,
``credsStore`` and ``credHelpers`` included), read by the Docker SDK's own loader, or
from the command line (``--username`` with ``--password-stdin``).

On a 401 the registry's ``WWW-Authenticate`` challenge says what to do: ``Basic`` →
send the credentials; ``Bearer realm=…,service=…,scope=…`` → fetch a token from the
realm (with the credentials, if any) and send that. A token the registry refuses later
(expired in the middle of an upload) is fetched again once. Neither credentials nor
tokens ever appear in a message: errors name the host and the status only.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from envpack.registry.errors import AuthError, RegistryError

__all__ = ["Authenticator", "Challenge", "Credentials", "docker_config_credentials"]

_PARAM = re.compile(r'([A-Za-z][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))')


@dataclass(frozen=True)
class Credentials:
    """A user name and password, or an identity token (``docker login`` with OAuth)."""

    username: str = ""
    password: str = field(default="", repr=False)
    identity_token: str = field(default="", repr=False)

    def __bool__(self) -> bool:
        return bool(self.username or self.password or self.identity_token)

    def basic_header(self) -> str:
        pair = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(pair).decode("ascii")


def docker_config_credentials(host: str) -> Credentials:
    """What ``docker login HOST`` stored for ``host``; empty when nothing is stored.

    The Docker SDK finds the file (``DOCKER_CONFIG``, else ``~/.docker/config.json``),
    decodes ``auths`` and runs the credential helper a ``credsStore``/``credHelpers``
    entry names: envpack does not read the file itself.
    """
    import docker.auth
    import docker.errors

    try:
        config = docker.auth.load_config()
        entry: Any = docker.auth.resolve_authconfig(config, registry=host)
    except docker.errors.DockerException as err:
        # The SDK's message quotes the helper's error text, never the secret it returns.
        raise AuthError(f"{host}: cannot read the Docker credentials: {err}") from None
    if not isinstance(entry, dict):
        return Credentials()
    return Credentials(
        username=str(entry.get("Username") or entry.get("username") or ""),
        password=str(entry.get("Password") or entry.get("password") or ""),
        identity_token=str(entry.get("IdentityToken") or entry.get("identitytoken") or ""),
    )


def _login_hint(host: str) -> str:
    """What to do when the registry wants credentials and none were given."""
    return f"run `docker login {host}` or give --username and --password-stdin"


@dataclass(frozen=True)
class Challenge:
    """One parsed ``WWW-Authenticate`` header."""

    scheme: str
    params: dict[str, str]

    @classmethod
    def parse(cls, header: str) -> Challenge:
        scheme, _, rest = header.strip().partition(" ")
        params = {
            m.group(1).lower(): (m.group(2) if m.group(2) is not None else m.group(3))
            for m in _PARAM.finditer(rest)
        }
        return cls(scheme.lower(), params)


TokenFetcher = Callable[[str, dict[str, Any], "str | None", "dict[str, str] | None"], Any]
"""``(realm URL, query, Authorization header or None, OAuth form or None)`` → a
response (:class:`envpack.registry.http.Response`): a GET, or a POST of the form
(identity-token refresh)."""


class Authenticator:
    """The ``Authorization`` header to send to one registry, learned from its challenges."""

    def __init__(
        self,
        host: str,
        credentials: Credentials | Callable[[], Credentials],
        scopes: Iterable[str] = (),
    ) -> None:
        self.host = host
        self._credentials = credentials
        self.scopes = tuple(dict.fromkeys(scopes))
        self.header: str | None = None
        self.tokens_fetched = 0

    @property
    def credentials(self) -> Credentials:
        """Resolved on first use: a registry that never asks (a loopback one without
        auth) costs no Docker config lookup, nor the Docker SDK's import."""
        if not isinstance(self._credentials, Credentials):
            self._credentials = self._credentials()
        return self._credentials

    def add_scope(self, scope: str) -> None:
        """Ask for ``scope`` too at the next token fetch (a mount's source repository)."""
        if scope not in self.scopes:
            self.scopes = (*self.scopes, scope)
            if self.header is not None and self.header.startswith("Bearer "):
                self.header = None  # the current token does not cover it

    def answer(self, challenge_header: str | None, fetch: TokenFetcher) -> None:
        """Set :attr:`header` in answer to a 401; raise :class:`AuthError` when it cannot
        be answered (no challenge, no credentials for Basic, or the token server refuses)."""
        if not challenge_header:
            raise AuthError(f"{self.host}: 401 Unauthorized without a WWW-Authenticate challenge")
        challenge = Challenge.parse(challenge_header)
        if challenge.scheme == "basic":
            if not self.credentials:
                raise AuthError(f"{self.host}: authentication required; {_login_hint(self.host)}")
            if self.header == self.credentials.basic_header():
                raise AuthError(f"{self.host}: the registry refused the user name or password")
            self.header = self.credentials.basic_header()
            return
        if challenge.scheme == "bearer":
            self.header = "Bearer " + self._token(challenge, fetch)
            return
        raise AuthError(f"{self.host}: unsupported authentication scheme {challenge.scheme!r}")

    def refused(self, what: str) -> AuthError:
        """The error once the registry refused even the answer to its challenge."""
        if not self.credentials:
            # A token server that issues anonymous tokens (most public ones): the token
            # lacks push access, and logging in is what is missing.
            return AuthError(
                f"{self.host}: {what}: authentication required (the registry refused an "
                f"anonymous token); {_login_hint(self.host)}"
            )
        return AuthError(f"{self.host}: {what}: the registry refused the credentials")

    def _token(self, challenge: Challenge, fetch: TokenFetcher) -> str:
        realm = challenge.params.get("realm", "")
        if urlsplit(realm).scheme not in ("http", "https"):
            raise AuthError(f"{self.host}: the token realm is not an http(s) URL")
        scopes = list(dict.fromkeys([*self.scopes, *challenge.params.get("scope", "").split()]))
        query: dict[str, Any] = {"scope": [s for s in scopes if s]}
        if challenge.params.get("service"):
            query["service"] = challenge.params["service"]
        authorization = None
        form = None
        if self.credentials.identity_token:
            # An identity token is an OAuth2 refresh token (Docker's token spec: oauth.md).
            form = {
                "grant_type": "refresh_token",
                "refresh_token": self.credentials.identity_token,
                "service": str(query.get("service", "")),
                "scope": " ".join(query["scope"]),
                "client_id": "envpack",
            }
        elif self.credentials:
            authorization = self.credentials.basic_header()
        response = fetch(realm, query, authorization, form)
        realm_host = urlsplit(realm).netloc
        if response.status_code in (401, 403):
            if not self.credentials:
                # Nothing was sent to refuse: the user needs to log in, as with Basic.
                raise AuthError(
                    f"{self.host}: authentication required (the token server {realm_host} "
                    f"answered {response.status_code} without credentials); "
                    + _login_hint(self.host)
                )
            raise AuthError(
                f"{self.host}: the token server {realm_host} refused the credentials "
                f"({response.status_code})"
            )
        if response.status_code != 200:
            raise RegistryError(
                f"{self.host}: the token server {realm_host} answered {response.status_code}"
            )
        try:
            body = response.json()
        except ValueError:
            body = None
        token = body.get("token") or body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise AuthError(f"{self.host}: the token server {realm_host} sent no token")
        self.tokens_fetched += 1
        return token
