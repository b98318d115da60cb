"""--format github: workflow commands, escaped so the runner reads back exactly our text."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st
from reporter_samples import AWKWARD_GITHUB, AWKWARD_LINES, no_drift, three_env, two_env

from envpack._escape import for_github_data, for_github_property, for_terminal
from envpack.diff.model import Severity
from envpack.diff.reporters.github import GithubReporter

_CODES = {"%25": "%", "%0D": "\r", "%0A": "\n", "%3A": ":", "%2C": ","}
_COMMAND = re.compile(r"^::(?P<cmd>[a-z]+)(?: (?P<props>[^:]*))?::(?P<data>.*)$")


def _unescape(text: str) -> str:
    # One left-to-right pass, as the Actions runner decodes (so "%253A" stays "%3A").
    return re.sub("%(?:25|0D|0A|3A|2C)", lambda m: _CODES[m.group()], text)


def _commands(report: str) -> list[tuple[str, dict[str, str], str]]:
    """Parse the report like the runner: a command per line that starts with ``::``."""
    out = []
    for line in report.splitlines():
        match = _COMMAND.match(line)
        if not match:
            assert not line.startswith("::"), line
            continue
        props = {}
        for pair in (match["props"] or "").split(","):
            if pair:
                key, _, value = pair.partition("=")
                props[key] = _unescape(value)
        out.append((match["cmd"], props, _unescape(match["data"])))
    return out


@given(st.text())
def test_escape_round_trip(text: str) -> None:
    data = for_github_data(text)
    prop = for_github_property(text)
    assert data.isprintable() and prop.isprintable()  # no ESC, no bidi control, no break
    assert not set(prop) & {",", ":"}
    # The runner gets back the text, line breaks included; other controls stay escaped.
    shown = "".join(c if c in "\r\n" else for_terminal(c) for c in text)
    assert _unescape(data) == shown
    assert _unescape(prop) == shown


def test_one_annotation_per_change_with_level_from_threshold() -> None:
    report = GithubReporter().render(two_env())
    commands = _commands(report)
    # 16 changes and the one note.
    assert len(commands) == 17
    assert sorted(c for c, _, _ in commands) == ["error"] * 8 + ["notice"] * 6 + ["warning"] * 3
    # Worst first: every error before any warning, every warning before any notice.
    levels = [c for c, _, _ in commands[:-1]]
    assert levels == sorted(levels, key=["error", "warning", "notice"].index)
    assert commands[-1] == (
        "notice",
        {"title": "envpack note"},
        "requirements.txt line 3 not checked: -e ./local (an editable install)",
    )
    assert report.splitlines()[-1].startswith("FAILED: worst drift is critical")
    cmd, props, message = next(c for c in commands if "NOTE" in c[2])
    assert cmd == "warning"
    assert props == {"title": "envpack: minor drift in prod"}
    # The awkward value is shown (line breaks as visible \n), the reason's line break survives.
    assert AWKWARD_GITHUB in message
    assert "line1\\nline2\\r\\nline3" in message
    assert AWKWARD_LINES not in message
    assert message.endswith("environment variable NOTE changed\nacross two lines, 100% sure: yes")


def test_hostile_names_cannot_inject_commands_or_properties() -> None:
    result = three_env()
    result.environments = ["dev", "staging", "pr,od:x\n::error::owned"]
    result.drifts[1].other = "pr,od:x\n::error::owned"
    paths = {"pr,od:x\n::error::owned": "a,b:c.json"}
    commands = _commands(GithubReporter(paths).render(result))
    assert len(commands) == 10
    prod = [c for c in commands if c[1]["title"].endswith("owned")]
    assert len(prod) == 6
    assert prod[0][1] == {
        "title": "envpack: critical drift in pr,od:x\n::error::owned",
        "file": "a,b:c.json",
    }


def test_threshold_changes_levels() -> None:
    commands = _commands(GithubReporter().render(two_env(threshold=Severity.INFO)))
    assert [c for c, _, _ in commands] == ["error"] * 16 + ["notice"]  # the note


def test_no_drift_is_only_the_summary() -> None:
    assert GithubReporter().render(no_drift()) == (
        "PASSED: no drift across 2 environments (fail-on: major)\n"
    )
