"""The command line: the only module that prints, draws progress and exits.

Exit codes: 0 success; 1 drift at or above the threshold (``diff``); 2 bad usage or bad
input, always as one line on stderr and never a traceback. Every line it prints on stderr
shows captured text (a path, a label, a file name) through
:func:`~envpack._escape.for_terminal`, so a name holding a line break or an escape sequence
stays on its one line and cannot drive the terminal. SIGINT and SIGTERM unwind the stack
(a half-written ``-o`` file is removed) before the process ends by that signal.
"""

import os
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, Optional, cast

import typer

from envpack import __version__
from envpack._escape import for_terminal
from envpack.errors import EnvpackError, UsageError

__all__ = ["app", "main"]

EXIT_OK = 0
EXIT_DRIFT = 1
EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 70  # EX_SOFTWARE: a bug in envpack

app = typer.Typer(
    name="envpack",
    help="Make an application's environment visible, comparable and packable.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text


class _LazyConsole:
    """rich's stderr Console, built on first use.

    Importing rich costs ~40 ms of every run; a ``--quiet`` capture never prints.
    """

    _console: Optional["Console"] = None

    def get(self) -> "Console":
        """The Console itself, for what needs the real object (rich's live progress)."""
        if self._console is None:
            from rich.console import Console

            # No markup, no :emoji: codes, no highlighting: lines hold captured text.
            self._console = Console(
                stderr=True, highlight=False, soft_wrap=True, markup=False, emoji=False
            )
        return self._console

    def __getattr__(self, name: str) -> Any:
        return getattr(self.get(), name)


err_console = cast("Console", _LazyConsole())


def _say(line: str) -> None:
    """Print one line on stderr; ``line`` may hold captured text, shown escaped.

    Through rich only once its console exists (a live display may be on screen);
    otherwise written as is, which is what rich would write, without its import.
    """
    if cast("_LazyConsole", err_console)._console is None:
        sys.stderr.write(for_terminal(line) + "\n")
        sys.stderr.flush()
        return
    err_console.print(for_terminal(line), markup=False, emoji=False, highlight=False)


def _plain(text: str) -> "Text":
    """A rich ``Text`` (never parsed as markup) of escaped text, for the progress line."""
    from rich.text import Text

    return Text(for_terminal(text))


def _fail(message: str) -> NoReturn:
    from envpack.redact import mask

    # A message may quote a line of the user's input (a requirement with a token in its
    # index URL): the one error line goes through the redaction policy too.
    _say(f"envpack: error: {mask(message)}")
    raise SystemExit(EXIT_BAD_INPUT)


def _masked(err: BaseException) -> str:
    from envpack.redact import mask

    return mask(str(err))


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"envpack {__version__}")
        raise typer.Exit(EXIT_OK)


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version_callback, is_eager=True, help="Show the version."
        ),
    ] = False,
) -> None:
    """Make an application's environment visible, comparable and packable."""


PushOption = Annotated[
    Optional[str],
    typer.Option(
        "--push",
        metavar="REF",
        help="Push to a registry as HOST/REPO[:TAG] (credentials: `docker login`, or "
        "--username with --password-stdin).",
    ),
]
InsecureOption = Annotated[
    bool,
    typer.Option(
        "--insecure",
        help="Speak plain HTTP to the registry (a loopback registry always may).",
    ),
]
UsernameOption = Annotated[
    Optional[str], typer.Option("--username", help="Registry user name (with --password-stdin).")
]
PasswordStdinOption = Annotated[
    bool, typer.Option("--password-stdin", help="Read the registry password from stdin.")
]
_PASSWORD_LIMIT = 64 * 1024


def _registry_target(
    text: str,
    *,
    insecure: bool,
    username: Optional[str],
    password_stdin: bool,
    option: str = "--push",
) -> tuple[Any, Any]:
    """The parsed ``HOST/REPO:TAG`` and a registry client with its credentials."""
    from envpack.oci.reference import InvalidReference
    from envpack.registry import Credentials, RegistryClient, RegistryRef

    if password_stdin != bool(username):
        raise UsageError("give --username and --password-stdin together")
    try:
        ref = RegistryRef.parse(text)
    except InvalidReference as err:
        raise UsageError(f"{option}: {err}") from None
    if ref.digest is not None:
        raise UsageError(f"{option} {text!r}: push to a tag, not a digest")
    credentials = None
    if username:
        data = sys.stdin.buffer.read(_PASSWORD_LIMIT + 1)
        if len(data) > _PASSWORD_LIMIT:
            raise UsageError("--password-stdin: more than 64 KiB on stdin")
        password = data.decode("utf-8", "replace").strip("\r\n")
        if not password:
            raise UsageError("--password-stdin: no password on stdin")
        credentials = Credentials(username, password)
    return ref, RegistryClient.for_ref(ref, credentials=credentials, insecure=insecure)


