"""The env probe: filters, redaction, and canary secrets through the real CLI."""

from __future__ import annotations

import json
import os
import stat
import uuid
from pathlib import Path
from typing import Any

import pytest

from envpack.redact import Redactor
from envpack.snapshot import env_vars
from envpack.snapshot.context import CaptureContext, CaptureOptions
from envpack.snapshot.env_vars import env_section, keep_name, redact_value
from envpack.snapshot.source import Source
from realenv import run_envpack

ROOTFS = Path(__file__).resolve().parents[2] / "fixtures" / "rootfs"
REDACTOR = Redactor(b"test-key")


def test_allow_and_deny_are_case_sensitive_globs_and_deny_wins() -> None:
    assert keep_name("HOME", (), ())
    assert keep_name("HTTP_PROXY", ("HTTP*",), ())
    assert not keep_name("http_proxy", ("HTTP*",), ())
    assert not keep_name("HOME", ("HTTP*", "LANG"), ())
    assert not keep_name("HTTP_PROXY", ("HTTP*",), ("*PROXY",))
    assert not keep_name("AWS_X", (), ("AWS_*",))
    assert keep_name("aws_x", (), ("AWS_*",))
    assert keep_name("LC_ALL", ("LC_?LL",), ())


def test_the_redaction_key_itself_is_never_recorded() -> None:
    section = env_section({"ENVPACK_REDACT_KEY": "k", "A": "1"}, REDACTOR, allow=("*",))
    assert list(section) == ["A"]


def test_values_and_redaction_flags() -> None:
    section = env_section(
        {
            "PATH": "/usr/bin:/bin",
            "GITHUB_TOKEN": "ghp_secret",
            "HTTP_PROXY": "http://bob:pw123@proxy:3128",
            "NO_PROXY": "localhost",
            "NETRC_LINE": "machine example.com login bob password pw456",
            "LIBPQ": "host=db user=app password=pw789 sslmode=require",
            "RSYNC_PROXY": "bob:pw000@rsync.example.com:873",
            "GH": "ghp_" + "a1" * 18,
        },
        REDACTOR,
    )
    assert list(section) == sorted(section)
    assert section["PATH"] == {"value": "/usr/bin:/bin", "redacted": False}
    assert section["NO_PROXY"] == {"value": "localhost", "redacted": False}
    assert section["GITHUB_TOKEN"] == {
        "value": REDACTOR.fingerprint("ghp_secret"),
        "redacted": True,
    }
    assert section["HTTP_PROXY"]["value"] == (
        f"http://bob:{{{REDACTOR.fingerprint('pw123')}}}@proxy:3128"
    )
    assert section["NETRC_LINE"]["value"].endswith(f"password {{{REDACTOR.fingerprint('pw456')}}}")
    assert section["LIBPQ"]["value"] == (
        f"host=db user=app password={{{REDACTOR.fingerprint('pw789')}}} sslmode=require"
    )
    assert section["RSYNC_PROXY"]["value"].startswith("bob:{hmac-sha256:")
    assert section["GH"]["value"] == "{" + REDACTOR.fingerprint("ghp_" + "a1" * 18) + "}"
    text = json.dumps(section)
    for secret in ("ghp_secret", "pw123", "pw456", "pw789", "pw000", "a1a1a1"):
        assert secret not in text
    for name in ("HTTP_PROXY", "NETRC_LINE", "LIBPQ", "RSYNC_PROXY", "GH", "GITHUB_TOKEN"):
        assert section[name]["redacted"] is True


def test_ordinary_values_are_not_touched() -> None:
    for name, value in [
        ("GIT_REMOTE", "git@github.com:org/repo.git"),
        ("SECRETS_DIR", "/run/secrets"),  # a name with SECRET is still hidden as a whole…
        ("EDITOR", "vim"),
        ("PYTHONPATH", "/srv/app:/srv/lib"),
        ("URL", "https://example.com/a?b=c"),
    ]:
        recorded, redacted = redact_value(REDACTOR, name, value)
        if name == "SECRETS_DIR":  # …because the name says so: safe over sorry
            assert redacted
        else:
            assert (recorded, redacted) == (value, False)


