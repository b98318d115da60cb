"""`envpack diff` through the real command line: exit codes, bad input, formats, files."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from diff_manifests import dev_sections, make

from envpack.cli import main
from envpack.manifest import dumps


def run(
    args: list[str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    stdin: bytes | None = None,
) -> tuple[int, str, str]:
    """Run ``envpack ARGS`` in this process; (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["envpack", *args])
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
    try:
        main()
        code = 0
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 2)
    out, err = capsys.readouterr()
    return code, out, err


def write_manifest(path: Path, label: str, sections: dict[str, Any]) -> Path:
    path.write_text(dumps(make(label, sections)), encoding="utf-8")
    return path


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, Path]:
    prod = dev_sections()
    prod["python_packages"]["requests"]["version"] = "1.0.0"
    return (
        write_manifest(tmp_path / "dev.json", "dev", dev_sections()),
        write_manifest(tmp_path / "prod.json", "prod", prod),
    )


@pytest.fixture(scope="module")
def real_manifest(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A manifest made by the real `envpack capture` of this host (os and env only)."""
    out = tmp_path_factory.mktemp("real") / "real.json"
    done = subprocess.run(
        [sys.executable, "-m", "envpack", "capture", "--only", "os", "--only", "env",
         "--label", "real", "-q", "-o", str(out)],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return out.read_bytes()


def test_exit_codes_follow_the_threshold(
    pair: tuple[Path, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    dev, prod = map(str, pair)
    assert run(["diff", dev, dev], capsys, monkeypatch)[0] == 0
    code, out, err = run(["diff", dev, prod, "--format", "json"], capsys, monkeypatch)
    assert code == 1
    assert err.startswith("envpack: FAILED: worst drift is major, at or above fail-on major")
    document = json.loads(out)
    assert document["verdict"]["worst"] == "major"
    assert run(["diff", dev, prod, "--fail-on", "critical"], capsys, monkeypatch)[0] == 0
    assert run(["diff", dev, prod, "--fail-on", "MAJOR"], capsys, monkeypatch)[0] == 1


def test_help_documents_exit_codes(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, _ = run(["diff", "--help"], capsys, monkeypatch)
    assert code == 0
    for line in ("0  no drift at or above", "1  drift at or above", "2  bad input or usage"):
        assert line in out
    for flag in (
        "--baseline",
        "--requirements",
        "--policy",
        "--fail-on",
        "--accept",
        "--accepted",
        "--format",
        "--output",
    ):
        assert flag in out


@pytest.mark.parametrize(
    "format_id", ["table", "json", "markdown", "junit", "sarif", "github", "html"]
)
def test_every_format_writes_atomically_to_a_file(
    format_id: str,
    pair: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    target = tmp_path / f"report.{format_id}"
    code, out, err = run(
        ["diff", *map(str, pair), "--format", format_id, "-o", str(target)], capsys, monkeypatch
    )
    assert (code, out) == (1, "")
    # The CI log still shows the verdict and what failed, whatever the format and file.
    first, failing = err.splitlines()
    assert first.startswith("envpack: FAILED: worst drift is major, at or above fail-on major;")
    assert failing.split()[:4] == ["major", "python_packages/requests.version", "in", "prod:"]
    assert "requests" in target.read_text(encoding="utf-8")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_stdin_manifest(
    pair: tuple[Path, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    dev, prod = pair
    code, out, _ = run(
        ["diff", "-", str(prod), "--format", "json"], capsys, monkeypatch, stdin=dev.read_bytes()
    )
    assert code == 1
    assert json.loads(out)["environments"] == ["dev", "prod"]
    code, _, err = run(["diff", "-", "-"], capsys, monkeypatch, stdin=b"")
    assert code == 2
    assert err == "envpack: error: standard input ('-') can be given only once\n"


def test_accept_flow(
    pair: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dev, prod = map(str, pair)
    accepted = tmp_path / "accepted.json"
    code, _, err = run(["diff", dev, prod, "--accept", str(accepted)], capsys, monkeypatch)
    assert code == 0
    # --accept says what it wrote, and how to use it.
    assert err.splitlines()[-1] == (
        f"envpack: accepted 1 change (1 major) into {accepted}; "
        f"give it back with --accepted {accepted} so only new drift fails"
    )
    assert (
        json.loads(accepted.read_text())["changes"][0]["where"]
        == "python_packages/requests.version"
    )
    assert run(["diff", dev, prod, "--accepted", str(accepted)], capsys, monkeypatch)[0] == 0
    assert run(["diff", dev, prod], capsys, monkeypatch)[0] == 1


def test_policy_file(
    pair: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    policy = tmp_path / "envpack.toml"
    policy.write_text('[policy]\nignore = ["python_packages/requests"]\n', encoding="utf-8")
    dev, prod = map(str, pair)
    code, out, _ = run(
        ["diff", dev, prod, "--policy", str(policy), "--format", "json"], capsys, monkeypatch
    )
    assert code == 0
    assert json.loads(out)["drifts"][0]["changes"] == []
    # Found by itself in the current folder, too.
    monkeypatch.chdir(tmp_path)
    assert run(["diff", dev, prod], capsys, monkeypatch)[0] == 0
    policy.write_text('[policy]\nfail-on = "loud"\n', encoding="utf-8")
    code, out, err = run(["diff", dev, prod], capsys, monkeypatch)
    assert code == 2
    assert err.count("\n") == 1 and "unknown severity 'loud'" in err


def _bad_inputs(real: bytes) -> dict[str, bytes | None]:
    newer = json.loads(real)
    newer["schema_version"] = 99
    return {
        "missing": None,
        "invalid JSON": b"{not json",
        "truncated": real[: len(real) // 2],
        "newer schema": json.dumps(newer).encode(),
        "JSON array": b"[1, 2, 3]",
        "empty": b"",
        "binary": b"\x00\xff\xfe garbage",
    }


@pytest.mark.parametrize(
    ("what", "message"),
    [
        ("missing", "no such file"),
        ("invalid JSON", "invalid JSON"),
        ("truncated", "truncated"),
        ("newer schema", "newer envpack"),
        ("JSON array", "not an envpack manifest"),
        ("empty", "empty file"),
        ("binary", "not an envpack manifest"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    what: str,
    message: str,
    real_manifest: bytes,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    good = tmp_path / "good.json"
    good.write_bytes(real_manifest)
    bad = tmp_path / "bad.json"
    data = _bad_inputs(real_manifest)[what]
    if data is not None:
        bad.write_bytes(data)
    code, out, err = run(["diff", str(good), str(bad)], capsys, monkeypatch)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("envpack: error: ") and message in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--fail-on", "huge"], "--fail-on: unknown severity 'huge'"),
        (["--format", "pdf"], "unknown format 'pdf'"),
        (["--baseline", "qa"], "--baseline 'qa' names no environment; choose from dev, prod"),
        (["--requirements", "/nonexistent/req.txt"], "no such requirements file"),
        (["--accepted", "/nonexistent/acc.json"], "no such accepted-drift file"),
    ],
)
def test_bad_usage_is_one_line_and_exit_2(
    args: list[str],
    message: str,
    pair: tuple[Path, Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    code, out, err = run(["diff", *map(str, pair), *args], capsys, monkeypatch)
    assert (code, out) == (2, "")
    assert err.count("\n") == 1 and message in err


def test_one_manifest_is_a_usage_error(
    pair: tuple[Path, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, err = run(["diff", str(pair[0])], capsys, monkeypatch)
    assert code == 2 and "at least two manifests" in err


def test_requirement_notes_go_to_stderr(
    pair: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    req = tmp_path / "requirements.txt"
    req.write_text("-e ./app\nrequests>=2.31\n", encoding="utf-8")
    code, out, err = run(
        ["diff", *map(str, pair), "--requirements", str(req), "--format", "json"],
        capsys,
        monkeypatch,
    )
    assert code == 1
    assert err.startswith(f"envpack: note: {req}:1: editable requirement './app' not checked\n")
    reasons = [c["reason"] for c in json.loads(out)["drifts"][0]["changes"]]
    assert "prod: requests 1.0.0 does not satisfy requests>=2.31" in reasons


def test_fail_on_none_reports_without_failing(
    pair: tuple[Path, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    dev, prod = map(str, pair)
    code, out, err = run(
        ["diff", dev, prod, "--fail-on", "none", "--format", "json"], capsys, monkeypatch
    )
    assert code == 0
    verdict = json.loads(out)["verdict"]
    assert (verdict["threshold"], verdict["worst"], verdict["failed"]) == ("none", "major", False)
    assert err == (
        "envpack: PASSED: worst drift is major, below fail-on none; 1 major across 2 "
        "environments (exit 0)\n"
    )
    code, out, _ = run(["diff", dev, prod, "--fail-on", "none"], capsys, monkeypatch)
    assert code == 0 and "1.0.0" in out and out.rstrip().endswith("(exit 0)")


def test_passing_diff_says_so_on_stderr(
    pair: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dev, _ = map(str, pair)
    code, _, err = run(
        ["diff", dev, dev, "--format", "html", "-o", str(tmp_path / "r.html")], capsys, monkeypatch
    )
    assert code == 0
    assert err == "envpack: PASSED: no drift across 2 environments (fail-on: major)\n"


def test_help_lists_every_choice(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from envpack.diff.reporters import REPORTER_IDS
    from envpack.manifest import SECTIONS

    _, out, _ = run(["diff", "--help"], capsys, monkeypatch)
    flat = " ".join(out.replace("│", " ").split())
    for choice in (*REPORTER_IDS, "critical", "major", "minor", "patch", "info", "none"):
        assert f" {choice}" in flat, choice
    _, out, _ = run(["capture", "--help"], capsys, monkeypatch)
    flat = " ".join(out.replace("│", " ").split())
    for section in SECTIONS:
        assert section in flat, section


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["diff", "A", "B", "--fail-on", "huge"],
            "--fail-on: unknown severity 'huge'; choose from critical, major, minor, patch, "
            "info or none",
        ),
        (
            ["diff", "A", "B", "--format", "pdf"],
            "unknown format 'pdf'; choose from table, json, markdown, junit, sarif, github or html",
        ),
        (
            ["capture", "--only", "app"],
            "--only: unknown section 'app'; choose from interpreters, python_packages, os, "
            "system_packages, binaries, libraries, config_files, env or network",
        ),
    ],
)
def test_unknown_values_name_the_choices_in_plain_words(
    args: list[str],
    message: str,
    pair: tuple[Path, Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    args = [{"A": str(pair[0]), "B": str(pair[1])}.get(a, a) for a in args]
    code, out, err = run(args, capsys, monkeypatch)
    assert (code, out) == (2, "")
    assert err == f"envpack: error: {message}\n"
