"""``--format junit``: JUnit XML, so a CI test view lists the drift as test results.

One ``<testsuite>`` per environment pair (baseline → other). Each change is one
``<testcase>``, worst first (classname = section, name = component/field): it *fails*
when its severity is at or above the fail-on threshold (never with ``--fail-on none``)
and passes, with the change in ``<system-out>``, below it. Each manifest section with no
change gets one passing testcase, so a clean diff still shows what was checked. Every
text from the manifests goes through :func:`~envpack._escape.for_xml`: XML 1.0 cannot
carry most control characters, lone surrogates or U+FFFE/U+FFFF, even as references, and
a CI test view should not render an escape sequence or a bidi override either; they are
shown as visible escapes.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from envpack._escape import for_xml
from envpack.diff.model import DiffResult
from envpack.diff.reporters._common import after_text, before_text, component, worst_first
from envpack.manifest import SECTIONS

__all__ = ["JunitReporter"]


class JunitReporter:
    id = "junit"

    def render(self, result: DiffResult, *, color: bool = False) -> str:
        verdict = result.verdict
        root = ET.Element("testsuites", name="envpack diff")
        total_tests = total_failures = 0
        for drift in result.drifts:
            changes = worst_first(drift.changes)
            suite = ET.SubElement(
                root, "testsuite", name=for_xml(f"{drift.baseline} → {drift.other}")
            )
            tests = failures = 0
            for change in changes:
                tests += 1
                case = ET.SubElement(
                    suite,
                    "testcase",
                    classname=for_xml(change.section),
                    name=for_xml(component(change).partition("/")[2]),
                )
                detail = (
                    f"{for_xml(component(change))}: {change.kind.value} ({change.severity.label})\n"
                    f"{for_xml(drift.baseline)}: {before_text(change)}\n"
                    f"{for_xml(drift.other)}: {after_text(change)}\n"
                    f"reason: {for_xml(change.reason)}\n"
                )
                if verdict.fails(change.severity):
                    failures += 1
                    failure = ET.SubElement(
                        case,
                        "failure",
                        message=f"{change.severity.label}: {for_xml(change.reason)}",
                        type=change.severity.label,
                    )
                    failure.text = detail
                else:
                    ET.SubElement(case, "system-out").text = detail
            changed = {c.section for c in changes}
            for section in SECTIONS:
                if section not in changed:
                    tests += 1
                    ET.SubElement(suite, "testcase", classname=section, name="no drift")
            suite.set("tests", str(tests))
            suite.set("failures", str(failures))
            suite.set("errors", "0")
            suite.set("skipped", "0")
            total_tests += tests
            total_failures += failures
        root.set("tests", str(total_tests))
        root.set("failures", str(total_failures))
        root.set("errors", "0")
        ET.indent(root)
        body = ET.tostring(root, encoding="unicode")
        return '<?xml version="1.0" encoding="UTF-8"?>\n' + body + "\n"
