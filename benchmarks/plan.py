"""modelgate plan for a one-spec change in the 10,000-spec repository, cold.

    .venv/bin/python benchmarks/plan.py [--count 10000] [--repeat 3]

The repository and its one-spec change are scale.py's (render.py's make_repository, rendered
and committed on main; a branch that raises m-00041's maxReplicas). Each run is a fresh
`modelgate plan --changed-since main` process. Target: at most 1.5 s cold.
"""

from __future__ import annotations

import argparse
import importlib.util
import platform
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
TARGET = 1.5


def _scale():
    spec = importlib.util.spec_from_file_location("bench_scale", HERE / "scale.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_scale"] = module
    spec.loader.exec_module(module)
    return module


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    scale = _scale()
    parent = Path(tempfile.mkdtemp(prefix="bench-plan-"))
    try:
        root, _ = scale.build(args.count, parent)
        env = scale.cache_env(parent / "cache", fresh=True, installed=True)
        command = scale.modelgate("plan", "--changed-since", "main")
        runs = [scale.measure(command, root, env) for _ in range(args.repeat)]
        best = min(runs, key=lambda run: run.wall)
    finally:
        shutil.rmtree(parent, ignore_errors=True)
    print(f"plan benchmark: {args.count} specs, one spec changed, best of {args.repeat}\n")
    print(f"modelgate plan --changed-since main, cold   {best.wall:.3f} s wall, "
          f"{best.cpu:.3f} s CPU, load {best.load:.1f}")  # fmt: skip
    verdict = "MET" if best.wall <= TARGET else "MISSED"
    why = ""
    if verdict == "MISSED" and best.cpu <= TARGET:
        why = (
            f", load {best.load:.1f}; its {best.cpu:.3f} s of CPU fit in the target: "
            "the load made the difference"
        )
    print(
        f"target: plan for a one-spec change at {args.count:,} specs under {TARGET} s: "
        f"{verdict} ({best.wall:.3f} s wall, {best.cpu:.3f} s CPU{why})"
    )
    print(f"machine: {platform.platform()}, Python {platform.python_version()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
