"""The machine architecture of a source, named the way ``uname -m`` names it.

Live: ``platform.machine()``. A rootfs is never run, so its architecture comes from the
package manager's record (``var/lib/dpkg/arch``, ``etc/apk/arch``), else from the ELF
header of its ``/bin/sh``. Every answer is mapped to ``uname -m`` words (``x86_64``,
``aarch64``) so a live capture and a rootfs capture of the same system compare equal.
"""

from __future__ import annotations

import platform
import struct

from envpack.snapshot.source import Source, SourceReadError

__all__ = ["ArchProblem", "elf_machine", "machine_of"]

# dpkg architecture names → uname -m.
_DPKG = {
    "amd64": "x86_64",
    "arm64": "aarch64",
    "armhf": "armv7l",
    "armel": "armv5tel",
    "i386": "i686",
    "ppc64el": "ppc64le",
    "ppc64": "ppc64",
    "s390x": "s390x",
    "riscv64": "riscv64",
    "mips64el": "mips64",
    "mipsel": "mips",
    "loong64": "loongarch64",
}
# apk architecture names → uname -m (most are already the same).
_APK = {"x86": "i686", "armv7": "armv7l", "armhf": "armv6l"}

# ELF e_machine values (elf.h) → uname -m; a few depend on class or byte order.
_EM_386, _EM_ARM, _EM_X86_64, _EM_AARCH64, _EM_RISCV = 3, 40, 62, 183, 243
_EM_PPC, _EM_PPC64, _EM_S390, _EM_MIPS, _EM_LOONGARCH = 20, 21, 22, 8, 258
_ELF_MAGIC = b"\x7fELF"
_ELFCLASS64 = 2
_ELFDATA2LSB = 1


class ArchProblem(Exception):
    """The architecture could not be told; the message says why (recorded as an issue)."""


def elf_machine(header: bytes) -> str:
    """``uname -m`` for the first 20 bytes of an ELF file.

    >>> elf_machine(b"\\x7fELF\\x02\\x01\\x01" + bytes(9) + b"\\x02\\x00\\x3e\\x00")
    'x86_64'
    """
    if len(header) < 20 or header[:4] != _ELF_MAGIC:
        raise ArchProblem("not an ELF file")
    is64 = header[4] == _ELFCLASS64
    little = header[5] == _ELFDATA2LSB
    (machine,) = struct.unpack_from("<H" if little else ">H", header, 18)
    if machine == _EM_X86_64:
        return "x86_64"
    if machine == _EM_386:
        return "i686"
    if machine == _EM_AARCH64:
        return "aarch64"
    if machine == _EM_ARM:
        return "armv7l"
    if machine == _EM_RISCV:
        return "riscv64" if is64 else "riscv32"
    if machine == _EM_PPC:
        return "ppc"
    if machine == _EM_PPC64:
        return "ppc64le" if little else "ppc64"
    if machine == _EM_S390:
        return "s390x" if is64 else "s390"
    if machine == _EM_MIPS:
        return "mips64" if is64 else "mips"
    if machine == _EM_LOONGARCH:
        return "loongarch64"
    raise ArchProblem(f"unknown ELF machine {machine}")


def machine_of(source: Source) -> tuple[str, str]:
    """The architecture and where it was read (``uname``, a path inside the source).

    Raises :class:`ArchProblem` or :class:`SourceReadError` when nothing tells it.
    """
    if source.is_live:
        return platform.machine(), "uname"
    text = source.read_text_or_none("/var/lib/dpkg/arch")
    if text and text.split():
        # The first line is the native architecture; foreign ones (multiarch) follow.
        native = text.split()[0]
        return _DPKG.get(native, native), "/var/lib/dpkg/arch"
    text = source.read_text_or_none("/etc/apk/arch")
    if text and text.split():
        native = text.split()[0]
        return _APK.get(native, native), "/etc/apk/arch"
    try:
        header = source.read_bytes("/bin/sh", limit=20)
    except SourceReadError as err:
        raise ArchProblem(f"no dpkg or apk architecture file, and {err}") from err
    try:
        return elf_machine(header), "/bin/sh"
    except ArchProblem as err:
        raise ArchProblem(f"/bin/sh: {err}") from err
