"""envpack.redact: fingerprints, URL passwords and the per-user key file with its modes."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from envpack.errors import EnvpackError
from envpack.redact import FINGERPRINT_PREFIX, RedactionKeyError, Redactor, load_redaction_key


def test_fingerprint_shape_and_key_dependence() -> None:
    one, two = Redactor(b"key-one"), Redactor(b"key-two")
    print_one = one.fingerprint("hunter2")
    assert print_one.startswith(FINGERPRINT_PREFIX)
    assert len(print_one) == len(FINGERPRINT_PREFIX) + 32
    assert print_one == one.fingerprint(b"hunter2")
    assert print_one == Redactor(b"key-one").fingerprint("hunter2")
    assert print_one != two.fingerprint("hunter2")
    assert print_one != one.fingerprint("hunter3")
    assert "hunter2" not in print_one


@pytest.mark.parametrize(
    ("url", "kept"),
    [
        ("http://user:s3cr3t@proxy:3128", ("http://user:", "@proxy:3128")),
        ("postgres://app:s3cr3t@db.internal:5432/app", ("postgres://app:", "@db.internal")),
        ("https://:s3cr3t@host/x", ("https://:", "@host/x")),
        (
            "a http://u:s3cr3t@h1 and ftp://v:s3cr3t@h2 b",
            ("http://u:", "@h1 and ftp://v:", "@h2 b"),
        ),
        # Passwords people really use, with characters that are not allowed unescaped.
        ("http://user:ab/s3cr3t@proxy:3128", ("http://user:", "@proxy:3128")),
        ("http://user:p@s3cr3t@proxy:3128", ("http://user:", "@proxy:3128")),
        ("redis://:s3cr3t#x@cache:6379/0", ("redis://:", "@cache:6379/0")),
    ],
)
def test_url_passwords_are_hidden(url: str, kept: tuple[str, ...]) -> None:
    redactor = Redactor(b"k")
    cleaned = redactor.redact_urls(url)
    assert "s3cr3t" not in cleaned
    for part in kept:
        assert part in cleaned
    recorded, redacted = redactor.value("HTTP_PROXY", url)
    assert redacted
    assert "s3cr3t" not in recorded


def test_values_without_secrets_are_kept() -> None:
    redactor = Redactor(b"k")
    for value in ("http://proxy:3128", "user@host", "https://example.com/a:b@c", "/usr/bin"):
        assert redactor.value("SOME_URL", value) == (value, False)
    assert redactor.value("PATH", "/usr/bin:/bin") == ("/usr/bin:/bin", False)
    assert redactor.value("NO_PROXY", "localhost,127.0.0.1") == ("localhost,127.0.0.1", False)


def test_secret_name_hides_the_whole_value() -> None:
    redactor = Redactor(b"k")
    recorded, redacted = redactor.value("DB_PASSWORD", "s3cr3t")
    assert redacted
    assert recorded == redactor.fingerprint("s3cr3t")


def test_key_from_the_environment_wins(tmp_path: Path) -> None:
    key_file = tmp_path / "redact.key"
    assert load_redaction_key({"ENVPACK_REDACT_KEY": "shared"}, key_file) == b"shared"
    assert not key_file.exists()


def test_key_file_created_0600_and_reused(tmp_path: Path) -> None:
    key_file = tmp_path / "cfg" / "envpack" / "redact.key"
    first = load_redaction_key({}, key_file)
    assert len(first) == 64
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(key_file.parent.stat().st_mode) == 0o700  # the folder we created
    assert load_redaction_key({}, key_file) == first
    assert key_file.read_bytes() == first
    assert list(key_file.parent.iterdir()) == [key_file]  # no temporary file left behind


def test_unreadable_key_file_is_one_clear_error(tmp_path: Path) -> None:
    key_file = tmp_path / "redact.key"
    key_file.mkdir()  # a folder where the key file should be
    with pytest.raises(EnvpackError, match="ENVPACK_REDACT_KEY"):
        load_redaction_key({}, key_file)


_RACER = """
import sys, time
from pathlib import Path
from envpack.redact import load_redaction_key
start = float(sys.argv[2])
while time.time() < start:
    pass
