"""Hostile config files: keys within the documented limits, or one issue; never a crash.

The corpus is ``fixtures/hostile/config`` (its README says what each file does). Every
parse is timed: the cubic regexes and the quadratic PEM scan these tests guard against
took tens of seconds to hours on inputs of this size, so a regression fails on time.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import re
import ssl
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from envpack.snapshot.config_files import PARSE_LIMIT
from envpack.snapshot.config_parsers import (
    MAX_DEPTH,
    MAX_FLAT_CHARS,
    MAX_KEYS,
    PARSERS,
    ConfigParseError,
    detect_format,
    parse_apt_conf,
    parse_pem,
    pem_blocks,
)
from realenv import run_envpack

CORPUS = Path(__file__).resolve().parents[2] / "fixtures" / "hostile" / "config"
_BUDGET_S = (
    10.0  # CPU seconds per file (load on the machine does not count); each takes well under one
)

# file -> (format, what the parse gives: a reason it is refused for, or None for keys)
EXPECTED: dict[str, tuple[str, str | None]] = {
    "billion-laughs.yaml": ("yaml", f"more than {MAX_KEYS} keys"),
    "recursive.yaml": ("yaml", f"nested deeper than {MAX_DEPTH} levels"),
    "deep.json": ("json", f"nested deeper than {MAX_DEPTH} levels"),
    "deep.toml": ("toml", f"nested deeper than {MAX_DEPTH} levels"),
    "deep.yaml": ("yaml", f"nested deeper than {MAX_DEPTH} levels"),
    "deep-but-parsable.json": ("json", f"nested deeper than {MAX_DEPTH} levels"),
    "bigint.json": ("json", "an integer too long to read"),
    "bigint.toml": ("toml", "an integer too long to read"),
    "bigint.yaml": ("yaml", "an integer too long to read"),
    "hexint.yaml": ("yaml", "an integer too long to record"),
    "huge-exponent.json": ("json", None),
    "blank-run.ini": ("ini", None),
    "blank-run.env": ("env", None),
    "long-section.ini": ("ini", f"keys and values longer than {MAX_FLAT_CHARS >> 20} MiB"),
    "many-keys.ini": ("ini", f"more than {MAX_KEYS} keys"),
}


def _timed_parse(fmt: str, text: str) -> dict[str, str] | ConfigParseError:
    started = time.process_time()
    try:
        result: dict[str, str] | ConfigParseError = PARSERS[fmt](text)
    except ConfigParseError as err:
        result = err
    assert time.process_time() - started < _BUDGET_S
    return result


def _assert_bounded(keys: dict[str, str]) -> None:
    assert len(keys) <= MAX_KEYS
    assert sum(len(k) + len(v) for k, v in keys.items()) <= MAX_FLAT_CHARS


def test_the_corpus_is_all_listed() -> None:
    listed = set(EXPECTED) | {"unclosed-comments.apt.conf", "README.md"}
    assert {p.name for p in CORPUS.iterdir()} == listed


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_hostile_file(name: str) -> None:
    fmt, reason = EXPECTED[name]
    path = CORPUS / name
    assert detect_format(str(path), path.read_bytes()[:8192]) == fmt
    result = _timed_parse(fmt, path.read_text(encoding="utf-8"))
    if reason is None:
        assert isinstance(result, dict), result
        _assert_bounded(result)
    else:
        assert isinstance(result, ConfigParseError), f"{name}: {len(result)} keys"
        assert reason in str(result)
        assert "\n" not in str(result)


def test_blank_runs_keep_their_meaning() -> None:
    ini = _timed_parse("ini", (CORPUS / "blank-run.ini").read_text())
    assert isinstance(ini, dict)
    assert ini["s.key" + " " * 50_000 + "x"] == ""  # a key with no value, blanks kept inside
    env = _timed_parse("env", (CORPUS / "blank-run.env").read_text())
    assert env == {"KEY": "a" + " " * 50_000 + "b"}
    assert _timed_parse("env", "A=x   # note\nB=y#z\n") == {"A": "x", "B": "y#z"}


@pytest.mark.parametrize("text", ["a\n a", "[s]\nkey\n  continued\n"])
def test_a_continued_key_without_value_is_a_parse_error(text: str) -> None:
    """configparser itself crashes (AttributeError) here; the fuzzer found it."""
    with pytest.raises(ConfigParseError, match="continuation line"):
        PARSERS["ini"](text)


def test_huge_exponent_is_infinity() -> None:
    keys = _timed_parse("json", (CORPUS / "huge-exponent.json").read_text())
    assert keys == {"n": "Infinity", "m": "-Infinity"}


def test_apt_conf_comments_are_linear() -> None:
    text = (CORPUS / "unclosed-comments.apt.conf").read_text()
    started = time.process_time()
    assert parse_apt_conf(text) == {}
    assert time.process_time() - started < _BUDGET_S
    # The meaning is unchanged on ordinary text.
    assert parse_apt_conf('A::b "x // y"; // c\n/* d */ E { f "g"; };\nH "i"; /* unclosed') == {
        "A::b": "x // y",
        "E::f": "g",
        "H": "i",
    }


def test_sniffing_a_line_of_blanks_is_quick() -> None:
    started = time.process_time()  # CPU time: load on the machine does not count
    for head in (b"a" + b" " * 8191, b"[" + b" " * 8191, b"\n" * 8192, b"[" * 8192):
        detect_format("/etc/unknown", head)
    assert time.process_time() - started < 1.0


# -- PEM ---------------------------------------------------------------------------------------


def _bundle_without_ends(size: int) -> bytes:
    unit = b"-----BEGIN CERTIFICATE-----\nQUJD\n"
    return unit * (size // len(unit))


def test_pem_scan_is_linear_on_unclosed_blocks() -> None:
    """5 MB of BEGIN lines with no END: the old regex took 8 s for 100 KB (quadratic)."""
    data = _bundle_without_ends(5 * 1024 * 1024)
    started = time.process_time()
    facts = parse_pem(data)
    elapsed = time.process_time() - started
    assert (facts.certificates, facts.private_keys, facts.other) == ([], 0, [])
    assert elapsed < _BUDGET_S, f"{elapsed:.1f} s"


def test_pem_matches_the_standard_library_on_the_real_bundle() -> None:
    bundle = Path("/etc/ssl/certs/ca-certificates.crt")
    if not bundle.is_file():
        pytest.skip("no CA bundle on this machine")
    text = bundle.read_text(encoding="ascii")
    blocks = re.findall(
        r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", text, flags=re.S
    )
    expected = sorted(hashlib.sha256(ssl.PEM_cert_to_DER_cert(b)).hexdigest() for b in blocks)
    assert parse_pem(text.encode("ascii")).certificates == expected
    assert len(expected) > 50


def test_pem_broken_blocks_are_skipped_and_good_ones_kept() -> None:
    good = (
        b"-----BEGIN CERTIFICATE-----\n"
        + base64.b64encode(b"der")
        + b"\n-----END CERTIFICATE-----\n"
    )
    data = (
        b"-----BEGIN CERTIFICATE-----\nQUJD\n"  # never closed
        + good
        + b"-----BEGIN " + b"X" * 100 + b"-----\n"  # a label too long to be one
        + b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
        + b"-----BEGIN CERTIFICATE-----\nQUJD\n-----END PUBLIC KEY-----\n"  # mismatched
    )  # fmt: skip
    facts = parse_pem(data)
    assert facts.certificates == [hashlib.sha256(b"der").hexdigest()]
    assert facts.private_keys == 1


# -- through the real CLI ------------------------------------------------------------------------


def test_capture_of_the_corpus(tmp_path: Path) -> None:
    """A root whose config files are the corpus and a 3.9 MB bundle of unclosed blocks."""
    folder = tmp_path / "root" / "etc" / "hostile"
    folder.mkdir(parents=True)
    for path in CORPUS.iterdir():
        (folder / path.name).write_bytes(path.read_bytes())
    (folder / "quadratic.crt").write_bytes(_bundle_without_ends(PARSE_LIMIT - 100_000))
    out = tmp_path / "m.json"
    started = time.process_time()
    result = run_envpack(
        "capture", "--root", str(tmp_path / "root"), "--only", "config_files",
        "--config", "/etc/hostile/*", "--no-cache", "-q", "-o", str(out), timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert time.process_time() - started < 60
    manifest = json.loads(out.read_text())
    files = manifest["config_files"]
    reasons = {i["path"]: i["reason"] for i in manifest["issues"]}
    for name, (fmt, reason) in EXPECTED.items():
        inner = f"/etc/hostile/{name}"
        assert files[inner]["format"] == fmt
        if reason is None:
            assert files[inner]["keys"], name
            assert inner not in reasons
        else:
            assert files[inner]["keys"] == {}
            assert reason in reasons[inner], reasons.get(inner)
    assert files["/etc/hostile/quadratic.crt"]["certificates"] == 0
    assert len(out.read_bytes()) < 32 * 1024 * 1024


# -- fuzzing -------------------------------------------------------------------------------------

_TEXT = st.text(
    alphabet=st.sampled_from(list("ab=:#[]{}\"'\\ \t\n-.&*!|>%0x9$;/")) | st.characters(),
    max_size=300,
)


@pytest.mark.fuzz
@pytest.mark.timeout(60)
@pytest.mark.parametrize("fmt", sorted(PARSERS))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=_TEXT)
def test_fuzz_config_parsers(fmt: str, text: str) -> None:
    """Any text: keys within the limits or a ConfigParseError, nothing else."""
    try:
        keys = PARSERS[fmt](text)
    except ConfigParseError as err:
        assert "\n" not in str(err) or fmt == "ini"  # configparser quotes the line
        return
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in keys.items())
    _assert_bounded(keys)


@pytest.mark.fuzz
@pytest.mark.timeout(60)
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=_TEXT)
def test_fuzz_apt_conf_and_sniffing(text: str) -> None:
    with contextlib.suppress(ConfigParseError):
        parse_apt_conf(text)
    detect_format("/etc/unknown", text.encode("utf-8", "surrogatepass"))


_PEM_PIECES = st.sampled_from(
    [
        b"-----BEGIN CERTIFICATE-----\n",
        b"-----END CERTIFICATE-----\n",
        b"-----BEGIN PRIVATE KEY-----\n",
        b"-----END PRIVATE KEY-----\n",
        b"-----BEGIN X-----",
        b"-----",
        b"QUJD\n",
        b"!!\n",
        b"\n",
    ]
)


@pytest.mark.fuzz
@pytest.mark.timeout(60)
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pieces=st.lists(_PEM_PIECES | st.binary(max_size=20), max_size=40))
def test_fuzz_pem_scanner(pieces: list[bytes]) -> None:
    data = b"".join(pieces)
    blocks = list(pem_blocks(data))
    assert sum(len(label) + len(body) for label, body in blocks) <= len(data)
    try:
        facts = parse_pem(data)
    except ConfigParseError:
        return
    assert len(facts.certificates) + facts.private_keys + len(facts.other) == len(blocks)
