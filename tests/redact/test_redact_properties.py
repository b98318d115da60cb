"""Properties of the policy over generated secrets: whatever characters a password holds,
it never survives in a URL, a bare userinfo, a connection string or a secret-named value."""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from envpack.redact import Redactor, mask

REDACTOR = Redactor(b"property-key")
# What people put in passwords: anything printable but whitespace (a URL or a libpq value
# ends there), at least 8 characters, starting with a letter so it reads as a password.
PASSWORDS = st.builds(
    lambda head, rest: head + rest,
    st.sampled_from(string.ascii_letters),
    st.text(
        alphabet=st.characters(min_codepoint=33, max_codepoint=126, blacklist_characters="\"';"),
        min_size=7,
        max_size=40,
    ),
)
FAST = settings(max_examples=200, deadline=None)


@pytest.mark.fuzz
@FAST
@given(PASSWORDS)
def test_url_passwords_never_survive(password: str) -> None:
    for text in (
        f"http://alice:{password}@proxy.corp:3128",
        f"postgres://app:{password}@db.internal:5432/app",
        f"alice:{password}@proxy.corp:8080",
    ):
        assert password not in REDACTOR.text(text), text
        assert password not in mask(text), text


@pytest.mark.fuzz
@FAST
@given(PASSWORDS)
def test_connection_string_passwords_never_survive(password: str) -> None:
    for text in (
        f"Server=db;Database=app;Password={password};Encrypt=true",
        f"host=db user=app password={password} sslmode=require",
        f"machine h login u password {password}",
    ):
        assert password not in REDACTOR.text(text), text


@pytest.mark.fuzz
@FAST
@given(st.text(min_size=1, max_size=60))
def test_secret_names_hide_any_value(value: str) -> None:
    recorded, redacted = REDACTOR.value("DB_PASSWORD", value)
    assert redacted and recorded == REDACTOR.fingerprint(value)


@pytest.mark.fuzz
@FAST
@given(st.text(max_size=200))
def test_cleaning_is_idempotent_and_total(text: str) -> None:
    once = REDACTOR.text(text)
    assert REDACTOR.text(once) == once
