"""Probe: config files → section ``config_files``, keyed by the path inside the source.

The default set is what changes how Python applications reach the network and the clock:
the CA bundle, hosts, resolv.conf, nsswitch.conf, gai.conf, timezone/localtime,
openssl.cnf and pip's config files. ``--config GLOB`` and a ``config = [...]`` list in
the ``[capture]`` table of envpack.toml add more; globs match inside the source.

Each entry records what the file *is* (type, size, mode, owner, SHA-256) and, for the
formats :mod:`config_parsers` knows, its flattened keys so a diff can name the key that
changed. FIFOs, sockets and device nodes are recorded by type and never opened, so a
hostile tree cannot make a capture hang.

Secrets follow the one redaction policy (:mod:`envpack.redact`): keys and values pass
through :meth:`~envpack.redact.Redactor.flat_keys`; credentials files (``.netrc``,
``.git-credentials``, ``.npmrc``, ``.pypirc``, Docker's ``config.json``, gitconfig …) are
read by :mod:`secret_formats`, not split at the first ``:``. A file holding a secret —
found inside, or a name that says so (``db_password``, ``id_ed25519``, ``tls.key``,
``cert.p12``) — records ``sha256: null`` and a keyed ``fingerprint`` instead (a plain hash
of a small file with a short PIN in it could be brute-forced); a secret file by name is not
parsed at all (``format: "secret"``, no keys).
"""

from __future__ import annotations

import grp
import hashlib
import os
import posixpath
import pwd
import stat

from envpack.errors import UsageError
from envpack.fsnames import escape
from envpack.manifest import Component
from envpack.redact import is_secret_file, secret_spans
from envpack.redact.values import SCAN_LIMIT
from envpack.settings import load_settings
from envpack.snapshot.config_parsers import (
    PARSERS,
    ConfigParseError,
    detect_format,
    parse_pem,
)
from envpack.snapshot.context import CaptureContext
from envpack.snapshot.hashcache import HASH_LIMIT, too_big_to_hash
from envpack.snapshot.secret_formats import SECRET_PARSERS, secret_format
from envpack.snapshot.source import (
    NotRegularFile,
    Source,
    SourceReadError,
    expand_glob,
    file_kind,
)

__all__ = ["DEFAULT_FILES", "PARSE_LIMIT", "describe", "pip_config_files", "probe"]

SECTION = "config_files"

PARSE_LIMIT = 4 * 1024 * 1024
"""Bytes of a file that are parsed into keys; a bigger file is hashed whole, not parsed."""
_MAX_GLOB_MATCHES = 5000
_CHUNK = 1024 * 1024

_PIP_SYSTEM_FILES = ("/etc/pip.conf", "/etc/xdg/pip/pip.conf")
DEFAULT_FILES = (
    # CA bundles: Debian/Ubuntu, RHEL/Fedora, Alpine/macOS-style.
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
    "/etc/hosts",
    "/etc/resolv.conf",
    "/etc/nsswitch.conf",
    "/etc/gai.conf",
    "/etc/timezone",
    "/etc/localtime",
    "/etc/ssl/openssl.cnf",
    "/usr/lib/ssl/openssl.cnf",
    *_PIP_SYSTEM_FILES,
)
# Environment variables naming a config file that the live process would use.
_FILE_VARIABLES = (
    "SSL_CERT_FILE",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "PIP_CERT",
    "PIP_CONFIG_FILE",
)
# Formats whose content can carry secrets as plain key values.
_KEYED_FORMATS = frozenset(
    {
        "ini",
        "json",
        "yaml",
        "toml",
        "env",
        "keyvalue",
        "netrc",
        "git-credentials",
        "npmrc",
        "pgpass",
    }
)
# System files whose keys are database names, addresses or resolver keywords, never
# secrets: nsswitch.conf's "passwd:" line names a database, it holds no password.
_NO_SECRET_KEYS = frozenset({"nsswitch.conf", "hosts", "resolv.conf", "gai.conf", "host.conf"})


def probe(ctx: CaptureContext) -> None:
    """Describe the default config files, the ``--config`` globs and envpack.toml's list."""
    section: dict[str, Component] = {}
    for inner in sorted(_candidates(ctx)):
        component = describe(ctx, inner)
        if component is not None:
            section[inner] = component
    ctx.sections[SECTION] = section


# -- which files ---------------------------------------------------------------------------


