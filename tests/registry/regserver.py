"""A real Distribution registry (Debian's ``docker-registry``) on a free loopback port,
with htpasswd basic auth or behind a token server this module runs, and small images.

The token server is a real HTTP server issuing real RS256 JWTs signed with a key and a
self-signed certificate made by ``openssl``; the registry verifies them against that
certificate (its ``auth: token: rootcertbundle``), exactly as it would a production one.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import io
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import parse_qs, urlsplit

import pytest

from envpack.oci.image import Image, ImageSpec, assemble
from envpack.oci.layer import build_layers
from envpack.oci.tarlayer import TarEntry

USER = "envpack-user"
PASSWORD = "s3cret-Passw0rd-for-envpack"
SERVICE = "envpack-test-registry"
ISSUER = "envpack-test-issuer"
EPOCH = 1_700_000_000
REFRESH_TOKEN = "envpack-identity-token-not-to-print"


def tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed (.ci/setup installs it)")
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass
class TokenServer:
    """Issues registry tokens to ``USER``/``PASSWORD`` for whatever scope is asked."""

    folder: Path
    lifetime: float = 300.0
    """Seconds a token stays valid (the registry adds 60 s of leeway past ``exp``)."""
    anonymous: bool = False
    """Issue a token to a request without credentials too, granting nothing (as the token
    servers of public registries do): the registry then refuses it."""
    issued: list[str] = field(default_factory=list)
    refused: int = 0
    posts: int = 0

    def __post_init__(self) -> None:
        self.key = self.folder / "token.key"
        self.cert = self.folder / "token.pem"
        subprocess.run(
            [tool("openssl"), "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256",
             "-days", "2", "-subj", "/CN=envpack-test-token-issuer",
             "-keyout", str(self.key), "-out", str(self.cert)],
            check=True, capture_output=True,
        )  # fmt: skip
        der = subprocess.run(
            [tool("openssl"), "x509", "-in", str(self.cert), "-outform", "DER"],
            check=True, capture_output=True,
        ).stdout  # fmt: skip
        self._x5c = base64.b64encode(der).decode("ascii")
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_GET(self) -> None:
                expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
                given = self.headers.get("Authorization")
                if given is None and server.anonymous:
                    self._send_token(server.token([]))
                    return
                if given != expected:
                    server.refused += 1
                    self.send_response(401)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                query = parse_qs(urlsplit(self.path).query)
                self._send_token(server.token(query.get("scope", [])))

            def _send_token(self, token: str) -> None:
                body = json.dumps({"token": token}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                # Docker's OAuth2 flow: an identity token (a refresh token) for an access one.
                length = int(self.headers.get("Content-Length") or 0)
                form = parse_qs(self.rfile.read(length).decode())
                server.posts += 1
                if form.get("grant_type") != ["refresh_token"] or form.get("refresh_token") != [
                    REFRESH_TOKEN
                ]:
                    server.refused += 1
                    self.send_response(401)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                token = server.token(form.get("scope", []))
                body = json.dumps({"access_token": token}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"

    def token(self, scopes: list[str]) -> str:
        access = []
        for scope in " ".join(scopes).split():
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self._x5c]}
        claims = {
            "iss": ISSUER, "sub": USER, "aud": SERVICE, "iat": now - 1, "nbf": now - 1,
            "exp": now + int(self.lifetime) - 60, "jti": os.urandom(8).hex(), "access": access,
        }  # fmt: skip
        signing_input = (
            f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        )
        signature = subprocess.run(
            [tool("openssl"), "dgst", "-sha256", "-sign", str(self.key)],
            input=signing_input.encode(), check=True, capture_output=True,
        ).stdout  # fmt: skip
        token = f"{signing_input}.{_b64url(signature)}"
        self.issued.append(token)
        return token

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@dataclass(frozen=True)
class Recorded:
    """One request as the registry received it through a :class:`Recorder`."""

    method: str
    path: str
    headers: tuple[tuple[str, str], ...]
    body: bytes


class Recorder:
    """A plain-HTTP pass-through in front of ``upstream`` (``host:port``) that keeps every
    request whole: the registry's access log never shows a header, this does.

    The ``Host`` header goes through unchanged, so the ``Location`` of an upload points
    back here and the whole push passes through.
    """

    def __init__(self, upstream: str) -> None:
        self.requests: list[Recorded] = []
        lock = threading.Lock()
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = tuple(self.headers.items())
                with lock:
                    recorder.requests.append(Recorded(self.command, self.path, headers, body))
                conn = http.client.HTTPConnection(upstream, timeout=60)
                try:
                    conn.request(self.command, self.path, body=body or None,
                                 headers=dict(headers))  # fmt: skip
                    answer = conn.getresponse()
                    data = answer.read()
                finally:
                    conn.close()
                self.send_response_only(answer.status, answer.reason)
                for key, value in answer.getheaders():
                    if key.lower() not in ("connection", "keep-alive", "transfer-encoding"):
                        self.send_header(key, value)
                if answer.getheader("Content-Length") is None and self.command != "HEAD":
                    self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            # Every method the registry API uses is passed on the same way (the names are
            # http.server's).
            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _forward  # noqa: N815

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class Registry:
    """One ``docker-registry`` process with its own config, storage and log."""

    def __init__(
        self,
        folder: Path,
        auth: str,
        *,
        delete: bool = False,
        address: str = "127.0.0.1",
        tls: tuple[Path, Path] | None = None,
    ) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.auth = auth
        self.port = free_port()
        self.host = f"{address}:{self.port}"
        self.tls = tls
        self.log = folder / "registry.log"
        self.token_server: TokenServer | None = None
        self.process: subprocess.Popen[bytes] | None = None
        lines = [
            "version: 0.1",
            "log: {level: info, accesslog: {disabled: false}}",
            f"storage: {{filesystem: {{rootdirectory: {folder / 'data'}}}"
            + (", delete: {enabled: true}}" if delete else "}"),
            f"http: {{addr: '{self.host}', secret: envpack-test-secret"
            + (f", tls: {{certificate: '{tls[0]}', key: '{tls[1]}'}}}}" if tls else "}"),
        ]
        if auth == "htpasswd":
            htpasswd = folder / "htpasswd"
            subprocess.run(
                [tool("htpasswd"), "-Bbc", str(htpasswd), USER, PASSWORD],
                check=True, capture_output=True,
            )  # fmt: skip
            lines.append(f"auth: {{htpasswd: {{realm: envpack-test, path: {htpasswd}}}}}")
        elif auth == "token":
            self.token_server = TokenServer(folder)
            lines.append(
                f"auth: {{token: {{realm: '{self.token_server.realm}', service: {SERVICE}, "
                f"issuer: {ISSUER}, rootcertbundle: {self.token_server.cert}}}}}"
            )
        self.config = folder / "config.yml"
        self.config.write_text("\n".join(lines) + "\n")
        self.start()

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [tool("docker-registry"), "serve", str(self.config)],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"docker-registry exited: {self.log.read_text()[-2000:]}")
            if self.tls is not None:  # up once it accepts connections
                address, port = self.host.rsplit(":", 1)
                try:
                    with socket.create_connection((address, int(port)), timeout=2):
                        return
                except OSError:
                    time.sleep(0.1)
                    continue
            try:
                urllib.request.urlopen(f"http://{self.host}/v2/", timeout=2)
                return
            except urllib.error.HTTPError:
                return  # 401: up, and asking for credentials
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("docker-registry did not answer within 60 s")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def requests_logged(self, method: str, needle: str) -> int:
        """Access-log lines of ``method`` requests whose path holds ``needle``."""
        return sum(
            1 for line in self.log_text().splitlines() if f'"{method} ' in line and needle in line
        )

    def answered(self, method: str, needle: str) -> int:
        """Like :meth:`requests_logged` (``method`` ``"*"``: any), without the 401s that
        only asked for credentials."""
        pattern = re.compile(r'"[A-Z]+ ' if method == "*" else re.escape(f'"{method} '))
        return sum(
            1
            for line in self.log_text().splitlines()
            if pattern.search(line) and needle in line and '" 401 ' not in line
        )

    def client_ports(self) -> set[str]:
        """The client ports of every request logged: one per TCP connection."""
        return set(re.findall(r'remoteaddr="127\.0\.0\.1:(\d+)"', self.log_text()))

    def close(self) -> None:
        self.kill()
        if self.token_server is not None:
            self.token_server.close()


@contextlib.contextmanager
def running_registry(
    folder: Path,
    auth: str,
    *,
    delete: bool = False,
    address: str = "127.0.0.1",
    tls: tuple[Path, Path] | None = None,
) -> Iterator[Registry]:
    registry = Registry(folder, auth, delete=delete, address=address, tls=tls)
    try:
        yield registry
    finally:
        registry.close()


def _data(seed: str, size: int) -> bytes:
    """``size`` incompressible bytes, the same for the same seed."""
    return random.Random(seed).randbytes(size)  # noqa: S311 - test data, not a secret


def _opener(data: bytes) -> Callable[[], BinaryIO]:
    return lambda: io.BytesIO(data)


def make_image(
    blob_dir: Path, *, seed: str = "a", sizes: tuple[int, ...] = (200_000, 50_000)
) -> Image:
    """An image of one small file per layer (``/data/<n>.bin``), plus ``/etc/envpack-seed``."""
    blob_dir.mkdir(parents=True, exist_ok=True)
    groups: list[list[TarEntry]] = []
    for number, size in enumerate(sizes):
        payload = _data(f"{seed}-{number}", size)
        groups.append([
            TarEntry("/data", "dir", 0o755, mtime=EPOCH),
            TarEntry(f"/data/{number}.bin", "file", 0o644, mtime=EPOCH, size=size,
                     open=_opener(payload)),
        ])  # fmt: skip
    seed_bytes = seed.encode()
    groups.append([
        TarEntry("/etc", "dir", 0o755, mtime=EPOCH),
        TarEntry("/etc/envpack-seed", "file", 0o644, mtime=EPOCH, size=len(seed_bytes),
                 open=_opener(seed_bytes)),
    ])  # fmt: skip
    layers = build_layers(groups, blob_dir, level=1)
    spec = ImageSpec(cmd=("/bin/true",), created=EPOCH, labels={"io.envpack.test": seed})
    return assemble(spec, layers)
