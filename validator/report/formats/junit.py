"""JUnit XML, as CI systems display test results: one test case per file checked, a failure
for the findings that fail the run (errors; warnings too under --strict). Warnings and notes
fail nothing, as the exit code says: the suite's standard output lists them, the way SARIF
gives them their own level (the JUnit schema has no warning of a test case)."""

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
    failing = [d for d in report.diagnostics if report.failing(d)]
    noted = [d for d in report.diagnostics if not d.waived and not report.failing(d)]
    suites = ET.Element("testsuites")
    suite = ET.SubElement(
        suites,
        "testsuite",
        name="modelgate validate",
        tests=str(len(by_file)),
        failures=str(sum(1 for found in by_file.values() if any(map(report.failing, found)))),
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
        failed = [d for d in found if report.failing(d)]
        if failed:
            failure = ET.SubElement(
                case, "failure", type=failed[0].rule, message=f"{len(failed)} finding(s)"
            )
            failure.text = "\n".join(format_diagnostic(d) for d in failed)
    out = [
        f"{len(failing)} failing finding(s), {len(noted)} warning(s) and note(s) that fail nothing",
        *(format_diagnostic(d) for d in noted),
        weakened_line(report),
    ]
    ET.SubElement(suite, "system-out").text = "\n".join(line for line in out if line)
    ET.SubElement(suite, "system-err").text = ""
    ET.indent(suites)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"