@app.command()
def capture(
    output: Annotated[
        Optional[Path],
        typer.Option("-o", "--output", help="Write the manifest here (atomically); else stdout."),
    ] = None,
    python: Annotated[
        Optional[list[str]],
        typer.Option(
            "--python",
            help="Interpreter to describe (repeatable). Default: the active virtualenv's "
            "python, else python3 on PATH.",
        ),
    ] = None,
    root: Annotated[
        Optional[Path],
        typer.Option("--root", help="Capture a rootfs folder offline; nothing in it is run."),
    ] = None,
    image: Annotated[
        Optional[str],
        typer.Option(
            "--image",
            help="Capture a container image offline; nothing in it is run. REF: oci:DIR[:TAG], "
            "oci-archive:FILE[:TAG], docker-archive:FILE, docker-daemon:NAME[:TAG] or a path.",
        ),
    ] = None,
    label: Annotated[
        Optional[str], typer.Option("--label", help="Name of this environment (dev, prod…).")
    ] = None,
    verify: Annotated[
        bool, typer.Option("--verify", help="Check installed files against RECORD hashes.")
    ] = False,
    env_allow: Annotated[
        Optional[list[str]],
        typer.Option("--env-allow", help="Keep only environment variables matching this glob."),
    ] = None,
    env_deny: Annotated[
        Optional[list[str]],
        typer.Option("--env-deny", help="Drop environment variables matching this glob."),
    ] = None,
    binary: Annotated[
        Optional[list[str]],
        typer.Option("--bin", help="Also describe this executable (repeatable)."),
    ] = None,
    probe_versions: Annotated[
        bool,
        typer.Option("--probe-versions", help="Run `X --version` for binaries (live host only)."),
    ] = False,
    config: Annotated[
        Optional[list[str]],
        typer.Option("--config", help="Also capture config files matching this glob."),
    ] = None,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Hash every file again; ignore the hash cache.")
    ] = False,
    only: Annotated[
        Optional[list[str]],
        typer.Option(
            "--only",
            help="Capture only this section (repeatable): interpreters, python_packages, os, "
            "system_packages, binaries, libraries, config_files, env or network. The "
            "sections a probe reads are captured with it.",
        ),
    ] = None,
    quiet: Annotated[
        bool, typer.Option("-q", "--quiet", help="No progress or summary on stderr.")
    ] = False,
    push: PushOption = None,
    insecure: InsecureOption = False,
    username: UsernameOption = None,
    password_stdin: PasswordStdinOption = False,
) -> None:
    """Record an environment (live host, --root folder or --image) into a manifest.

    With --push REF the manifest is stored in a registry as an OCI artifact instead of
    printed (-o FILE still writes it); `envpack diff registry:REF …` reads it back.
    """
    from envpack._atomic import write_atomic
    from envpack.manifest import dumps
    from envpack.redact import Redactor, load_redaction_key
    from envpack.snapshot.capture import capture as run_capture
    from envpack.snapshot.context import CaptureOptions
    from envpack.snapshot.interpreters import timeout_from_environ
    from envpack.snapshot.source import Source

    if root is not None and image is not None:
        raise UsageError("--root and --image name two sources; give one")
    if (root is not None or image is not None) and probe_versions:
        where = "--root" if root is not None else "--image"
        raise UsageError(f"--probe-versions runs binaries, so it cannot be used with {where}")
    target = None
    if push is not None:  # refused before the capture, not after it
        target = _registry_target(
            push, insecure=insecure, username=username, password_stdin=password_stdin
        )
    if image is not None:
        from envpack.snapshot.imagesource import open_image

        source: Source = open_image(image)
    else:
        source = Source.rootfs(root) if root is not None else Source.live()
    try:
        options = CaptureOptions(
            pythons=tuple(python or ()),
            label=label,
            verify=verify,
            env_allow=tuple(env_allow or ()),
            env_deny=tuple(env_deny or ()),
            binaries=tuple(binary or ()),
            probe_versions=probe_versions,
            config_globs=tuple(config or ()),
            use_cache=not no_cache,
            only=frozenset(only) if only else None,
            # Hidden knob (tests, slow hosts): ENVPACK_INTERPRETER_TIMEOUT seconds.
            interpreter_timeout=timeout_from_environ(
                os.environ, CaptureOptions.interpreter_timeout
            ),
        )
        redactor = Redactor(load_redaction_key())
        if quiet:
            manifest = run_capture(source, options, redactor)
        else:
            with err_console.status(_plain("capturing…")) as status:
                manifest = run_capture(
                    source, options, redactor, progress=lambda msg: status.update(_plain(f"{msg}…"))
                )
    finally:
        source.close()
    text = dumps(manifest)
    if output is not None:
        write_atomic(output, text.encode("utf-8"))
    elif target is None:  # with --push, the registry is the output: nothing on stdout
        sys.stdout.write(text)
        sys.stdout.flush()
    pushed = _push_manifest(target, text)
    if not quiet:
        counts = ", ".join(
            f"{len(entries)} {name.replace('_', ' ')}"
            for name, entries in manifest.sections.items()
        )
        where = f" → {output}" if output is not None else ""
        _say(f"captured {manifest.name}: {counts}; {len(manifest.issues)} issues{where}")
        if pushed is not None:
            _say(f"pushed {pushed.reference}@{pushed.digest}")


