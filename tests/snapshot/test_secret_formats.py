"""Credentials files are parsed by their format, and secret files keep only a fingerprint."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from envpack.redact import Redactor
from envpack.snapshot.config_files import describe
from envpack.snapshot.config_parsers import ConfigParseError
from envpack.snapshot.context import CaptureContext, CaptureOptions
from envpack.snapshot.secret_formats import (
    parse_git_credentials,
    parse_netrc,
    parse_npmrc,
    parse_pgpass,
    secret_format,
)
from envpack.snapshot.source import Source

TREE = Path(__file__).resolve().parents[2] / "fixtures" / "secrets" / "tree"
SECRETS = [
    line
    for line in (TREE.parent / "secrets.txt").read_text().splitlines()
    if line and not line.startswith("#")
]
REDACTOR = Redactor(b"formats-key")


def test_netrc_keys_name_the_machine_and_the_field() -> None:
    keys = parse_netrc(
        "machine a.example login u1 password 'p w1'\n"
        "macdef init\ncd /x\nput secret-looking-word\n\n"
        "machine b.example\n  login u2\n  password p2 # comment\ndefault login anon password x\n"
    )
    assert keys == {
        "machine.a.example.login": "u1",
        "machine.a.example.password": "p w1",
        "machine.b.example.login": "u2",
        "machine.b.example.password": "p2",
        "default.login": "anon",
        "default.password": "x",
    }
    with pytest.raises(ConfigParseError, match="without its value") as caught:
        parse_netrc("machine h login u password")
    with pytest.raises(ConfigParseError):
        parse_netrc("login u password hunter2")
    assert "hunter2" not in str(caught.value)


def test_git_credentials_split_user_and_password_from_the_url() -> None:
    keys = parse_git_credentials(
        "https://alice:p%40ss@git.example:8443/team\nhttps://tok@github.com\n"
    )
    assert keys == {
        "https://git.example:8443/team.username": "alice",
        "https://git.example:8443/team.password": "p%40ss",
        "https://github.com.username": "tok",
        "https://github.com.password": "",
    }
    with pytest.raises(ConfigParseError, match="line 1: not a URL"):
        parse_git_credentials("hunter2\n")


def test_npmrc_splits_at_the_first_equals_not_the_first_colon() -> None:
    keys = parse_npmrc('//r.example/:_authToken="npm_x"\n; c\nemail = a@b\n[s]\nk=v\n')
    assert keys == {"//r.example/:_authToken": "npm_x", "email": "a@b", "s.k": "v"}
    with pytest.raises(ConfigParseError, match="line 1"):
        parse_npmrc("just-a-token\n")


def test_pgpass_fields_and_escaped_colons() -> None:
    keys = parse_pgpass("db:5432:app:u:pa\\:ss\n# c\n*:*:*:r:x\n")
    assert keys == {"db:5432:app:u.password": "pa:ss", "*:*:*:r.password": "x"}
    with pytest.raises(ConfigParseError, match="expected 5 fields"):
        parse_pgpass("db:5432:hunter2\n")


@pytest.mark.parametrize(
    ("path", "fmt"),
    [
        ("/root/.netrc", "netrc"),
        ("/home/u/.git-credentials", "git-credentials"),
        ("/home/u/.npmrc", "npmrc"),
        ("/home/u/.pgpass", "pgpass"),
        ("/home/u/.pypirc", "ini"),
        ("/home/u/.aws/credentials", "ini"),
        ("/home/u/.gitconfig", "ini"),
        ("/home/u/.config/git/config", "ini"),
        ("/srv/app/.git/config", "ini"),
        ("/home/u/.docker/config.json", "json"),
        ("/etc/apt/auth.conf", "netrc"),
        ("/etc/apt/auth.conf.d/corp.conf", "netrc"),
        ("/etc/hosts", None),
        ("/etc/app/config.json", None),
    ],
)
def test_formats_by_name(path: str, fmt: str | None) -> None:
    assert secret_format(path) == fmt


def _describe(root: Path, inner: str) -> dict[str, object]:
    ctx = CaptureContext(source=Source.rootfs(root), options=CaptureOptions(), redactor=REDACTOR)
    component = describe(ctx, inner)
    assert component is not None
    assert ctx.issues == []
    return component


@pytest.mark.parametrize(
    "inner",
    [
        "/etc/myapp/db_password",
        "/etc/myapp/client.p12",
        "/etc/ssl/private/server.key",
        "/home/u/.ssh/id_ed25519",
    ],
)
def test_secret_files_record_a_keyed_fingerprint_only(inner: str) -> None:
    component = _describe(TREE, inner)
    raw = (TREE / inner.lstrip("/")).read_bytes()
    assert component["sha256"] is None
    assert component["fingerprint"] == REDACTOR.fingerprint(hashlib.sha256(raw).hexdigest())
    assert component["keys"] == {}
    text = json.dumps(component)
    assert hashlib.sha256(raw).hexdigest() not in text
    assert not any(secret in text for secret in SECRETS)


def test_a_short_pin_file_cannot_be_recovered_from_the_manifest(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "sim_pin").write_text("4821\n")  # not secret by name: text file
    (tmp_path / "etc" / "sim_password").write_text("4821\n")
    by_name = _describe(tmp_path, "/etc/sim_password")
    plain_sha = hashlib.sha256(b"4821\n").hexdigest()
    assert by_name["format"] == "secret"
    assert plain_sha not in json.dumps(by_name)
    assert "4821" not in json.dumps(by_name)


def test_public_key_and_certificate_keep_their_plain_digest(tmp_path: Path) -> None:
    component = _describe(TREE, "/home/u/.ssh/id_ed25519.pub")
    raw = (TREE / "home/u/.ssh/id_ed25519.pub").read_bytes()
    assert component["sha256"] == hashlib.sha256(raw).hexdigest()


@pytest.mark.parametrize(
    ("inner", "kept"),
    [
        ("/root/.netrc", {"machine.git.corp.example.login": "deploy"}),
        ("/home/u/.git-credentials", {"https://git.corp.example.username": "alice"}),
        ("/home/u/.npmrc", {"email": "ci@example.com"}),
        ("/home/u/.pypirc", {"testpypi.username": "alice"}),
        ("/home/u/.docker/config.json", {"HttpHeaders.User-Agent": "Docker-Client/24"}),
        ("/home/u/.gitconfig", {"user.name": "Alice"}),
        ("/home/u/.pgpass", {}),
        ("/home/u/.aws/credentials", {}),
        ("/home/u/.env", {"APP_ENV": "production"}),
    ],
)
def test_credentials_files_keep_facts_and_hide_secrets(
    inner: str, kept: dict[str, str], tmp_path: Path
) -> None:
    component = _describe(TREE, inner)
    text = json.dumps(component)
    leaked = [secret for secret in SECRETS if secret in text]
    assert leaked == []
    keys = component["keys"]
    assert isinstance(keys, dict)
    assert keys and all(keys[k] == v for k, v in kept.items()), keys
    assert any(
        str(v).startswith("hmac-sha256:") or "{hmac-sha256:" in str(v) for v in keys.values()
    )
    assert component["sha256"] is None and str(component["fingerprint"]).startswith("hmac")
    # The same file elsewhere by another name is not a credentials format: still no leak.
    copy = tmp_path / "etc" / "copy.txt"
    copy.parent.mkdir()
    shutil.copy(TREE / inner.lstrip("/"), copy)
    assert not any(secret in json.dumps(_describe(tmp_path, "/etc/copy.txt")) for secret in SECRETS)


def test_free_text_holding_a_secret_records_no_plain_digest(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    notes = tmp_path / "etc" / "notes"
    notes.write_text("deploy notes\nlogin with password Zq9short\nthen restart\n")
    plain = tmp_path / "etc" / "motd"
    plain.write_text("welcome\nbe nice\n")
    assert _describe(tmp_path, "/etc/notes")["sha256"] is None
    assert (
        _describe(tmp_path, "/etc/motd")["sha256"]
        == hashlib.sha256(b"welcome\nbe nice\n").hexdigest()
    )


def test_a_pem_file_with_a_broken_block_and_a_private_key_stays_secret(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    pem = tmp_path / "etc" / "bundle.pem"
    pem.write_text(
        "-----BEGIN CERTIFICATE-----\n!!not base64!!\n-----END CERTIFICATE-----\n"
        "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIB\n-----END PRIVATE KEY-----\n"
    )
    ctx = CaptureContext(
        source=Source.rootfs(tmp_path), options=CaptureOptions(), redactor=REDACTOR
    )
    component = describe(ctx, "/etc/bundle.pem")
    assert component is not None
    assert component["sha256"] is None
    assert "MC4CAQAwBQYDK2VwBCIEIB" not in json.dumps(component)
