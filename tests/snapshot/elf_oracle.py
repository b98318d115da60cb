"""binutils and glibc as oracles for the ELF tests: ``readelf`` and ``ldd``.

Tests only: envpack itself never runs either (``ldd`` may execute the program).
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

__all__ = ["Built", "ReadelfFacts", "ldd_map", "path_elf_files", "readelf", "require"]


def require(tool: str) -> str:
    found = shutil.which(tool)
    if found is None:
        pytest.skip(f"{tool} is not installed (CI must install binutils / libc-bin)")
    return found


@dataclass(frozen=True)
class ReadelfFacts:
    needed: tuple[str, ...]
    interpreter: str | None
    soname: str | None
    runpath: str | None
    rpath: str | None
    build_id: str | None
    machine: str
    elf_class: str


def readelf(path: str) -> ReadelfFacts:
    out = subprocess.run(
        [require("readelf"), "-hdlnW", path],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "LC_ALL": "C"},
    ).stdout

    def one(pattern: str) -> str | None:
        match = re.search(pattern, out)
        return match.group(1) if match else None

    return ReadelfFacts(
        needed=tuple(re.findall(r"\(NEEDED\)\s+Shared library: \[(.*)\]", out)),
        interpreter=one(r"Requesting program interpreter: (.*)\]"),
        soname=one(r"\(SONAME\)\s+Library soname: \[(.*)\]"),
        runpath=one(r"\(RUNPATH\)\s+Library runpath: \[(.*)\]"),
        rpath=one(r"\(RPATH\)\s+Library rpath: \[(.*)\]"),
        build_id=one(r"Build ID: ([0-9a-f]+)"),
        machine=one(r"Machine:\s+(.*)") or "",
        elf_class=one(r"Class:\s+(ELF\d\d)") or "",
    )


def ldd_map(path: str, env: dict[str, str] | None = None) -> dict[str, str | None]:
    """needed name → resolved path (``None``: not found), as glibc's loader reports it."""
    out = subprocess.run(
        [require("ldd"), path],
        capture_output=True,
        text=True,
        check=True,
        env=env
        if env is not None
        else {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"},
    ).stdout
    found: dict[str, str | None] = {}
    for line in out.splitlines():
        match = re.match(r"\s*(\S+) => (\S+) \(0x[0-9a-f]+\)", line)
        if match:
            found[match.group(1)] = match.group(2)
        elif re.match(r"\s*(\S+) => not found", line):
            found[line.split()[0]] = None
    return found


def _without_ld_library_path() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}


def path_elf_files(limit: int) -> list[str]:
    """Up to ``limit`` real ELF files from this machine's PATH, spread over it."""
    files: list[str] = []
    for folder in os.environ.get("PATH", "/usr/bin").split(":"):
        try:
            names = sorted(os.listdir(folder))
        except OSError:
            continue
        for name in names:
            path = os.path.realpath(os.path.join(folder, name))
            try:
                with open(path, "rb") as stream:
                    if stream.read(4) == b"\x7fELF":
                        files.append(path)
            except OSError:
                continue
    unique = sorted(set(files))
    step = max(1, len(unique) // limit)
    return unique[::step][:limit]


@dataclasses.dataclass
class Built:
    """Tiny real programs and libraries made with gcc, in a folder of their own."""

    top: Path

    def lib(self, folder: str, name: str, needs: str | None = None, marker: int = 0) -> Path:
        out = self.top / folder / name
        out.parent.mkdir(parents=True, exist_ok=True)
        src = self.top / f"{folder}-{name}.c"
        call = f"extern int {needs.split('.')[0]}_f(void);" if needs else ""
        body = f"return {needs.split('.')[0]}_f() + {marker};" if needs else f"return {marker};"
        src.write_text(f"{call}\nint {name.split('.', maxsplit=1)[0]}_f(void) {{ {body} }}\n")
        cmd = [require("gcc"), "-shared", "-fPIC", f"-Wl,-soname,{name}", "-o", str(out), str(src)]
        if needs:
            cmd += [f"-L{self.top / 'link'}", f"-l:{needs}"]
        subprocess.run(cmd, check=True)
        link = self.top / "link"
        link.mkdir(exist_ok=True)
        shutil.copy2(out, link / name)
        return out

    def exe(self, name: str, needs: str, flags: list[str]) -> Path:
        out = self.top / "bin" / name
        out.parent.mkdir(parents=True, exist_ok=True)
        src = self.top / f"{name}.c"
        symbol = needs.split(".", maxsplit=1)[0] + "_f"
        src.write_text(f"extern int {symbol}(void);\nint main(void) {{ return {symbol}(); }}\n")
        cmd = [require("gcc"), "-o", str(out), str(src), f"-L{self.top / 'link'}", f"-l:{needs}"]
        subprocess.run([*cmd, *flags], check=True)
        return out
