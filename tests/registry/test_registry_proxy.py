"""Which proxy the environment names for a registry host (pure logic; the real proxy is
in test_registry_proxy_real.py)."""

from __future__ import annotations

import base64

import pytest

from envpack.registry.http import ProxyUnusable, proxy_for

VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


@pytest.fixture(autouse=True)
def no_proxy_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


def test_no_variable_means_direct() -> None:
    assert proxy_for("https", "registry.example:5000") is None


def test_the_scheme_picks_the_variable_and_all_proxy_is_the_fallback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://tls-proxy:3128")
    monkeypatch.setenv("ALL_PROXY", "other-proxy:8080")
    https = proxy_for("https", "registry.example")
    plain = proxy_for("http", "registry.example")
    assert https is not None and https.netloc == "tls-proxy:3128" and not https.headers
    assert plain is not None and plain.netloc == "other-proxy:8080"


def test_loopback_and_no_proxy_go_direct(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("https_proxy", "http://proxy:3128")
    monkeypatch.setenv("no_proxy", "internal.example,10.1.2.3")
    for host in ("127.0.0.1:5000", "localhost:5000", "[::1]:5000", "10.1.2.3:5000",
                 "registry.internal.example"):  # fmt: skip
        assert proxy_for("https", host) is None, host
    assert proxy_for("https", "registry.example") is not None


def test_credentials_become_a_proxy_authorization_header(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://us%40er:p%3Ass@proxy:3128")
    proxy = proxy_for("https", "registry.example")
    assert proxy is not None and proxy.netloc == "proxy:3128"
    encoded = proxy.headers["Proxy-Authorization"].removeprefix("Basic ")
    assert base64.b64decode(encoded) == b"us@er:p:ss"


@pytest.mark.parametrize(
    "url",
    [
        "https://u:hunter2@proxy:3128",
        "socks5://u:hunter2@proxy:1080",
        "http://proxy:x",
        "http://u:hunter2@evil\x1b[31mhost\n:1",  # not a URL: a bracket opening no IPv6
    ],
)
def test_an_unusable_proxy_is_said_without_its_password(
    monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", url)
    with pytest.raises(ProxyUnusable) as raised:
        proxy_for("https", "registry.example")
    assert "hunter2" not in str(raised.value)
    assert "proxy" in str(raised.value)
