"""The config parsers on real-looking files (fixtures/config/) and the real CA bundle."""

from __future__ import annotations

import base64
import hashlib
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from envpack.snapshot.config_parsers import (
    ConfigParseError,
    detect_format,
    flatten,
    parse_apt_conf,
    parse_env,
    parse_ini,
    parse_json,
    parse_keyvalue,
    parse_pem,
    parse_text,
    parse_toml,
    parse_yaml,
)

CONFIG = Path(__file__).resolve().parents[2] / "fixtures" / "config"
SYSTEM_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


def read(name: str) -> str:
    return (CONFIG / name).read_text(encoding="utf-8")


def test_ini_sections_keys_and_no_interpolation() -> None:
    keys = parse_ini(read("app.ini"))
    assert keys["server.host"] == "0.0.0.0"  # noqa: S104 - a parsed value, not a bind
    assert keys["server.workers"] == "4"  # ":" is a delimiter too
    assert keys["server.log_file"] == "%(here)s/logs/app.log"  # never interpolated
    assert keys["database.password"] == "CANARY-ini-password"  # redaction is the probe's job
    assert keys["features.beta"] == ""  # a key without a value is still a key
    assert not any(key.startswith("DEFAULT") for key in keys)


def test_ini_top_level_keys_and_spaced_section_names() -> None:
    keys = parse_ini(read("openssl-top.cnf"))
    assert keys["HOME"] == "."
    assert keys["openssl_conf"] == "openssl_init"
    assert keys["openssl_init.providers"] == "provider_sect"
    assert keys["CA_default.private_key"] == "$dir/private/cakey.pem"


def test_ini_reads_the_real_openssl_cnf() -> None:
    path = Path("/etc/ssl/openssl.cnf")
    if not path.is_file():
        pytest.skip("no /etc/ssl/openssl.cnf on this machine (Debian package openssl)")
    keys = parse_ini(path.read_text(encoding="utf-8"))
    sections = {key.split(".", 1)[0] for key in keys if "." in key}
    # Every [ section ] header of the real file appears, without the padding spaces.
    headers = set(re.findall(r"^\s*\[\s*([^\]]+?)\s*\]", path.read_text(), re.M))
    assert headers <= sections | set(keys)


def test_ini_rejects_garbage_without_quoting_it() -> None:
    # The bad line may hold a secret and the reason lands in the manifest's issues.
    with pytest.raises(ConfigParseError, match="invalid INI: line 3: not a") as caught:
        parse_ini("[a]\nkey = value\n= orphan hunter2\n")
    assert "hunter2" not in str(caught.value)


def test_json_flattens_nested_values() -> None:
    keys = parse_json(read("settings.json"))
    assert keys["service.name"] == "billing"
    assert keys["service.debug"] == "false"
    assert keys["service.timeout"] == "2.5"
    assert keys["service.tags.1"] == "prod"
    assert keys["upstreams.0.api_key"] == "CANARY-json-api-key"
    assert keys["upstreams.1.auth"] == "null"
    assert keys["empty_list"] == "[]"
    assert keys["empty_map"] == "{}"


def test_json_error_names_the_line() -> None:
    with pytest.raises(ConfigParseError, match="line 2"):
        parse_json('{"a": 1,\n oops}')


def test_yaml_nested_lists_and_types() -> None:
    keys = parse_yaml(read("app.yaml"))
    assert keys["app.replicas"] == "3"
    assert keys["app.enabled"] == "true"  # YAML 1.1 "yes" is a bool under safe_load
    assert keys["app.started"] == "2024-01-02"
    assert keys["app.env.1.name"] == "DB_PASSWORD"
    assert keys["app.credentials.tokens.1"] == "CANARY-yaml-token-1"


def test_yaml_several_documents_are_indexed() -> None:
    assert parse_yaml(read("multi.yaml")) == {"0.kind": "A", "1.kind": "B"}


def test_yaml_refuses_python_tags() -> None:
    # safe_load: a document cannot construct Python objects.
    with pytest.raises(ConfigParseError, match="invalid YAML"):
        parse_yaml("x: !!python/object/apply:os.system ['true']\n")


def test_toml_tables_arrays_and_datetimes() -> None:
    keys = parse_toml(read("app.toml"))
    assert keys["title"] == "billing"
    assert keys["released"] == "2024-05-01T12:00:00+00:00"
    assert keys["database.hosts.1"] == "db2"
    assert keys["plugins.1.name"] == "tracing"
    assert keys["plugins.1.enabled"] == "false"
    with pytest.raises(ConfigParseError, match="invalid TOML"):
        parse_toml("a = \n")


def test_env_quotes_exports_comments_and_multiline() -> None:
    keys = parse_env(read("app.env"))
    assert keys["APP_ENV"] == "production"
    assert keys["APP_NAME"] == "billing"
    assert keys["SINGLE"] == "literal $HOME and \\n stay"
    assert keys["DOUBLE"] == 'line1\nline2 "quoted"'
    assert keys["MULTILINE"] == "first\nsecond"
    assert keys["EMPTY"] == ""
    assert keys["API_TOKEN"] == "CANARY-env-api-token"


