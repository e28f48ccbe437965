"""JUnit XML, as CI systems display test results: one test case per file checked, a failure
per open finding (errors, and warnings too, since a CI view has no severities)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING

from .text import format_diagnostic, weakened_line

if TYPE_CHECKING:
    from .. import Report


def format_report(report: Report) -> str:
    by_file: dict[str, list] = {path: [] for path in report.files}
    for diagnostic in report.diagnostics:
        by_file.setdefault(diagnostic.path, []).append(diagnostic)
    open_count = sum(1 for d in report.diagnostics if not d.waived)
    suites = ET.Element("testsuites")
    suite = ET.SubElement(
        suites,
        "testsuite",
        name="modelgate validate",
        tests=str(len(by_file)),
        failures=str(sum(1 for found in by_file.values() if any(not d.waived for d in found))),
        errors="0",
        skipped="0",
        time="0",
        timestamp="1970-01-01T00:00:00",
        hostname="localhost",
        id="0",
        package="modelgate",
    )
    properties = ET.SubElement(suite, "properties")
    if report.weakened:
        listed = ", ".join(str(w) for w in report.weakened)
        ET.SubElement(properties, "property", name="policy.weakened", value=listed)
    for path, found in sorted(by_file.items()):
        case = ET.SubElement(suite, "testcase", classname="modelgate.validate", name=path, time="0")
        failing = [d for d in found if not d.waived]
        if failing:
            failure = ET.SubElement(
                case, "failure", type=failing[0].rule, message=f"{len(failing)} finding(s)"
            )
            failure.text = "\n".join(format_diagnostic(d) for d in failing)
    out = [f"{open_count} open finding(s)", weakened_line(report)]
    ET.SubElement(suite, "system-out").text = "\n".join(line for line in out if line)
    ET.SubElement(suite, "system-err").text = ""
    ET.indent(suites)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"
