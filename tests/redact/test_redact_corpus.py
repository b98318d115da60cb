"""The redaction policy measured on the corpus of fixtures/secrets/values.json.

Every secret of every form must be hidden (recall 1.0) and no look-alike (versions,
hashes, paths, image digests, prose) may be touched (no false positive). The figures are
printed so ``pytest -s tests/redact/test_redact_corpus.py`` shows them.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from envpack.redact import Redactor, is_secret_file, is_secret_name, mask
from envpack.redact.values import DETECTORS, SCAN_LIMIT

CORPUS = Path(__file__).resolve().parents[2] / "fixtures" / "secrets" / "values.json"
REDACTOR = Redactor(b"corpus-key")


def _corpus() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(CORPUS.read_text())
    return data


SECRET_CASES = _corpus()["secret"]
CLEAN_TEXTS = _corpus()["clean"]


def test_corpus_figures_recall_and_false_positives() -> None:
    missed = [
        case["kind"]
        for case in SECRET_CASES
        if any(secret in REDACTOR.text(case["text"]) for secret in case["secrets"])
    ]
    touched = [text for text in CLEAN_TEXTS if REDACTOR.text(text) != text]
    recall = 1 - len(missed) / len(SECRET_CASES)
    false_positive_rate = len(touched) / len(CLEAN_TEXTS)
    print(
        f"\nredaction corpus: {len(SECRET_CASES)} secrets, recall {recall:.3f}; "
        f"{len(CLEAN_TEXTS)} look-alikes, false positives {false_positive_rate:.3f}"
    )
    assert missed == []
    assert touched == []
    assert len(SECRET_CASES) >= 40 and len(CLEAN_TEXTS) >= 40  # the corpus did not shrink


@pytest.mark.parametrize("case", SECRET_CASES, ids=[c["kind"] for c in SECRET_CASES])
def test_each_secret_form_is_hidden_and_the_rest_kept(case: dict[str, Any]) -> None:
    text: str = case["text"]
    shown = REDACTOR.text(text)
    for secret in case["secrets"]:
        assert secret in text  # the case holds what it claims
        assert secret not in shown
        assert REDACTOR.fingerprint(secret) in shown or "hmac-sha256:" in shown
        assert secret not in mask(text)
    assert REDACTOR.text(shown) == shown  # a fingerprint is never hidden again
    assert "{redacted}" in mask(text)


@pytest.mark.parametrize("text", CLEAN_TEXTS)
def test_look_alikes_are_kept(text: str) -> None:
    assert REDACTOR.text(text) == text
    assert mask(text) == text


def test_equal_secrets_give_equal_fingerprints_wherever_they_are() -> None:
    secret = "Zq" + "x7" * 8
    in_url = REDACTOR.text(f"http://u:{secret}@proxy:3128")
    in_libpq = REDACTOR.text(f"host=db password={secret}")
    assert REDACTOR.fingerprint(secret) in in_url
    assert REDACTOR.fingerprint(secret) in in_libpq
    assert REDACTOR.value("DB_PASSWORD", secret) == (REDACTOR.fingerprint(secret), True)


@pytest.mark.parametrize(
    "name",
    [
        "PRIVKEY", "X_AUTHORIZATION", "DB_PASS", "SMTP_PASSWD", "MYSQL_PWD", "CI_JOB_JWT",
        "APP_SESSION", "AUTH_BEARER", "DB_CRED", "GOOGLE_APPLICATION_CREDENTIALS",
        "SSH_PRIVATE", "auth.pass", "credentials.db.value", "Smtp.Pass", "apiKey",
        "//registry.npmjs.org/:_authToken", "auths.registry.example.auth",
        "http.extraheader.authorization", "GITHUB_TOKEN", "SENTRY_DSN", "MONKEY",
    ],
)  # fmt: skip
def test_secret_names(name: str) -> None:
    assert is_secret_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "PATH", "HOME", "PWD", "OLDPWD", "LANG", "KEYBOARD", "XKB_KEYMAP", "SSH_AUTH_SOCK",
        "XAUTHORITY", "XDG_SESSION_TYPE", "DESKTOP_SESSION", "NO_PROXY", "HTTP_PROXY_BYPASS",
        "TOKENIZERS_PARALLELISM", "database.host", "env.PWD", "git.author",
    ],
)  # fmt: skip
def test_not_secret_names(name: str) -> None:
    assert not is_secret_name(name)


@pytest.mark.parametrize(
    ("path", "secret"),
    [
        ("/etc/myapp/db_password", True),
        ("/run/secrets/api_token", True),
        ("/home/u/.ssh/id_ed25519", True),
        ("/home/u/.ssh/id_rsa", True),
        ("/home/u/.ssh/id_ed25519.pub", False),
        ("/etc/ssl/private/server.key", True),
        ("/etc/myapp/client.p12", True),
        ("/etc/myapp/keystore.jks", True),
        ("/etc/shadow", True),
        ("/etc/passwd", False),
        ("/etc/group", False),
        ("/etc/hosts", False),
        ("/etc/ssl/certs/ca-certificates.crt", False),
        ("/etc/apt/trusted.gpg.d/debian-archive-bookworm-stable.asc", False),
        ("/opt/model/tokenizer.json", False),
    ],
)
def test_secret_file_names(path: str, secret: bool) -> None:
    assert is_secret_file(path) is secret


@pytest.mark.parametrize(
    "hostile",
    [
        "a:" * 40_000,
        "a://" * 20_000,
        "x=" * 40_000,
        "password=" * 8_000,
        "-----BEGIN PRIVATE KEY-----" * 2_000,
        "u:p@" * 20_000,
        "?token=&" * 10_000,
        "Authorization: " * 5_000,
        "A" * 60_000,
        "login x " * 8_000,
    ],
    ids=lambda text: repr(text[:12]),
)
def test_detectors_take_linear_time_on_hostile_text(hostile: str) -> None:
    text = hostile[:SCAN_LIMIT]
    # CPU time, not wall time: a loaded machine must not fail a linear scan (ms here;
    # a backtracking pattern takes minutes).
    start = time.process_time()
    REDACTOR.text(text)
    assert time.process_time() - start < 2.0, len(DETECTORS)


def test_text_past_the_scan_limit_is_hidden_whole() -> None:
    text = "x" * (SCAN_LIMIT + 1)
    assert REDACTOR.text(text) == "{" + REDACTOR.fingerprint(text) + "}"
    assert mask(text) == "{redacted}"
