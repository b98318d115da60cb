"""No secret of the corpus in any manifest or any report, through the real CLI.

Two variants of fixtures/secrets (every secret changed in the second) are captured twice
each — a ``--root`` capture of the tree (files in /etc, /root, /home/u, pam's
/etc/environment) and a live capture of the corpus variables given through the process
environment with ``--env-allow`` — then diffed in every report format. Every manifest and
every report is searched for every secret of both variants, raw and with the escapes a
report may add (backslashes, HTML entities) undone.
"""

from __future__ import annotations

import html
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CORPUS = Path(__file__).resolve().parents[2] / "fixtures" / "secrets"
FORMATS = ("table", "json", "markdown", "junit", "sarif", "github", "html")
CONFIG_GLOBS = (
    "/root/.*",
    "/home/u/.*",
    "/home/u/.*/*",
    "/etc/myapp/*",
    "/etc/ssl/private/*",
)


def _secrets() -> list[str]:
    lines = (CORPUS / "secrets.txt").read_text().splitlines()
    return [line for line in lines if line and not line.startswith("#")]


def test_every_listed_secret_is_in_the_corpus() -> None:
    """The search below would pass vacuously on a secret the corpus does not hold."""
    held = (CORPUS / "env.json").read_bytes() + b"".join(
        p.read_bytes() for p in (CORPUS / "tree").rglob("*") if p.is_file()
    )
    assert [s for s in _secrets() if s.encode() not in held] == []
    assert len(_secrets()) >= 50


def _changed(secret: str) -> str:
    """The same shape with its last three characters moved on (a "rotated" secret)."""

    def step(char: str) -> str:
        for alphabet in ("0123456789", "abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ"):
            if char in alphabet:
                return alphabet[(alphabet.index(char) + 1) % len(alphabet)]
        return char

    return secret[:-3] + "".join(step(c) for c in secret[-3:])


def _variant(tmp: Path, number: int, secrets: list[str]) -> tuple[Path, dict[str, str]]:
    tree = tmp / f"tree{number}"
    shutil.copytree(CORPUS / "tree", tree, symlinks=True)
    env: dict[str, str] = json.loads((CORPUS / "env.json").read_text())
    if number == 1:
        return tree, env
    # Longest first, so a secret that holds another is replaced whole.
    pairs = [(s, _changed(s)) for s in sorted(secrets, key=len, reverse=True)]
    for path in tree.rglob("*"):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            for old, new in pairs:
                data = data.replace(old.encode(), new.encode())
            path.write_bytes(data)
    return tree, {name: _rotate(value, pairs) for name, value in env.items()}


def _rotate(value: str, pairs: list[tuple[str, str]]) -> str:
    for old, new in pairs:
        value = value.replace(old, new)
    return value


def _envpack(args: list[str], env: dict[str, str], ok: tuple[int, ...] = (0,)) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "envpack", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert done.returncode in ok, (args, done.stderr)


@pytest.mark.slow  # 4 captures and 14 diffs through the CLI, ~10 s
def test_no_secret_in_any_manifest_or_report(tmp_path: Path) -> None:
    secrets = _secrets()
    every_secret = secrets + [_changed(s) for s in secrets]
    base_env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path / "home"),
        "ENVPACK_REDACT_KEY": "end-to-end-key",
        "SOURCE_DATE_EPOCH": "1700000000",
    }
    outputs: list[Path] = []
    for number in (1, 2):
        tree, corpus_env = _variant(tmp_path, number, secrets)
        env = {**base_env, **corpus_env}
        globs = [arg for glob in CONFIG_GLOBS for arg in ("--config", glob)]
        root_manifest = tmp_path / f"root{number}.json"
        _envpack(
            ["capture", "--root", str(tree), "--no-cache", "-q", *globs, "-o", str(root_manifest)],
            env,
        )
        allow = [arg for name in corpus_env for arg in ("--env-allow", name)]
        live_manifest = tmp_path / f"live{number}.json"
        _envpack(
            [
                "capture",
                "--only",
                "env",
                "--only",
                "network",
                "-q",
                *allow,
                "-o",
                str(live_manifest),
            ],
            env,
        )
        outputs += [root_manifest, live_manifest]

    # The corpus really went in: files and variables were captured, secrets fingerprinted.
    root = json.loads((tmp_path / "root1.json").read_text())
    live = json.loads((tmp_path / "live1.json").read_text())
    assert "/home/u/.docker/config.json" in root["config_files"]
    assert live["env"]["GITHUB_TOKEN"]["value"].startswith("hmac-sha256:")
    assert live["env"]["PATH"]["value"] == json.loads((CORPUS / "env.json").read_text())["PATH"]
    assert "{hmac-sha256:" in live["network"]["proxy"]["env.HTTP_PROXY"]
    # A bad line holding a secret is reported by its line number, never quoted.
    reasons = {issue["path"]: issue["reason"] for issue in root["issues"]}
    assert reasons["/etc/myapp/bad.ini"].startswith("invalid INI: line 3")
    assert reasons["/etc/myapp/bad.yaml"].startswith("invalid YAML")

    for kind in ("root", "live"):
        for fmt in FORMATS:
            report = tmp_path / f"{kind}.{fmt}.out"
            pair = [f"{tmp_path}/{kind}1.json", f"{tmp_path}/{kind}2.json"]
            _envpack(
                ["diff", *pair, "--format", fmt, "-o", str(report)],
                base_env,
                ok=(0, 1),
            )
            outputs.append(report)
    # The diffs saw the rotated secrets (as changed fingerprints), so reports are not empty.
    changes = json.loads((tmp_path / "live.json.out").read_text())
    assert "GITHUB_TOKEN" in json.dumps(changes)

    leaks = []
    for output in outputs:
        text = output.read_text(errors="replace")
        views = {
            text,
            text.replace("\\", ""),
            html.unescape(text),
            html.unescape(text).replace("\\", ""),
        }
        leaks += [(output.name, s) for s in every_secret if any(s in view for view in views)]
    assert leaks == []
    assert len(outputs) == 4 + 2 * len(FORMATS)