def test_undecodable_bytes_are_escaped_so_json_can_hold_them() -> None:
    raw = b"caf\xe9".decode("utf-8", "surrogateescape")  # how Python keeps a Latin-1 byte
    section = env_section({"GREETING": raw}, REDACTOR)
    assert section["GREETING"]["value"] == "caf\\xe9"
    json.dumps(section, ensure_ascii=False).encode("utf-8")  # must not raise


def _probe(source: Source, options: CaptureOptions) -> CaptureContext:
    ctx = CaptureContext(source, options, REDACTOR)
    env_vars.probe(ctx)
    return ctx


def test_live_probe_reads_the_source_environment() -> None:
    ctx = _probe(
        Source.live({"A": "1", "B_TOKEN": "t", "C": "3"}),
        CaptureOptions(env_allow=("A", "B_*"), env_deny=()),
    )
    assert ctx.sections["env"] == {
        "A": {"value": "1", "redacted": False},
        "B_TOKEN": {"value": REDACTOR.fingerprint("t"), "redacted": True},
    }


def test_root_probe_reads_etc_environment() -> None:
    ctx = _probe(Source.rootfs(ROOTFS / "alpine-mini"), CaptureOptions())
    assert ctx.sections["env"] == {
        "APP_ENV": {"value": "production", "redacted": False},
        "PATH": {
            "value": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "redacted": False,
        },
    }
    assert ctx.issues == []


def test_root_without_etc_environment_is_an_empty_section(tmp_path: Path) -> None:
    ctx = _probe(Source.rootfs(tmp_path), CaptureOptions())
    assert ctx.sections["env"] == {}
    assert ctx.issues == []


