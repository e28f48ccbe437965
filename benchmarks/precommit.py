"""What one changed spec costs in pre-commit: the hook's command in a fresh process.

    .venv/bin/python benchmarks/precommit.py [--repeat 10]

Figures (median of R runs, wall clock, interpreter start included):
- `python -c pass`: the floor any Python hook pays;
- `modelgate validate models/iris.yaml`: the hook (schema, policies, cross-file checks
  against the other specs in models/);
- `check-jsonschema --schemafile ... models/iris.yaml`: a peer, schema only.
Target: the hook under 0.3 s. Prints figures; exits 0 whether or not the target holds.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SPEC = "models/iris.yaml"
TARGET_S = 0.3


def median_wall(command: list[str], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        done = subprocess.run(command, cwd=ROOT, capture_output=True, check=False)
        times.append(time.perf_counter() - started)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(command)} failed:\n{done.stdout.decode()}")
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    schema = "validator/schemas/modeldeployment.v1alpha1.json"
    figures = {
        "python -c pass": median_wall([sys.executable, "-c", "pass"], args.repeat),
        "modelgate validate (one spec)": median_wall(
            [str(BIN / "modelgate"), "validate", SPEC], args.repeat
        ),
        "check-jsonschema (one spec, schema only)": median_wall(
            [str(BIN / "check-jsonschema"), "--schemafile", schema, SPEC], args.repeat
        ),
    }
    print(f"pre-commit benchmark: one changed spec, median of {args.repeat}\n")
    for name, seconds in figures.items():
        print(f"{name:<44} {seconds:7.3f} s")
    ours = figures["modelgate validate (one spec)"]
    peer = figures["check-jsonschema (one spec, schema only)"]
    print(f"\nratio check-jsonschema / modelgate: {peer / ours:.2f}x")
    print(f"target: under {TARGET_S} s: {'MET' if ours < TARGET_S else 'MISSED'} ({ours:.3f} s)")
    print(
        f"machine: {platform.platform()}, Python {platform.python_version()}, {os.cpu_count()} CPUs"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
