"""How fast is `modelgate validate` on many specs, next to check-jsonschema and a bare YAML parse?

Generates N valid, varied ModelDeployment specs from models/iris.yaml into a temporary
repository (ROOT/models/*.yaml, plus a copy of policies/ so the real policy rules run), checks
that they all validate, then times, best of R runs:

  modelgate cold     `modelgate --root ROOT validate ROOT/models` in a new process
  modelgate warm     `workspace.validate(files, root)` in this process, after one warm-up run
  check-jsonschema   `check-jsonschema --schemafile <schema> FILES...` (schema only)
  libyaml floor      `yaml.load(text, Loader=yaml.CSafeLoader)` for every file

It is a report, not a test: it exits 0 whether or not the targets are met, and non-zero only
when something could not run.

    .venv/bin/python benchmarks/validate.py --count 1000 [--repeat 3]
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
TEMPLATE = REPO / "models" / "iris.yaml"
POLICIES = REPO / "policies"
VALUES = REPO / "templates" / "values.yaml"  # the environments the specs name
IRIS = REPO / "models" / "artifacts" / "iris"  # the model and card every spec names
CARDS = REPO / "docs" / "models"
SCHEMA = REPO / "validator" / "schemas" / "modeldeployment.v1alpha1.json"
BIN = Path(sysconfig.get_path("scripts"))
ARGV_BUDGET = 100_000  # bytes of file arguments per check-jsonschema call

TARGET_SPECS, TARGET_SECONDS = 1000, 1.0
TARGET_RATIO = 3.0

DOMAINS = ("botany", "fraud", "search", "ads", "vision", "speech", "pricing")
TIERS = ("gold", "silver", "bronze")
# the environments templates/values.yaml declares
ENVIRONMENTS = (["staging", "production"], ["staging"], ["production"])


class BenchError(Exception):
    """Something the benchmark needs could not run."""


@dataclass(frozen=True)
class Figure:
    label: str
    seconds: float


# --- generating specs -------------------------------------------------------------------


def variant(template: dict[str, Any], index: int) -> dict[str, Any]:
    """The index-th spec: iris with name, version, labels, scaling and smoke varied."""
    spec = copy.deepcopy(template)
    name = f"model-{index:05d}"
    spec["metadata"]["name"] = name
    spec["metadata"]["description"] = f"Synthetic benchmark model number {index}."
    spec["metadata"]["labels"] = {
        "domain": DOMAINS[index % len(DOMAINS)],
        "tier": TIERS[index % len(TIERS)],
        "batch": f"b{index // 100}",
    }
    body = spec["spec"]
    body["model"]["version"] = f"{1 + index % 4}.{index % 10}.{index}"
    body["environments"] = list(ENVIRONMENTS[index % len(ENVIRONMENTS)])
    low = 2 + index % 3  # production needs at least two replicas (MG-OPS-011)
    # iris is a Seldon Model: scaled on inference lag between the bounds, with no metric
    body["scaling"] = {"minReplicas": low, "maxReplicas": low + index % 7}
    body["smoke"]["requests"] = smoke_requests(body["smoke"]["requests"], index)
    return spec


def smoke_requests(requests: list[dict[str, Any]], index: int) -> list[dict[str, Any]]:
    """One or two of the template's smoke requests, with the first one's input nudged."""
    chosen = copy.deepcopy(requests[: 1 + index % 2])
    first = chosen[0]
    first["name"] = f"probe-{index % 13}"
    tensor = first["body"]["inputs"][0]
    tensor["data"] = [round(value + (index % 5) / 10, 2) for value in tensor["data"]]
    first["expect"]["maxLatencyMs"] = 200 + index % 800
    return chosen


def write_specs(root: Path, count: int) -> list[Path]:
    """ROOT/models/<name>.yaml for count specs, and copies of policies/, the values, the iris
    artifact and the model cards; the files, sorted."""
    template = yaml.safe_load(TEMPLATE.read_text(encoding="utf-8"))
    models = root / "models"
    models.mkdir(parents=True)
    if POLICIES.is_dir():
        shutil.copytree(POLICIES, root / "policies")
    (root / "templates").mkdir()
    shutil.copy(VALUES, root / "templates" / "values.yaml")
    shutil.copytree(IRIS, models / "artifacts" / "iris")
    shutil.copytree(CARDS, root / "docs" / "models")
    files = []
    for index in range(1, count + 1):
        spec = variant(template, index)
        path = models / f"{spec['metadata']['name']}.yaml"
        path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
        files.append(path)
    return sorted(files)


def check_valid(files: list[Path], root: Path) -> None:
    """Abort unless modelgate finds every generated spec valid."""
    from validator.check import workspace

    result = workspace.validate(files, root)
    if result.failed():
        shown = "\n".join(
            f"  {d.path}:{d.line}:{d.col}: {d.rule} {d.message}" for d in result.diagnostics[:10]
        )
        raise BenchError(f"the generated specs do not validate:\n{shown}")


# --- measuring --------------------------------------------------------------------------


def best_of(repeat: int, run: Callable[[], None]) -> float:
    """Fastest wall time of repeat runs, in seconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def tool(name: str) -> str:
    """The venv's executable of that name."""
    path = BIN / name
    if not path.exists():
        raise BenchError(f"{path} not found; install the dev extras: pip install -e '.[dev]'")
    return str(path)