@pytest.mark.parametrize(
    ("text", "reason"),
    [("JUST TEXT\n", "expected KEY=value"), ('A="open\n', "unterminated"), ("B='x\n", "'")],
)
def test_env_rejects_malformed_lines(text: str, reason: str) -> None:
    with pytest.raises(ConfigParseError, match=reason):
        parse_env(text)


def test_keyvalue_three_delimiters_and_repeated_keys() -> None:
    assert parse_keyvalue(read("sysctl.conf")) == {
        "net.core.somaxconn": "1024",
        "vm.swappiness": "10",
        "kernel.panic": "5",
    }
    resolv = parse_keyvalue(read("resolv.conf"))
    assert resolv["nameserver"] == "10.0.0.2, 10.0.0.3"  # file order kept
    assert resolv["search"] == "corp.example.com example.com"


def test_text_single_line_only() -> None:
    assert parse_text("Etc/UTC\n") == {"value": "Etc/UTC"}
    assert parse_text("two\nlines\n") == {}


def test_apt_conf_flat_and_nested() -> None:
    keys = parse_apt_conf(read("apt-proxy.conf"))
    assert keys == {
        "Acquire::http::Proxy": "http://proxyuser:CANARY-apt-proxy-pw@proxy.corp:3128/",
        "Acquire::https::Proxy": "http://proxy.corp:3129/",
        "Acquire::Retries": "3",
    }
    with pytest.raises(ConfigParseError, match="unclosed"):
        parse_apt_conf('A { b "c";')


def _openssl_fingerprints(pem: Path) -> list[str]:
    """SHA-256 fingerprints of every certificate in a PEM file, computed by openssl."""
    text = pem.read_text(encoding="ascii")
    blocks = re.findall(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", text, re.S)
    found = []
    for block in blocks:
        out = subprocess.run(
            ["openssl", "x509", "-noout", "-fingerprint", "-sha256"],
            input=block,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        found.append(out.split("=", 1)[1].strip().replace(":", "").lower())
    return sorted(found)


def test_pem_fingerprints_match_openssl() -> None:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed (CI: apt-get install openssl)")
    facts = parse_pem((CONFIG / "bundle.pem").read_bytes())
    assert len(facts.certificates) == 2
    assert facts.certificates == _openssl_fingerprints(CONFIG / "bundle.pem")
    assert facts.private_keys == 0


def test_pem_counts_the_system_ca_bundle() -> None:
    if not SYSTEM_BUNDLE.is_file():
        pytest.skip("no Debian CA bundle (CI: apt-get install ca-certificates)")
    data = SYSTEM_BUNDLE.read_bytes()
    facts = parse_pem(data)
    assert len(facts.certificates) == data.count(b"-----BEGIN CERTIFICATE-----")
    assert len(facts.certificates) > 50
    # Spot-check the first certificate against an independent DER decode + hash.
    first = data.split(b"-----BEGIN CERTIFICATE-----", 2)[1].split(b"-----END", 1)[0]
    der = base64.b64decode(b"".join(first.split()))
    assert hashlib.sha256(der).hexdigest() in facts.certificates


def test_pem_private_key_is_counted_never_decoded() -> None:
    facts = parse_pem((CONFIG / "cert-and-key.pem").read_bytes())
    assert facts.private_keys == 1
    assert len(facts.certificates) == 1
    assert "CANARY" not in repr(facts)


def test_pem_bad_base64_is_a_parse_error() -> None:
    bad = b"-----BEGIN CERTIFICATE-----\n!!!not base64!!!\n-----END CERTIFICATE-----\n"
    with pytest.raises(ConfigParseError, match="base64"):
        parse_pem(bad)


@pytest.mark.parametrize(
    ("path", "head", "expected"),
    [
        ("/etc/pip.conf", b"[global]\n", "ini"),
        ("/srv/app/.env", b"A=1\n", "env"),
        ("/srv/app/prod.env", b"A=1\n", "env"),
        ("/srv/app/x.yml", b"a: 1\n", "yaml"),
        ("/etc/hosts", b"127.0.0.1 localhost\n", "keyvalue"),
        ("/etc/localtime", b"TZif2\x00\x00", "binary"),
        ("/etc/myapp/settings", b'{"a": [1, 2]}', "json"),
        ("/etc/myapp/chain", b"-----BEGIN CERTIFICATE-----\n", "pem"),
        ("/etc/myapp/conf", b"# c\n[main]\nx = 1\n", "ini"),
        ("/etc/myapp/vars", b"export A=1\n", "env"),
        ("/etc/myapp/kv", b"a = 1\nb: 2\n", "keyvalue"),
        ("/etc/myapp/motd", b"Welcome, be nice!\nSecond line.\n", "text"),
        ("/etc/myapp/blob", b"\x7fELF\x02\x01\x00", "binary"),
    ],
)
def test_detect_format(path: str, head: bytes, expected: str) -> None:
    assert detect_format(path, head) == expected


def test_flatten_keeps_empty_containers_and_scalars() -> None:
    assert flatten({"a": {"b": [1, {"c": None}]}, "d": {}}) == {
        "a.b.0": "1",
        "a.b.1.c": "null",
        "d": "{}",
    }
