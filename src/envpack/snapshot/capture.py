"""The capture pipeline: run each probe against a source and assemble the manifest."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timezone

from envpack import __version__
from envpack.errors import UsageError, choices_text
from envpack.manifest import (
    CAPTURED,
    NOT_APPLICABLE,
    NOT_CAPTURED,
    SECTIONS,
    Manifest,
    Meta,
)
from envpack.redact import Redactor
from envpack.snapshot.context import CaptureContext, CaptureOptions, Progress
from envpack.snapshot.probes import PROBE_INPUTS, PROBES
from envpack.snapshot.source import Source, SourceReadError

__all__ = ["capture", "capture_time", "coverage", "with_inputs"]


def capture_time(environ: Mapping[str, str]) -> str:
    """Now, or ``SOURCE_DATE_EPOCH`` when set, as ISO 8601 UTC with a ``Z``."""
    epoch = environ.get("SOURCE_DATE_EPOCH")
    if epoch is not None:
        try:
            when = datetime.fromtimestamp(int(epoch), tz=timezone.utc)
        except (ValueError, OverflowError, OSError) as err:
            raise UsageError(f"SOURCE_DATE_EPOCH={epoch!r} is not a Unix time") from err
    else:
        when = datetime.now(tz=timezone.utc).replace(microsecond=0)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def with_inputs(sections: frozenset[str]) -> frozenset[str]:
    """``sections`` plus the sections they are read from (``--only python_packages`` needs
    the interpreters whose ``sys.path`` it walks)."""
    wanted = set(sections)
    pending = list(sections)
    while pending:
        for needed in PROBE_INPUTS.get(pending.pop(), ()):
            if needed not in wanted:
                wanted.add(needed)
                pending.append(needed)
    return frozenset(wanted)


def capture(
    source: Source,
    options: CaptureOptions,
    redactor: Redactor,
    *,
    progress: Progress | None = None,
    environ: Mapping[str, str] | None = None,
) -> Manifest:
    """Capture ``source`` into a manifest. Probe problems become ``issues`` entries."""
    env = os.environ if environ is None else environ
    if options.only is not None:
        unknown = sorted(options.only - set(SECTIONS))
        if unknown:
            choices = choices_text(SECTIONS)
            raise UsageError(f"--only: unknown section {unknown[0]!r}; choose from {choices}")
        options = replace(options, only=with_inputs(options.only))
    ctx = CaptureContext(source=source, options=options, redactor=redactor)
    if progress is not None:
        ctx.progress = progress
    for path, reason in source.load_issues():
        ctx.issue(source.kind, path, reason)
    try:
        for section, probe in PROBES:
            if ctx.wants(section):
                ctx.progress(f"capturing {section}")
                probe(ctx)
        ctx.finish()
    finally:
        ctx.close()
    meta = Meta(
        envpack_version=__version__,
        captured_at=capture_time(env),
        source_kind=source.kind,
        source=source.description,
        hostname=_hostname(source),
        label=options.label,
        coverage=coverage(ctx),
    )
    # In the manifest's order, not the order the probes ran in (summaries list them so).
    sections = {name: ctx.sections[name] for name in SECTIONS if name in ctx.sections}
    return Manifest(meta=meta, sections=sections, issues=ctx.issues)


def coverage(ctx: CaptureContext) -> dict[str, str]:
    """``meta.coverage``: what this capture covers, section by section.

    A section no probe records, or one the source says cannot apply to it
    (:attr:`Source.not_applicable`), is ``not_applicable``; one ``--only`` left out is
    ``not_captured``; every other one was captured, so an empty section is really empty.
    """
    probed = {section for section, _ in PROBES}
    out: dict[str, str] = {}
    for name in SECTIONS:
        if name not in probed or name in ctx.source.not_applicable:
            out[name] = NOT_APPLICABLE
        elif ctx.wants(name):
            out[name] = CAPTURED
        else:
            out[name] = NOT_CAPTURED
    return out


def _hostname(source: Source) -> str:
    try:
        return source.hostname()
    except SourceReadError:
        return ""  # the network section records why