def run_command(argv: Sequence[str]) -> None:
    completed = subprocess.run(argv, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        output = (completed.stdout + completed.stderr).strip()[-2000:]
        raise BenchError(f"{Path(argv[0]).name} exited {completed.returncode}:\n{output}")


def chunks(files: Sequence[Path], budget: int = ARGV_BUDGET) -> Iterator[list[str]]:
    """File arguments in groups whose total length stays under budget bytes."""
    group: list[str] = []
    size = 0
    for path in map(str, files):
        if group and size + len(path) + 1 > budget:
            yield group
            group, size = [], 0
        group.append(path)
        size += len(path) + 1
    if group:
        yield group


def modelgate_cold(root: Path) -> Callable[[], None]:
    argv = [tool("modelgate"), "--root", str(root), "validate", str(root / "models")]
    return lambda: run_command(argv)


def modelgate_warm(files: list[Path], root: Path) -> Callable[[], None]:
    from validator.check import workspace

    def run() -> None:
        if workspace.validate(files, root).failed():
            raise BenchError("in-process validation failed on the generated specs")

    return run


def check_jsonschema(files: list[Path]) -> Callable[[], None]:
    base = [tool("check-jsonschema"), "--schemafile", str(SCHEMA)]
    groups = list(chunks(files))

    def run() -> None:
        for group in groups:
            run_command([*base, *group])

    return run


def libyaml_parse(files: list[Path]) -> Callable[[], None]:
    loader = getattr(yaml, "CSafeLoader", None)
    if loader is None:
        raise BenchError("PyYAML was built without libyaml: no CSafeLoader")

    def run() -> None:
        for path in files:
            yaml.load(path.read_text(encoding="utf-8"), Loader=loader)

    return run


def measure(files: list[Path], root: Path, repeat: int) -> list[Figure]:
    warm = modelgate_warm(files, root)
    warm()  # warm-up: imports, compiled schema and policy caches
    return [
        Figure("modelgate cold (CLI process)", best_of(repeat, modelgate_cold(root))),
        Figure("modelgate warm (in-process)", best_of(repeat, warm)),
        Figure("check-jsonschema (schema only)", best_of(repeat, check_jsonschema(files))),
        Figure("libyaml parse (CSafeLoader)", best_of(repeat, libyaml_parse(files))),
    ]


# --- reporting --------------------------------------------------------------------------


def verdict(met: bool) -> str:
    return "MET" if met else "MISSED"


def table(figures: list[Figure], count: int) -> list[str]:
    lines = [f"{'figure':<32} {'seconds':>9} {'ms/spec':>9}"]
    lines += [f"{f.label:<32} {f.seconds:>9.3f} {f.seconds / count * 1000:>9.3f}" for f in figures]
    return lines


def targets(figures: list[Figure], count: int) -> list[str]:
    cold, checker = figures[0].seconds, figures[2].seconds
    ratio = checker / cold
    budget = TARGET_SECONDS * count / TARGET_SPECS
    scaled = "" if count == TARGET_SPECS else f" (budget scaled to {count} specs: {budget:.3f} s)"
    return [
        f"ratio check-jsonschema / modelgate-cold: {ratio:.2f}x",
        f"target: 1,000 specs under 1 s: {verdict(cold < budget)}"
        f" (modelgate cold {cold:.3f} s){scaled}",
        f"target: at least 3x faster than check-jsonschema: {verdict(ratio >= TARGET_RATIO)}"
        f" ({ratio:.2f}x)",
    ]


def machine() -> str:
    return (
        f"machine: {platform.platform()}, {platform.machine()}, "
        f"Python {platform.python_version()} ({platform.python_implementation()}), "
        f"{os.cpu_count()} CPUs"
    )


def report(figures: list[Figure], count: int, repeat: int) -> str:
    header = f"modelgate validate benchmark: {count} specs, best of {repeat}"
    return "\n".join([header, "", *table(figures, count), "", *targets(figures, count), machine()])


# --- main -------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Time modelgate validate on N generated specs.")
    parser.add_argument("--count", type=int, default=1000, help="specs to generate (1000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure; best counts (3)")
    args = parser.parse_args(argv)
    if args.count < 1 or args.repeat < 1:
        parser.error("--count and --repeat must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        with tempfile.TemporaryDirectory(prefix="modelgate-bench-") as tmp:
            root = Path(tmp)
            files = write_specs(root, args.count)
            check_valid(files, root)
            figures = measure(files, root, args.repeat)
    except BenchError as exc:
        print(f"benchmark aborted: {exc}", file=sys.stderr)
        return 1
    print(report(figures, args.count, args.repeat))
    return 0


if __name__ == "__main__":
    sys.exit(main())
