"""The registry client's HTTP/1.1 transport, on the standard library's ``http.client``.

Why not ``requests``: importing it (with urllib3 and charset_normalizer) costs ~0.25 s of
CPU, which was half of an ``envpack push`` of an unchanged image and a tenth of a first
one. The client needs little of it: keep-alive connections (one per thread and origin),
TLS with the system's trust store, timeouts, a streamed request body with a known
length, redirects for reads, and the proxy the environment names (``HTTPS_PROXY``,
``HTTP_PROXY``, ``ALL_PROXY``, ``NO_PROXY``, either case; loopback hosts are never proxied,
as docker and skopeo do): HTTPS through a ``CONNECT`` tunnel, plain HTTP in absolute form.
``.netrc`` is not read.

A response's body is read on demand; :meth:`Response.close` drains a short rest, so
the connection is reused, or drops the connection when much is left unread.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import select
import threading
import weakref
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

__all__ = ["BLOCK", "ConnectionFailed", "Response", "Transport"]

BLOCK = 1 << 20
"""Bytes per read of a body and per send of a request body (http.client's default: 8 KiB)."""
_DRAIN = 64 << 10
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_MAX_REDIRECTS = 5


class ConnectionFailed(Exception):
    """No answer: refused, reset, timed out, TLS failure… (its ``__cause__`` says which)."""


class ProxyUnusable(ValueError):
    """The environment names a proxy this client cannot use; the message never holds the
    proxy's credentials."""


_PROXY_VARIABLES = ("https_proxy", "http_proxy", "all_proxy")


@dataclass(frozen=True)
class Proxy:
    """Where to connect instead of the origin, and the header that authenticates there."""

    netloc: str
    headers: Mapping[str, str]


def proxy_for(scheme: str, host: str) -> Proxy | None:
    """The proxy the environment names for ``scheme://host``, or None to go direct."""
    if not any(os.environ.get(name) or os.environ.get(name.upper()) for name in _PROXY_VARIABLES):
        return None  # the common case costs no import
    import urllib.request

    # NO_PROXY as the standard library reads it (names, domain suffixes, ``*``);
    # typeshed does not list the function, which CPython has had since 2.7.
    bypass: Any = getattr(urllib.request, "proxy_bypass_environment")  # noqa: B009
    from envpack.registry.refs import is_loopback

    if is_loopback(host) or bypass(host):
        return None
    proxies = urllib.request.getproxies_environment()
    url = proxies.get(scheme) or proxies.get("all")
    if not url:
        return None
    try:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        hostname = parts.hostname
    except ValueError:  # a bracket that opens no IPv6 address, …
        raise ProxyUnusable(f"the {scheme} proxy variable is not a URL") from None
    where = f"{parts.scheme}://{hostname or ''}"
    if parts.scheme != "http" or not hostname:
        raise ProxyUnusable(f"proxy {where} is not usable: only http:// proxies are supported")
    try:
        port = parts.port or 80
    except ValueError:
        raise ProxyUnusable(f"proxy {where} has a bad port") from None
    headers: dict[str, str] = {}
    if parts.username is not None:
        from urllib.parse import unquote

        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        headers["Proxy-Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
    host_text = f"[{hostname}]" if ":" in hostname else hostname
    return Proxy(f"{host_text}:{port}", headers)


class Response:
    """Status, headers and a body read on demand (the parts of ``requests``' the client
    uses: ``status_code``, ``reason``, ``headers``, ``content``, ``json()``)."""

    def __init__(self, raw: http.client.HTTPResponse, connection: _Connection) -> None:
        self._raw = raw
        self._connection = connection
        self._content: bytes | None = None
        self.status_code = raw.status
        self.reason = raw.reason
        self.headers: Mapping[str, str] = _Headers(raw.headers)

    def read(self, limit: int) -> bytes:
        """At most ``limit`` bytes of the body (the rest is left for :meth:`close`)."""
        if self._content is not None:
            return self._content[:limit]
        try:
            return self._raw.read(limit)
        except (OSError, http.client.HTTPException) as err:
            self._connection.drop()
            raise ConnectionFailed("reading the answer") from err

    @property
    def content(self) -> bytes:
        """The whole body (for the small JSON documents a registry answers with)."""
        if self._content is None:
            parts = []
            while chunk := self.read(BLOCK):
                parts.append(chunk)
            self._content = b"".join(parts)
            self.close()
        return self._content

    def json(self) -> Any:
        return json.loads(self.content)

    def iter_content(self, size: int) -> Iterator[bytes]:
        while chunk := self.read(size):
            yield chunk

    def close(self) -> None:
        """Finish with the response: its connection is reused if the body was (nearly) read."""
        if self._raw.isclosed():
            return
        try:
            rest = self._raw.read(_DRAIN + 1)
        except (OSError, http.client.HTTPException):
            rest = b"x" * (_DRAIN + 1)
        if len(rest) > _DRAIN or self._raw.will_close:
            self._connection.drop()
        self._raw.close()


class _Headers(Mapping[str, str]):
    """Case-insensitive read-only headers (the last value of a repeated one)."""

    def __init__(self, message: http.client.HTTPMessage) -> None:
        self._items = {key.lower(): (key, value) for key, value in message.items()}

    def __getitem__(self, key: str) -> str:
        return self._items[key.lower()][1]

    def __iter__(self) -> Iterator[str]:
        return (key for key, _ in self._items.values())

    def __len__(self) -> int:
        return len(self._items)


class _Connection:
    """One keep-alive connection to one origin, used by one thread at a time."""

    def __init__(self, scheme: str, netloc: str, timeout: tuple[float, float]) -> None:
        self.scheme = scheme
        self.netloc = netloc
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None
        self.proxy: Proxy | None = None

    def _open(self) -> http.client.HTTPConnection:
        connect, read = self.timeout
        proxy = self.proxy = proxy_for(self.scheme, self.netloc)
        conn: http.client.HTTPConnection
        if self.scheme == "https":
            import ssl

            # The system's trust store, as docker and skopeo use (requests used certifi's).
            context = ssl.create_default_context()
            conn = http.client.HTTPSConnection(
                proxy.netloc if proxy else self.netloc,
                timeout=connect,
                context=context,
                blocksize=BLOCK,
            )
            if proxy is not None:
                # TLS runs end to end inside the proxy's CONNECT tunnel, checked against
                # the registry's name.
                host, _, port = self.netloc.rpartition(":")
                if not port.isdigit():
                    host, port = self.netloc, "443"
                conn.set_tunnel(host.strip("[]"), int(port), headers=dict(proxy.headers))
        else:
            conn = http.client.HTTPConnection(
                proxy.netloc if proxy else self.netloc, timeout=connect, blocksize=BLOCK
            )
        conn.connect()
        if conn.sock is not None:
            conn.sock.settimeout(read)
        return conn

    def target(self, url: str, path: str) -> str:
        """The request target: the absolute URL for a plain-HTTP proxy, else the path."""
        if self.proxy is not None and self.scheme == "http":
            return url
        return path

    def proxy_headers(self) -> Mapping[str, str]:
        """Headers for each request to a plain-HTTP proxy (a tunnel sent its own once)."""
        if self.proxy is not None and self.scheme == "http":
            return self.proxy.headers
        return {}

    def get(self) -> http.client.HTTPConnection:
        if self._conn is not None and _dropped(self._conn):
            self.drop()
        if self._conn is None:
            self._conn = self._open()
        return self._conn

    def drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _close_all(connections: list[tuple[int, _Connection]]) -> None:
    for _, connection in connections:
        connection.drop()


def _dropped(conn: http.client.HTTPConnection) -> bool:
    """The idle connection was closed by the server (readable means EOF here)."""
    if conn.sock is None:
        return True
    try:
        readable, _, _ = select.select([conn.sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


class Transport:
    """Keep-alive connections, one per thread and origin, and the request loop.

    Every connection is also listed here, so that :meth:`close` ends those of threads
    that are gone (a finished worker pool) and the last ones close with the transport.
    """

    def __init__(self, user_agent: str, timeout: tuple[float, float]) -> None:
        self.user_agent = user_agent
        self.timeout = timeout
        self._local = threading.local()
        self._lock = threading.Lock()
        self._all: list[tuple[int, _Connection]] = []
        weakref.finalize(self, _close_all, self._all)

    def _connection(self, scheme: str, netloc: str) -> _Connection:
        pool: dict[tuple[str, str], _Connection] | None = getattr(self._local, "pool", None)
        if pool is None:
            pool = self._local.pool = {}
        key = (scheme, netloc)
        if key not in pool:
            pool[key] = _Connection(scheme, netloc, self.timeout)
            with self._lock:
                self._all.append((threading.get_ident(), pool[key]))
        return pool[key]

    def close(self, *, other_threads_only: bool = False) -> None:
        """Close the connections (only other threads' ones: this thread keeps its own)."""
        me = threading.get_ident()
        with self._lock:
            keep = [item for item in self._all if other_threads_only and item[0] == me]
            ending = [item for item in self._all if item not in keep]
            self._all[:] = keep
        _close_all(ending)
        if not other_threads_only:
            self._local = threading.local()

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: Any = None,
        follow: bool = False,
    ) -> Response:
        """Send one request; ``body`` is bytes, or a file-like object with ``read`` whose
        length the caller gives as ``Content-Length``. ``follow``: redirects are followed
        (reads only), without ``Authorization`` once the origin changes."""
        sent = {"User-Agent": self.user_agent, **(headers or {})}
        for _ in range(_MAX_REDIRECTS + 1):
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ConnectionFailed("not an http(s) URL") from ValueError(url)
            connection = self._connection(parts.scheme, parts.netloc)
            path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            try:
                conn = connection.get()
                target = connection.target(url, path)
                conn.request(
                    method, target, body=body, headers={**sent, **connection.proxy_headers()}
                )
                raw = conn.getresponse()
            except (OSError, http.client.HTTPException, ProxyUnusable) as err:
                connection.drop()
                raise ConnectionFailed(f"{method} failed") from err
            response = Response(raw, connection)
            location = response.headers.get("Location")
            if not (follow and response.status_code in _REDIRECTS and location):
                return response
            response.close()
            following = urljoin(url, location)
            if urlsplit(following).netloc != parts.netloc or (
                urlsplit(following).scheme != parts.scheme
            ):
                sent = {k: v for k, v in sent.items() if k.lower() != "authorization"}
            url = following
        raise ConnectionFailed("too many redirects")
