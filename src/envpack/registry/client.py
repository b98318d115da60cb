"""A small client of the OCI distribution API, on :mod:`envpack.registry.http`.

One :class:`RegistryClient` speaks to one registry host: it adds the ``Authorization``
header its :class:`~envpack.registry.auth.Authenticator` learned, answers 401 challenges
(a Bearer token is fetched again when the registry refuses it mid-upload), and retries
what is worth retrying (a connection reset or timeout, 429, 500, 502, 503, 504) with
exponential backoff, honouring ``Retry-After``. Everything else comes back to the caller,
which words the one-line error with :meth:`RegistryClient.error`.

Messages never quote a URL's query (upload state) or a header: only the host, the
operation, the status and the registry's own error codes, masked by
:func:`envpack.redact.mask` on the way out.
"""

from __future__ import annotations

import functools
import http.client
import json
import random
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Collection
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

from envpack import __version__
from envpack.registry.auth import Authenticator, Credentials
from envpack.registry.errors import AuthError, RegistryError, TransientError
from envpack.registry.http import (
    ConnectionFailed,
    ProxyUnusable,
    Response,
    Transport,
    proxy_for,
)
from envpack.registry.refs import RegistryRef

__all__ = ["TRANSIENT_STATUS", "Body", "RegistryClient"]

TRANSIENT_STATUS = frozenset({429, 500, 502, 503, 504})
_MAX_SLEEP = 30.0
Body = Callable[[], object]
"""Makes the request body afresh for each attempt (a file is reopened at its offset)."""


class RegistryClient:
    """Requests to one registry host with auth and retries; thread-safe (a keep-alive
    connection per thread, one shared authenticator)."""

    def __init__(
        self,
        host: str,
        base_url: str,
        *,
        credentials: Credentials | Callable[[], Credentials] | None = None,
        scopes: Collection[str] = (),
        retries: int = 4,
        backoff: float = 0.5,
        timeout: tuple[float, float] = (15.0, 300.0),
    ) -> None:
        self.host = host
        self.base_url = base_url.rstrip("/")
        try:  # a proxy the environment names but no client could use: say so at once
            proxy_for(urlsplit(self.base_url).scheme, urlsplit(self.base_url).netloc)
        except ProxyUnusable as err:
            raise RegistryError(f"{host}: {err}") from None
        self.auth = Authenticator(host, credentials or Credentials(), scopes)
        self.retries = retries
        self.backoff = backoff
        self.timeout = timeout
        self.calls: Counter[str] = Counter()
        """``"METHOD kind"`` → count of requests sent (tests and benchmarks read it)."""
        self._transport = Transport(f"envpack/{__version__}", timeout)
        self._lock = threading.Lock()  # the call counters
        self._auth_lock = threading.Lock()  # one thread answers a challenge at a time

    @classmethod
    def for_ref(
        cls,
        ref: RegistryRef,
        *,
        credentials: Credentials | None = None,
        insecure: bool = False,
        push: bool = True,
        **kwargs: Any,
    ) -> RegistryClient:
        """A client for ``ref``'s host, asking for pull (and push) on its repository.

        ``credentials`` ``None``: what ``docker login`` stored for the host, if anything,
        looked up when the registry first asks for credentials.
        """
        lazy: Credentials | Callable[[], Credentials]
        if credentials is None:
            from envpack.registry.auth import docker_config_credentials

            lazy = functools.partial(docker_config_credentials, ref.host)
        else:
            lazy = credentials
        actions = "pull,push" if push else "pull"
        return cls(
            ref.host,
            ref.base_url(insecure=insecure),
            credentials=lazy,
            scopes=(f"repository:{ref.repository}:{actions}",),
            **kwargs,
        )

    def ping(self) -> None:
        """``GET /v2/``: learns the auth scheme once, before parallel requests start."""
        response = self.request("GET", "/v2/", what="connecting", kind="ping")
        response.close()
        if response.status_code not in (200, 404):
            raise self.error(response, "connecting")

    def close(self, *, other_threads_only: bool = False) -> None:
        """Close the keep-alive connections (a later request opens a new one).

        ``other_threads_only``: those of worker threads that have finished, keeping this
        thread's own for the requests it still makes.
        """
        self._transport.close(other_threads_only=other_threads_only)

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing -------------------------------------------------------------------------

    def url(self, path_or_location: str) -> str:
        """An API path (``/v2/…``) or a ``Location`` header (absolute or relative) as a URL."""
        return urljoin(self.base_url + "/", path_or_location)

    def _sleep(self, attempt: int, response: Response | None) -> None:
        delay = self.backoff * (2**attempt) * (1 + random.random() / 4)  # noqa: S311 - jitter
        if response is not None:
            after = response.headers.get("Retry-After", "")
            if after.isdigit():
                delay = max(delay, float(after))
        time.sleep(min(delay, _MAX_SLEEP))

    def _fetch_token(
        self, realm: str, query: dict[str, Any], authorization: str | None,
        form: dict[str, str] | None,
    ) -> Response:  # fmt: skip
        headers = {"Authorization": authorization} if authorization else {}
        for attempt in range(self.retries + 1):
            try:
                with self._lock:
                    self.calls["GET token" if form is None else "POST token"] += 1
                if form is None:
                    query_text = urlencode(query, doseq=True)
                    url = realm + ("&" if "?" in realm else "?") + query_text
                    response = self._transport.request("GET", url, headers=headers, follow=True)
                else:
                    response = self._transport.request(
                        "POST",
                        realm,
                        headers={"Content-Type": "application/x-www-form-urlencoded"},
                        body=urlencode(form).encode("ascii"),
                    )
                response.content  # noqa: B018 - read whole: the connection is free again
            except ConnectionFailed as err:
                if attempt >= self.retries:
                    raise TransientError(
                        f"{self.host}: cannot reach its token server ({_reason(err)})"
                    ) from None
                self._sleep(attempt, None)
                continue
            if response.status_code in TRANSIENT_STATUS and attempt < self.retries:
                self._sleep(attempt, response)
                continue
            return response
        raise AssertionError("unreachable")

    def request(
        self,
        method: str,
        path: str,
        *,
        what: str,
        kind: str = "",
        headers: dict[str, str] | None = None,
        body: Body | None = None,
        stream: bool = False,
        retry: bool = True,
    ) -> Response:
        """Send one API request, answering auth challenges and retrying transient errors
        (unless ``retry`` is False: the caller restarts a whole upload instead).

        Returns the response of any other status; ``what`` names the operation in errors.
        """
        url = self.url(path)
        attempt = 0
        challenges = 0
        while True:
            sent = dict(headers or {})
            if self.auth.header is not None:
                sent["Authorization"] = self.auth.header
            data = body() if body is not None else None
            with self._lock:
                self.calls[f"{method} {kind}".strip()] += 1
            try:
                response = self._transport.request(
                    method,
                    url,
                    headers=sent,
                    body=data,  # bytes or a FileSlice (read, and its Content-Length)
                    # Redirects only for reads, without Authorization on another host.
                    follow=method in ("GET", "HEAD"),
                )
                if not stream and method != "HEAD":
                    response.content  # noqa: B018 - read whole: the connection is free again
            except ConnectionFailed as err:
                if retry and attempt < self.retries:
                    self._sleep(attempt, None)
                    attempt += 1
                    continue
                raise TransientError(f"{self.host}: {what}: {_reason(err)}") from None
            finally:
                if data is not None and hasattr(data, "close"):
                    data.close()
            if response.status_code == 401:
                challenges += 1
                challenge = response.headers.get("WWW-Authenticate")
                response.close()
                if challenges > 2:
                    raise self.auth.refused(what)
                with self._auth_lock:
                    # Another thread may have answered the same challenge meanwhile.
                    if sent.get("Authorization") == self.auth.header or challenges > 1:
                        self.auth.answer(challenge, self._fetch_token)
                continue
            if response.status_code in TRANSIENT_STATUS and retry and attempt < self.retries:
                response.close()
                self._sleep(attempt, response)
                attempt += 1
                continue
            if response.status_code in TRANSIENT_STATUS:
                response.close()
                raise TransientError(
                    f"{self.host}: {what}: the registry answered {response.status_code} "
                    f"{response.reason or ''}".rstrip()
                )
            return response

    def error(self, response: Response, what: str) -> RegistryError:
        """The one-line error for an unexpected answer: status and the registry's codes."""
        from envpack.redact import mask

        detail = ""
        try:
            data = response.read(65537)
            body = json.loads(data) if len(data) <= 65536 else None
        except (ValueError, ConnectionFailed):
            body = None
        if isinstance(body, dict) and isinstance(body.get("errors"), list):
            parts = []
            for item in body["errors"][:3]:
                if isinstance(item, dict):
                    code = str(item.get("code", ""))[:64]
                    message = str(item.get("message", ""))[:200]
                    parts.append(f"{code}: {message}" if message else code)
            detail = "; ".join(p for p in parts if p)
        status = f"{response.status_code} {response.reason or ''}".strip()
        response.close()
        kind = AuthError if response.status_code == 403 else RegistryError
        text = f"{self.host}: {what}: {status}" + (f" ({detail})" if detail else "")
        return kind(mask(" ".join(text.split())))


