"""The one error line goes through the redaction policy: a quoted input line keeps no secret."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PASSWORD = "Zq9" + "mN4vR7" * 2


def _envpack(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ENVPACK_REDACT_KEY": "cli-key"}
    return subprocess.run(
        [sys.executable, "-m", "envpack", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
        check=False,
    )


def test_an_invalid_requirement_is_quoted_without_its_password(tmp_path: Path) -> None:
    for name in ("a", "b"):
        done = _envpack(["capture", "--only", "env", "-q", "-o", f"{name}.json"], tmp_path)
        assert done.returncode == 0, done.stderr
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(
        f"foo @ https://alice:{PASSWORD}@pkgs.example/foo-1.0-py3-none-any.whl ; os_name >>> 1\n"
    )
    done = _envpack(["diff", "a.json", "b.json", "--requirements", str(requirements)], tmp_path)
    assert done.returncode == 2
    lines = done.stderr.splitlines()
    assert len(lines) == 1
    assert "invalid requirement" in lines[0]  # the line is still quoted, for the user…
    assert "https://alice:{redacted}@pkgs.example" in lines[0]  # …its password is not
    assert PASSWORD not in done.stderr