def _candidates(ctx: CaptureContext) -> set[str]:
    source = ctx.source
    found: set[str] = set()
    wanted = list(DEFAULT_FILES) + _live_user_files(source)
    for inner in wanted:
        if _present(ctx, inner):
            found.add(inner)
    for raw_pattern, base in _patterns(ctx):
        # Matched against names in recorded form (fsnames): a pattern typed with bytes
        # that are not UTF-8, or with a "%", is escaped the same way.
        pattern = escape(raw_pattern)
        absolute = _absolute(raw_pattern, base, source)
        if absolute is not None:
            absolute = escape(absolute)
        if absolute is None:
            ctx.issue(SECTION, pattern, "relative path: give a path inside the captured root")
            continue
        problems: list[SourceReadError] = []  # one per unreadable folder; the rest is read
        try:
            matches = expand_glob(source, absolute, limit=_MAX_GLOB_MATCHES, problems=problems)
        except SourceReadError as err:
            ctx.issue(SECTION, pattern, str(err))
            continue
        for problem in problems:
            ctx.issue(SECTION, pattern, str(problem))
        if not matches and not problems:
            ctx.issue(SECTION, pattern, "no file matches")
        if len(matches) > _MAX_GLOB_MATCHES:
            ctx.issue(SECTION, pattern, f"more than {_MAX_GLOB_MATCHES} matches; rest skipped")
            matches = matches[:_MAX_GLOB_MATCHES]
        found.update(matches)
    return found


def _present(ctx: CaptureContext, inner: str) -> bool:
    try:
        return ctx.source.lstat(inner) is not None
    except SourceReadError as err:
        ctx.issue(SECTION, inner, str(err))
        return False


def pip_config_files(source: Source) -> list[str]:
    """pip's config files where pip looks: system-wide, then (live) the user's own and
    ``$PIP_CONFIG_FILE``. The network section reads their proxies from the same list."""
    files = [*_PIP_SYSTEM_FILES, *_pip_user_files(source)]
    named = source.environ.get("PIP_CONFIG_FILE", "") if source.is_live else ""
    if named.startswith("/"):
        files.append(posixpath.normpath(named))
    return files


def _pip_user_files(source: Source) -> list[str]:
    if not source.is_live:
        return []
    home = source.environ.get("HOME") or _home_of_uid(os.getuid())
    return [f"{home}/.config/pip/pip.conf", f"{home}/.pip/pip.conf"] if home else []


def _live_user_files(source: Source) -> list[str]:
    """pip's per-user files and the files named by variables: the live process only."""
    if not source.is_live:
        return []
    out = _pip_user_files(source)
    for name in _FILE_VARIABLES:
        value = source.environ.get(name, "")
        if value.startswith("/"):
            out.append(posixpath.normpath(value))
    return out