def _chain(err: BaseException) -> list[BaseException]:
    """``err`` and its causes, outermost first."""
    chain: list[BaseException] = []
    cause: BaseException | None = err
    while cause is not None and cause not in chain:
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    return chain


def _proxy_reason(chain: list[BaseException], text: str) -> str | None:
    """What went wrong with the environment's proxy, if that is what failed."""
    for cause in chain:
        if isinstance(cause, ProxyUnusable):
            return str(cause)
    tunnel = re.search(r"Tunnel connection failed: (\d{3})", text)
    if tunnel:
        return f"the proxy refused the tunnel ({tunnel.group(1)})"
    return None


def _reason(err: Exception) -> str:
    """A short cause of a connection failure; never a URL (its query holds upload state)."""
    chain = _chain(err)
    for cause in chain:
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, BrokenPipeError):
            return "connection closed while sending"
        if isinstance(cause, http.client.RemoteDisconnected):
            return "connection closed by the registry"
        if isinstance(cause, ConnectionResetError):
            return "connection reset"
        if isinstance(cause, ConnectionAbortedError):
            return "connection aborted"
        if isinstance(cause, TimeoutError):
            return "timed out"
        if isinstance(cause, socket.gaierror):
            return "host not found"
    text = " ".join(type(c).__name__ + " " + str(c) for c in chain)
    proxy = _proxy_reason(chain, text)
    if proxy:
        return proxy
    for needle, words in (
        ("CERTIFICATE_VERIFY_FAILED", "TLS certificate not trusted"),
        ("WRONG_VERSION_NUMBER", "not speaking TLS (try --insecure for plain HTTP)"),
        ("too many redirects", "too many redirects"),
    ):
        if needle in text:
            return words
    return "connection failed"
