"""Reports as a person meets them, on real captures: the table in a real terminal, the HTML
page in a real browser, the verdict in a CI log.

The manifests come from the real ``envpack capture`` of two virtualenvs (CPython 3.11 and
2.7); the diff runs as a child process. The table is read from a pseudo-terminal of 80 and
200 columns (``pty``: the size the kernel reports, no ``COLUMNS``). The HTML page is laid
out by Debian's headless Chromium and measured through the DevTools protocol
(:mod:`chromium_page`).
"""

from __future__ import annotations

import copy
import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from collections.abc import Iterator
from pathlib import Path

import pytest
from chromium_page import CHROMIUM, Browser
from reporter_html_check import parse

from envpack.diff.model import Severity
from realenv import run_envpack

pytestmark = pytest.mark.slow

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_RUN = re.compile(r"[A-Za-z0-9]+")
_LABELS = {s.label for s in Severity}


@pytest.fixture(scope="module")
def env() -> dict[str, str]:
    out = dict(os.environ)
    out.setdefault("ENVPACK_REDACT_KEY", "envpack-test-key")
    for name in ("VIRTUAL_ENV", "COLUMNS", "LINES", "NO_COLOR"):
        out.pop(name, None)
    return out


@pytest.fixture(scope="module")
def manifests(
    dev_venv: Path, prod_venv: Path, tmp_path_factory: pytest.TempPathFactory, env: dict[str, str]
) -> Path:
    """dev.json (CPython 3.11 venv) and prod.json (2.7 venv), real captures."""
    folder = tmp_path_factory.mktemp("real-views")
    for label, python in (("dev", dev_venv), ("prod", prod_venv)):
        proc = run_envpack(
            "capture", "--python", str(python), "--label", label,
            "--only", "interpreters", "--only", "python_packages", "--only", "os",
            "-q", "-o", str(folder / f"{label}.json"), env=env,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
    return folder


def _in_terminal(args: list[str], columns: int, env: dict[str, str], cwd: Path) -> str:
    """What ``envpack ARGS`` shows in a terminal ``columns`` wide (stdout and stderr)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, "-m", "envpack", *args],
        stdin=slave, stdout=slave, stderr=slave, env=env, cwd=cwd, close_fds=True,
    )  # fmt: skip
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 1 << 16)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    assert proc.wait(timeout=300) in (0, 1)
    return _ANSI.sub("", b"".join(chunks).decode("utf-8")).replace("\r\n", "\n")


def _words_of(json_report: str) -> set[str]:
    """Every alphanumeric run of the diff's own texts (keys, values, reasons, names)."""
    document = json.loads(json_report)
    return set(_RUN.findall(json.dumps(document, ensure_ascii=False)))


def _broken_words(shown: str, words: set[str]) -> list[str]:
    """Runs of ``shown`` that are no word of the diff: halves of a word split by a line
    break. A run ending in ``…`` is a cut value, a prefix of a word."""
    fixed = set(_RUN.findall("severity component kind reason change changes worst no drift"))
    broken = []
    for match in _RUN.finditer(shown):
        run = match.group()
        if run in words or run in fixed:
            continue
        if shown[match.end() : match.end() + 1] == "…" and any(w.startswith(run) for w in words):
            continue
        broken.append(run)
    return broken


@pytest.mark.parametrize("columns", [80, 200])
def test_table_fits_a_real_terminal_worst_first_without_breaking_words(
    columns: int, manifests: Path, env: dict[str, str]
) -> None:
    shown = _in_terminal(["diff", "dev.json", "prod.json"], columns, env, manifests)
    lines = shown.splitlines()
    verdict = lines[-1]
    assert verdict.startswith("FAILED: worst drift is critical")
    # The terminal shows the verdict once: stderr does not repeat what the table ends with.
    assert shown.count("FAILED: worst drift") == 1
    # Every line but the verdict (one line for log scrapers, wrapped by the terminal
    # itself) fits the terminal's real width.
    too_wide = [line for line in lines[:-1] if len(line) > columns]
    assert not too_wide, too_wide
    # Worst first: a critical row opens the table, the severities never go back up.
    # A row starts at the left edge with its severity; wrapped text is indented.
    severities = [
        line.split()[0] for line in lines if line[:1].strip() and line.split()[0] in _LABELS
    ]
    assert len(severities) >= 10
    assert severities[0] == "critical"
    assert severities == sorted(severities, key=lambda s: -Severity.parse(s))
    # Lines break between words and at path separators, never inside a word.
    report = run_envpack(
        "diff", "dev.json", "prod.json", "--format", "json", env=env, cwd=str(manifests)
    )
    body = "\n".join(lines[1:-1])  # the table, between its heading and the verdict
    assert _broken_words(body, _words_of(report.stdout)) == []
    if columns == 80:
        # Narrow: each change is its component and values, the reason on the next line.
        first = lines.index(next(line for line in lines if line.startswith("critical")))
        assert "→" in lines[first]
        assert lines[first + 1].startswith(" " * 11) and lines[first + 1].strip()


def test_columns_sizes_a_piped_table(manifests: Path, env: dict[str, str]) -> None:
    proc = run_envpack(
        "diff", "dev.json", "prod.json", env={**env, "COLUMNS": "90"}, cwd=str(manifests)
    )
    lines = proc.stdout.splitlines()
    assert max(len(line) for line in lines[:-1]) <= 90
    wide = run_envpack("diff", "dev.json", "prod.json", env=env, cwd=str(manifests))
    assert max(len(line) for line in wide.stdout.splitlines()[:-1]) > 90  # 120 by default


@pytest.mark.parametrize("format_id", ["json", "junit", "html", "sarif", "markdown", "table"])
def test_verdict_and_failing_changes_on_stderr_with_a_file(
    format_id: str, manifests: Path, env: dict[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "report"
    proc = run_envpack(
        "diff", "dev.json", "prod.json", "--format", format_id, "-o", str(out),
        env=env, cwd=str(manifests),
    )  # fmt: skip
    assert proc.returncode == 1
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert lines[0].startswith("envpack: FAILED: worst drift is critical, at or above fail-on")
    # What failed: each change at or above the threshold, worst first, then how many more.
    assert lines[1].split()[:4] == ["critical", "interpreters/primary.version", "in", "prod:"]
    assert all(line.startswith("  ") for line in lines[1:])
    assert out.stat().st_size > 0


def test_accept_confirms_what_it_wrote(
    manifests: Path, env: dict[str, str], tmp_path: Path
) -> None:
    accepted = tmp_path / "accepted.json"
    proc = run_envpack(
        "diff", "dev.json", "prod.json", "--accept", str(accepted), "--format", "json",
        env=env, cwd=str(manifests),
    )  # fmt: skip
    assert proc.returncode == 0
    held = len(json.loads(accepted.read_text(encoding="utf-8"))["changes"])
    last = proc.stderr.splitlines()[-1]
    assert last.startswith(f"envpack: accepted {held} changes (1 critical, ")
    assert last.endswith(
        f"into {accepted}; give it back with --accepted {accepted} so only new drift fails"
    )


def test_fail_on_none_reports_real_drift_and_passes(manifests: Path, env: dict[str, str]) -> None:
    proc = run_envpack(
        "diff", "dev.json", "prod.json", "--fail-on", "none", env=env, cwd=str(manifests)
    )
    assert proc.returncode == 0
    assert "critical" in proc.stdout
    assert proc.stdout.splitlines()[-1].startswith(
        "PASSED: worst drift is critical, below fail-on none;"
    )


def test_requirement_rows_read_as_sentences(
    manifests: Path, env: dict[str, str], tmp_path: Path
) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("requests>=2.31\nflask>=2\n", encoding="utf-8")
    proc = run_envpack(
        "diff", "dev.json", "prod.json", "--requirements", str(requirements),
        env={**env, "COLUMNS": "200"}, cwd=str(manifests),
    )  # fmt: skip
    rows = [line.split() for line in proc.stdout.splitlines() if "requirements/" in line]
    by_component = {" ".join(row[1:4]): row for row in rows}
    # requests>=2.31 in prod: dev has 2.31.0, prod 2.27.1.
    assert by_component["requirements/requests>=2.31 in prod"][4:7] == [
        "unsatisfied", "2.31.0", "2.27.1",
    ]  # fmt: skip
    # flask is in neither: a dash, not "null".
    assert by_component["requirements/flask>=2 in prod"][4:7] == ["unsatisfied", "—", "—"]
    assert "null" not in " ".join(" ".join(row) for row in rows)


# --- the HTML page in a real browser --------------------------------------------------------

needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (.ci/setup installs it)")
    with Browser() as opened:
        yield opened


def _big_pair(manifests: Path, dev_venv: Path, env: dict[str, str]) -> tuple[Path, Path]:
    """A real capture with the host's dpkg packages, and the same after an upgrade that
    changed every package's version and added a debug and a doc package beside each:
    over 2,000 rows of drift."""
    base = manifests / "host-dev.json"
    if not base.exists():
        proc = run_envpack(
            "capture", "--python", str(dev_venv), "--label", "dev",
            "--only", "interpreters", "--only", "python_packages", "--only", "system_packages",
            "-q", "-o", str(base), env=env,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
    document = json.loads(base.read_text(encoding="utf-8"))
    packages = document.get("system_packages", {})
    if len(packages) < 700:
        pytest.skip(f"this host has {len(packages)} dpkg packages; the test needs 700")
    upgraded = copy.deepcopy(document)
    upgraded["meta"]["label"] = "prod"
    for key, component in list(upgraded["system_packages"].items()):
        for extra in ("dbgsym", "doc"):
            name = f"{component.get('name', key)}-{extra}"
            upgraded["system_packages"][f"{key}-{extra}"] = {**component, "name": name}
        component["version"] = f"{component.get('version', '0')}+upgrade1"
    other = manifests / "host-prod.json"
    other.write_text(json.dumps(upgraded, indent=1), encoding="utf-8")
    return base, other


# The first row holding a critical cell: where it is, whether it is shown, and how many
# rows the page has, shows and marks critical.
_FIRST_CRITICAL = """(() => {
  const rows = [...document.querySelectorAll("tbody tr")];
  const critical = rows.filter(r => r.querySelector("td.sev-critical"));
  if (!critical.length) return null;
  const box = critical[0].getBoundingClientRect();
  return {top: box.top, bottom: box.bottom, height: window.innerHeight,
          visible: critical[0].checkVisibility(), rows: rows.length,
          shown: rows.filter(r => r.checkVisibility()).length, criticals: critical.length};
})()"""


def test_html_opens_on_the_first_critical_row_of_a_2000_row_report(
    browser: Browser, manifests: Path, dev_venv: Path, env: dict[str, str], tmp_path: Path
) -> None:
    base, other = _big_pair(manifests, dev_venv, env)
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("requests>=2.99\n", encoding="utf-8")  # unmet: critical
    page = tmp_path / "big.html"
    proc = run_envpack(
        "diff", str(base), str(other), "--requirements", str(requirements),
        "--format", "html", "-o", str(page), env=env,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    browser.open(page, 1280, 800)  # a laptop's browser window
    found = browser.evaluate(_FIRST_CRITICAL)
    assert found is not None, "no critical row in the page"
    assert found["rows"] >= 2000
    assert found["visible"]
    assert found["top"] >= 0 and found["bottom"] <= found["height"], found
    # Only the critical rows are open; the other thousands are folded under their count.
    assert found["shown"] == found["criticals"]


_CONTRAST = """(() => {
  const rgb = s => s.match(/[\\d.]+/g).slice(0, 3).map(Number);
  const lum = c => { const [r, g, b] = c.map(v => { v /= 255;
      return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
  return [...document.querySelectorAll(".absent")].map(el => {
    let cell = el.closest("td");
    const fg = lum(rgb(getComputedStyle(el).color));
    const bgText = getComputedStyle(cell).backgroundColor;
    const bg = bgText === "rgba(0, 0, 0, 0)" ? 1 : lum(rgb(bgText));
    const [hi, lo] = fg > bg ? [fg, bg] : [bg, fg];
    return (hi + 0.05) / (lo + 0.05);
  });
})()"""

# Where a line breaks inside an element's text: the character before each break.
_BREAKS = """(() => {
  const out = [];
  for (const code of document.querySelectorAll("table code, table td")) {
    const walker = document.createTreeWalker(code, NodeFilter.SHOW_TEXT);
    let prevTop = null, prevChar = " ", node;
    while ((node = walker.nextNode())) {
      let first = true;
      for (let i = 0; i < node.length; i++) {
        const range = document.createRange();
        range.setStart(node, i); range.setEnd(node, i + 1);
        const rect = range.getClientRects()[0];
        if (!rect) continue;
        const ch = node.data[i];
        if (prevTop !== null && rect.top > prevTop + 2 && !first_ok(prevChar, first))
          out.push(node.data.slice(Math.max(0, i - 12), i) + "|" + node.data.slice(i, i + 12));
        prevTop = rect.top; prevChar = ch; first = false;
      }
    }
  }
  function first_ok(prev, atNodeStart) {
    // A break may follow a blank or a separator, or fall between two text nodes (<wbr>).
    return atNodeStart || " /.-_=:,;→".includes(prev);
  }
  return out;
})()"""


def test_html_absent_cells_are_readable_and_words_stay_whole(
    browser: Browser, manifests: Path, env: dict[str, str], tmp_path: Path
) -> None:
    page = tmp_path / "report.html"
    proc = run_envpack(
        "diff", "dev.json", "prod.json", "--format", "html", "-o", str(page),
        env=env, cwd=str(manifests),
    )  # fmt: skip
    assert proc.returncode == 1
    text = page.read_text(encoding="utf-8")
    # Every group opened, so every row is laid out (a closed group's rows have no boxes).
    page.write_text(text.replace('<details class="group', '<details open class="group'))
    browser.open(page, 700, 900)  # narrow: long values must wrap somewhere
    ratios = browser.evaluate(_CONTRAST)
    assert ratios, "no absent cell in the report"
    assert min(ratios) >= 4.5, ratios  # WCAG AA for normal text
    assert browser.evaluate(_BREAKS) == []
    # One table per severity group, no second table of the same changes below them.
    assert "<h2>Changes</h2>" not in text
    assert browser.evaluate("document.querySelectorAll('table').length") == text.count(
        '<details class="group'
    )


def test_html_shows_a_structured_value_as_its_fields(env: dict[str, str], tmp_path: Path) -> None:
    """The live host against a Debian 11 rootfs: the rootfs has no recorded architecture
    component, so the host's whole ``{"machine": …}`` object is what the cell shows."""
    rootfs = Path(__file__).parents[3] / "fixtures" / "rootfs" / "debian-py39-dpkg"
    live, image = tmp_path / "live.json", tmp_path / "image.json"
    for args in (["--label", "live", "-o", str(live)], ["--root", str(rootfs), "--label",
                 "image", "-o", str(image)]):  # fmt: skip
        proc = run_envpack("capture", "--only", "os", "-q", *args, env=env)
        assert proc.returncode == 0, proc.stderr
    architecture = json.loads(live.read_text(encoding="utf-8"))["os"]["architecture"]
    proc = run_envpack("diff", str(live), str(image), "--format", "html", env=env)
    assert proc.returncode == 1, proc.stderr
    page = parse(proc.stdout)
    assert not page.errors, page.errors
    rows = {row[0].text: row[1:] for table in page.tables for row in table[1:]}
    live_cell, image_cell, _ = rows["os/architecture"]
    # <dt>machine</dt><dd>x86_64</dd><dt>source</dt><dd>uname</dd>: one field a line
    assert live_cell.text == "".join(f"{k}{v}" for k, v in sorted(architecture.items()))
    assert "{" not in live_cell.text
    assert image_cell.text == "— absent"
    assert '<dl class="fields"><dt><code>machine</code></dt>' in proc.stdout