def _push_manifest(target: Optional[tuple[Any, Any]], text: str) -> Any:
    """``capture --push``: the manifest stored as an artifact (``None`` without --push)."""
    if target is None:
        return None
    from envpack.registry import push_manifest

    return push_manifest(target[1], target[0], text.encode("utf-8"))


@app.command()
def diff(
    manifests: Annotated[
        list[str],
        typer.Argument(
            help="Manifest files (`-` = stdin, once) or registry:HOST/REPO:TAG artifacts "
            "(from `capture --push`, pulled in parallel). The first is the baseline unless "
            "--baseline names another.",
            show_default=False,
        ),
    ],
    baseline: Annotated[
        Optional[str],
        typer.Option("--baseline", help="Reference environment: a label, hostname or file name."),
    ] = None,
    requirements: Annotated[
        Optional[Path],
        typer.Option(
            "--requirements",
            help="requirements.txt or pyproject.toml to check in every environment "
            "(misses are critical).",
        ),
    ] = None,
    policy: Annotated[
        Optional[Path],
        typer.Option(
            "--policy",
            help="envpack.toml or pyproject.toml holding the [policy]; default: the nearest one.",
        ),
    ] = None,
    fail_on: Annotated[
        Optional[str],
        typer.Option(
            "--fail-on",
            help="Exit 1 when drift reaches this severity: critical, major, minor, patch or "
            "info; none reports without ever failing. Wins over the policy's fail-on "
            "(default major).",
        ),
    ] = None,
    accept: Annotated[
        Optional[Path],
        typer.Option(
            "--accept",
            help="Write today's drift to FILE as accepted (then exit 0, saying how many "
            "changes it holds); give FILE back with --accepted so only new drift fails.",
        ),
    ] = None,
    accepted: Annotated[
        Optional[Path],
        typer.Option(
            "--accepted",
            help="Drift written earlier by --accept: those exact changes become info.",
        ),
    ] = None,
    output_format: Annotated[
        str,
        typer.Option(
            "--format",
            help="Report format: table (for a terminal), json, markdown (a pull-request "
            "comment), junit, sarif, github (Actions annotations) or html.",
        ),
    ] = "table",
    output: Annotated[
        Optional[Path],
        typer.Option("-o", "--output", help="Write the report here (atomically); else stdout."),
    ] = None,
) -> None:
    """Compare manifests and grade the drift from the baseline to each other environment.

    \b
    Exit codes:
      0  no drift at or above the fail-on severity
      1  drift at or above the fail-on severity
      2  bad input or usage: a missing file, invalid JSON, a truncated manifest, a newer
         schema, a file that is not a manifest, a bad policy or requirements file
    The verdict, and the changes that fail the gate, also go to stderr (unless the table
    is already on the same terminal), so a CI log shows them whatever the format.
    """
    from envpack._atomic import write_atomic
    from envpack.diff.engine import load_environments, run_diff, single_run
    from envpack.diff.model import FAIL_ON_NONE, parse_fail_on
    from envpack.diff.policy import load_policy
    from envpack.diff.reporters import get_reporter
    from envpack.diff.reporters._common import counts_text, gate_lines
    from envpack.diff.requirements import load_requirements

    threshold: Any = None
    if fail_on is not None:
        try:
            threshold = parse_fail_on(fail_on)
        except ValueError as err:
            raise UsageError(f"--fail-on: {err}") from None
        if threshold is None:
            threshold = FAIL_ON_NONE
    to_terminal = output is None and sys.stdout.isatty()
    with single_run():
        environments = load_environments(manifests)
        paths = {e.name: e.path for e in environments}
        reporter = get_reporter(
            output_format, manifest_paths=paths, width=_report_width(to_terminal)
        )
        outcome = run_diff(
            environments,
            baseline=baseline,
            policy=load_policy(policy),
            fail_on=threshold,
            declared=load_requirements(requirements) if requirements is not None else None,
            accepted=accepted,
            accept=accept is not None,
        )
        result = outcome.result
        for note in result.notes:
            _say(f"envpack: note: {note}")
        color = to_terminal and "NO_COLOR" not in os.environ
        text = reporter.render(result, color=color)
        if accept is not None and outcome.accepted_file is not None:
            write_atomic(accept, outcome.accepted_file)
        if output is None:
            sys.stdout.write(text)
            sys.stdout.flush()
        else:
            write_atomic(output, text.encode("utf-8"))
    # The table on this very terminal already ends with the verdict; anywhere else (a file,
    # a pipe, another format) the CI log gets it on stderr.
    if not (output_format == "table" and to_terminal and sys.stderr.isatty()):
        for line in gate_lines(result):
            _say(f"envpack: {line}" if not line.startswith(" ") else line)
    if accept is not None:
        held = sum(outcome.accepted_counts.values())
        counts = counts_text(outcome.accepted_counts)
        _say(
            f"envpack: accepted {held} change{'s' if held != 1 else ''} ({counts}) into "
            f"{accept}; give it back with --accepted {accept} so only new drift fails"
        )
    raise typer.Exit(result.verdict.exit_code)


