"""Run every benchmark and write benchmarks/RESULTS.md: each script's figures, and one table
of every target with MET or MISSED. `make bench` runs this.

    .venv/bin/python benchmarks/run_all.py              # every script
    .venv/bin/python benchmarks/run_all.py scale.py     # these scripts; the others' sections
                                                        # and targets are kept as they were

A "## Notes" section at the end of RESULTS.md, written by hand (why a target misses), is kept.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"
SCRIPTS = (
    "validate.py", "precommit.py", "render.py", "scale.py", "deploy.py", "loadcheck.py",
    "pickles.py", "delivery.py", "stages.py", "plan.py", "admission.py", "fit.py",
)  # fmt: skip
TARGET = re.compile(r"^target: (?P<what>.*): (?P<verdict>MET|MISSED)\b(?P<rest>.*)$")
ROW = re.compile(r"^\| (?P<script>[\w.]+) \| .* \|$")
SECTION = re.compile(r"^## (?P<script>[\w.]+)\n\n```text\n.*?\n```\n", re.M | re.S)
NOTES = re.compile(r"^## Notes\n.*", re.M | re.S)  # written by hand, kept as it is


def run(script: str) -> tuple[str, int]:
    done = subprocess.run(
        [sys.executable, str(HERE / script)],
        cwd=HERE.parent,
        capture_output=True,
        text=True,
        check=False,
    )
    return (done.stdout + done.stderr).strip(), done.returncode


def kept(scripts: list[str]) -> tuple[dict[str, list[str]], dict[str, str]]:
    """The target rows and sections of RESULTS.md for the scripts not run this time."""
    text = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else ""
    rows: dict[str, list[str]] = {}
    for line in text.splitlines():
        match = ROW.match(line)
        if match and match["script"] in SCRIPTS and match["script"] not in scripts:
            rows.setdefault(match["script"], []).append(line)
    sections = {
        match["script"]: match.group(0)
        for match in SECTION.finditer(text)
        if match["script"] not in scripts
    }
    return rows, sections


def main(argv: list[str]) -> int:
    unknown = [name for name in argv if name not in SCRIPTS]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(SCRIPTS)}")
        return 2
    chosen = argv or list(SCRIPTS)
    rows, sections = kept(chosen)
    failed = 0
    for script in chosen:
        if not (HERE / script).exists():
            continue
        print(f"running {script} ...", flush=True)
        output, code = run(script)
        failed += code != 0
        sections[script] = f"## {script}\n\n```text\n{output}\n```\n"
        rows[script] = []
        for line in output.splitlines():
            match = TARGET.match(line.strip())
            if match:
                rows[script].append(
                    f"| {script} | {match['what']} | {match['verdict']}"
                    f"{match['rest'].strip() and ' ' + match['rest'].strip()} |"
                )
                print(f"  {match['what']}: {match['verdict']}{match['rest']}", flush=True)
        if code != 0:
            print(f"  {script} failed (exit {code}): see its section in {RESULTS.name}")
    machine = (
        f"{platform.platform()}, {platform.machine()}, Python "
        f"{platform.python_version()}, {os.cpu_count()} CPUs"
    )
    partly = f" ({', '.join(chosen)}; the others are from earlier runs)" if argv else ""
    written = dt.date.today().isoformat()
    text = "\n".join(
        [
            "# Benchmark results",
            "",
            f"Written by `make bench` on {written}{partly}; machine: {machine}.",
            "Every figure is measured against its peer in the same run; ratios, not absolute",
            "times, are what carry over to other machines.",
            "",
            "| script | target | verdict |",
            "|---|---|---|",
            *(row for script in SCRIPTS for row in rows.get(script, [])),
            "",
            *(sections[script] for script in SCRIPTS if script in sections),
        ]
    )
    notes = NOTES.search(RESULTS.read_text(encoding="utf-8")) if RESULTS.exists() else None
    if notes:
        text = text.rstrip("\n") + "\n\n" + notes.group(0)
    RESULTS.write_text(text, encoding="utf-8")
    print(f"wrote {RESULTS}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