def _home_of_uid(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_dir
    except KeyError:
        return ""


def _patterns(ctx: CaptureContext) -> list[tuple[str, str | None]]:
    """``(pattern, folder relative patterns start from)`` from the CLI and envpack.toml."""
    out: list[tuple[str, str | None]] = [(p, None) for p in ctx.options.config_globs]
    settings = load_settings()
    listed = settings.table("capture").get("config", [])
    if not isinstance(listed, list) or not all(isinstance(p, str) for p in listed):
        raise UsageError(f"{settings.path}: [capture] config must be a list of path globs")
    base = str(settings.path.parent) if settings.path is not None else None
    out += [(p, base) for p in listed]
    return out


def _absolute(pattern: str, base: str | None, source: Source) -> str | None:
    if pattern.startswith("/"):
        return posixpath.normpath(pattern)
    if not source.is_live:
        return None  # a relative path means nothing inside an offline rootfs
    return posixpath.normpath(posixpath.join(base or os.getcwd(), pattern))


# -- one file ------------------------------------------------------------------------------


def describe(ctx: CaptureContext, inner: str) -> Component | None:
    """The component for one path, or ``None`` when nothing is there.

    Problems (a symlink loop, an unreadable file, a parse error) become issues and the
    component keeps whatever could be learned.
    """
    source = ctx.source
    try:
        st = source.lstat(inner)
    except SourceReadError as err:
        ctx.issue(SECTION, inner, str(err))
        return {"path": inner, "type": "unknown"}
    if st is None:
        return None
    kind = file_kind(st.st_mode)
    component: Component = {"path": inner, "type": kind}
    if kind == "symlink":
        target = _follow(ctx, inner, component)
        if target is None:
            return component
        st = target
        kind = component["target_type"]
    _metadata(component, st, source.is_live)
    if kind == "file":
        _content(ctx, inner, component)
    return component


def _follow(ctx: CaptureContext, inner: str, component: Component) -> os.stat_result | None:
    """Record where a symlink leads, inside the source; the stat of its target."""
    source = ctx.source
    component["link"] = source.readlink(inner)
    try:
        resolved = source.resolve(inner)
        target = source.stat(inner)
    except SourceReadError as err:
        component["resolved"] = None
        component["target_type"] = "unresolvable"
        ctx.issue(SECTION, inner, str(err))
        return None
    component["resolved"] = resolved.inner
    if target is None:
        component["target_type"] = "missing"
        return None
    component["target_type"] = file_kind(target.st_mode)
    return target


def _metadata(component: Component, st: os.stat_result, live: bool) -> None:
    component["size"] = st.st_size
    component["mode"] = f"{stat.S_IMODE(st.st_mode):04o}"
    component["owner"] = f"{st.st_uid}:{st.st_gid}"
    # Names come from this host's user database: only meaningful for a live capture.
    component["owner_name"] = _owner_name(st.st_uid, st.st_gid) if live else None


def _owner_name(uid: int, gid: int) -> str | None:
    try:
        user = pwd.getpwuid(uid).pw_name
        group = grp.getgrgid(gid).gr_name
    except KeyError:
        return None
    return f"{user}:{group}"


def _content(ctx: CaptureContext, inner: str, component: Component) -> None:
    try:
        data, digest, size = _read(ctx.source, inner)
    except NotRegularFile as err:  # swapped for a FIFO/device between lstat and open
        component["target_type" if "target_type" in component else "type"] = err.kind
        ctx.issue(SECTION, inner, str(err))
        return
    except SourceReadError as err:
        ctx.issue(SECTION, inner, f"cannot read: {err}")
        return
    known = secret_format(inner)
    if known is None and is_secret_file(inner) and not data.lstrip().startswith(b"-----BEGIN"):
        # Its name says the whole file is a secret: nothing of it but a keyed fingerprint.
        # (A PEM file is judged by its blocks below, a certificate being public; a
        # credentials format we parse keeps its non-secret keys.)
        component["format"] = "secret"
        component["keys"] = {}
        component["sha256"] = None
        component["fingerprint"] = ctx.redactor.fingerprint(digest)
        return
    fmt = known or detect_format(inner, data[:8192])
    component["format"] = fmt
    parser = SECRET_PARSERS.get(fmt) or PARSERS.get(fmt)
    keys: dict[str, str] = {}
    secret = False
    if size > PARSE_LIMIT:
        ctx.issue(SECTION, inner, f"larger than {PARSE_LIMIT} bytes: hashed, keys not parsed")
        secret = fmt in _KEYED_FORMATS
    elif fmt == "pem":
        secret = _pem(ctx, inner, data, component)
    elif parser is not None:
        text = data.decode("utf-8", "replace")
        try:
            parsed = parser(text)
        except ConfigParseError as err:
            ctx.issue(SECTION, inner, f"{err}; keys not recorded")
            secret = fmt in _KEYED_FORMATS  # it may hold secrets we could not find
        else:
            exempt = inner.rsplit("/", 1)[-1] in _NO_SECRET_KEYS
            keys, secret = ctx.redactor.flat_keys(parsed, names_count=not exempt)
            if fmt == "text" and not keys and len(text) <= SCAN_LIMIT:
                # Free text records no keys, but its plain hash would still let a short
                # secret inside it be guessed: a detected secret makes the file secret.
                secret = bool(secret_spans(text))
    component["keys"] = keys
    if secret:
        component["sha256"] = None
        component["fingerprint"] = ctx.redactor.fingerprint(digest)
    else:
        component["sha256"] = digest


def _read(source: Source, inner: str) -> tuple[bytes, str, int]:
    """The first ``PARSE_LIMIT + 1`` bytes, the SHA-256 of the whole file and its size."""
    fd, st = source.open_fd(inner)
    if st.st_size > HASH_LIMIT:
        os.close(fd)
        raise SourceReadError(too_big_to_hash(inner, st.st_size))
    hasher = hashlib.sha256()
    kept = bytearray()
    size = 0
    try:
        with os.fdopen(fd, "rb", closefd=True) as stream:
            while chunk := stream.read(_CHUNK):
                hasher.update(chunk)
                size += len(chunk)
                if len(kept) <= PARSE_LIMIT:
                    kept += chunk[: PARSE_LIMIT + 1 - len(kept)]
    except OSError as err:
        raise SourceReadError(f"{inner}: {err.strerror}") from err
    return bytes(kept), hasher.hexdigest(), size


def _pem(ctx: CaptureContext, inner: str, data: bytes, component: Component) -> bool:
    try:
        facts = parse_pem(data)
    except ConfigParseError as err:
        ctx.issue(SECTION, inner, str(err))
        # Unreadable blocks: a private key among them still makes the file secret.
        return b"PRIVATE KEY-----" in data
    component["certificates"] = len(facts.certificates)
    component["certificate_sha256"] = facts.certificates
    if facts.private_keys:
        component["private_keys"] = facts.private_keys
    if facts.other:
        component["other_blocks"] = facts.other
    return facts.private_keys > 0
