"""Pushing through the proxy the environment names, to a real Distribution registry
(Debian's docker-registry) on this machine's non-loopback address, via a real proxy
(tinyproxy): plain HTTP in absolute form, HTTPS in a CONNECT tunnel with proxy
credentials, NO_PROXY, and the errors a user meets. The proxy's own log is the evidence."""

from __future__ import annotations

import re
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from regserver import PASSWORD, USER, free_port, make_image, running_registry, tool

from envpack.oci.layout import write_oci_layout
from realenv import run_envpack

pytestmark = pytest.mark.slow
REPO = "registry-envpack/proxied"
PROXY_USER, PROXY_PASSWORD = "proxyuser", "proxy-secret-5f2e"


def _outside_address() -> str:
    """An IPv4 address of this machine that is not loopback (loopback is never proxied)."""
    shown = subprocess.run(
        [tool("ip"), "-4", "-o", "addr", "show"], capture_output=True, text=True, check=True
    ).stdout
    for address in re.findall(r"inet (\d+\.\d+\.\d+\.\d+)/", shown):
        if not address.startswith("127."):
            return str(address)
    pytest.skip("this machine has no non-loopback IPv4 address to put a registry on")


@dataclass
class Proxy:
    port: int
    log: Path

    def url(self, *, credentials: str = "") -> str:
        return f"http://{credentials}127.0.0.1:{self.port}"

    def lines(self, needle: str) -> list[str]:
        return [
            line for line in self.log.read_text(errors="replace").splitlines() if needle in line
        ]


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[Proxy]:
    folder = tmp_path / "proxy"
    folder.mkdir()
    port = free_port()
    log = folder / "tinyproxy.log"
    config = folder / "tinyproxy.conf"
    config.write_text(
        f"Port {port}\nListen 127.0.0.1\nAllow 127.0.0.1\n"
        f'Timeout 60\nLogFile "{log}"\nLogLevel Info\nMaxClients 20\n'
        f"BasicAuth {PROXY_USER} {PROXY_PASSWORD}\n"
    )
    process = subprocess.Popen([tool("tinyproxy"), "-d", "-c", str(config)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, "tinyproxy exited"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "tinyproxy did not start"
                time.sleep(0.1)
        yield Proxy(port, log)
    finally:
        process.terminate()
        process.wait(timeout=30)


def _certificate(folder: Path, address: str) -> tuple[Path, Path]:
    cert, key = folder / "registry.crt", folder / "registry.key"
    subprocess.run(
        [tool("openssl"), "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", f"/CN={address}", "-addext", f"subjectAltName=IP:{address}",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def _layout(tmp_path: Path) -> Path:
    out = tmp_path / "image.oci"
    write_oci_layout(make_image(tmp_path / "blobs", seed="proxy"), out, ref_name="1")
    return out


def _env(clean_env: dict[str, str], tmp_path: Path, **extra: str) -> dict[str, str]:
    config = tmp_path / "docker-config"
    config.mkdir(exist_ok=True)
    return {**clean_env, "DOCKER_CONFIG": str(config), "XDG_CACHE_HOME": str(tmp_path / "c"),
            **extra}  # fmt: skip


def _push(
    layout: Path, ref: str, env: dict[str, str], *flags: str
) -> subprocess.CompletedProcess[str]:
    return run_envpack("push", *flags, str(layout), ref, "--username", USER,
                       "--password-stdin", input=PASSWORD, env=env)  # fmt: skip


def test_https_through_a_connect_tunnel_with_proxy_credentials(
    proxy: Proxy, tmp_path: Path, clean_env: dict[str, str]
) -> None:
    address = _outside_address()
    tls = _certificate(tmp_path, address)
    with running_registry(tmp_path / "registry", "htpasswd", address=address, tls=tls) as registry:
        ref = f"{registry.host}/{REPO}:tls"
        secret_url = proxy.url(credentials=f"{PROXY_USER}:{PROXY_PASSWORD}@")
        env = _env(clean_env, tmp_path, HTTPS_PROXY=secret_url, SSL_CERT_FILE=str(tls[0]))
        layout = _layout(tmp_path)
        done = _push(layout, ref, env)
        assert done.returncode == 0, done.stderr
        assert PROXY_PASSWORD not in done.stderr + done.stdout
        assert proxy.lines(f"CONNECT {registry.host}"), proxy.log.read_text()
        assert registry.answered("PUT", "/manifests/tls") == 1

        wrong_url = proxy.url(credentials=f"{PROXY_USER}:wrong-{PROXY_PASSWORD}@")
        wrong = _env(clean_env, tmp_path, SSL_CERT_FILE=str(tls[0]), HTTPS_PROXY=wrong_url)
        refused = _push(layout, ref, wrong)
        assert refused.returncode == 2
        lines = refused.stderr.strip().splitlines()
        assert len(lines) == 1, refused.stderr
        assert re.search(r"the proxy refused the tunnel \(40[17]\)$", lines[0]), lines[0]
        assert PROXY_PASSWORD not in refused.stderr and "Traceback" not in refused.stderr


def test_plain_http_insecure_goes_through_the_proxy_unless_no_proxy_says(
    proxy: Proxy, tmp_path: Path, clean_env: dict[str, str]
) -> None:
    address = _outside_address()
    with running_registry(tmp_path / "registry", "htpasswd", address=address) as registry:
        layout = _layout(tmp_path)
        secret_url = proxy.url(credentials=f"{PROXY_USER}:{PROXY_PASSWORD}@")
        env = _env(clean_env, tmp_path, http_proxy=secret_url)
        refused = _push(layout, f"{registry.host}/{REPO}:plain", env)
        assert refused.returncode == 2  # outside loopback, plain HTTP only when asked
        lines = refused.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("envpack: error: "), refused.stderr
        assert "try --insecure" in lines[0], lines[0]
        assert PROXY_PASSWORD not in refused.stderr + refused.stdout

        done = _push(layout, f"{registry.host}/{REPO}:plain", env, "--insecure")
        assert done.returncode == 0, done.stderr
        assert PROXY_PASSWORD not in done.stderr + done.stdout
        through = proxy.lines(f"http://{registry.host}/v2/{REPO}/manifests/plain")
        assert through, proxy.log.read_text()

        before = len(proxy.lines(registry.host))
        bypass = _env(clean_env, tmp_path, http_proxy=secret_url, NO_PROXY=address)
        direct = _push(layout, f"{registry.host}/{REPO}:direct", bypass, "--insecure")
        assert direct.returncode == 0, direct.stderr
        assert len(proxy.lines(registry.host)) == before
        assert registry.answered("PUT", "/manifests/direct") == 1


def test_loopback_is_never_proxied_and_an_https_proxy_is_one_line(
    tmp_path: Path, clean_env: dict[str, str]
) -> None:
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens: a proxied request fails
    with running_registry(tmp_path / "registry", "htpasswd") as registry:
        layout = _layout(tmp_path)
        env = _env(clean_env, tmp_path, HTTP_PROXY=closed, HTTPS_PROXY=closed, ALL_PROXY=closed)
        done = _push(layout, f"{registry.host}/{REPO}:loop", env)
        assert done.returncode == 0, done.stderr

        address = _outside_address()
        https_proxy = _env(
            clean_env, tmp_path, HTTPS_PROXY=f"https://u:{PROXY_PASSWORD}@proxy.example:3128"
        )
        refused = _push(layout, f"{address}:5000/{REPO}:x", https_proxy)
        assert refused.returncode == 2
        lines = refused.stderr.strip().splitlines()
        assert len(lines) == 1, refused.stderr
        assert "only http:// proxies are supported" in lines[0]
        assert PROXY_PASSWORD not in refused.stderr
