"""Cost grows with the change, not the repository: issue 17's targets at 1,000, 10,000 and
30,000 specs, next to today's commands measured in the same run.

    .venv/bin/python benchmarks/scale.py [--counts 1000,10000,30000] [--repeat 3]
                                         [--quiet-load 3 --max-wait 900]

For each count: a repository made by render.py's make_repository (the four examples,
renamed, cycled), rendered and committed on `main`, and a branch `change` that edits one spec
(m-00041's maxReplicas) and its rendered files, as a pull request does. Every figure is a
cold `modelgate` process; CPU is user + system time of the command and every process it
waited for (workers, git); memory is the peak resident size of its largest process.

- pre-commit hook: `modelgate validate models/m-00041.yaml` in the repository, once with no
  facts index (the cache as `make venv` leaves it: validator/precompile.py) and then warm
  (median of --repeat); the peer is the same command on one of the project's own 4 specs.
  Target at 10,000 specs: <= 0.3 s, the same as in the 4-spec repository.
- pull request in CI: a fresh clone at `change` on a fresh runner, whose cache holds only
  what `make venv` compiled: `validate --changed-since origin/main` then `render --check
  --changed-since origin/main` (best of --repeat, the cache reset each time); also with an
  empty cache, as if `make venv` compiled nothing. Today's commands on the same clone,
  `validate` and `render --check`, are its peer. Target at 10,000: <= 1.5 s for both.
- everything, cold, on the clone (the merge workflow's checks): `validate` and `render
  --check`. Targets at 10,000: validate <= 4 s, render --check <= 12 s, <= 1 GiB.
- how cost grows: a least-squares line through the counts, for each command: its cost per
  1,000 specs and the fixed part.

The machine is usually shared: before each large measurement the script waits (at most
--max-wait seconds) for the 1-minute load average to fall under --quiet-load, and prints the
load it measured under. Exits 0 whether or not the targets hold.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CHANGED = "m-00041"  # a chat assistant (vLLM): every fourth spec from m-00001
TARGETS = {  # at 10,000 specs
    "precommit": 0.3,
    "pull request": 1.5,
    "validate": 4.0,
    "render --check": 12.0,
    "memory": 1024.0,  # MiB
}
TARGET_COUNT = 10_000


@dataclass(frozen=True)
class Run:
    wall: float
    cpu: float
    rss_mib: float
    load: float

    def __add__(self, other: Run) -> Run:
        return Run(
            self.wall + other.wall,
            self.cpu + other.cpu,
            max(self.rss_mib, other.rss_mib),
            max(self.load, other.load),
        )


def make_repository(count: int, parent: Path) -> Path:
    spec = importlib.util.spec_from_file_location("bench_render", ROOT / "benchmarks/render.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.make_repository(count, parent)


def wait_for_quiet(limit: float, max_wait: float) -> float:
    """The 1-minute load average once it is under `limit`, or after `max_wait` seconds."""
    waited = 0.0
    while os.getloadavg()[0] >= limit and waited < max_wait:
        time.sleep(10)
        waited += 10
    return os.getloadavg()[0]


def measure(argv: Sequence[str], cwd: Path, env: dict[str, str], expect: int = 0) -> Run:
    """One cold command: wall time, CPU of it and the processes it waited for, peak RSS."""
    load = os.getloadavg()[0]
    started = time.perf_counter()
    process = subprocess.Popen(
        argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    assert process.stderr is not None
    errors = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != expect:
        raise SystemExit(f"{' '.join(argv)} exited {process.returncode}:\n{errors[-3000:]!r}")
    return Run(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, load)


def modelgate(*args: str) -> list[str]:
    return [str(BIN / "modelgate"), *args]


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, env=GIT_ENV)


GIT_ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@example.com",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@example.com",
}


def cache_env(directory: Path, fresh: bool = False, installed: bool = False) -> dict[str, str]:
    """The environment of a run whose cache is `directory`: emptied when `fresh`, then
    holding what `make venv` compiles when `installed`."""
    if fresh:
        shutil.rmtree(directory, ignore_errors=True)
    env = {**os.environ, "MODELGATE_CACHE_DIR": str(directory)}
    if installed:
        precompile = [sys.executable, "-m", "validator.precompile"]
        subprocess.run(precompile, env=env, check=True, cwd=ROOT)
    return env


def build(count: int, parent: Path) -> tuple[Path, Path]:
    """The repository (main, then the branch `change` checked out) and a fresh clone of it."""
    root = make_repository(count, parent)
    env = cache_env(parent / "cache")
    quiet = {"env": env, "check": True, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    subprocess.run(modelgate("--root", str(root), "render"), **quiet)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", f"{count} specs")
    git(root, "checkout", "-q", "-b", "change")
    spec = root / "models" / f"{CHANGED}.yaml"
    spec.write_text(spec.read_text().replace("maxReplicas: 6", "maxReplicas: 7"))
    subprocess.run(modelgate("--root", str(root), "render", str(spec)), **quiet)
    git(root, "commit", "-q", "-am", f"{CHANGED}: one more replica")
    clone = parent / "clone"
    git(parent, "clone", "-q", str(root), str(clone))
    return root, clone


@dataclass
class Figures:
    count: int
    precommit_cold: Run
    precommit_warm: Run
    pull_request: Run
    pull_request_empty_cache: Run
    pull_request_today: Run
    validate: Run
    render_check: Run


def changed_since(clone: Path, env: dict[str, str]) -> Run:
    """What the pull-request workflow runs: both commands, for what the change touches."""
    base = "origin/main"
    return measure(modelgate("validate", "--changed-since", base), clone, env) + measure(
        modelgate("render", "--check", "--changed-since", base), clone, env
    )


def best(runs: list[Run]) -> Run:
    return min(runs, key=lambda run: run.wall)


def median(runs: list[Run]) -> Run:
    return Run(
        statistics.median(run.wall for run in runs),
        statistics.median(run.cpu for run in runs),
        max(run.rss_mib for run in runs),
        max(run.load for run in runs),
    )


def measure_count(count: int, repeat: int, quiet: float, max_wait: float) -> Figures:
    parent = Path(tempfile.mkdtemp(prefix=f"bench-scale-{count}-"))
    try:
        print(f"  building {count} specs ...", file=sys.stderr, flush=True)
        root, clone = build(count, parent)
        hook = modelgate("validate", f"models/{CHANGED}.yaml")
        wait_for_quiet(quiet, max_wait)
        cold = measure(hook, root, cache_env(parent / "hook-cache", fresh=True, installed=True))
        warm = [measure(hook, root, cache_env(parent / "hook-cache")) for _ in range(repeat)]
        pull_request, empty = [], []
        for _ in range(repeat):
            wait_for_quiet(quiet, max_wait)  # CI: a fresh runner, only `make venv` before
            env = cache_env(parent / "pr-cache", fresh=True, installed=True)
            pull_request.append(changed_since(clone, env))
            wait_for_quiet(quiet, max_wait)
            empty.append(changed_since(clone, cache_env(parent / "pr-cache", fresh=True)))
        env = cache_env(parent / "full-cache")
        measure(modelgate("validate"), clone, env)  # compiles the schemas once, like a runner
        runs = max(1, repeat if count <= TARGET_COUNT else 1)
        validate, render_check = [], []
        for _ in range(runs):
            wait_for_quiet(quiet, max_wait)
            validate.append(measure(modelgate("validate"), clone, env))
            wait_for_quiet(quiet, max_wait)
            render_check.append(measure(modelgate("render", "--check"), clone, env))
        return Figures(
            count,
            cold,
            median(warm),
            best(pull_request),
            best(empty),
            best(validate) + best(render_check),
            best(validate),
            best(render_check),
        )
    finally:
        shutil.rmtree(parent, ignore_errors=True)


def small_hook(repeat: int) -> Run:
    """The peer of the pre-commit figure: the same command in the project's 4-spec models/."""
    env = cache_env(Path(tempfile.mkdtemp(prefix="bench-scale-small-")))
    measure(modelgate("validate", "models/iris.yaml"), ROOT, env)  # warm the caches
    runs = [measure(modelgate("validate", "models/iris.yaml"), ROOT, env) for _ in range(repeat)]
    shutil.rmtree(env["MODELGATE_CACHE_DIR"], ignore_errors=True)
    return median(runs)


