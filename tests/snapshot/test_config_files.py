"""The config_files probe on real files: fixture rootfs trees, the live host, the real CLI."""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from envpack.errors import UsageError
from envpack.manifest import Manifest, dumps, schema_text
from envpack.redact import Redactor
from envpack.snapshot.capture import capture
from envpack.snapshot.config_files import PARSE_LIMIT
from envpack.snapshot.context import CaptureOptions
from envpack.snapshot.source import Source

CONFIG = Path(__file__).resolve().parents[2] / "fixtures" / "config"
REDACTOR = Redactor(b"config-files-test-key")
SYSTEM_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


@pytest.fixture(autouse=True)
def _no_project_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run from an empty folder so no envpack.toml of the checkout is picked up."""
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)


def run(source: Source, *globs: str) -> Manifest:
    options = CaptureOptions(config_globs=globs, only=frozenset({"config_files"}))
    return capture(source, options, REDACTOR, environ={"SOURCE_DATE_EPOCH": "0"})


def issues_for(manifest: Manifest, path: str) -> list[str]:
    return [i.reason for i in manifest.issues if i.path == path]


def fixture_root(tmp_path: Path) -> Path:
    root = tmp_path / "rootfs"
    shutil.copytree(CONFIG, root / "etc" / "myapp")
    return root


def test_fixture_files_parsed_with_every_secret_hidden(tmp_path: Path) -> None:
    root = fixture_root(tmp_path)
    os.chmod(root / "etc/myapp/app.ini", 0o640)
    manifest = run(Source.rootfs(root), "/etc/myapp/*")
    section = manifest.section("config_files")
    text = dumps(manifest)

    # No canary value, in clear or in the base64 of the PEM key, anywhere in the output.
    assert "CANARY" not in text
    assert "Q0FOQVJZ" not in text

    ini = section["/etc/myapp/app.ini"]
    assert (ini["type"], ini["format"], ini["mode"]) == ("file", "ini", "0640")
    assert ini["owner"] == f"{os.getuid()}:{os.getgid()}"
    assert ini["owner_name"] is None  # host names mean nothing for an offline rootfs
    assert ini["size"] == (root / "etc/myapp/app.ini").stat().st_size
    assert ini["keys"]["server.port"] == "8080"
    # Equal secrets stay comparable: the keyed fingerprint of the value, not the value.
    assert ini["keys"]["database.password"] == REDACTOR.fingerprint("CANARY-ini-password")
    assert ini["keys"]["database.url"] == (
        "postgresql://app:{" + REDACTOR.fingerprint("CANARY-ini-url-pw") + "}@db.internal:5432/app"
    )
    # A file that holds secrets gets a keyed digest, not a brute-forceable plain SHA-256.
    assert ini["sha256"] is None
    raw = (root / "etc/myapp/app.ini").read_bytes()
    assert ini["fingerprint"] == REDACTOR.fingerprint(hashlib.sha256(raw).hexdigest())

    yaml_keys = section["/etc/myapp/app.yaml"]["keys"]
    assert yaml_keys["app.credentials.client_secret"].startswith("hmac-sha256:")
    assert yaml_keys["app.credentials.tokens.0"].startswith("hmac-sha256:")
    # {name: DB_PASSWORD, value: ...}: the value is secret because its name is.
    assert yaml_keys["app.env.1.value"].startswith("hmac-sha256:")
    assert yaml_keys["app.env.0.value"] == "info"

    assert section["/etc/myapp/settings.json"]["keys"]["upstreams.0.api_key"].startswith("hmac")
    assert section["/etc/myapp/app.toml"]["keys"]["database.secret_key"].startswith("hmac")
    assert section["/etc/myapp/app.toml"]["format"] == "toml"
    env = section["/etc/myapp/app.env"]
    assert env["format"] == "env"
    assert env["keys"]["API_TOKEN"] == REDACTOR.fingerprint("CANARY-env-api-token")
    assert env["keys"]["APP_ENV"] == "production"

    # No secret inside: the plain SHA-256, checkable against the file.
    for name in ("sysctl.conf", "multi.yaml", "bundle.pem", "openssl-top.cnf"):
        component = section[f"/etc/myapp/{name}"]
        digest = hashlib.sha256((root / "etc/myapp" / name).read_bytes()).hexdigest()
        assert component["sha256"] == digest, name
        assert "fingerprint" not in component

    bundle = section["/etc/myapp/bundle.pem"]
    assert (bundle["format"], bundle["certificates"]) == ("pem", 2)
    assert bundle["certificate_sha256"] == sorted(bundle["certificate_sha256"])
    keyed = section["/etc/myapp/cert-and-key.pem"]
    assert (keyed["certificates"], keyed["private_keys"], keyed["sha256"]) == (1, 1, None)
    assert manifest.issues == []


def test_default_set_under_root(tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    (root / "etc/ssl/certs").mkdir(parents=True)
    (root / "usr/lib/ssl").mkdir(parents=True)
    (root / "usr/share/zoneinfo/Europe").mkdir(parents=True)
    shutil.copy(CONFIG / "bundle.pem", root / "etc/ssl/certs/ca-certificates.crt")
    shutil.copy(CONFIG / "resolv.conf", root / "etc/resolv.conf")
    shutil.copy(CONFIG / "openssl-top.cnf", root / "etc/ssl/openssl.cnf")
    (root / "etc/hosts").write_text("127.0.0.1 localhost\n10.1.2.3 db.internal db\n")
    (root / "etc/timezone").write_text("Europe/Paris\n")
    (root / "usr/share/zoneinfo/Europe/Paris").write_bytes(b"TZif2\x00\x00\x00fake zone")
    # Absolute and relative links both resolve inside the root, never on the host.
    (root / "etc/localtime").symlink_to("/usr/share/zoneinfo/Europe/Paris")
    (root / "usr/lib/ssl/openssl.cnf").symlink_to("../../../etc/ssl/openssl.cnf")
    (root / "etc/pip.conf").write_text(
        "[global]\nindex-url = https://ci:CANARY-pip-pw@pypi.corp/simple\ntimeout = 30\n"
    )
    manifest = run(Source.rootfs(root))
    section = manifest.section("config_files")
    assert sorted(section) == [
        "/etc/hosts",
        "/etc/localtime",
        "/etc/pip.conf",
        "/etc/resolv.conf",
        "/etc/ssl/certs/ca-certificates.crt",
        "/etc/ssl/openssl.cnf",
        "/etc/timezone",
        "/usr/lib/ssl/openssl.cnf",
    ]
    assert section["/etc/timezone"]["keys"] == {"value": "Europe/Paris"}
    assert section["/etc/hosts"]["keys"]["10.1.2.3"] == "db.internal db"
    assert section["/etc/resolv.conf"]["keys"]["nameserver"] == "10.0.0.2, 10.0.0.3"
    localtime = section["/etc/localtime"]
    assert localtime["type"] == "symlink"
    assert localtime["link"] == "/usr/share/zoneinfo/Europe/Paris"
    assert localtime["resolved"] == "/usr/share/zoneinfo/Europe/Paris"
    assert (localtime["target_type"], localtime["format"]) == ("file", "binary")
    assert localtime["sha256"] == hashlib.sha256(b"TZif2\x00\x00\x00fake zone").hexdigest()
    relative = section["/usr/lib/ssl/openssl.cnf"]
    assert relative["resolved"] == "/etc/ssl/openssl.cnf"
    assert relative["keys"] == section["/etc/ssl/openssl.cnf"]["keys"]
    assert section["/etc/ssl/certs/ca-certificates.crt"]["certificates"] == 2
    pip = section["/etc/pip.conf"]
    assert pip["keys"]["global.timeout"] == "30"
    assert "CANARY" not in dumps(manifest)
    assert pip["sha256"] is None  # a URL password makes the file secret


def test_globs_match_inside_the_root(tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    (root / "srv/app/conf.d/nested").mkdir(parents=True)
    (root / "srv/app/conf.d/a.ini").write_text("[a]\nx = 1\n")
    (root / "srv/app/conf.d/nested/b.ini").write_text("[b]\ny = 2\n")
    (root / "srv/app/conf.d/.hidden.ini").write_text("[h]\nz = 3\n")
    (root / "srv/app/.env").write_text("A=1\n")
    (root / "opt").mkdir()
    (root / "opt/linked").symlink_to("/srv/app/conf.d")  # a symlinked folder, inside the root
    manifest = run(
        Source.rootfs(root),
        "/srv/app/**/*.ini",
        "/srv/app/.env",
        "/opt/linked/*.ini",
        "/nothing/here/*.conf",
        "relative/*.ini",
    )
    section = manifest.section("config_files")
    assert sorted(section) == [
        "/opt/linked/a.ini",
        "/srv/app/.env",
        "/srv/app/conf.d/a.ini",
        "/srv/app/conf.d/nested/b.ini",
    ]
    assert section["/srv/app/.env"]["keys"] == {"A": "1"}
    assert issues_for(manifest, "/nothing/here/*.conf") == ["no file matches"]
    assert issues_for(manifest, "relative/*.ini") == [
        "relative path: give a path inside the captured root"
    ]
    hidden = run(Source.rootfs(root), "/srv/app/conf.d/.*.ini").section("config_files")
    assert list(hidden) == ["/srv/app/conf.d/.hidden.ini"]


def test_envpack_toml_capture_list(tmp_path: Path) -> None:
    root = fixture_root(tmp_path)
    Path("envpack.toml").write_text('[capture]\nconfig = ["/etc/myapp/*.ini"]\n')
    section = run(Source.rootfs(root)).section("config_files")
    assert "/etc/myapp/app.ini" in section
    assert "/etc/myapp/app.yaml" not in section
    Path("envpack.toml").write_text('[capture]\nconfig = "/etc/myapp/*.ini"\n')
    with pytest.raises(UsageError, match=r"\[capture\] config must be a list"):
        run(Source.rootfs(root))


def test_relative_settings_globs_are_relative_to_the_settings_file(tmp_path: Path) -> None:
    Path("conf").mkdir()
    Path("conf/app.ini").write_text("[main]\nmode = live\n")
    Path("pyproject.toml").write_text('[tool.envpack.capture]\nconfig = ["conf/*.ini"]\n')
    section = run(Source.live(environ={})).section("config_files")
    path = str(Path("conf/app.ini").resolve())
    assert section[path]["keys"] == {"main.mode": "live"}


def test_size_cap_and_parse_errors_are_issues(tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    (root / "etc/app").mkdir(parents=True)
    big = b'{"pad": "' + b"x" * (PARSE_LIMIT + 10) + b'"}'
    (root / "etc/app/big.json").write_bytes(big)
    (root / "etc/app/broken.json").write_text('{"a": 1,,}')
    manifest = run(Source.rootfs(root), "/etc/app/*")
    section = manifest.section("config_files")
    assert section["/etc/app/big.json"]["size"] == len(big)
    assert section["/etc/app/big.json"]["keys"] == {}
    # Unparsed content may hide secrets: keyed digest of the whole file, not a plain one.
    expected = REDACTOR.fingerprint(hashlib.sha256(big).hexdigest())
    assert section["/etc/app/big.json"]["fingerprint"] == expected
    assert issues_for(manifest, "/etc/app/big.json") == [
        f"larger than {PARSE_LIMIT} bytes: hashed, keys not parsed"
    ]
    assert section["/etc/app/broken.json"]["keys"] == {}
    [reason] = issues_for(manifest, "/etc/app/broken.json")
    assert reason.startswith("invalid JSON")


def test_live_host_defaults_and_user_files(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / ".config/pip").mkdir(parents=True)
    (home / ".config/pip/pip.conf").write_text("[global]\nindex-url = https://pypi.corp/simple\n")
    cert = tmp_path / "extra-ca.pem"
    shutil.copy(CONFIG / "bundle.pem", cert)
    source = Source.live(environ={"HOME": str(home), "SSL_CERT_FILE": str(cert)})
    manifest = run(source)
    section = manifest.section("config_files")
    user_pip = section[f"{home}/.config/pip/pip.conf"]
    assert user_pip["keys"] == {"global.index-url": "https://pypi.corp/simple"}
    assert user_pip["owner_name"] == f"{pwd.getpwuid(os.getuid()).pw_name}:" + (
        __import__("grp").getgrgid(os.getgid()).gr_name
    )
    assert section[str(cert)]["certificates"] == 2
    hosts = Path("/etc/hosts")
    if hosts.is_file() and not hosts.is_symlink():
        digest = hashlib.sha256(hosts.read_bytes()).hexdigest()
        assert section["/etc/hosts"]["sha256"] == digest
    if SYSTEM_BUNDLE.is_file():
        data = SYSTEM_BUNDLE.read_bytes()
        bundle = section[str(SYSTEM_BUNDLE)]
        assert bundle["certificates"] == data.count(b"-----BEGIN CERTIFICATE-----")
    for path, component in section.items():
        assert component["path"] == path
        assert os.path.lexists(path)


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SOURCE_DATE_EPOCH": "1700000000"}
    return subprocess.run(
        [sys.executable, "-m", "envpack", "capture", "-q", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env=env,
        check=False,
    )


@pytest.mark.slow
def test_cli_capture_is_schema_valid_and_byte_identical(tmp_path: Path) -> None:
    root = fixture_root(tmp_path)
    outputs = []
    for name in ("a.json", "b.json"):
        result = _cli(
            "--only", "config_files", "--root", str(root), "--config", "/etc/myapp/*",
            "-o", str(tmp_path / name), cwd=Path.cwd(),
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        outputs.append((tmp_path / name).read_bytes())
    assert outputs[0] == outputs[1]
    document = json.loads(outputs[0])
    jsonschema.validate(document, json.loads(schema_text()))
    assert b"CANARY" not in outputs[0]
    assert len(document["config_files"]) == len(list(CONFIG.iterdir()))


@pytest.mark.slow
def test_cli_live_capture_is_schema_valid(tmp_path: Path) -> None:
    result = _cli("--only", "config_files", "-o", str(tmp_path / "live.json"), cwd=Path.cwd())
    assert result.returncode == 0, result.stderr
    document = json.loads((tmp_path / "live.json").read_text())
    jsonschema.validate(document, json.loads(schema_text()))
    assert "/etc/hosts" in document["config_files"]
