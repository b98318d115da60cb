"""The command line: the only module that prints, draws progress and exits.

Exit codes: 0 success; 1 drift at or above the threshold (``diff``); 2 bad usage or bad
input, always as one line on stderr and never a traceback.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, NoReturn, Optional

import typer
from rich.console import Console

from envpack import __version__
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
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def _fail(message: str) -> NoReturn:
    err_console.print(f"envpack: error: {message}", markup=False)
    raise SystemExit(EXIT_BAD_INPUT)


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
        typer.Option("--only", help="Capture only this section (repeatable)."),
    ] = None,
    quiet: Annotated[
        bool, typer.Option("-q", "--quiet", help="No progress or summary on stderr.")
    ] = False,
) -> None:
    """Record an environment (live host or --root folder) into a manifest."""
    from envpack._atomic import write_atomic
    from envpack.manifest import dumps
    from envpack.redact import Redactor, load_redaction_key
    from envpack.snapshot.capture import capture as run_capture
    from envpack.snapshot.context import CaptureOptions
    from envpack.snapshot.source import Source

    if root is not None and probe_versions:
        raise UsageError("--probe-versions runs binaries, so it cannot be used with --root")
    source = Source.rootfs(root) if root is not None else Source.live()
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
    )
    redactor = Redactor(load_redaction_key())
    if quiet:
        manifest = run_capture(source, options, redactor)
    else:
        with err_console.status("capturing…") as status:
            manifest = run_capture(
                source, options, redactor, progress=lambda msg: status.update(f"{msg}…")
            )
    text = dumps(manifest)
    if output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        write_atomic(output, text.encode("utf-8"))
    if not quiet:
        counts = ", ".join(
            f"{len(entries)} {name.replace('_', ' ')}"
            for name, entries in manifest.sections.items()
        )
        where = f" → {output}" if output is not None else ""
        err_console.print(
            f"captured {manifest.name}: {counts}; {len(manifest.issues)} issues{where}",
            markup=False,
        )


@app.command()
def schema() -> None:
    """Print the JSON Schema of the manifest format."""
    from envpack.manifest import schema_text

    sys.stdout.write(schema_text())


def main() -> None:
    """Entry point of the ``envpack`` console script."""
    try:
        app()
    except EnvpackError as err:
        _fail(str(err))
    except KeyboardInterrupt:
        err_console.print("envpack: interrupted", markup=False)
        raise SystemExit(130) from None
    except BrokenPipeError:
        raise SystemExit(EXIT_OK) from None
    except OSError as err:
        # An environment problem outside any one file (a full disk while writing stdout).
        _fail(f"{err.filename + ': ' if err.filename else ''}{err.strerror or err}")
    except Exception as err:
        # A bug in envpack, not bad input: one line, and a distinct code so tests notice.
        if os.environ.get("ENVPACK_DEBUG"):
            raise
        err_console.print(
            f"envpack: internal error: {type(err).__name__}: {err} "
            "(set ENVPACK_DEBUG=1 for the traceback, and please report it)",
            markup=False,
        )
        raise SystemExit(EXIT_INTERNAL) from None