# --- reporting --------------------------------------------------------------------------


def row(label: str, run: Run, note: str = "") -> str:
    return (
        f"{label:<52} {run.wall:8.3f} {run.cpu:8.3f} {run.rss_mib:8.0f} {run.load:6.1f}  {note}"
    ).rstrip()


def fit(points: list[tuple[int, float]]) -> tuple[float, float]:
    """Least squares: (seconds per 1,000 specs, fixed seconds)."""
    if len(points) < 2:
        count, seconds = points[0]
        return 1000 * seconds / count, 0.0
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / sum(
        (x - mean_x) ** 2 for x in xs
    )
    return 1000 * slope, mean_y - slope * mean_x


def verdict(value: float, target: float, unit: str = "s") -> str:
    if value <= target:
        return f"MET ({value:.3f} {unit})" if unit == "s" else f"MET ({value:.0f} {unit})"
    over = value / target
    shown = f"{value:.3f} {unit}" if unit == "s" else f"{value:.0f} {unit}"
    return f"MISSED ({shown}: {over:.2f}x the target)"


def report(figures: list[Figures], small: Run, repeat: int) -> list[str]:
    lines = [
        f"scale benchmark: one changed spec, cold processes, best of {repeat} (pre-commit: median)",
        "",
        f"{'figure':<52} {'wall s':>8} {'cpu s':>8} {'MiB':>8} {'load':>6}",
        row("pre-commit hook, 4 specs (the project's models/)", small),
    ]
    for found in figures:
        n = f"{found.count:,}"
        lines += [
            "",
            row(f"{n}: pre-commit hook, facts index cold", found.precommit_cold),
            row(f"{n}: pre-commit hook, facts index warm", found.precommit_warm),
            row(f"{n}: pull request, --changed-since, fresh runner", found.pull_request),
            row(f"{n}: pull request, --changed-since, empty cache", found.pull_request_empty_cache),
            row(f"{n}: pull request, today: validate + render --check", found.pull_request_today),
            row(f"{n}: everything: validate", found.validate),
            row(f"{n}: everything: render --check", found.render_check),
            f"{n}: ratios: pull request today / --changed-since "
            f"{found.pull_request_today.wall / found.pull_request.wall:.1f}x; "
            f"hook warm / 4-spec hook {found.precommit_warm.wall / small.wall:.2f}x",
        ]
    lines.append("")
    for label, pick in (
        ("validate (everything)", lambda f: f.validate),
        ("render --check (everything)", lambda f: f.render_check),
        ("pull request (--changed-since)", lambda f: f.pull_request),
        ("pre-commit hook (index warm)", lambda f: f.precommit_warm),
    ):
        wall = fit([(f.count, pick(f).wall) for f in figures])
        cpu = fit([(f.count, pick(f).cpu) for f in figures])
        lines.append(
            f"cost per 1,000 specs, {label}: {wall[0]:.3f} s wall ({cpu[0]:.3f} s CPU), "
            f"fixed {wall[1]:.3f} s"
        )
    lines.append("")
    at = next((f for f in figures if f.count == TARGET_COUNT), None)
    if at is None:
        lines.append(f"targets: judged at {TARGET_COUNT:,} specs, which this run did not measure")
    else:
        lines += [
            f"target: pre-commit hook at 10,000 specs under {TARGETS['precommit']} s: "
            + verdict(at.precommit_warm.wall, TARGETS["precommit"]),
            f"target: pull request at 10,000 specs under {TARGETS['pull request']} s: "
            + verdict(at.pull_request.wall, TARGETS["pull request"]),
            f"target: validate everything at 10,000 specs under {TARGETS['validate']} s: "
            + verdict(at.validate.wall, TARGETS["validate"]),
            f"target: render --check everything at 10,000 specs under "
            f"{TARGETS['render --check']} s: "
            + verdict(at.render_check.wall, TARGETS["render --check"]),
            "target: peak memory at 10,000 specs under 1 GiB: "
            + verdict(max(at.validate.rss_mib, at.render_check.rss_mib), TARGETS["memory"], "MiB"),
        ]
    lines.append(
        f"machine: {platform.platform()}, Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs; load is the 1-minute average when each figure started"
    )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default="1000,10000,30000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quiet-load", type=float, default=3.0)
    parser.add_argument("--max-wait", type=float, default=900.0)
    args = parser.parse_args()
    counts = [int(part) for part in args.counts.split(",") if part]
    small = small_hook(max(args.repeat, 5))  # the cache as a developer's machine has it
    figures = [measure_count(n, args.repeat, args.quiet_load, args.max_wait) for n in counts]
    print("\n".join(report(figures, small, args.repeat)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
