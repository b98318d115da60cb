"""Pure logic of the registry client: references, challenges, slices, and its decisions
(fallback to chunks, retries, redaction) against a scripted HTTP server on loopback.

The scripted server stands in only for answers a real Distribution registry never gives
(413 to a monolithic PUT, a 503 storm); the same code paths run against the real
registry in test_registry_push_real.py.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from envpack.oci.digest import Digest
from envpack.oci.model import Descriptor
from envpack.oci.reference import InvalidReference
from envpack.registry.auth import Authenticator, Challenge, Credentials
from envpack.registry.blobs import Blob, FileSlice, ensure_blob
from envpack.registry.client import RegistryClient
from envpack.registry.errors import AuthError, TransientError
from envpack.registry.refs import RegistryRef, is_loopback


def test_references_parse_like_docker() -> None:
    ref = RegistryRef.parse("registry:127.0.0.1:5000/fleet/web:host-1")
    assert (ref.host, ref.repository, ref.tag, ref.digest) == (
        "127.0.0.1:5000", "fleet/web", "host-1", None,
    )  # fmt: skip
    assert ref.base_url() == "http://127.0.0.1:5000"
    assert str(ref) == "127.0.0.1:5000/fleet/web:host-1"
    hub = RegistryRef.parse("app")
    assert (hub.host, hub.repository, hub.tag) == ("docker.io", "library/app", "latest")
    assert hub.base_url() == "https://registry-1.docker.io"
    assert RegistryRef.parse("ghcr.io/o/r:1").base_url(insecure=True) == "http://ghcr.io"
    digest = "sha256:" + "a" * 64
    by_digest = RegistryRef.parse(f"localhost:5000/r@{digest}")
    assert by_digest.reference == digest and by_digest.tag is None
    for bad in ("localhost:5000/R:1", "localhost:5000/r@sha256:zz", "host:1/r:t@" + digest):
        with pytest.raises(InvalidReference):
            RegistryRef.parse(bad)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("localhost", True), ("localhost:5000", True), ("127.0.0.1:5000", True),
     ("127.8.9.1", True), ("[::1]:5000", True), ("10.0.0.1:5000", False),
     ("registry.example:443", False), ("localhost.example.com", False)],
)  # fmt: skip
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_challenges_parse_quoted_commas_and_bare_values() -> None:
    challenge = Challenge.parse(
        'Bearer realm="https://auth.example/token",service="reg, eu",'
        'scope="repository:a/b:pull,push" , error=insufficient_scope'
    )
    assert challenge.scheme == "bearer"
    assert challenge.params == {
        "realm": "https://auth.example/token",
        "service": "reg, eu",
        "scope": "repository:a/b:pull,push",
        "error": "insufficient_scope",
    }
    assert Challenge.parse('Basic realm="r"') == Challenge("basic", {"realm": "r"})


def test_basic_answer_then_refusal_names_no_secret() -> None:
    auth = Authenticator("h:1", Credentials("u", "pw-secret"))
    auth.answer('Basic realm="r"', fetch=_no_fetch)
    assert auth.header == Credentials("u", "pw-secret").basic_header()
    with pytest.raises(AuthError) as caught:
        auth.answer('Basic realm="r"', fetch=_no_fetch)
    assert "pw-secret" not in str(caught.value)
    assert repr(Credentials("u", "pw-secret")).count("pw-secret") == 0


def _no_fetch(*args: Any) -> Any:
    raise AssertionError("no token fetch for Basic")


def test_a_file_slice_streams_its_range(tmp_path: Path) -> None:
    path = tmp_path / "blob"
    data = bytes(range(256)) * 20_000  # 5 MB
    path.write_bytes(data)
    seen: list[int] = []
    piece = FileSlice(path, 1000, 3_000_000, seen.append)
    assert len(piece) == 3_000_000
    out = b"".join(piece)
    piece.close()
    assert out == data[1000:3_001_000]
    assert max(seen) <= 1 << 20 and sum(seen) == 3_000_000  # never more than 1 MiB at once


class _Scripted:
    """A loopback HTTP server answering from a script; records what it was sent."""

    def __init__(self, answer: Any) -> None:
        self.seen: list[tuple[str, str, int]] = []
        self.bodies: dict[str, bytes] = {}
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                outer.seen.append((self.command, self.path, len(body)))
                status, headers = answer(outer, self.command, self.path, self.headers, body)
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = _any  # noqa: N815 - http.server's names

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def blob(tmp_path: Path) -> Blob:
    data = b"x" * 300_000
    path = tmp_path / "blob"
    path.write_bytes(data)
    return Blob(Descriptor("application/octet-stream", Digest.of_bytes(data), len(data)), path)


def _refusing_monolithic(
    server: _Scripted, method: str, path: str, headers: Any, body: bytes
) -> tuple[int, dict[str, str]]:
    if method == "HEAD":
        return 404, {}
    if method == "POST":
        return 202, {"Location": "/v2/r/blobs/uploads/u1?_state=s"}
    if method == "PATCH":
        server.bodies[headers["Content-Range"]] = body
        return 202, {"Location": "/v2/r/blobs/uploads/u1?_state=t"}
    if method == "PUT" and body:
        return 413, {}
    joined = b"".join(
        server.bodies[k] for k in sorted(server.bodies, key=lambda k: int(k.split("-")[0]))
    )
    return 201, {"Docker-Content-Digest": "sha256:" + hashlib.sha256(joined).hexdigest()}


@pytest.fixture
def refusing() -> Iterator[_Scripted]:
    server = _Scripted(_refusing_monolithic)
    yield server
    server.close()


def test_a_refused_monolithic_upload_falls_back_to_chunks(refusing: _Scripted, blob: Blob) -> None:
    client = RegistryClient(refusing.host, f"http://{refusing.host}")
    assert ensure_blob(client, "r", blob) == "uploaded"
    methods = [m for m, _, _ in refusing.seen]
    assert methods[:3] == ["HEAD", "POST", "PUT"]  # the monolithic try, refused
    assert methods.count("PATCH") == 1 and methods[-1] == "PUT"  # one 32 MiB chunk, closed
    assert refusing.seen[-1][2] == 0 and "digest=sha256%3A" in refusing.seen[-1][1]


def _flaky(
    server: _Scripted, method: str, path: str, headers: Any, body: bytes
) -> tuple[int, dict[str, str]]:
    if method == "HEAD":
        failures = sum(1 for m, _, _ in server.seen if m == "HEAD")
        return (503, {"Retry-After": "0"}) if failures <= 2 else (200, {})
    return 500, {}


def test_transient_answers_are_retried_then_reported_in_one_line(blob: Blob) -> None:
    server = _Scripted(_flaky)
    try:
        client = RegistryClient(server.host, f"http://{server.host}", backoff=0.01)
        assert ensure_blob(client, "r", blob) == "existed"  # third HEAD answered 200
        assert client.calls["HEAD blob"] == 3
        stubborn = RegistryClient(server.host, f"http://{server.host}", retries=1, backoff=0.01)
        with pytest.raises(TransientError) as caught:
            stubborn.request("GET", "/v2/", what="connecting")
        assert (
            str(caught.value)
            == f"{server.host}: connecting: the registry answered 500 Internal Server Error"
        )
    finally:
        server.close()


def test_a_redirect_to_another_host_drops_the_authorization() -> None:
    """Reads follow redirects; credentials never travel to another host (a blob store)."""

    def storage(server: _Scripted, method: str, path: str, headers: Any, body: bytes) -> Any:
        server.bodies[path] = (headers.get("Authorization") or "").encode()
        return 200, {}

    store = _Scripted(storage)

    def registry(server: _Scripted, method: str, path: str, headers: Any, body: bytes) -> Any:
        server.bodies[path] = (headers.get("Authorization") or "").encode()
        if path == "/v2/r/blobs/here":
            return 307, {"Location": "/v2/r/blobs/moved"}
        if path == "/v2/r/blobs/away":
            return 307, {"Location": f"http://{store.host}/bucket/blob?sig=1"}
        return 200, {}

    origin = _Scripted(registry)
    try:
        client = RegistryClient(origin.host, f"http://{origin.host}")
        client.auth.header = "Bearer t0ken-not-to-forward"
        for path in ("/v2/r/blobs/here", "/v2/r/blobs/away"):
            response = client.request("GET", path, what="reading")
            assert response.status_code == 200
        assert origin.bodies["/v2/r/blobs/moved"] == b"Bearer t0ken-not-to-forward"
        assert store.bodies["/bucket/blob?sig=1"] == b""
        # A PUT is never redirected: its 307 comes back to the caller.
        response = client.request("PUT", "/v2/r/blobs/away", what="writing", body=lambda: b"x")
        assert response.status_code == 307
        assert [m for m, _, _ in store.seen] == ["GET"]  # the redirected GET only
    finally:
        origin.close()
        store.close()


def test_the_blob_record_is_left_alone_when_it_already_says_so(tmp_path: Path) -> None:
    from envpack.registry.pushed import BlobSources

    record = BlobSources("h:1", tmp_path)
    record.record(["sha256:aa", "sha256:bb"], "team/app")
    [written] = tmp_path.glob("*.json")
    known = record.load()
    assert known == {"sha256:aa": "team/app", "sha256:bb": "team/app"}
    before = written.stat()
    record.record(["sha256:bb", "sha256:aa"], "team/app", known)
    after = written.stat()
    # A write replaces the file by a rename: a new inode, even within one mtime tick.
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    record.record(["sha256:aa", "sha256:cc"], "team/other", known)
    assert record.load() == {
        "sha256:bb": "team/app",
        "sha256:aa": "team/other",
        "sha256:cc": "team/other",
    }


def test_the_blob_record_waits_for_another_writer_and_merges(tmp_path: Path) -> None:
    from envpack.registry.pushed import BlobSources, _locked

    record = BlobSources("h:2", tmp_path)
    record.record(["sha256:aa"], "one")
    [written] = tmp_path.glob("*.json")
    with _locked(Path(str(written) + ".lock")):  # another push holding the record
        worker = threading.Thread(target=record.record, args=(["sha256:bb"], "two"))
        worker.start()
        worker.join(0.3)
        assert worker.is_alive()  # waiting for the lock, not writing past it
        assert record.load() == {"sha256:aa": "one"}
    worker.join(10)
    assert not worker.is_alive()
    assert record.load() == {"sha256:aa": "one", "sha256:bb": "two"}
