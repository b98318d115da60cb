"""Real interpreters, real wheels and real virtualenvs for the tests.

The interpreters are pyenv's CPython builds (2.7 to 3.13) and Debian's PyPy when present.
Wheels are packed from the small source trees in ``fixtures/wheels/`` so that the suite
needs no package index; virtualenvs are made with the interpreter's own ``venv`` (3.x) or
with virtualenv 20.15.1 (2.7, the last release that can make a 2.7 environment).
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

__all__ = [
    "FIXTURES",
    "REPO",
    "build_wheel",
    "make_venv",
    "pyenv_python",
    "pypy_python",
    "run_envpack",
]

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "fixtures"
WHEEL_SOURCES = FIXTURES / "wheels"
VIRTUALENV_FOR_27 = "virtualenv==20.15.1"
# Every file in a built wheel gets this timestamp, so wheels are byte-identical run to run.
_ZIP_TIME = (2020, 1, 1, 0, 0, 0)


def copy_checkout(dest: Path) -> Path:
    """A copy of this repository's tracked files at ``dest`` (what a fresh clone holds)."""
    listed = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "-z"], capture_output=True, check=True
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if source.is_file():
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return dest


def _pyenv_root() -> Path | None:
    root = os.environ.get("PYENV_ROOT")
    if root:
        return Path(root)
    found = shutil.which("pyenv")
    if found:
        out = subprocess.run([found, "root"], capture_output=True, text=True, check=False)
        if out.returncode == 0 and out.stdout.strip():
            return Path(out.stdout.strip())
    default = Path.home() / ".pyenv"
    return default if default.is_dir() else None


def pyenv_python(version: str) -> Path | None:
    """The pyenv CPython ``version`` (``"3.11"`` or ``"2.7.18"``), or ``None`` if absent."""
    root = _pyenv_root()
    if root is None:
        return None
    versions = root / "versions"
    if not versions.is_dir():
        return None
    for candidate in sorted(versions.iterdir(), reverse=True):
        name = candidate.name
        if name == version or name.startswith(version + "."):
            exe = candidate / "bin" / "python"
            if exe.exists():
                return exe
    return None


def pypy_python() -> Path | None:
    """Debian's ``pypy3`` if installed."""
    found = shutil.which("pypy3")
    return Path(found) if found else None


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return "sha256=" + digest.decode("ascii")


def build_wheel(source_name: str, out_dir: Path) -> Path:
    """Pack ``fixtures/wheels/<source_name>`` (``name-version``) into a real wheel."""
    source = WHEEL_SOURCES / source_name
    name, version = source_name.rsplit("-", 1)
    dist_info = f"{name}-{version}.dist-info"
    files: dict[str, bytes] = {}
    for path in sorted(source.rglob("*")):
        if path.is_file() and path.name != "METADATA" and "__pycache__" not in path.parts:
            files[path.relative_to(source).as_posix()] = path.read_bytes()
    top_level = sorted({arcname.split("/")[0] for arcname in files})
    files[f"{dist_info}/METADATA"] = (source / "METADATA").read_bytes()
    files[f"{dist_info}/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: envpack-tests\nRoot-Is-Purelib: true\n"
        b"Tag: py2-none-any\nTag: py3-none-any\n"
    )
    files[f"{dist_info}/top_level.txt"] = ("\n".join(top_level) + "\n").encode()
    record_lines = [f"{arc},{_record_hash(data)},{len(data)}" for arc, data in files.items()]
    record_lines.append(f"{dist_info}/RECORD,,")
    files[f"{dist_info}/RECORD"] = ("\n".join(record_lines) + "\n").encode()
    out_dir.mkdir(parents=True, exist_ok=True)
    wheel = out_dir / f"{name}-{version}-py2.py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as archive:
        for arcname, data in files.items():
            info = zipfile.ZipInfo(arcname, date_time=_ZIP_TIME)
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)
    return wheel


def _run(cmd: list[str], **kwargs: object) -> None:
    result = subprocess.run(cmd, capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload]
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stderr}")


def _ensure_virtualenv_27(python27: Path) -> None:
    probe = subprocess.run(
        [str(python27), "-m", "virtualenv", "--version"], capture_output=True, check=False
    )
    if probe.returncode != 0:
        _run([str(python27), "-m", "pip", "install", "-q", VIRTUALENV_FOR_27])


def make_venv(base_python: Path, dest: Path, wheels: list[Path]) -> Path:
    """Make a real virtualenv at ``dest`` with ``wheels`` installed; return its python."""
    version = subprocess.run(
        [str(base_python), "-c", "import sys; print(sys.version_info[0])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if version == "2":
        _ensure_virtualenv_27(base_python)
        _run(
            [
                str(base_python), "-m", "virtualenv", "-q", "--no-periodic-update",
                "--no-download", str(dest),
            ]
        )  # fmt: skip
        if wheels:
            _run(
                [
                    str(dest / "bin" / "python"), "-m", "pip", "install", "-q", "--no-index",
                    "--no-deps", "--disable-pip-version-check", *map(str, wheels),
                ]
            )  # fmt: skip
    else:
        _run([str(base_python), "-m", "venv", "--without-pip", str(dest)])
        if wheels:
            # The host's pip installs into the target venv (pip >= 22.3 `--python`).
            _run(
                [
                    sys.executable, "-m", "pip", "--python", str(dest / "bin" / "python"),
                    "install", "-q", "--no-index", "--no-deps",
                    "--disable-pip-version-check", *map(str, wheels),
                ]
            )  # fmt: skip
    return dest / "bin" / "python"


def make_pypi_venv(base_python: Path, dest: Path, requirements: tuple[str, ...]) -> Path | str:
    """A virtualenv at ``dest`` with ``requirements`` from the index.

    Its python, or why the index could not give them (the caller skips on that).
    """
    python = make_venv(base_python, dest, [])
    if not (dest / "bin" / "pip").exists():
        subprocess.run([str(python), "-m", "ensurepip"], capture_output=True, check=True)
    done = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
         *requirements],
        capture_output=True, text=True, check=False, timeout=900,
    )  # fmt: skip
    if done.returncode != 0:
        return f"pip install {' '.join(requirements)} failed: {done.stderr[-400:]}"
    return python


def run_envpack(
    *args: str, env: dict[str, str] | None = None, timeout: float = 300, **kwargs: object
) -> subprocess.CompletedProcess[str]:
    """Run the real ``envpack`` CLI in a child process (``python -m envpack``)."""
    if "stdout" not in kwargs:
        kwargs["stdout"] = subprocess.PIPE
    return subprocess.run(  # type: ignore[call-overload, no-any-return]
        [sys.executable, "-m", "envpack", *args],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
        **kwargs,
    )