def _report_width(to_terminal: bool) -> int:
    """The table's width: ``COLUMNS`` when set (the shell convention; ``shutil`` reads it
    first too), else the terminal's own when the report goes to one, else 120."""
    from envpack.diff.reporters.table import DEFAULT_WIDTH

    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return max(int(columns), _MIN_WIDTH)
    if to_terminal:
        try:
            return max(os.get_terminal_size(sys.stdout.fileno()).columns, _MIN_WIDTH)
        except OSError:
            pass
    return DEFAULT_WIDTH


_MIN_WIDTH = 40
"""Narrower than this, no layout is readable: the table stays 40 columns wide."""


def _parse_env(items: list[str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name or "\0" in item:
            raise UsageError(f"--env {item!r}: expected NAME=VALUE")
        env[name] = value
    return env


def _parse_app(item: str) -> tuple[str, str]:
    """``DIR`` (placed at its own absolute path) or ``DIR:DEST``."""
    folder, sep, dest = item.partition(":")
    where = Path(folder)
    if not where.is_dir():
        raise UsageError(f"--app {item!r}: {folder} is not a folder")
    absolute = str(where.resolve())
    if sep and not dest.startswith("/"):
        raise UsageError(f"--app {item!r}: the destination must be an absolute path")
    return absolute, (dest.rstrip("/") or "/") if sep else absolute


def _parse_command(option: str, text: Optional[str]) -> Optional[tuple[str, ...]]:
    """A JSON array (``'["python", "-m", "app"]'``) or shell words (``'python -m app'``)."""
    if text is None:
        return None
    import json
    import shlex

    if text.lstrip().startswith("["):
        try:
            words = json.loads(text)
        except ValueError as err:
            raise UsageError(f"{option}: not a JSON array: {err}") from None
        if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
            raise UsageError(f"{option}: a JSON array of strings is expected")
        return tuple(words)
    try:
        return tuple(shlex.split(text))
    except ValueError as err:
        raise UsageError(f"{option}: {err}") from None


class _BuildProgress:
    """rich progress bars on stderr: reading, hashing, compiling, compressing, writing.

    The planner reports its steps by name (``interpreter``, ``distributions`` …): they
    advance one "reading" bar, whose label names the step. Only on a terminal: elsewhere
    (a CI log, a pipe) bars are noise, and rich's transient display left an empty line.
    """

    _READING = ("interpreter", "distributions", "application", "binaries", "config")
    _BARS = (("drift", "hashing"), ("bytecode", "compiling"))
    _BYTES = ("compressing", "writing", "pushing")

    def __init__(self) -> None:
        self._tasks: dict[str, Any] = {}
        self._live = sys.stderr.isatty()
        self._lock = threading.Lock()
        self._bars: Any = None
        self._closed = False

    def __enter__(self) -> "_BuildProgress":
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._closed = True
            if self._bars is not None:
                self._bars.stop()

    def _started(self) -> Any:
        """The rich display, started at the first report: a push with nothing to send
        (every blob already there) never imports rich nor draws an empty display."""
        if self._bars is None and not self._closed:
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            self._bars = Progress(
                TextColumn("{task.description:<24}"),
                BarColumn(),
                TextColumn("{task.fields[amount]}"),
                TimeRemainingColumn(),
                console=cast("_LazyConsole", err_console).get(),
                transient=True,
            )
            self._bars.start()
        return self._bars

    def __call__(self, phase: str, done: int, total: int) -> None:
        if not self._live:
            return
        with self._lock:
            bars = self._started()
            if bars is not None:
                self._update(bars, phase, done, total)

    def _update(self, bars: Any, phase: str, done: int, total: int) -> None:
        if phase in self._READING:
            bar, label = "reading", f"reading: {phase}"
            done, total = self._READING.index(phase), len(self._READING)
        else:
            bar = dict(self._BARS).get(phase, phase)
            label = bar
        if bar in self._BYTES:
            amount = f"{done / 1e6:.0f}/{total / 1e6:.0f} MB"
        else:
            amount = f"{done}/{total}" if bar != "reading" else ""
        task = self._tasks.get(bar)
        if task is None:
            task = self._tasks[bar] = bars.add_task(label, total=total or None, amount="")
        bars.update(task, description=label, completed=done, total=total or None, amount=amount)


@app.command()
def build(
    manifest: Annotated[
        Path, typer.Argument(help="The manifest to build (from `envpack capture`).")
    ],
    output: Annotated[
        Optional[Path],
        typer.Option(
            "-o",
            "--output",
            help="Where the image goes (default: MANIFEST's name with .oci, .tar or "
            ".rootfs; none with --load alone).",
        ),
    ] = None,
    output_format: Annotated[
        str,
        typer.Option(
            "--format",
            help="oci (an OCI image layout folder), tar (one archive for `docker load` and "
            "skopeo) or rootfs (a plain tree for chroot, bwrap, podman --rootfs).",
        ),
    ] = "oci",
    root: Annotated[
        Optional[Path],
        typer.Option("--root", help="Read files from this rootfs folder (a --root capture)."),
    ] = None,
    apps: Annotated[
        Optional[list[str]],
        typer.Option("--app", help="Application folder, at its own path or at DEST (DIR[:DEST])."),
    ] = None,
    entrypoint: Annotated[
        Optional[str],
        typer.Option(
            "--entrypoint",
            help="Entrypoint: shell words or a JSON array (default: the primary interpreter).",
        ),
    ] = None,
    cmd: Annotated[
        Optional[str],
        typer.Option("--cmd", help="Command (arguments of the entrypoint): shell words or JSON."),
    ] = None,
    workdir: Annotated[
        Optional[str],
        typer.Option("--workdir", help="Working folder (default: the first --app's DEST)."),
    ] = None,
    env: Annotated[
        Optional[list[str]],
        typer.Option("--env", help="Set NAME=VALUE in the image (repeatable)."),
    ] = None,
    user: Annotated[str, typer.Option("--user", help="Run as this user (name or uid[:gid]).")] = "",
    tag: Annotated[
        Optional[str], typer.Option("--tag", help="Image name, NAME:TAG (for --load and tar).")
    ] = None,
    exclude: Annotated[
        Optional[list[str]],
        typer.Option("--exclude", help="Leave out image paths matching this glob (repeatable)."),
    ] = None,
    include: Annotated[
        Optional[list[str]],
        typer.Option("--include", help="Also pack this file, binary or folder (repeatable)."),
    ] = None,
    include_secrets: Annotated[
        bool,
        typer.Option(
            "--include-secrets", help="Pack config files whose keys look secret (named anyway)."
        ),
    ] = False,
    allow_drift: Annotated[
        bool,
        typer.Option("--allow-drift", help="Pack files that changed since the capture."),
    ] = False,
    load: Annotated[
        bool, typer.Option("--load", help="Load the image into Docker (DOCKER_HOST honoured).")
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing OUT.")] = False,
    no_cache: Annotated[
        bool,
        typer.Option(
            "--no-cache",
            help="Hash, compile and compress everything again; use no cache (hashes, .pyc, "
            "layers, builds) and store nothing in one.",
        ),
    ] = False,
    report: Annotated[
        Optional[Path],
        typer.Option("--report", help="Write the build report here as JSON (atomically)."),
    ] = None,
    quiet: Annotated[
        bool, typer.Option("-q", "--quiet", help="No progress or summary on stderr.")
    ] = False,
    push: PushOption = None,
    insecure: InsecureOption = False,
    username: UsernameOption = None,
    password_stdin: PasswordStdinOption = False,
) -> None:
    """Pack the environment a manifest describes into a reproducible image.

    \b
    The image holds the primary interpreter, its Python packages, the shared libraries
    they load, the binaries named, the application and its config; the same manifest and
    files give the same image digest (SOURCE_DATE_EPOCH sets the time, default 2020-01-01).
    With --push REF the image goes straight to a registry (no daemon); -o is then optional.
    Exit codes: 0 built; 2 bad input (one line on stderr; nothing is left behind).
    """
    from envpack.pack.build import BuildOptions, source_date_epoch
    from envpack.pack.build import build as run_build

    formats = {"oci": ".oci", "tar": ".tar", "rootfs": ".rootfs"}
    if output_format not in formats:
        raise UsageError(f"--format {output_format!r}: choose oci, tar or rootfs")
    bars = None if quiet else _BuildProgress()
    publish = None
    if push is not None:
        target = _registry_target(
            push, insecure=insecure, username=username, password_stdin=password_stdin
        )
        publish = _image_publisher(target, bars, lambda: _image_sbom(manifest, not no_cache))
    if output is None and not load and push is None:
        stem = manifest.name[: -len(".json")] if manifest.name.endswith(".json") else manifest.name
        output = Path(stem + formats[output_format])
    options = BuildOptions(
        output=output,
        format=output_format,  # type: ignore[arg-type]  # checked just above
        root=root,
        apps=tuple(_parse_app(a) for a in apps or ()),
        entrypoint=_parse_command("--entrypoint", entrypoint),
        cmd=_parse_command("--cmd", cmd),
        workdir=workdir,
        env=_parse_env(env or []),
        user=user,
        tag=tag,
        exclude=tuple(exclude or ()),
        include=tuple(include or ()),
        include_secrets=include_secrets,
        allow_drift=allow_drift,
        load=load,
        force=force,
        use_cache=not no_cache,
        source_date_epoch=source_date_epoch(os.environ),
        publish=publish,
    )
    # Ctrl-C and SIGTERM unwind through the build (main() turns them into an exception):
    # its workspace is removed on the way out, so nothing is left behind.
    if bars is None:
        result = run_build(manifest, options)
    else:
        with bars:
            result = run_build(manifest, options, progress=bars)
    if report is not None:
        import orjson

        from envpack._atomic import write_atomic

        write_atomic(
            report,
            orjson.dumps(result.to_json(), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
            + b"\n",
        )
    if not quiet:
        for line in result.summary():
            _say(line)


@app.command()
def sbom(
    manifest: Annotated[
        str,
        typer.Argument(
            help="The manifest: a file (from `envpack capture`), `-` for stdin, or "
            "registry:HOST/REPO:TAG (from `capture --push`).",
            show_default=False,
        ),
    ],
    sbom_format: Annotated[
        str,
        typer.Option("--format", help="cyclonedx (CycloneDX 1.6 JSON) or spdx (SPDX 2.3 JSON)."),
    ] = "cyclonedx",
    output: Annotated[
        Optional[Path],
        typer.Option("-o", "--output", help="Write it here (atomically) instead of stdout."),
    ] = None,
) -> None:
    """Write the software bill of materials of a manifest.

    \b
    Python distributions (pkg:pypi), system packages (pkg:deb, pkg:apk, pkg:rpm with arch
    and distro), the interpreters and the shared libraries with their sha256 and owning
    package. The same manifest gives the same bytes (SOURCE_DATE_EPOCH dates it, else the
    capture's time). Exit codes: 0 written; 2 bad input.
    """
    from envpack.manifest import load_manifest
    from envpack.sbom import FORMATS, render_sbom

    if sbom_format not in FORMATS:
        raise UsageError(f"--format {sbom_format!r}: choose cyclonedx or spdx")
    document = render_sbom(load_manifest(manifest), sbom_format)
    if output is None:
        sys.stdout.buffer.write(document.data)
        sys.stdout.flush()
        return
    from envpack._atomic import write_atomic

    write_atomic(output, document.data)


cache_app = typer.Typer(
    help="Inspect or empty the layer and build cache of `envpack build`.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(cache_app, name="cache")


def _size(count: int) -> str:
    value = float(count)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def _layer_cache_root() -> Path:
    """The layer cache's folder; refused when it, or a folder above it, is not a folder
    (``ENVPACK_CACHE_DIR`` naming a file), rather than reported as an empty cache."""
    from envpack.pack.layercache import layer_cache_dir

    root = layer_cache_dir()
    for folder in (root, *root.parents):
        if folder.exists() or folder.is_symlink():
            if not folder.is_dir():
                raise UsageError(
                    f"the layer cache {root} cannot be used: {folder} is not a folder "
                    "(check ENVPACK_CACHE_DIR)"
                )
            break
    return root


@cache_app.command("info")
def cache_info() -> None:
    """Where the cache is ($ENVPACK_CACHE_DIR/layers): layers, builds, blobs and bytes."""
    from envpack.pack.layercache import LayerCache

    found = LayerCache(_layer_cache_root()).summary()
    typer.echo(for_terminal(str(found.path)))
    typer.echo(
        f"{found.layers} layers, {found.blobs} blobs, {found.builds} builds, {_size(found.bytes)}"
    )


@cache_app.command("prune")
def cache_prune() -> None:
    """Empty the layer and build cache; say how many layers, builds and bytes were freed."""
    from envpack.pack.layercache import LayerCache

    done = LayerCache(_layer_cache_root()).prune()
    typer.echo(
        f"removed {done.layers} layers, {done.blobs} blobs, {done.builds} builds, "
        f"{_size(done.bytes)} freed "
        f"from {for_terminal(str(done.path))}"
    )


def _image_sbom(manifest: Path, use_cache: bool) -> bytes:
    """The SBOM the build wrote into the image (same function, manifest and epoch)."""
    from envpack.manifest import loads
    from envpack.pack.build import source_date_epoch
    from envpack.sbom import image_sbom
    from envpack.snapshot.hashcache import default_cache_dir

    raw = manifest.read_bytes()
    cache = default_cache_dir() if use_cache else None
    return image_sbom(loads(raw, origin=str(manifest)), raw, source_date_epoch(os.environ), cache)


def _image_publisher(
    target: tuple[Any, Any], bars: Optional[_BuildProgress], sbom: Any = None
) -> Any:
    """``build --push``'s callback: push the built image, attach its SBOM (``sbom()``, the
    bytes of ``/.envpack/sbom.cdx.json``) as an OCI referrer, then say what happened."""
    ref, client = target

    def publish(image: Any) -> str:
        from envpack.registry import push_image, push_referrer
        from envpack.registry.pushed import default_folder
        from envpack.sbom import CYCLONEDX_MEDIA_TYPE

        progress = (lambda done, total: bars("pushing", done, total)) if bars else None
        result = push_image(
            client,
            ref.repository,
            ref.tag,
            image,
            sources_folder=default_folder(),
            progress=progress,
        )
        if sbom is None:
            return result.summary()
        attached = push_referrer(
            client,
            ref.repository,
            image.manifest,
            CYCLONEDX_MEDIA_TYPE,
            sbom(),
            CYCLONEDX_MEDIA_TYPE,
        )
        return f"{result.summary()}; SBOM attached as referrer {attached.digest}"

    return publish


@app.command()
def push(
    layout: Annotated[
        Path, typer.Argument(help="An OCI image layout folder (`envpack build --format oci`).")
    ],
    ref: Annotated[str, typer.Argument(help="Where to: HOST/REPO[:TAG].", show_default=False)],
    name: Annotated[
        Optional[str],
        typer.Option("--name", help="The layout's image to push, by its ref.name (its tag)."),
    ] = None,
    insecure: InsecureOption = False,
    username: UsernameOption = None,
    password_stdin: PasswordStdinOption = False,
    quiet: Annotated[
        bool, typer.Option("-q", "--quiet", help="No progress or summary on stderr.")
    ] = False,
) -> None:
    """Push an image layout to a registry: blobs it has are skipped, others streamed.

    \b
    Exit codes: 0 pushed; 2 a bad layout, a refused login, an unreachable registry
    (after retries) or a registry error, as one line on stderr.
    """
    from envpack.registry import push_layout
    from envpack.registry.pushed import default_folder

    if not layout.is_dir():
        raise UsageError(f"{layout}: not an OCI image layout folder")
    target_ref, client = _registry_target(
        ref, insecure=insecure, username=username, password_stdin=password_stdin, option="REF"
    )
    if quiet:
        result = push_layout(
            client,
            target_ref.repository,
            target_ref.tag,
            layout,
            ref_name=name,
            sources_folder=default_folder(),
        )
    else:
        bars = _BuildProgress()
        with bars:
            result = push_layout(
                client,
                target_ref.repository,
                target_ref.tag,
                layout,
                ref_name=name,
                sources_folder=default_folder(),
                progress=lambda done, total: bars("pushing", done, total),
            )
        _say(result.summary())


@app.command()
def verify(
    image: Annotated[
        str,
        typer.Argument(
            help="The image: oci:DIR[:TAG], oci-archive:FILE, docker-archive:FILE, "
            "docker-daemon:NAME[:TAG], a bare path, or a rootfs folder (build --format rootfs).",
            show_default=False,
        ),
    ],
    manifest: Annotated[
        Path, typer.Argument(help="The manifest the image was built from.", show_default=False)
    ],
    report: Annotated[
        Optional[Path],
        typer.Option(
            "--report",
            help="The build's --report JSON: paths it excluded are not drift; a rootfs "
            "runs with its environment.",
        ),
    ] = None,
    runner: Annotated[
        str,
        typer.Option(
            "--runner",
            help="Run the interpreter inside the image with: auto (a Docker Engine, else "
            "podman, else bwrap; bwrap for a rootfs), docker, podman, bwrap, or none (read "
            "its files only).",
        ),
    ] = "auto",
    policy: Annotated[
        Optional[Path],
        typer.Option("--policy", help="envpack.toml or pyproject.toml holding the [policy]."),
    ] = None,
    fail_on: Annotated[
        str,
        typer.Option(
            "--fail-on",
            help="Exit 1 when drift reaches this severity: critical, major, minor, patch, "
            "info (the default: any drift fails), or none (report only).",
        ),
    ] = "info",
    output_format: Annotated[
        str,
        typer.Option("--format", help="table, json, markdown, junit, sarif, github or html."),
    ] = "table",
    output: Annotated[
        Optional[Path],
        typer.Option("-o", "--output", help="Write the report here (atomically); else stdout."),
    ] = None,
    quiet: Annotated[
        bool, typer.Option("-q", "--quiet", help="Nothing on stderr but errors (no notes).")
    ] = False,
) -> None:
    """Check that an image holds what MANIFEST captured: its interpreter (run inside the
    image), Python packages, shared libraries and config files.

    \b
    What the build leaves out on purpose (other interpreters, the libraries of programs it
    does not pack, the base files it writes, secret-looking config files, --exclude'd
    paths given by --report) is said in a note, not counted as drift.
    Exit codes:
      0  the image holds what the manifest says (no drift at or above --fail-on)
      1  drift at or above --fail-on (default: any)
      2  bad input or usage, or the image cannot be read
    """
    from envpack._atomic import write_atomic
    from envpack.diff.engine import Environment, name_environments, run_diff
    from envpack.diff.model import FAIL_ON_NONE, parse_fail_on
    from envpack.diff.policy import load_policy
    from envpack.diff.reporters import get_reporter
    from envpack.diff.reporters._common import gate_lines
    from envpack.redact import Redactor, load_redaction_key
    from envpack.verify.run import RUNNERS, VerifyOptions
    from envpack.verify.run import verify as run_verify

    if runner not in RUNNERS:
        raise UsageError(f"--runner {runner!r}: choose {', '.join(RUNNERS)}")
    try:
        threshold: Any = parse_fail_on(fail_on)
    except ValueError as err:
        raise UsageError(f"--fail-on: {err}") from None
    if threshold is None:
        threshold = FAIL_ON_NONE
    options = VerifyOptions(
        runner=runner,  # type: ignore[arg-type]  # checked just above
        build_report=report,
    )
    redactor = Redactor(load_redaction_key())
    if quiet:
        result = run_verify(image, manifest, redactor, options)
    else:
        with err_console.status(_plain("verifying…")) as status:
            result = run_verify(
                image, manifest, redactor, options,
                progress=lambda msg: status.update(_plain(f"{msg}…")),
            )  # fmt: skip
    scoped = result.scoped
    environments: list[Environment] = name_environments(
        [str(manifest), image], [scoped.source, scoped.image]
    )
    to_terminal = output is None and sys.stdout.isatty()
    reporter = get_reporter(
        output_format,
        manifest_paths={e.name: e.path for e in environments},
        width=_report_width(to_terminal),
    )
    diff_result = run_diff(environments, policy=load_policy(policy), fail_on=threshold).result
    diff_result.notes.extend(result.notes)
    if not quiet:
        for note in diff_result.notes:
            _say(f"envpack: note: {note}")
    color = to_terminal and "NO_COLOR" not in os.environ
    text = reporter.render(diff_result, color=color)
    if output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        write_atomic(output, text.encode("utf-8"))
    # As for diff: the verdict and the failing changes reach a CI log whatever the format.
    if not quiet and not (output_format == "table" and to_terminal and sys.stderr.isatty()):
        for line in gate_lines(diff_result):
            _say(f"envpack: {line}" if not line.startswith(" ") else line)
    if not quiet:
        drift = sum(diff_result.verdict.counts.values())
        how = {
            "docker": "in Docker",
            "podman": "in podman",
            "bwrap": "under bwrap",
            "files": "not run (files read)",
        }
        _say(
            f"verified {image} against {manifest}: interpreter "
            f"{how.get(result.ran, 'failed to run in the image')}; "
            + (f"{drift} differences" if drift else "no drift")
        )
    raise typer.Exit(diff_result.verdict.exit_code)


@app.command()
def schema() -> None:
    """Print the JSON Schema of the manifest format."""
    from envpack.manifest import schema_text

    sys.stdout.write(schema_text())


class _Signalled(BaseException):
    """SIGINT or SIGTERM arrived: unwind (``finally`` blocks remove temporary files).

    A ``BaseException``, like ``KeyboardInterrupt``, so no ``except Exception`` swallows it.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _raise_signalled(signum: int, frame: object) -> NoReturn:
    raise _Signalled(signum)


def main() -> None:
    """Entry point of the ``envpack`` console script."""
    handled = (signal.SIGINT, signal.SIGTERM)
    previous = {signum: signal.signal(signum, _raise_signalled) for signum in handled}
    try:
        _run()
    except _Signalled as stop:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        _say("envpack: interrupted" if stop.signum == signal.SIGINT else "envpack: terminated")
        # End by the same signal, so a shell or a CI runner sees how the process ended.
        signal.signal(stop.signum, signal.SIG_DFL)
        os.kill(os.getpid(), stop.signum)
        raise SystemExit(128 + stop.signum) from None  # only if the signal is blocked
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _click_exceptions() -> Any:
    """The module of click's exception classes as typer raises them (typer 0.2x vendors
    click as ``typer._click``; older releases use click itself)."""
    import importlib

    try:
        return importlib.import_module("typer._click.exceptions")
    except ImportError:
        return importlib.import_module("click.exceptions")


def _run() -> None:
    click_errors = _click_exceptions()
    try:
        # Not standalone: click's own error printing (a usage block, the raw argument) is
        # replaced by envpack's one escaped line; exit codes come back as the return value.
        code = app(standalone_mode=False)
    except click_errors.ClickException as err:
        # `envpack` alone: click 8.2+ raises NoArgsIsHelpError carrying the help text (older
        # click prints it and returns 0 itself, and has no such class).
        if type(err).__name__ == "NoArgsIsHelpError":
            err.show()
            raise SystemExit(EXIT_OK) from None
        ctx = getattr(err, "ctx", None)
        where = ctx.command_path if ctx is not None else "envpack"
        _fail(f"{err.format_message()} (see '{where} --help')")
    except typer.Abort:
        _say("envpack: aborted")
        raise SystemExit(EXIT_DRIFT) from None
    except EnvpackError as err:
        _fail(str(err))
    except BrokenPipeError:
        raise SystemExit(EXIT_OK) from None
    except OSError as err:
        # An environment problem outside any one file (a full disk while writing stdout).
        _fail(f"{err.filename + ': ' if err.filename else ''}{err.strerror or err}")
    except Exception as err:
        # A bug in envpack, not bad input: one line, and a distinct code so tests notice.
        if os.environ.get("ENVPACK_DEBUG"):
            raise
        _say(
            f"envpack: internal error: {type(err).__name__}: {_masked(err)} "
            "(set ENVPACK_DEBUG=1 for the traceback, and please report it)"
        )
        raise SystemExit(EXIT_INTERNAL) from None
    raise SystemExit(code if isinstance(code, int) else EXIT_OK)
