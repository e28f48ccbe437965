"""Where the CPU of `modelgate validate` and `modelgate render --check` goes, stage by stage.

Both commands run once in this process over COUNT generated specs (benchmarks/validate.py's,
rendered and committed first for render --check), on one core (the worker pool is turned off
so that every stage runs where the profiler sees it), under cProfile. Each stage is the
cumulative time of the functions that do it; shares are of the whole command. Profiling
slows every call alike, so the shares, not the seconds, carry over (docs/scale.md).

It is a report, not a test: it sets no target and exits 0 once both commands have run.

    .venv/bin/python benchmarks/stages.py [--count 1000]
"""

from __future__ import annotations

import argparse
import cProfile
import importlib.util
import os
import pstats
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# (stage, file under validator/, function): cumulative time of each; a stage inside another
# (model cards inside policy rules) is also counted in the outer one
VALIDATE_STAGES = (
    ("loading (YAML, positions)", "check/load.py", "load_file"),
    ("schema", "check/schema.py", "check"),
    ("engine capabilities", "check/capabilities.py", "check"),
    ("artifacts (digests)", "check/artifacts.py", "check"),
    ("pickle scan", "check/pickles.py", "check"),
    ("policy rules, per spec", "check/policy/__init__.py", "evaluate_spec"),
    ("  of which model cards", "check/policy/checks.py", "model_card_complete"),
    ("  of which licences", "check/policy/checks.py", "license_allowed"),
    ("cross-file: unique names", "check/names.py", "check_unique_names"),
    ("cross-file: policy and waivers", "check/workspace.py", "_cross_file_policy"),
    ("codeowners", "check/codeowners.py", "check"),
    ("engine locks", "check/engine_locks.py", "check"),
)
RENDER_STAGES = (
    *VALIDATE_STAGES,
    ("rendering (templates), per spec", "render/__init__.py", "_render_spec"),
    ("  of which Jinja", "render/__init__.py", "_render_text"),
    ("  of which read-back and CRD schemas", "render/__init__.py", "_parse_back"),
    ("  of which CRD schemas", "render/kube_schemas.py", "check"),
    ("  of which output rules", "render/__init__.py", "_judge"),
    ("comparison with rendered/", "render/sync.py", "unchanged"),
    ("ApplicationSets and Roles", "render/__init__.py", "_render_applicationsets"),
    ("orphans in rendered/", "render/sync.py", "orphans"),
)


def _module(name: str) -> object:
    spec = importlib.util.spec_from_file_location(f"bench_{name}", REPO / f"benchmarks/{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def profiled(argv: list[str]) -> pstats.Stats:
    from validator.cli import main

    profile = cProfile.Profile()
    profile.enable()
    try:
        with open(os.devnull, "w") as quiet, redirect_stdout(quiet), redirect_stderr(quiet):
            main(argv)
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise RuntimeError(f"modelgate {' '.join(argv)} exited {exc.code}") from None
    finally:
        profile.disable()
    return pstats.Stats(profile)


def shares(stats: pstats.Stats, stages: Sequence[tuple[str, str, str]]) -> list[str]:
    cumulative: dict[tuple[str, str], float] = {}
    for (filename, _, function), row in stats.stats.items():  # type: ignore[attr-defined]
        for _, where, name in stages:
            if function == name and filename.endswith("validator/" + where):
                cumulative[(where, name)] = cumulative.get((where, name), 0.0) + row[3]
    total = stats.total_tt  # type: ignore[attr-defined]
    lines = [f"{'stage':44} {'share':>6}", f"{'whole command':44} {100:5.1f}%"]
    for label, where, name in stages:
        seconds = cumulative.get((where, name), 0.0)
        lines.append(f"{label:44} {100 * seconds / total:5.1f}%")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    args = parser.parse_args(argv)
    os.cpu_count = lambda: 1  # the stages in this process, where the profiler sees them
    with tempfile.TemporaryDirectory(prefix="bench-stages-") as scratch:
        root = Path(scratch)
        _module("validate").write_specs(root, args.count)  # type: ignore[attr-defined]
        copy_templates(root)
        os.environ["MODELGATE_CACHE_DIR"] = str(root / ".cache-warm")
        profiled(["--root", str(root), "render"])  # rendered/, and a warm cache
        subprocess.run(["git", "init", "-q"], cwd=root, check=True)
        subprocess.run(["git", "add", "-A"], cwd=root, check=True)
        print(f"# stages.py: {args.count} specs, one core, warm cache\n")
        for title, command, stages in (
            ("modelgate validate", ["validate"], VALIDATE_STAGES),
            ("modelgate render --check", ["render", "--check"], RENDER_STAGES),
        ):
            stats = profiled(["--root", str(root), *command])
            print(f"{title}\n```text")
            print("\n".join(shares(stats, stages)))
            print("```\n")
    return 0


def copy_templates(root: Path) -> None:
    """The templates and CRD schemas the render needs (write_specs copied only the values)."""
    shutil.rmtree(root / "templates")
    shutil.copytree(REPO / "templates", root / "templates")
    if (REPO / "crds").is_dir():
        shutil.copytree(REPO / "crds", root / "crds")


if __name__ == "__main__":
    sys.exit(main())
