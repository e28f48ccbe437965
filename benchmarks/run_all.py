"""Run every benchmark and write benchmarks/RESULTS.md: each script's figures, and one table
of every target with MET or MISSED. `make bench` runs this.

    .venv/bin/python benchmarks/run_all.py
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
SCRIPTS = ("validate.py", "precommit.py", "render.py", "scale.py", "deploy.py", "loadcheck.py")
TARGET = re.compile(r"^target: (?P<what>.*): (?P<verdict>MET|MISSED)\b(?P<rest>.*)$")


def run(script: str) -> tuple[str, int]:
    done = subprocess.run(
        [sys.executable, str(HERE / script)],
        cwd=HERE.parent,
        capture_output=True,
        text=True,
        check=False,
    )
    return (done.stdout + done.stderr).strip(), done.returncode


def main() -> int:
    sections, targets, failed = [], [], 0
    for script in SCRIPTS:
        if not (HERE / script).exists():
            continue
        print(f"running {script} ...", flush=True)
        output, code = run(script)
        failed += code != 0
        sections.append(f"## {script}\n\n```text\n{output}\n```\n")
        for line in output.splitlines():
            match = TARGET.match(line.strip())
            if match:
                targets.append(
                    f"| {script} | {match['what']} | {match['verdict']}"
                    f"{match['rest'].strip() and ' ' + match['rest'].strip()} |"
                )
    machine = (
        f"{platform.platform()}, {platform.machine()}, Python "
        f"{platform.python_version()}, {os.cpu_count()} CPUs"
    )
    text = "\n".join(
        [
            "# Benchmark results",
            "",
            f"Written by `make bench` on {dt.date.today().isoformat()}; machine: {machine}.",
            "Every figure is measured against its peer in the same run; ratios, not absolute",
            "times, are what carry over to other machines.",
            "",
            "| script | target | verdict |",
            "|---|---|---|",
            *targets,
            "",
            *sections,
        ]
    )
    (HERE / "RESULTS.md").write_text(text, encoding="utf-8")
    print(f"wrote {HERE / 'RESULTS.md'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