sys.stdout.write(load_redaction_key({}, Path(sys.argv[1])).decode())
"""


@pytest.mark.slow  # eight child interpreters racing
def test_processes_creating_the_key_at_once_agree(tmp_path: Path) -> None:
    key_file = tmp_path / "envpack" / "redact.key"
    start = time.time() + 1.5  # every child spins until the same instant, then races
    env = {k: v for k, v in os.environ.items() if k != "ENVPACK_REDACT_KEY"}
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _RACER, str(key_file), repr(start)],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(8)
    ]
    keys = {child.communicate(timeout=60)[0] for child in children}
    assert all(child.returncode == 0 for child in children)
    assert len(keys) == 1
    assert keys == {key_file.read_text()}
    assert [p.name for p in key_file.parent.iterdir()] == ["redact.key"]


def _key_in(tmp_path: Path, mode: int = 0o600, folder_mode: int = 0o700) -> Path:
    folder = tmp_path / "envpack"
    folder.mkdir(mode=0o700)
    key_file = folder / "redact.key"
    key_file.write_text("k" * 64)
    key_file.chmod(mode)
    folder.chmod(folder_mode)
    return key_file


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660, 0o666, 0o620, 0o602])
def test_key_file_readable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    key_file = _key_in(tmp_path, mode=mode)
    with pytest.raises(RedactionKeyError, match=f"mode {mode:04o}.*chmod 600"):
        load_redaction_key({}, key_file)


@pytest.mark.parametrize("mode", [0o600, 0o400, 0o700])
def test_key_file_of_the_user_alone_is_used(tmp_path: Path, mode: int) -> None:
    key_file = _key_in(tmp_path, mode=mode)
    assert load_redaction_key({}, key_file) == b"k" * 64


@pytest.mark.parametrize("folder_mode", [0o770, 0o707, 0o777, 0o1777])
def test_key_folder_writable_by_others_is_refused(tmp_path: Path, folder_mode: int) -> None:
    key_file = _key_in(tmp_path, folder_mode=folder_mode)
    with pytest.raises(RedactionKeyError, match="could replace the key"):
        load_redaction_key({}, key_file)
    # Not created there either: a new key in such a folder could be swapped at once.
    key_file.unlink()
    with pytest.raises(RedactionKeyError, match="could replace the key"):
        load_redaction_key({}, key_file)
    assert not key_file.exists()


def test_key_folder_readable_by_others_is_fine(tmp_path: Path) -> None:
    key_file = _key_in(tmp_path, folder_mode=0o755)
    assert load_redaction_key({}, key_file) == b"k" * 64


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_key_file_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    key_file = _key_in(tmp_path)
    os.chown(key_file, 4242, 4242)
    with pytest.raises(RedactionKeyError, match="owned by uid 4242"):
        load_redaction_key({}, key_file)


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a folder to another user needs root")
def test_key_folder_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    key_file = _key_in(tmp_path)
    os.chown(key_file.parent, 4242, 4242)
    with pytest.raises(RedactionKeyError, match="owned by uid 4242"):
        load_redaction_key({}, key_file)


def test_symlinked_key_file_is_refused(tmp_path: Path) -> None:
    elsewhere = tmp_path / "planted"
    elsewhere.write_text("attacker-known-key")
    elsewhere.chmod(0o600)
    folder = tmp_path / "envpack"
    folder.mkdir(mode=0o700)
    (folder / "redact.key").symlink_to(elsewhere)
    with pytest.raises(RedactionKeyError, match="cannot read the redaction key"):
        load_redaction_key({}, folder / "redact.key")


def test_empty_key_file_is_refused(tmp_path: Path) -> None:
    key_file = _key_in(tmp_path)
    key_file.write_text("")
    with pytest.raises(RedactionKeyError, match="is empty"):
        load_redaction_key({}, key_file)


def test_cli_refuses_a_readable_key_with_one_line_and_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.mkdir()
    key_file = _key_in(config, mode=0o644)
    env = {k: v for k, v in os.environ.items() if k != "ENVPACK_REDACT_KEY"}
    env["XDG_CONFIG_HOME"] = str(config)
    done = subprocess.run(
        [sys.executable, "-m", "envpack", "capture", "--only", "env", "-q", "--no-cache"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("envpack: error: redaction key ")
    assert str(key_file) in lines[0] and "0644" in lines[0]