def test_root_with_a_fifo_as_etc_environment(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    os.mkfifo(tmp_path / "etc" / "environment")
    ctx = _probe(Source.rootfs(tmp_path), CaptureOptions())
    assert ctx.sections["env"] == {}
    assert [(i.probe, i.path) for i in ctx.issues] == [("env", "/etc/environment")]


# -- canaries through the real CLI --------------------------------------------------------


def _canary() -> str:
    return f"canary-{uuid.uuid4()}"


def _canary_env(base: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    token, password, proxy_pw, netrc_pw, shared, slash_pw = (_canary() for _ in range(6))
    env = dict(base)
    env.update(
        {
            "FOO_TOKEN": token,
            "DB_PASSWORD": password,
            "HTTPS_PROXY": f"http://proxyuser:{proxy_pw}@proxy.internal:3128",
            "https_proxy": f"http://proxyuser:{slash_pw}/x@y@proxy.internal:3128",
            "NETRC_ENTRY": f"machine pypi.example.com login deploy password {netrc_pw}",
            "SERVICE_A_API_KEY": shared,
            "SERVICE_B_SECRET": shared,
        }
    )
    return env, [token, password, proxy_pw, netrc_pw, shared, slash_pw]


def _capture(env: dict[str, str], *args: str) -> tuple[str, str, dict[str, Any]]:
    result = run_envpack("capture", "--only", "env", *args, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout, result.stderr, json.loads(result.stdout) if result.stdout else {}


def _assert_clean(texts: list[str], canaries: list[str]) -> None:
    for text in texts:
        for canary in canaries:
            assert canary not in text
            if canary.startswith("canary-"):  # not even the random part alone
                assert canary[len("canary-") :] not in text


@pytest.mark.slow  # child processes of the real CLI
def test_canaries_never_leave_with_a_key_from_the_environment(
    tmp_path: Path, clean_env: dict[str, str]
) -> None:
    env, canaries = _canary_env(clean_env)
    env["ENVPACK_REDACT_KEY"] = "key-one"
    out_file = tmp_path / "m.json"
    stdout, stderr, manifest = _capture(env)
    file_run = run_envpack("capture", "--only", "env", "-o", str(out_file), env=env, timeout=120)
    assert file_run.returncode == 0, file_run.stderr
    _assert_clean(
        [stdout, stderr, file_run.stdout, file_run.stderr, out_file.read_text()], canaries
    )
    section = manifest["env"]
    for name in ("FOO_TOKEN", "DB_PASSWORD", "HTTPS_PROXY", "https_proxy", "NETRC_ENTRY"):
        assert section[name]["redacted"] is True
    assert "ENVPACK_REDACT_KEY" not in section
    assert "key-one" not in stdout
    # The same secret under two names, and in two captures, gives one fingerprint.
    assert section["SERVICE_A_API_KEY"]["value"] == section["SERVICE_B_SECRET"]["value"]
    assert json.loads(out_file.read_text())["env"] == section
    # Another key: other fingerprints, same shape.
    env["ENVPACK_REDACT_KEY"] = "key-two"
    _, _, other = _capture(env)
    for name in ("FOO_TOKEN", "DB_PASSWORD", "SERVICE_A_API_KEY"):
        assert other["env"][name]["value"] != section[name]["value"]
        assert other["env"][name]["value"].startswith("hmac-sha256:")


@pytest.mark.slow  # child processes of the real CLI
def test_canaries_never_leave_with_a_per_user_key_file(
    tmp_path: Path, clean_env: dict[str, str]
) -> None:
    env, canaries = _canary_env(clean_env)
    env.pop("ENVPACK_REDACT_KEY", None)
    home = tmp_path / "home"
    home.mkdir()
    env["HOME"] = str(home)
    env["XDG_CONFIG_HOME"] = str(home / ".config")
    stdout, stderr, first = _capture(env)
    key_file = home / ".config" / "envpack" / "redact.key"
    assert key_file.is_file()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = key_file.read_text()
    _assert_clean([stdout, stderr], [*canaries, key])
    # The key file is reused: the same secrets give the same fingerprints next time.
    _, _, second = _capture(env)
    for name in ("FOO_TOKEN", "DB_PASSWORD", "NETRC_ENTRY", "HTTPS_PROXY"):
        assert second["env"][name] == first["env"][name]
    assert key_file.read_text() == key
    # …and agree with an explicit ENVPACK_REDACT_KEY holding that same key.
    env["ENVPACK_REDACT_KEY"] = key
    _, _, third = _capture(env)
    assert third["env"]["FOO_TOKEN"] == first["env"]["FOO_TOKEN"]


@pytest.mark.slow  # child processes of the real CLI
def test_filters_on_the_command_line(clean_env: dict[str, str]) -> None:
    env, canaries = _canary_env(clean_env)
    stdout, stderr, manifest = _capture(
        env, "--env-allow", "*PROXY", "--env-allow", "FOO_*", "--env-deny", "FOO_*", "-q"
    )
    assert sorted(manifest["env"]) == ["HTTPS_PROXY"]  # case-sensitive: https_proxy is out
    assert stderr == ""
    _assert_clean([stdout], canaries)


@pytest.mark.slow  # child processes of the real CLI
def test_unchanged_environment_gives_byte_identical_captures(
    clean_env: dict[str, str],
) -> None:
    env, _ = _canary_env(clean_env)
    env["SOURCE_DATE_EPOCH"] = "1700000000"
    args = ("--only", "os", "--only", "system_packages", "-q")
    first = run_envpack("capture", "--only", "env", *args, env=env, timeout=120)
    second = run_envpack("capture", "--only", "env", *args, env=env, timeout=120)
    assert first.returncode == second.returncode == 0, first.stderr
    assert first.stdout == second.stdout
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(run_envpack("schema").stdout)
    jsonschema.validate(json.loads(first.stdout), schema)


@pytest.mark.parametrize(
    "value",
    [
        "host=db password=pw;1,2&3 sslmode=require",  # characters a password may hold
        "dbname=app password='pw 1 2' user=app",  # a quoted one with spaces
        "machine h login u password pw/1@2",
        "bob:pw/1@2@rsync.example.com:873",  # bare userinfo with "/" and "@" inside
        "see http://u:pw/1@2@proxy:3128 and ftp://v:pw@mirror",
    ],
)
def test_no_part_of_an_inline_password_is_left(value: str) -> None:
    recorded, redacted = redact_value(REDACTOR, "SETTINGS", value)
    assert redacted
    for piece in ("pw", "1,2", "1 2", "/1@2", "&3"):
        assert piece not in recorded
